"""Vectors of whole version-2 epoch changes (spec 11.v2.9-14, 11.v2.21-28; 08 "Version 2").

`vectors/epoch-run-v2.json`, kind `epoch-run-v2`, three operations, one case each per suite:

- `run`: a run of a committee of k = 2 in a roster of n = 3 (member 2 a joiner), from the
  members' private keys and the two run seeds to every entry (announcements, round-1 and
  round-3 items, commit, REVEAL, TICK, evidence of each kind) and every derived value
  (run_session_id, commit_secret, member_base, seal_secret, each sealing's info and ikmE, the
  Merkle leaves, root and every path, group_context, epoch_secret, confirmation_tag and the new
  epoch's values), with the joiner's opening of the commit.
- `creation`: the creator alone as committee of epoch 0 with two initial members: its record,
  the proposals, the run's entries, epoch 1's values, the notices' common part (body, common
  mailbox, common key, the part, its hash and chunks) and each initial member's notice (notice
  key, header, notice id, chunks) and its opening with the common part.
- `rejoin`: after that creation, a rejoin request of initial member 1 answered by the creator
  as if the bundle had held member 2's pair at member 1's place: the repaired sealing, the
  conviction entry (epoch 1, control blob) and the requester's acceptance.

Randomness: each run seed is given (32 bytes, 11.v2.9); any other random byte drawn (HPKE is
deterministic from ikmE; the common part's nonce and the notice nonces, DKG-signature randomness
of the equivocating second round-1 item, control-blob nonces) is given in the order drawn as
`randomness`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from triple_ratchet import cbor
from triple_ratchet.dkg.attempt import sign_round1
from triple_ratchet.dkg.cocktail_messages import Round1Message
from triple_ratchet.group import key_schedule as ks
from triple_ratchet.group.committee import (
    RunSeed,
    local_round2,
    make_announcement,
    make_commit,
    make_reveal,
    make_round1,
    make_round3,
    open_commit,
)
from triple_ratchet.group.control import (
    TYPE_ANNOUNCEMENT,
    TYPE_COMMIT,
    TYPE_CONVICTION,
    TYPE_EVIDENCE,
    TYPE_RECORD,
    TYPE_REVEAL,
    TYPE_ROUND1,
    TYPE_ROUND3,
    TYPE_TICK,
    ControlEntry,
    open_entry,
    seal_entry,
    sign_identity_entry,
    sign_member_entry,
)
from triple_ratchet.group.notice import (
    Notice,
    NoticeChunk,
    Repair,
    accept_repaired_sealing,
    answer_rejoin,
    common_key,
    create_group,
    make_rejoin_request,
    notice_id,
    notice_key,
    open_notice,
)
from triple_ratchet.group.records import (
    PURPOSE_ROTATE,
    JoinKey,
    MemberKeyRecord,
    RecordKeys,
    RejoinRequest,
    creator_anchor,
)
from triple_ratchet.group.roster import Roster, RosterEntry
from triple_ratchet.group.run import (
    EVIDENCE_ANNOUNCEMENT_EQUIVOCATION,
    EVIDENCE_ROUND1_EQUIVOCATION,
    Evidence,
    Round1Item,
    view_hash,
)
from triple_ratchet.group.run_secrets import (
    RunInputs,
    check_round1,
    judge_blame_evidence,
    outcome_from_reveal,
    recipients_of,
    round1_transcript,
    verify_commit,
    verify_round3,
)
from triple_ratchet.group.sealing import (
    SealingContext,
    ephemeral_ikm,
    leaves,
    merkle_path,
    merkle_root,
    seal_secret,
    verify_merkle_path,
)
from triple_ratchet.identity import IdentityKeyPair
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import ALL_SUITES, HYBRID_SUITES, Suite, suite_by_name
from triple_ratchet.testvectors import (
    CaseResult,
    case,
    document,
    expect_equal,
    register,
    register_generator,
    run_cases,
)

# Every suite the group runs on: the classical ones' cases first (unchanged), then the hybrid
# (post-quantum) suites' (issue 11), each suite once when ALL_SUITES grows to hold them.
VECTOR_SUITES: tuple[Suite, ...] = tuple(dict.fromkeys((*ALL_SUITES, *HYBRID_SUITES)))
KIND = "epoch-run-v2"
FILE = "epoch-run-v2.json"


def _h(value: str) -> bytes:
    return bytes.fromhex(value)


class _Given:
    """A RandomSource handing out the vector's `randomness` in order."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __call__(self, n: int) -> bytes:
        if len(self._data) < n:
            raise AssertionError("vector randomness exhausted")
        out, self._data = self._data[:n], self._data[n:]
        return out

    def rest(self) -> int:
        return len(self._data)


