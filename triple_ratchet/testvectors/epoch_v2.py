"""Vectors for the values of version 2 of the epoch change (spec 11.v2.1-14, 08 "Version 2").

Two files:

- `vectors/key-schedule-v2.json`, kind `key-schedule-v2`: operation `run` (from a run's public
  inputs and payloads to every value of the new epoch, intermediates included) and `extension`
  (the run's COCKTAIL extension); negative cases for malformed inputs.
- `vectors/epoch-change-v2.json`, kind `epoch-change-v2`: one operation per value — `record`,
  `join_key`, `control_entry`, `proposal`, `announcement`, `round1`, `round3`, `tick`,
  `commit_entry` (the bundle as opaque pairs; the sealing itself is `group/sealing.py`'s),
  `reveal`, `evidence`, `conviction` (each a signed entry and its control blob),
  `rejoin_request`, `repaired_sealing`, `membership_hint`, `roster_hash`,
  `applied_proposals_hash`, `judge_record` (the supersede rules), and `parse` (negative cases:
  bytes that a strict reader must refuse with the named error). Control blobs take the control
  mailbox's `traffic_key` and `mailbox_id` directly (the key schedule file derives them from an
  epoch).

Private inputs: identity keys as `identity_private` = `{"signing", "dh"}` (section 2
encodings), record and join-key key pairs as a 32-byte `record_seed` (section 11.v2.3, local
derivation), DKG secrets as 32-byte little-endian scalars, and every random byte drawn
(control-blob `nonce`, DKG-signature `dkg_signature_randomness`) as hex. Identity and member
signatures are deterministic (RFC 6979, Ed25519).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from triple_ratchet import cbor
from triple_ratchet.dkg.cocktail import make_context, schnorr_sign
from triple_ratchet.dkg.ed25519 import Point, Scalar
from triple_ratchet.group import key_schedule as ks
from triple_ratchet.group.change_proposal import (
    KIND_ADD,
    KIND_REFRESH,
    KIND_REMOVE,
    KIND_RESUME,
    ChangeProposal,
    applied_proposals_hash,
)
from triple_ratchet.group.control import (
    TYPE_ANNOUNCEMENT,
    TYPE_COMMIT,
    TYPE_CONVICTION,
    TYPE_EVIDENCE,
    TYPE_PROPOSAL,
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
from triple_ratchet.group.epoch_claim import EpochClaim
from triple_ratchet.group.notice import (
    MembershipHint,
    chunk_notice,
    common_key,
    common_mailbox,
    notice_id,
    open_common,
    seal_common,
)
from triple_ratchet.group.records import (
    PURPOSE_RESUME,
    PURPOSE_ROTATE,
    JoinKey,
    MemberKeyRecord,
    RecordKeys,
    RejoinRequest,
    anchor_of,
    creator_anchor,
    decode_keys,
    judge_record,
    replace_signatures,
)
from triple_ratchet.group.roster import Roster, RosterEntry
from triple_ratchet.group.run import (
    Commit,
    Conviction,
    Evidence,
    RepairedSealing,
    Reveal,
    Round1Item,
    Round3Item,
    RunAnnouncement,
    sealing_sizes,
    view_hash,
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
KS_KIND = "key-schedule-v2"
KS_FILE = "key-schedule-v2.json"
KIND = "epoch-change-v2"
FILE = "epoch-change-v2.json"

PURPOSES = {"rotate": PURPOSE_ROTATE, "resume": PURPOSE_RESUME}
KINDS = {"add": KIND_ADD, "remove": KIND_REMOVE, "refresh": KIND_REFRESH,
         "resume": KIND_RESUME}
MEMBER_SIGNED = {"round1": TYPE_ROUND1, "round3": TYPE_ROUND3, "tick": TYPE_TICK,
                 "commit_entry": TYPE_COMMIT, "reveal": TYPE_REVEAL, "evidence": TYPE_EVIDENCE,
                 "conviction": TYPE_CONVICTION}


def _h(value: str) -> bytes:
    return bytes.fromhex(value)


class _Fixed:
    """A RandomSource that hands out given bytes (the vector's drawn randomness)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __call__(self, n: int) -> bytes:
        if len(self._data) < n:
            raise AssertionError("vector randomness exhausted")
        out, self._data = self._data[:n], self._data[n:]
        return out


def _identity(suite: Suite, keys: dict[str, str]) -> IdentityKeyPair:
    return IdentityKeyPair(suite, suite.signing_from_bytes(_h(keys["signing"])),
                           suite.dh_private_from_bytes(_h(keys["dh"])))


def _identity_inputs(suite: Suite, rng: DeterministicRandom) -> dict[str, str]:
    return {"signing": suite.generate_signing(rng).to_bytes().hex(),
            "dh": suite.generate_dh(rng).to_bytes().hex()}


def _scalar(value: str) -> Scalar:
    return Scalar.from_bytes(_h(value))


# --- key-schedule-v2 --------------------------------------------------------------------------


def _mailbox(m: ks.MailboxKeys) -> dict[str, str]:
    return {"access_private": m.access_key.to_bytes().hex(),
            "access_public": m.access_public.hex(), "mailbox_id": m.mailbox_id.hex()}


def _run_outputs(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    sid = ks.run_session_id(suite, _h(i["group_id"]), i["epoch"], _h(i["epoch_id"]), i["run"],
                            _h(i["applied_proposals_hash"]),
                            [_h(a) for a in i["announcement_entries"]])
    commit_secret = ks.extract_commit_secret(suite, sid, [_h(p) for p in i["payloads"]])
    base = ks.extract_member_base(suite, _h(i["init_secret"]), commit_secret)
    context = ks.group_context(suite, _h(i["group_id"]), i["epoch"] + 1, _h(i["epoch_id"]),
                               _h(i["new_roster_hash"]), _h(i["applied_proposals_hash"]),
                               _h(i["bundle_root"]), _h(i["transcript_hash"]))
    epoch = ks.derive_epoch_v2(suite, base, context, i["roster_size"])
    return {
        "run_session_id": sid.hex(), "commit_secret": commit_secret.hex(),
        "member_base": base.hex(), "group_context": context.hex(),
        "epoch_secret": ks.expand_epoch_secret(suite, base, context).hex(),
        "confirmation_tag": epoch.confirmation_tag.hex(),
        "chain_roots": [r.hex() for r in epoch.chain_roots],
        "sender_data_secret": epoch.sender_data_secret.hex(),
        "group_mailbox": _mailbox(epoch.mailbox),
        "control_mailbox": _mailbox(epoch.control_mailbox),
        "control_traffic_key": epoch.control_traffic_key.hex(),
        "epoch_id": epoch.epoch_id.hex(), "init_secret_next": epoch.init_secret_next.hex(),
    }


def _extension_outputs(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    return {"extension": ks.run_extension(
        suite, [_h(p) for p in i["payload_hashes"]], [_h(a) for a in i["announcement_entries"]],
        _h(i["new_roster_hash"]), _h(i["applied_proposals_hash"]), _h(i["bundle_root"]),
        _h(i["epoch_id"])).hex()}


def _check_ks(c: dict[str, Any]) -> None:
    suite = suite_by_name(c["suite"])
    i = c["inputs"]
    got = {"run": _run_outputs, "extension": _extension_outputs}[i["operation"]](suite, i)
    for key, want in c.get("outputs", {}).items():
        expect_equal(key, got.get(key), want)


def _generate_ks() -> dict[str, Any]:
    cases: list[dict[str, Any]] = []
    for suite in VECTOR_SUITES:
        rng = DeterministicRandom(b"key-schedule-v2 vectors " + suite.name.encode())
        h = suite.hash_len
        creation = {
            "operation": "run", "group_id": rng(16).hex(), "epoch": 0, "epoch_id": "", "run": 1,
            "applied_proposals_hash": rng(h).hex(), "announcement_entries": [rng(300).hex()],
            "payloads": [rng(32).hex()], "init_secret": ks.initial_init_secret(suite).hex(),
            "new_roster_hash": rng(h).hex(), "bundle_root": rng(h).hex(),
            "transcript_hash": rng(64).hex(), "roster_size": 3,
        }
        cases.append(case("creation: epoch 0, the creator alone, init_secret(0) all zero",
                          suite.name, creation, _run_outputs(suite, creation)))
        change = {
            "operation": "run", "group_id": rng(16).hex(), "epoch": 7, "epoch_id": rng(32).hex(),
            "run": 2, "applied_proposals_hash": rng(h).hex(),
            "announcement_entries": [rng(300).hex() for _ in range(3)],
            "payloads": [rng(32).hex() for _ in range(3)], "init_secret": rng(h).hex(),
            "new_roster_hash": rng(h).hex(), "bundle_root": rng(h).hex(),
            "transcript_hash": rng(64).hex(), "roster_size": 5,
        }
        cases.append(case("epoch 7, run 2, a committee of three, five members", suite.name,
                          change, _run_outputs(suite, change)))
        extension = {
            "operation": "extension", "payload_hashes": [rng(64).hex() for _ in range(2)],
            "announcement_entries": [rng(300).hex() for _ in range(2)],
            "new_roster_hash": rng(h).hex(), "applied_proposals_hash": rng(h).hex(),
            "bundle_root": rng(h).hex(), "epoch_id": rng(32).hex(),
        }
        cases.append(case("the run's DKG extension, committee of two", suite.name, extension,
                          _extension_outputs(suite, extension)))
        for description, edit, error in (
            ("payload of 31 bytes", {"payloads": [rng(31).hex()] * 3}, "UsageError"),
            ("payload of 33 bytes", {"payloads": [rng(33).hex()] * 3}, "UsageError"),
            ("no payload (k = 0)", {"payloads": []}, "LimitExceeded"),
            ("nine payloads (k = 9)", {"payloads": [rng(32).hex()] * 9}, "LimitExceeded"),
            ("init secret one byte short", {"init_secret": rng(h - 1).hex()}, "UsageError"),
            ("epoch_id(e) empty after epoch 0", {"epoch_id": ""}, "UsageError"),
        ):
            cases.append(case(description, suite.name, {**change, **edit}, error=error))
    return document(KS_KIND, "Key schedule of version 2 (spec 08 §8.v2): run to epoch values",
                    cases)


# --- epoch-change-v2 ----------------------------------------------------------------------------


def _entry_outputs(entry: ControlEntry, i: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"body": entry.body.hex(), "entry": entry.entry_bytes().hex(),
                           "signed_entry": entry.to_bytes().hex()}
    if "traffic_key" in i:
        out["control_blob"] = seal_entry(entry.suite, _h(i["traffic_key"]), _h(i["mailbox_id"]),
                                         entry, _Fixed(_h(i["nonce"]))).hex()
    return out


def _identity_entry(suite: Suite, i: dict[str, Any], entry_type: int,
                    body: bytes) -> ControlEntry:
    return sign_identity_entry(_identity(suite, i["identity_private"]), entry_type,
                               group_id=_h(i["group_id"]), epoch=i["epoch"],
                               author=i["author_index"], body=body)


def _member_entry(suite: Suite, i: dict[str, Any], entry_type: int, body: bytes) -> ControlEntry:
    keys = RecordKeys.from_seed(suite, _h(i["record_seed"]))
    return sign_member_entry(suite, keys.signing_key, entry_type, group_id=_h(i["group_id"]),
                             epoch=i["epoch"], author=i["author_index"], body=body)


def _check_entry_reads_back(suite: Suite, i: dict[str, Any], out: dict[str, Any],
                            entry: ControlEntry) -> None:
    if "control_blob" in out:
        opened = open_entry(suite, _h(i["traffic_key"]), _h(i["mailbox_id"]),
                            _h(out["control_blob"]), group_id=_h(i["group_id"]),
                            epoch=i["epoch"], roster_size=i["author_index"] + 1)
        expect_equal("entry read back", opened.to_bytes(), entry.to_bytes())
    signer = (_identity(suite, i["identity_private"]).public if "identity_private" in i
              else None)
    member = (suite.verifying_from_bytes(RecordKeys.from_seed(suite, _h(i["record_seed"]))
                                         .signing_public) if "record_seed" in i else None)
    entry.verify(signer, member)


def _record(suite: Suite, i: dict[str, Any]) -> MemberKeyRecord:
    return MemberKeyRecord.sign(_identity(suite, i["identity_private"]),
                                RecordKeys.from_seed(suite, _h(i["record_seed"])),
                                group_id=_h(i["group_id"]), counter=i["counter"],
                                purpose=PURPOSES[i["purpose"]], anchor=_h(i["anchor"]))


def _join_key(suite: Suite, i: dict[str, Any]) -> JoinKey:
    return JoinKey.sign(_identity(suite, i["identity_private"]),
                        RecordKeys.from_seed(suite, _h(i["record_seed"])), expiry=i["expiry"],
                        inbox_id=_h(i["inbox_id"]))


def _op_record(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    record = _record(suite, i)
    entry = _identity_entry(suite, i, TYPE_RECORD, record.to_bytes())
    out = {"identity_encoding": record.identity.hex(), "receive_public": record.receive_key.hex(),
           "signing_public": record.signing_key.hex(), "record": record.body().hex(),
           "signed_record": record.to_bytes().hex(),
           "anchor": anchor_of(suite, _h(i["applied_in"]), record.body()).hex(),
           **_entry_outputs(entry, i)}
    expect_equal("decoded record", MemberKeyRecord.from_bytes(suite, record.to_bytes()), record)
    _check_entry_reads_back(suite, i, out, entry)
    return out


def _op_join_key(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    jk = _join_key(suite, i)
    expect_equal("decoded join key", JoinKey.from_bytes(suite, jk.to_bytes()), jk)
    return {"identity_encoding": jk.identity.hex(), "receive_public": jk.receive_key.hex(),
            "signing_public": jk.signing_key.hex(), "join_key": jk.body().hex(),
            "signed_join_key": jk.to_bytes().hex(), "anchor": jk.anchor(_h(i["applied_in"])).hex()}


def _op_proposal(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    author = _identity(suite, i["identity_private"])
    kind = KINDS[i["kind"]]
    raw = _h(i["change"])
    change: JoinKey | bytes | MemberKeyRecord | None = None
    if kind == KIND_ADD:
        change = JoinKey.from_bytes(suite, raw)
    elif kind == KIND_REMOVE:
        change = raw
    elif kind == KIND_RESUME:
        change = MemberKeyRecord.from_bytes(suite, raw)
    proposal = ChangeProposal.make(suite, kind, group_id=_h(i["group_id"]), epoch=i["epoch"],
                                   epoch_id=_h(i["epoch_id"]), author=author.public.to_bytes(),
                                   change=change)
    entry = _identity_entry(suite, i, TYPE_PROPOSAL, proposal.to_bytes())
    out = _entry_outputs(entry, i)
    _check_entry_reads_back(suite, i, out, entry)
    expect_equal("decoded proposal", ChangeProposal.from_entry(entry, author.public), proposal)
    return out


def _op_announcement(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    author = _identity(suite, i["identity_private"])
    dkg_key = Point.base_mul(_scalar(i["dkg_secret"]))
    a = RunAnnouncement.make(suite, group_id=_h(i["group_id"]), epoch=i["epoch"], run=i["run"],
                             identity=author.public.to_bytes(), dkg_key=dkg_key,
                             applied_proposals_hash=_h(i["applied_proposals_hash"]),
                             roster_hash=_h(i["new_roster_hash"]),
                             view_hash=_h(i["view_hash"]))
    entry = _identity_entry(suite, i, TYPE_ANNOUNCEMENT, a.to_bytes())
    out = {"dkg_public_key": dkg_key.to_bytes().hex(), **_entry_outputs(entry, i)}
    _check_entry_reads_back(suite, i, out, entry)
    expect_equal("decoded announcement", RunAnnouncement.from_entry(entry, author.public), a)
    return out


def _member_body(suite: Suite, op: str, i: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    extra: dict[str, Any] = {}
    if op == "round1":
        return Round1Item(i["run"], _h(i["signed_round1"])).to_bytes(), extra
    if op == "round3":
        d = _scalar(i["dkg_secret"])
        key = Point.base_mul(d)
        context = make_context(_h(i["run_session_id"]), [key])
        certeq = schnorr_sign(d, _h(i["transcript"]))
        item = Round3Item.sign(suite, d, run=i["run"], context=context,
                               run_session_id=_h(i["run_session_id"]), certeq_signature=certeq,
                               bundle_root=_h(i["bundle_root"]),
                               confirmation_tag=_h(i["confirmation_tag"]),
                               rng=_Fixed(_h(i["dkg_signature_randomness"])))
        item.verify(key, context=context, run_session_id=_h(i["run_session_id"]),
                    transcript=_h(i["transcript"]))
        extra = {"dkg_public_key": key.to_bytes().hex(), "cocktail_context": context.hex(),
                 "certeq_signature": certeq.hex(), "dkg_signature": item.dkg_signature.hex()}
        return item.to_bytes(), extra
    if op == "tick":
        return b"", extra
    if op == "commit_entry":
        commit = Commit.make(suite, i["run"], [(_h(e), _h(c)) for e, c in i["bundle"]])
        expect_equal("decoded commit", Commit.from_bytes(suite, commit.to_bytes()), commit)
        return commit.to_bytes(), extra
    if op == "reveal":
        return Reveal.make(i["run"], [_h(p) for p in i["payloads"]]).to_bytes(), extra
    if op == "evidence":
        return Evidence.make(i["run"], i["kind"], _h(i["evidence"])).to_bytes(), extra
    conviction = Conviction(i["decided_epoch"], i["run"], i["recipient_index"], _h(i["enc"]),
                            _h(i["ct"]))
    expect_equal("decoded conviction", Conviction.from_bytes(suite, conviction.to_bytes()),
                 conviction)
    return conviction.to_bytes(), extra


def _op_member_entry(op: str) -> Callable[[Suite, dict[str, Any]], dict[str, Any]]:
    def run(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
        body, extra = _member_body(suite, op, i)
        entry = _member_entry(suite, i, MEMBER_SIGNED[op], body)
        out = {**extra, **_entry_outputs(entry, i)}
        _check_entry_reads_back(suite, i, out, entry)
        return out
    return run


def _op_control_entry(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    """Any entry type with a given body: signed by the identity for 0x40-0x42, else by the
    record key of `record_seed`."""
    body = _h(i["body"])
    entry = (_identity_entry(suite, i, i["type"], body) if i["signer"] == "identity"
             else _member_entry(suite, i, i["type"], body))
    out = _entry_outputs(entry, i)
    _check_entry_reads_back(suite, i, out, entry)
    return out


def _op_rejoin_request(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    record = _record(suite, {**i, "purpose": "resume"})
    request = RejoinRequest.make(record, _h(i["inbox_id"]))
    expect_equal("decoded rejoin request", RejoinRequest.from_bytes(
        suite, request.to_bytes(), group_id=_h(i["group_id"]),
        peer=_identity(suite, i["identity_private"]).public), request)
    return {"signed_record": record.to_bytes().hex(), "rejoin_request": request.to_bytes().hex()}


def _op_repaired_sealing(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    repaired = RepairedSealing(suite, _h(i["group_id"]), i["decided_epoch"], i["run"],
                               _h(i["enc"]), _h(i["ct"]))
    expect_equal("decoded repaired sealing",
                 RepairedSealing.from_bytes(suite, repaired.to_bytes()), repaired)
    return {"repaired_sealing": repaired.to_bytes().hex()}


def _op_notice_common(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    """A change's notice common part (11.v2.13): its mailbox and key from `member_base`, the
    body sealed once under `nonce`, its hash (what every notice names) and its chunks."""
    member_base, body = _h(i["member_base"]), _h(i["body"])
    common = seal_common(suite, body, member_base, lambda n: _h(i["nonce"])[:n])
    expect_equal("opened common part", open_common(suite, common, member_base), body)
    mailbox = common_mailbox(suite, member_base)
    return {"mailbox_id": mailbox.mailbox_id.hex(),
            "access_public": mailbox.access_public.hex(),
            "common_key": common_key(suite, member_base).hex(), "common": common.hex(),
            "common_hash": notice_id(suite, common).hex(),
            "chunks": [c.hex() for c in chunk_notice(suite, common)]}


def _op_epoch_claim(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    claim = EpochClaim(suite, _h(i["group_id"]), i["epoch"], _h(i["epoch_id"]), i["t0"])
    expect_equal("decoded epoch claim", EpochClaim.from_bytes(
        suite, claim.to_bytes(), group_id=_h(i["group_id"])), claim)
    return {"epoch_claim": claim.to_bytes().hex()}


def _op_membership_hint(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    hint = MembershipHint(suite, _h(i["group_id"]), _h(i["anchor"]), i["counter"])
    expect_equal("decoded membership hint", MembershipHint.from_bytes(suite, hint.to_bytes()),
                 hint)
    return {"membership_hint": hint.to_bytes().hex()}


def _op_roster_hash(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    roster = Roster(suite, tuple(
        RosterEntry(_h(e["identity"]), decode_keys(suite, _h(e["keys"])), e["posted_at"],
                    _h(e["anchor"])) for e in i["entries"]))
    expect_equal("decoded roster",
                 Roster.from_bytes(suite, roster.to_bytes(), group_id=_h(i["group_id"])), roster)
    return {"roster": roster.to_bytes().hex(), "roster_hash": roster.hash().hex()}


def _op_applied_proposals_hash(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    entries = [ControlEntry.from_bytes(suite, _h(e), group_id=_h(i["group_id"]),
                                       epoch=i["epoch"]) for e in i["signed_entries"]]
    return {"applied_proposals_hash": applied_proposals_hash(suite, entries).hex()}


def _op_judge_record(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    current = decode_keys(suite, _h(i["current_keys"]))
    new = MemberKeyRecord.from_bytes(suite, _h(i["new_record"]))
    seen = [MemberKeyRecord.from_bytes(suite, _h(r)) for r in i["seen"]]
    verdict = judge_record(new, author_identity=_h(i["author_identity"]), current=current,
                           anchor=_h(i["anchor"]), seen=seen,
                           taken_keys=frozenset(_h(k) for k in i["taken_keys"]),
                           group_id=_h(i["group_id"]), purpose=PURPOSES[i["purpose"]])
    return {"verdict": verdict.value}


_PARSERS: dict[str, Callable[[Suite, bytes, dict[str, Any]], object]] = {
    "record": lambda s, d, i: MemberKeyRecord.from_bytes(s, d),
    "join_key": lambda s, d, i: JoinKey.from_bytes(s, d),
    "proposal": lambda s, d, i: ChangeProposal.from_bytes(s, d),
    "signed_entry": lambda s, d, i: ControlEntry.from_bytes(s, d, group_id=_h(i["group_id"]),
                                                            epoch=i["epoch"]),
    "control_blob": lambda s, d, i: open_entry(s, _h(i["traffic_key"]), _h(i["mailbox_id"]), d,
                                               group_id=_h(i["group_id"]), epoch=i["epoch"],
                                               roster_size=i["roster_size"]),
    "roster": lambda s, d, i: Roster.from_bytes(s, d, group_id=_h(i["group_id"])),
    "commit": lambda s, d, i: Commit.from_bytes(s, d),
    "epoch_claim": lambda s, d, i: EpochClaim.from_bytes(s, d, group_id=_h(i["group_id"])),
    "membership_hint": lambda s, d, i: MembershipHint.from_bytes(s, d),
    "notice_common": lambda s, d, i: open_common(s, d, _h(i["member_base"])),
}


def _op_parse(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    _PARSERS[i["what"]](suite, _h(i["data"]), i)
    return {}


_OPERATIONS: dict[str, Callable[[Suite, dict[str, Any]], dict[str, Any]]] = {
    "record": _op_record, "join_key": _op_join_key, "proposal": _op_proposal,
    "control_entry": _op_control_entry,
    "announcement": _op_announcement, "rejoin_request": _op_rejoin_request,
    "repaired_sealing": _op_repaired_sealing, "epoch_claim": _op_epoch_claim,
    "membership_hint": _op_membership_hint, "notice_common": _op_notice_common,
    "roster_hash": _op_roster_hash,
    "applied_proposals_hash": _op_applied_proposals_hash, "judge_record": _op_judge_record,
    "parse": _op_parse, **{op: _op_member_entry(op) for op in MEMBER_SIGNED},
}


def _check(c: dict[str, Any]) -> None:
    suite = suite_by_name(c["suite"])
    i = c["inputs"]
    operation = _OPERATIONS.get(i["operation"])
    if operation is None:
        raise AssertionError(f"unknown operation {i['operation']!r}")
    got = operation(suite, i)
    for key, want in c.get("outputs", {}).items():
        expect_equal(key, got.get(key), want)


def _edit_body(signed: bytes, index: int, value: cbor.CborValue) -> bytes:
    outer = cbor.decode(signed)
    assert isinstance(outer, list) and isinstance(outer[0], bytes)
    body = cbor.decode(outer[0])
    assert isinstance(body, list)
    body[index] = value
    outer[0] = cbor.encode(body)
    return cbor.encode(outer)


def _generate_suite(suite: Suite) -> list[dict[str, Any]]:
    rng = DeterministicRandom(b"epoch-change-v2 vectors " + suite.name.encode())
    h = suite.hash_len
    name = suite.name
    cases: list[dict[str, Any]] = []

    def add(description: str, inputs: dict[str, Any]) -> dict[str, Any]:
        out = _OPERATIONS[inputs["operation"]](suite, inputs)
        cases.append(case(description, name, inputs, out))
        return out

    def negative(description: str, inputs: dict[str, Any], error: str) -> None:
        cases.append(case(description, name, inputs, error=error))

    alice, bob = _identity_inputs(suite, rng), _identity_inputs(suite, rng)
    alice_id = _identity(suite, alice).public.to_bytes()
    bob_id = _identity(suite, bob).public.to_bytes()
    group = rng(16).hex()
    control = {"traffic_key": rng(32).hex(), "mailbox_id": rng(32).hex()}

    def place(epoch: int, author: int) -> dict[str, Any]:
        return {"group_id": group, "epoch": epoch, "author_index": author, **control,
                "nonce": rng(suite.aead_nonce_len).hex()}

    alice_seed, bob_join_seed, bob_seed = rng(32).hex(), rng(32).hex(), rng(32).hex()
    join_key = add("group join key of Bob", {
        "operation": "join_key", "identity_private": bob, "record_seed": bob_join_seed,
        "expiry": 1_800_000_000_000, "inbox_id": rng(32).hex(), "applied_in": ""})
    creator = add("the creator's first record (counter 1, anchor all zero), as a record entry", {
        "operation": "record", "identity_private": alice, "record_seed": alice_seed, "counter": 1,
        "purpose": "rotate", "anchor": creator_anchor(suite).hex(),
        "applied_in": bytes(range(32)).hex(), **place(1, 0)})
    bob_record = add("Bob's first rotation, anchored to his join key", {
        "operation": "record", "identity_private": bob, "record_seed": bob_seed, "counter": 1,
        "purpose": "rotate", "anchor": join_key["anchor"],
        "applied_in": bytes(range(32)).hex(), **place(1, 1)})
    resume_seed = rng(32).hex()
    rejoin = add("Bob's rejoin request (resume record, counter 2, his current anchor)", {
        "operation": "rejoin_request", "identity_private": bob, "record_seed": resume_seed,
        "group_id": group, "counter": 2, "anchor": join_key["anchor"],
        "inbox_id": rng(32).hex()})
    epoch_id = rng(32).hex()
    proposals = []
    for kind, change, description in (
        ("add", join_key["signed_join_key"], "add proposal carrying Bob's join key"),
        ("remove", bob_id.hex(), "remove proposal"),
        ("refresh", "", "refresh proposal"),
        ("resume", rejoin["signed_record"], "resume proposal carrying Bob's resume record"),
    ):
        epoch = 0 if kind == "add" else 4  # the add is a creation's (epoch 0, empty epoch id)
        inputs = {"operation": "proposal", "identity_private": alice, "kind": kind,
                  "change": change, "epoch_id": epoch_id if epoch else "", **place(epoch, 0)}
        out = add(description, inputs)
        proposals.append(out)
    applied = [p["signed_entry"] for p in proposals[1:]]
    applied_hash = add("applied-proposals hash of remove, refresh, resume", {
        "operation": "applied_proposals_hash", "group_id": group, "epoch": 4,
        "signed_entries": applied})
    add("applied-proposals hash of no proposal (all void)", {
        "operation": "applied_proposals_hash", "group_id": group, "epoch": 4,
        "signed_entries": []})
    roster = add("roster: the creator's record and Bob's join key", {
        "operation": "roster_hash", "group_id": group, "entries": [
            {"identity": alice_id.hex(), "keys": creator["signed_record"], "posted_at": 0,
             "anchor": creator_anchor(suite).hex()},
            {"identity": bob_id.hex(), "keys": join_key["signed_join_key"],
             "posted_at": 1_733_300_000_000, "anchor": join_key["anchor"]}]})
    add("announcement of run 1", {
        "operation": "announcement", "identity_private": alice, "run": 1,
        "dkg_secret": rng(32)[:31].hex() + "00",
        "applied_proposals_hash": applied_hash["applied_proposals_hash"],
        "new_roster_hash": roster["roster_hash"],
        "view_hash": view_hash(suite, 1_733_299_000_000, (), ()).hex(), **place(4, 0)})
    add("round-1 item (the SignedRound1 is section 7's, opaque here)", {
        "operation": "round1", "record_seed": alice_seed, "run": 1,
        "signed_round1": rng(120).hex(), **place(4, 0)})
    add("round-3 item", {
        "operation": "round3", "record_seed": alice_seed, "run": 1,
        "dkg_secret": rng(32)[:31].hex() + "00", "run_session_id": rng(h).hex(),
        "transcript": rng(200).hex(), "bundle_root": rng(h).hex(),
        "confirmation_tag": rng(h).hex(), "dkg_signature_randomness": rng(32).hex(),
        **place(4, 0)})
    add("TICK", {"operation": "tick", "record_seed": alice_seed, **place(4, 0)})
    add("control entry of type 0x41 with an arbitrary body, identity-signed", {
        "operation": "control_entry", "signer": "identity", "identity_private": alice,
        "type": TYPE_PROPOSAL, "body": rng(33).hex(), **place(9, 0)})
    add("control entry of type 0x48 with an arbitrary body, signed by the record key", {
        "operation": "control_entry", "signer": "member", "record_seed": bob_seed,
        "type": TYPE_EVIDENCE, "body": rng(300).hex(), **place(9, 1)})
    enc, ct = sealing_sizes(suite)
    add("commit with a bundle of two sealings (opaque pairs here)", {
        "operation": "commit_entry", "record_seed": alice_seed, "run": 1,
        "bundle": [[rng(enc).hex(), rng(ct).hex()] for _ in range(2)], **place(4, 0)})
    add("REVEAL of a committee of two", {
        "operation": "reveal", "record_seed": alice_seed, "run": 1,
        "payloads": [rng(32).hex(), rng(32).hex()], **place(4, 0)})
    add("evidence (round-1 equivocation, opaque here)", {
        "operation": "evidence", "record_seed": alice_seed, "run": 1, "kind": 2,
        "evidence": rng(40).hex(), **place(4, 0)})
    add("conviction of a bad sealing", {
        "operation": "conviction", "record_seed": alice_seed, "decided_epoch": 3, "run": 1,
        "recipient_index": 1, "enc": rng(enc).hex(), "ct": rng(ct).hex(), **place(4, 0)})
    add("repaired sealing", {
        "operation": "repaired_sealing", "group_id": group, "decided_epoch": 3, "run": 1,
        "enc": rng(enc).hex(), "ct": rng(ct).hex()})

    # The supersede rules (11.v2.16).
    def rec(seed: str, counter: int, anchor: str, purpose: str = "rotate") -> str:
        return _record(suite, {"identity_private": alice, "record_seed": seed, "group_id": group,
                               "counter": counter, "purpose": purpose,
                               "anchor": anchor}).to_bytes().hex()

    zero = creator_anchor(suite).hex()
    alice_keys = RecordKeys.from_seed(suite, _h(alice_seed))
    bob_jk = JoinKey.from_bytes(suite, _h(join_key["signed_join_key"]))
    # Every signing key and the owner's own receive key (11.v2.16; review F4).
    taken = [k.hex() for k in (alice_keys.receive_public, alice_keys.signing_public,
                               bob_jk.signing_key)]
    judge = {"operation": "judge_record", "group_id": group, "author_identity": alice_id.hex(),
             "current_keys": creator["signed_record"], "anchor": zero, "seen": [],
             "taken_keys": taken, "purpose": "rotate"}
    fresh = rng(32).hex()
    add("a record with a higher counter supersedes", {**judge, "new_record": rec(fresh, 2, zero)})
    add("same counter, another body: equivocation",
        {**judge, "new_record": rec(rng(32).hex(), 1, zero)})
    negative("the same record again", {**judge, "new_record": creator["signed_record"]},
             "ReplayError")
    negative("a record of another membership (anchor)", {
        **judge, "new_record": rec(fresh, 2, join_key["anchor"])}, "ProtocolError")
    add("a receive key copied from Bob's join key: allowed, it proves nothing (review F4)", {
        **judge, "new_record": MemberKeyRecord.sign(
            _identity(suite, alice), RecordKeys(suite, RecordKeys.from_seed(
                suite, _h(bob_join_seed)).receive_key, RecordKeys.from_seed(
                suite, _h(fresh)).signing_key), group_id=_h(group), counter=2,
            purpose=PURPOSE_ROTATE, anchor=_h(zero)).to_bytes().hex()})
    negative("a signing key already in the roster (Bob's join key's)", {
        **judge, "new_record": MemberKeyRecord.sign(
            _identity(suite, alice), RecordKeys(suite, RecordKeys.from_seed(
                suite, _h(fresh)).receive_key, RecordKeys.from_seed(
                suite, _h(bob_join_seed)).signing_key), group_id=_h(group), counter=2,
            purpose=PURPOSE_ROTATE, anchor=_h(zero)).to_bytes().hex()}, "ProtocolError")
    negative("a record by another identity than the author", {
        **judge, "new_record": bob_record["signed_record"]}, "ProtocolError")
    negative("a rotation record where a resume is required",
             {**judge, "new_record": rec(fresh, 2, zero), "purpose": "resume"}, "ProtocolError")

    # Strict parsing: bytes every reader must refuse.
    signed_record = _h(creator["signed_record"])
    record = MemberKeyRecord.from_bytes(suite, signed_record)
    other_keys = RecordKeys.from_seed(suite, _h(fresh))
    wrong_pop = replace_signatures(record, record.identity_signature,
                                   MemberKeyRecord.sign(_identity(suite, alice), other_keys,
                                                        group_id=_h(group), counter=1,
                                                        purpose=PURPOSE_ROTATE,
                                                        anchor=_h(zero)).possession_signature)
    for description, what, data, error in (
        ("record whose possession signature is by another key", "record",
         wrong_pop.to_bytes(), "InvalidSignature"),
        ("record of version 1", "record", _edit_body(signed_record, 1, 1), "UnsupportedError"),
        ("record with an unknown purpose", "record", _edit_body(signed_record, 6, 3),
         "DecodeError"),
        ("record truncated", "record", signed_record[:-1], "DecodeError"),
        ("join key claimed by another identity", "join_key",
         _edit_body(_h(join_key["signed_join_key"]), 3, alice_id), "InvalidSignature"),
        ("a rotation record wrapped as a resume", "proposal", cbor.encode(
            [KIND_RESUME, _h(group), 4, _h(epoch_id), alice_id, _h(bob_record["signed_record"])]),
         "ProtocolError"),
        ("a refresh that carries a change", "proposal", cbor.encode(
            [KIND_REFRESH, _h(group), 4, _h(epoch_id), alice_id, b"\x00"]), "DecodeError"),
        ("a TICK entry over 16 KiB", "signed_entry", cbor.encode(
            [cbor.encode([TYPE_TICK, 2, suite.suite_id, _h(group), 4, 0, bytes(16500)]),
             bytes(suite.signature_len)]), "LimitExceeded"),
        ("an entry of version 1", "signed_entry",
         _edit_body(_h(proposals[2]["signed_entry"]), 1, 1), "UnsupportedError"),
        ("roster whose entry's anchor is not its keys'", "roster", cbor.encode(
            [[alice_id, signed_record, 0, _h(join_key["anchor"])]]), "ProtocolError"),
        ("commit with a short enc", "commit", cbor.encode([1, [[bytes(enc - 1), bytes(ct)]]]),
         "DecodeError"),
    ):
        negative(description, {"operation": "parse", "what": what, "data": data.hex(),
                               "group_id": group, "epoch": 4}, error)
    blob = proposals[2]["control_blob"]
    context = {"operation": "parse", "what": "control_blob", "data": blob, "group_id": group,
               "epoch": 4, "roster_size": 2, **control}
    negative("control blob read under another mailbox id",
             {**context, "mailbox_id": rng(32).hex()}, "ProtocolError")
    negative("control blob read under another traffic key",
             {**context, "traffic_key": rng(32).hex()}, "AuthenticationError")
    negative("control blob of version 1", {**context, "data": cbor.encode(
        [0x22, 1, _h(control["mailbox_id"]), bytes(suite.aead_nonce_len), bytes(272)]).hex()},
        "UnsupportedError")
    negative("control blob of another epoch", {**context, "epoch": 5}, "ProtocolError")
    # Epoch claims (11.v2.37): epoch 5 began at hub time 1 800 000 123 456.
    claim = add("epoch claim: epoch 5 of the group, its id and T0(5)", {
        "operation": "epoch_claim", "group_id": group, "epoch": 5, "epoch_id": epoch_id,
        "t0": 1_800_000_123_456})
    add("epoch claim of epoch 1 (no commit began it: T0 is null)", {
        "operation": "epoch_claim", "group_id": group, "epoch": 1, "epoch_id": epoch_id,
        "t0": None})
    good = _h(claim["epoch_claim"])
    fields = cbor.decode(good)
    assert isinstance(fields, list)

    def claim_with(index: int, value: cbor.CborValue) -> bytes:
        changed = list(fields)
        changed[index] = value
        return cbor.encode(changed)

    for description, data, error in (
        ("epoch claim truncated", good[:-1], "DecodeError"),
        ("epoch claim with a 31-byte epoch id", claim_with(5, _h(epoch_id)[:31]), "DecodeError"),
        ("epoch claim without T0 for epoch 5", claim_with(6, None), "DecodeError"),
        ("epoch claim of version 1", claim_with(1, 1), "UnsupportedError"),
        ("epoch claim of another group", claim_with(3, b"another group"), "ProtocolError"),
    ):
        negative(description, {"operation": "parse", "what": "epoch_claim", "data": data.hex(),
                               "group_id": group}, error)
    # A membership hint (11.v2.14, 11.v2.31): Bob's entry is still his join key (counter 0).
    hint = _h(add("membership hint: Bob's membership, still his join key", {
        "operation": "membership_hint", "group_id": group, "anchor": join_key["anchor"],
        "counter": 0})["membership_hint"])
    hint_fields = cbor.decode(hint)
    assert isinstance(hint_fields, list)
    for description, index, value, error in (
        ("membership hint of version 1", 1, 1, "UnsupportedError"),
        ("membership hint with a 31-byte anchor", 4, _h(join_key["anchor"])[:31], "DecodeError"),
        ("membership hint whose counter has no successor", 5, 2**64 - 1, "DecodeError"),
    ):
        changed = list(hint_fields)
        changed[index] = value
        negative(description, {"operation": "parse", "what": "membership_hint",
                               "data": cbor.encode(changed).hex()}, error)
    negative("membership hint truncated", {"operation": "parse", "what": "membership_hint",
                                           "data": hint[:-1].hex()}, "DecodeError")
    # A notice common part (11.v2.13), sealed once per change under a key from member_base.
    member_base = rng(h).hex()
    common_in = {"operation": "notice_common", "member_base": member_base,
                 "nonce": rng(suite.aead_nonce_len).hex(), "body": rng(300).hex()}
    common = _h(add("notice common part of a change (a 300-byte body here)",
                    common_in)["common"])
    common_fields = cbor.decode(common)
    assert isinstance(common_fields, list)
    parse_common = {"operation": "parse", "what": "notice_common", "member_base": member_base}
    for description, index, value, error in (
        ("notice common part of version 1", 1, 1, "UnsupportedError"),
        ("notice common part with a short nonce", 2,
         _h(common_in["nonce"])[:-1], "DecodeError"),
    ):
        changed = list(common_fields)
        changed[index] = value
        negative(description, {**parse_common, "data": cbor.encode(changed).hex()}, error)
    negative("notice common part truncated", {**parse_common, "data": common[:-1].hex()},
             "DecodeError")
    negative("notice common part under another change's member_base",
             {**parse_common, "data": common.hex(), "member_base": rng(h).hex()},
             "AuthenticationError")
    return cases


def _generate() -> dict[str, Any]:
    cases = [c for suite in VECTOR_SUITES for c in _generate_suite(suite)]
    return document(KIND, "Values of version 2 of the epoch change (spec 11.v2.1-14)", cases)


def verify_ks(doc: dict[str, Any]) -> Iterator[CaseResult]:
    return run_cases(doc, _check_ks)


def verify(doc: dict[str, Any]) -> Iterator[CaseResult]:
    return run_cases(doc, _check)


def generate() -> dict[str, dict[str, Any]]:
    return {KS_FILE: _generate_ks(), FILE: _generate()}


register(lambda: {KS_KIND: verify_ks, KIND: verify})
register_generator(generate)