class _Recording:
    """A RandomSource that records what it hands out (to write `randomness` into a vector)."""

    def __init__(self, source: DeterministicRandom) -> None:
        self._source = source
        self.drawn = b""

    def __call__(self, n: int) -> bytes:
        out = self._source(n)
        self.drawn += out
        return out


def _identity(suite: Suite, keys: dict[str, str]) -> IdentityKeyPair:
    return IdentityKeyPair(suite, suite.signing_from_bytes(_h(keys["signing"])),
                           suite.dh_private_from_bytes(_h(keys["dh"])))


def _identity_inputs(suite: Suite, rng: DeterministicRandom) -> dict[str, str]:
    return {"signing": suite.generate_signing(rng).to_bytes().hex(),
            "dh": suite.generate_dh(rng).to_bytes().hex()}


def _mailbox(m: ks.MailboxKeys) -> dict[str, str]:
    return {"access_private": m.access_key.to_bytes().hex(),
            "access_public": m.access_public.hex(), "mailbox_id": m.mailbox_id.hex()}


def _epoch_values(s: ks.EpochSecretsV2) -> dict[str, Any]:
    return {"chain_roots": [r.hex() for r in s.chain_roots],
            "sender_data_secret": s.sender_data_secret.hex(), "group_mailbox": _mailbox(s.mailbox),
            "control_mailbox": _mailbox(s.control_mailbox),
            "control_traffic_key": s.control_traffic_key.hex(), "epoch_id": s.epoch_id.hex(),
            "init_secret_next": s.init_secret_next.hex(),
            "confirmation_tag": s.confirmation_tag.hex()}


def _flip(data: bytes, i: int) -> bytes:
    return data[:i] + bytes([data[i] ^ 1]) + data[i + 1:]


# --- run ------------------------------------------------------------------------------------------


def _op_run(suite: Suite, i: dict[str, Any],
            source: _Recording | None = None) -> dict[str, Any]:
    """`source` records the random bytes drawn when generating; verifying takes them from
    `randomness`."""
    group_id, epoch, run = _h(i["group_id"]), i["epoch"], i["run"]
    rng: _Given | _Recording = source or _Given(_h(i["randomness"]))
    identities = [_identity(suite, m["identity_private"]) for m in i["members"]]
    keys = [RecordKeys.from_seed(suite, _h(m["record_seed"])) for m in i["members"]]
    entries = []
    for ident, rk, m in zip(identities, keys, i["members"], strict=True):
        if m["joiner"]:
            entries.append(RosterEntry.of(JoinKey.sign(ident, rk, expiry=m["expiry"],
                                                       inbox_id=_h(m["inbox_id"])),
                                          m["posted_at"]))
        else:
            entries.append(RosterEntry.of(MemberKeyRecord.sign(
                ident, rk, group_id=group_id, counter=1, purpose=PURPOSE_ROTATE,
                anchor=creator_anchor(suite)), m["posted_at"]))
    roster = Roster(suite, tuple(entries))
    seeds = [RunSeed.from_bytes(suite, _h(s)) for s in i["run_seeds"]]
    k = len(seeds)
    applied = _h(i["applied_proposals_hash"])
    ids = [x.public.to_bytes() for x in identities]
    announcements = [sign_identity_entry(identities[j], TYPE_ANNOUNCEMENT, group_id=group_id,
                                         epoch=epoch, author=j, body=make_announcement(
                                             seeds[j], group_id=group_id, epoch=epoch, run=run,
                                             identity=ids[j], applied_hash=applied,
                                             roster_hash=roster.hash(),
                                             view_hash=_h(i["view_hash"])).to_bytes())
                     for j in range(k)]
    joiners = frozenset(ids[j] for j, m in enumerate(i["members"]) if m["joiner"])
    recipients = recipients_of(roster, ids[:k])
    inputs = RunInputs(suite, group_id, epoch, _h(i["epoch_id"]), run, applied, roster,
                       tuple(a.entry_bytes() for a in announcements),
                       tuple(s.dkg_key() for s in seeds), recipients, joiners)

    def member(j: int, entry_type: int, body: bytes) -> ControlEntry:
        return sign_member_entry(suite, keys[j].signing_key, entry_type, group_id=group_id,
                                 epoch=epoch, author=j, body=body)

    round1_items = [make_round1(s, inputs) for s in seeds]
    round1 = [check_round1(inputs, j + 1, item) for j, item in enumerate(round1_items)]
    init_secret = _h(i["init_secret"])
    results = []
    payloads: tuple[bytes, ...] = ()
    for seed in seeds:
        local = local_round2(seed, inputs, round1)
        if local.payloads is None:
            raise AssertionError("an honest run's round 2 failed")
        payloads = local.payloads
        results.append(make_round3(seed, inputs, round1, local.payloads, init_secret))
    item, outcome = results[0]
    if outcome.bundle is None or outcome.commit_secret is None:
        raise AssertionError("a committee member holds the bundle")
    transcript = round1_transcript(inputs, round1, outcome.bundle_root)
    for j, (other, _) in enumerate(results, start=1):
        expect_equal("round-3 items agree", other.agrees_with(item), True)
        verify_round3(inputs, round1, j, other, transcript=transcript)
    commit = make_commit(inputs, outcome)
    verify_commit(inputs, commit, outcome.bundle_root)
    secrets = outcome.secrets(suite)
    context = inputs.sealing_context()
    secret = seal_secret(suite, outcome.commit_secret, inputs.session_id())
    targets = inputs.seal_targets(outcome.commit_secret, outcome.member_base)
    leaf_hashes = leaves(suite, targets, outcome.bundle.sealings)
    expect_equal("bundle root", merkle_root(suite, leaf_hashes), outcome.bundle_root)
    sealings = []
    for p, (t, s) in enumerate(zip(targets, outcome.bundle.sealings, strict=True)):
        path = merkle_path(suite, leaf_hashes, p)
        verify_merkle_path(suite, outcome.bundle_root, len(leaf_hashes), p, leaf_hashes[p], path)
        sealings.append({
            "roster_index": t.roster_index, "identity": t.identity.hex(),
            "receive_public": t.public_key.hex(),
            "sealed": "member_base" if inputs.seals_member_base(t.roster_index)
            else "commit_secret",
            "info": context.info(t.identity).hex(),
            "ikm_e": ephemeral_ikm(context, secret, t).hex(),
            "enc": s.enc.hex(), "ct": s.ct.hex(), "leaf": leaf_hashes[p].hex(),
            "merkle_path": [x.hex() for x in path]})
    # every recipient opens the commit and derives the same epoch
    for index in recipients:
        opened = open_commit(inputs, round1, commit, bundle_root=item.bundle_root,
                             confirmation_tag=item.confirmation_tag, roster_index=index,
                             receive_private_key=keys[index].receive_key.to_bytes(),
                             init_secret=None if inputs.seals_member_base(index) else init_secret)
        expect_equal("recipient's epoch_id", opened.secrets(suite).epoch_id, secrets.epoch_id)
    reveal = make_reveal(inputs, payloads)
    expect_equal("REVEAL reader's epoch_id", outcome_from_reveal(
        inputs, round1, reveal, init_secret).secrets(suite).epoch_id, secrets.epoch_id)

    # Evidence. Kind 1: member 0's second announcement (another DKG key), posted by member 1.
    second_seed = RunSeed.from_bytes(suite, _h(i["equivocation_seed"]))
    second = sign_identity_entry(identities[0], TYPE_ANNOUNCEMENT, group_id=group_id, epoch=epoch,
                                 author=0, body=make_announcement(
                                     second_seed, group_id=group_id, epoch=epoch, run=run,
                                     identity=ids[0], applied_hash=applied,
                                     roster_hash=roster.hash(),
                                     view_hash=_h(i["view_hash"])).to_bytes())
    ev_announcement = Evidence.make(run, EVIDENCE_ANNOUNCEMENT_EQUIVOCATION, cbor.encode(
        [announcements[0].to_bytes(), second.to_bytes()]))
    # Kind 2: dealer 2's second SignedRound1 with the same msg1 and another payload.
    params = inputs.params()
    msg = round1[1].parse(params)
    other_round1 = sign_round1(params, seeds[1].dkg_secret(), msg, _h(i["equivocation_payload"]),
                               rng=rng)
    ev_round1 = Evidence.make(run, EVIDENCE_ROUND1_EQUIVOCATION, cbor.encode(
        [round1[1].to_bytes(), other_round1.to_bytes()]))
    # Kind 3: dealer 2's msg1 with a garbled ciphertext to position 1; member 0 blames it.
    cts = list(msg.ciphertexts)
    cts[0] = _flip(cts[0], 40)
    bad = sign_round1(params, seeds[1].dkg_secret(), Round1Message(
        msg.commitment, msg.pop, msg.ephemeral, tuple(cts)), seeds[1].payload(), rng=rng)
    bad_round1 = [round1[0], check_round1(inputs, 2, Round1Item(run, bad.to_bytes()))]
    victim = local_round2(seeds[0], inputs, bad_round1)
    if victim.blame is None or victim.culprit != 2:
        raise AssertionError("the garbled share gives no blame of dealer 2")
    verdict = judge_blame_evidence(inputs, 1, victim.blame)
    expect_equal("blame upheld against", (verdict.upheld, verdict.culprit), (True, 2))

    signed: dict[str, Any] = {
        "announcements": [a.to_bytes().hex() for a in announcements],
        "round1": [member(j, TYPE_ROUND1, r.to_bytes()).to_bytes().hex()
                   for j, r in enumerate(round1_items)],
        "round3": [member(j, TYPE_ROUND3, r.to_bytes()).to_bytes().hex()
                   for j, (r, _) in enumerate(results)],
        "commit": member(0, TYPE_COMMIT, commit.to_bytes()).to_bytes().hex(),
        "reveal": member(1, TYPE_REVEAL, reveal.to_bytes()).to_bytes().hex(),
        "tick": member(2, TYPE_TICK, b"").to_bytes().hex(),
        "evidence_announcement_equivocation":
            member(1, TYPE_EVIDENCE, ev_announcement.to_bytes()).to_bytes().hex(),
        "evidence_round1_equivocation":
            member(0, TYPE_EVIDENCE, ev_round1.to_bytes()).to_bytes().hex(),
        "evidence_blame": member(0, TYPE_EVIDENCE, victim.blame.to_bytes()).to_bytes().hex(),
    }
    control = {"traffic_key": _h(i["control_traffic_key"]),
               "mailbox_id": _h(i["control_mailbox_id"])}
    blobs = {}
    for name in ("commit", "tick"):
        entry = ControlEntry.from_bytes(suite, _h(signed[name]), group_id=group_id, epoch=epoch)
        blob = seal_entry(suite, control["traffic_key"], control["mailbox_id"], entry, rng)
        back = open_entry(suite, control["traffic_key"], control["mailbox_id"], blob,
                          group_id=group_id, epoch=epoch, roster_size=len(roster.entries))
        expect_equal("control blob read back", back.to_bytes(), entry.to_bytes())
        blobs[name] = blob.hex()
    if isinstance(rng, _Given) and rng.rest():
        raise AssertionError("vector randomness left over")
    return {
        "roster": roster.to_bytes().hex(), "roster_hash": roster.hash().hex(),
        "dkg_public_keys": [s.dkg_key().to_bytes().hex() for s in seeds],
        "payloads": [p.hex() for p in payloads],
        "run_session_id": inputs.session_id().hex(),
        "cocktail_context": params.context.hex(),
        "recipients": list(recipients),
        "signed_entries": signed,
        "control_blobs": blobs,
        "second_signed_round1": other_round1.to_bytes().hex(),
        "blame_evidence": victim.blame.evidence.hex(),
        "commit_secret": outcome.commit_secret.hex(), "member_base": outcome.member_base.hex(),
        "seal_secret": secret.hex(), "sealings": sealings,
        "bundle_root": outcome.bundle_root.hex(), "transcript_hash": outcome.transcript_hash.hex(),
        "group_context": outcome.group_context.hex(), "epoch_secret": outcome.epoch_secret.hex(),
        "new_epoch": _epoch_values(secrets),
    }


# --- creation, notices, rejoin ---------------------------------------------------------------


def _create(suite: Suite, i: dict[str, Any],
            rng: _Given | _Recording) -> tuple[Any, Any, list[Any]]:
    creator = _identity(suite, i["creator"]["identity_private"])
    creator_keys = RecordKeys.from_seed(suite, _h(i["creator"]["record_seed"]))
    members = []
    for m in i["initial_members"]:
        ident = _identity(suite, m["identity_private"])
        jk = JoinKey.sign(ident, RecordKeys.from_seed(suite, _h(m["record_seed"])),
                          expiry=m["expiry"], inbox_id=_h(m["inbox_id"]))
        members.append((ident, RecordKeys.from_seed(suite, _h(m["record_seed"])), jk))
    start, notices = create_group(creator, creator_keys, group_id=_h(i["group_id"]),
                                  join_keys=[jk for _, _, jk in members], now=i["now"], rng=rng)
    return start, notices, members


def _op_creation(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    rng = _Given(_h(i["randomness"]))
    start, notices, members = _create(suite, i, rng)
    if rng.rest():
        raise AssertionError("vector randomness left over")
    change = start.change
    if start.common is None:
        raise AssertionError("a creation with members posts a common part")
    common = b"".join(NoticeChunk.from_bytes(suite, c).data for c in start.common.chunks)
    expect_equal("common part hash", start.common.common_hash, notice_id(suite, common))
    out_notices = []
    for (ident, jk_keys, _), outgoing in zip(members, notices, strict=True):
        identity = ident.public.to_bytes()
        expect_equal("notice recipient", outgoing.identity, identity)
        data = b"".join(NoticeChunk.from_bytes(suite, c).data for c in outgoing.chunks)
        notice = Notice.from_bytes(data)
        joined = open_notice(suite, data, identity=identity, keys=[jk_keys], common=common)
        expect_equal("joiner's epoch_id", joined.epoch_id, start.epoch_id)
        out_notices.append({
            "identity": identity.hex(), "inbox_id": outgoing.inbox_id.hex(),
            "notice_key": notice_key(suite, start.member_base, identity).hex(),
            "header": notice.header.hex(), "nonce": notice.nonce.hex(),
            "notice": data.hex(),
            "notice_id": notice_id(suite, data).hex(),
            "chunks": [c.hex() for c in outgoing.chunks],
            "opened": {"own_index": joined.own_index, "epoch": joined.epoch,
                       "epoch_id": joined.epoch_id.hex(),
                       "opened_with": joined.opened_with.hex()}})
    record_entry = sign_identity_entry(
        _identity(suite, i["creator"]["identity_private"]), TYPE_RECORD,
        group_id=_h(i["group_id"]), epoch=0, author=0, body=start.record.to_bytes())
    return {
        "signed_record": start.record.to_bytes().hex(),
        "record_entry": record_entry.to_bytes().hex(),
        "roster": start.roster.to_bytes().hex(), "roster_hash": start.roster.hash().hex(),
        "proposals": [p.hex() for p in change.applied],
        "applied_proposals_hash": start.inputs.applied_hash.hex(),
        "announcements": [a.hex() for a in change.announcements],
        "round1": [r.hex() for r in change.round1], "round3": [r.hex() for r in change.round3],
        "commit": start.commit.to_bytes().hex(),
        "run_session_id": change.run_session_id.hex(),
        "commit_secret": start.commit_secret.hex(), "member_base": start.member_base.hex(),
        "group_context": start.group_context.hex(),
        "sealings": [{"enc": s.enc.hex(), "ct": s.ct.hex()} for s in change.bundle],
        "new_epoch": _epoch_values(start.secrets),
        "common": {"body": change.body_bytes.hex(),
                   "mailbox_id": start.common.mailbox.mailbox_id.hex(),
                   "access_public": start.common.mailbox.access_public.hex(),
                   "common_key": common_key(suite, start.member_base).hex(),
                   "common": common.hex(), "common_hash": start.common.common_hash.hex(),
                   "chunks": [c.hex() for c in start.common.chunks]},
        "notices": out_notices,
    }


def _op_rejoin(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    rng = _Given(_h(i["randomness"]))
    start, notices, members = _create(suite, i, rng)
    if rng.rest():
        raise AssertionError("vector randomness left over")
    if start.common is None:
        raise AssertionError("a creation with members posts a common part")
    # The creation's notices and common part pin every byte of the randomness drawn.
    creation = {"common_hash": start.common.common_hash.hex(),
                "notice_ids": [NoticeChunk.from_bytes(suite, n.chunks[0]).notice_id.hex()
                               for n in notices]}
    ident, jk_keys, jk = members[0]
    resume_keys = RecordKeys.from_seed(suite, _h(i["resume_record_seed"]))
    request = make_rejoin_request(ident, resume_keys, group_id=_h(i["group_id"]),
                                  own_counters=[0], anchor=start.roster.entries[1].anchor,
                                  inbox_id=jk.inbox_id)
    expect_equal("decoded rejoin request", RejoinRequest.from_bytes(
        suite, request.to_bytes(), group_id=_h(i["group_id"]), peer=ident.public), request)
    change = start.change
    decided = SealingContext(suite, _h(i["group_id"]), 1, change.run_session_id,
                             start.roster.hash())
    recipient = start.inputs.seal_targets(start.commit_secret, start.member_base)[0]
    answer = answer_rejoin(request, decided=decided, decided_run=1,
                           commit_secret=start.commit_secret, recipient=recipient,
                           certified=change.bundle[1], author=start.record.identity,
                           current_epoch=1, current_epoch_id=start.epoch_id)
    if not isinstance(answer, Repair):
        raise AssertionError("a wrong certified sealing must be repaired")
    creator_keys = RecordKeys.from_seed(suite, _h(i["creator"]["record_seed"]))
    conviction = sign_member_entry(suite, creator_keys.signing_key, TYPE_CONVICTION,
                                   group_id=_h(i["group_id"]), epoch=1, author=0,
                                   body=answer.conviction.to_bytes())
    secrets = start.secrets
    blob = seal_entry(suite, secrets.control_traffic_key, secrets.control_mailbox.mailbox_id,
                      conviction, _Given(_h(i["conviction_nonce"])))
    accepted = accept_repaired_sealing(
        answer.repaired, decided=decided, decided_run=1, identity=ident.public.to_bytes(),
        private_key=jk_keys.receive_key.to_bytes(), init_secret=None,
        group_context=start.group_context, roster_size=len(start.roster.entries),
        tag=secrets.confirmation_tag)
    expect_equal("accepted epoch_id", accepted.epoch_id, secrets.epoch_id)
    return {"signed_resume_record": request.record.to_bytes().hex(),
            "rejoin_request": request.to_bytes().hex(),
            "repaired_sealing": answer.repaired.to_bytes().hex(),
            "conviction_entry": conviction.to_bytes().hex(), "conviction_blob": blob.hex(),
            "epoch_id": accepted.epoch_id.hex(), "creation": creation}


_OPERATIONS = {"run": _op_run, "creation": _op_creation, "rejoin": _op_rejoin}


def _check(c: dict[str, Any]) -> None:
    suite = suite_by_name(c["suite"])
    i = c["inputs"]
    operation = _OPERATIONS.get(i["operation"])
    if operation is None:
        raise AssertionError(f"unknown operation {i['operation']!r}")
    got = operation(suite, i)
    want = c.get("outputs", {})
    expect_equal("output names", sorted(got), sorted(want))
    for key, value in want.items():
        expect_equal(key, got[key], value)


def _generate_suite(suite: Suite) -> list[dict[str, Any]]:
    rng = DeterministicRandom(b"epoch-run-v2 vectors " + suite.name.encode())
    cases: list[dict[str, Any]] = []
    members = []
    for j in range(3):
        m: dict[str, Any] = {"identity_private": _identity_inputs(suite, rng),
                             "record_seed": rng(32).hex(), "joiner": j == 2,
                             "posted_at": 1_733_300_000_000 + j}
        if j == 2:
            m.update(expiry=1_800_000_000_000, inbox_id=rng(32).hex())
        members.append(m)
    run = {"operation": "run", "group_id": rng(16).hex(), "epoch": 5, "epoch_id": rng(32).hex(),
           "run": 1, "init_secret": rng(suite.hash_len).hex(),
           "applied_proposals_hash": rng(suite.hash_len).hex(), "members": members,
           "run_seeds": [rng(32).hex(), rng(32).hex()], "equivocation_seed": rng(32).hex(),
           "equivocation_payload": rng(32).hex(), "control_traffic_key": rng(32).hex(),
           "control_mailbox_id": rng(32).hex()}
    # Epoch 5's view (T0(5), nothing carried, nobody dormant): no random bytes drawn.
    run["view_hash"] = view_hash(suite, 1_733_299_000_000, (), ()).hex()
    recorder = _Recording(rng)
    out = _op_run(suite, run, recorder)
    run["randomness"] = recorder.drawn.hex()
    cases.append(case("a run of k = 2 in a roster of 3 (member 2 a joiner), epoch 5",
                      suite.name, run, out))
    creation: dict[str, Any] = {
        "operation": "creation", "group_id": rng(16).hex(), "now": 1_733_300_000_000,
        "creator": {"identity_private": _identity_inputs(suite, rng),
                    "record_seed": rng(32).hex()},
        "initial_members": [{"identity_private": _identity_inputs(suite, rng),
                             "record_seed": rng(32).hex(), "expiry": 1_800_000_000_000,
                             "inbox_id": rng(32).hex()} for _ in range(2)]}
    recorder = _Recording(rng)
    _create(suite, creation, recorder)
    creation["randomness"] = recorder.drawn.hex()
    cases.append(case("creation: the creator alone as committee of epoch 0, two initial members",
                      suite.name, creation, _op_creation(suite, creation)))
    rejoin = {**creation, "operation": "rejoin", "resume_record_seed": rng(32).hex(),
              "conviction_nonce": rng(suite.aead_nonce_len).hex()}
    cases.append(case("rejoin of initial member 1: a wrong certified sealing repaired, convicted",
                      suite.name, rejoin, _op_rejoin(suite, rejoin)))
    return cases


def _generate() -> dict[str, Any]:
    cases = [c for suite in VECTOR_SUITES for c in _generate_suite(suite)]
    return document(KIND, "Whole runs of version 2 of the epoch change (spec 11.v2, 08 v2)",
                    cases)


def verify(doc: dict[str, Any]) -> Iterator[CaseResult]:
    return run_cases(doc, _check)


def generate() -> dict[str, dict[str, Any]]:
    return {FILE: _generate()}


register(lambda: {KIND: verify})
register_generator(generate)
