"""A committee run of version 2 (spec 11.v2.9-12, 11.v2.21-26; 08 v2 §8.v2.2-8.v2.6):
`group/committee.py` (the private side) on `group/run_secrets.py` (what every reader computes).

Properties: every committee member and every recipient derives one epoch secret and tag; a member
certifying another root or tag is caught (round-3 check or REVEAL recomputation); tampering with
any item is a typed error; a removed member holding all of epoch e opens nothing; a member
restored from its run seed re-sends byte-identical items."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pytest

from triple_ratchet.dkg.abort import Blame
from triple_ratchet.dkg.attempt import SignedRound1, sign_round1
from triple_ratchet.dkg.cocktail import schnorr_sign
from triple_ratchet.dkg.cocktail_messages import Round1Message
from triple_ratchet.dkg.ed25519 import Point
from triple_ratchet.errors import (
    AuthenticationError,
    DkgError,
    InvalidSignature,
    ProtocolError,
    TripleRatchetError,
    UsageError,
)
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
from triple_ratchet.group.control import TYPE_ANNOUNCEMENT, sign_identity_entry
from triple_ratchet.group.records import (
    PURPOSE_ROTATE,
    JoinKey,
    MemberKeyRecord,
    RecordKeys,
    creator_anchor,
)
from triple_ratchet.group.roster import Roster, RosterEntry
from triple_ratchet.group.run import Commit, Evidence, Round1Item, Round3Item
from triple_ratchet.group.run_secrets import (
    RunInputs,
    RunOutcome,
    blame_evidence_bytes,
    check_round1,
    decode_blame_evidence,
    disagreeing,
    judge_blame_evidence,
    outcome_from_reveal,
    recipients_of,
    round1_transcript,
    verify_commit,
    verify_round3,
)
from triple_ratchet.group.sealing import Sealing, open_sealing
from triple_ratchet.identity import IdentityKeyPair
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import CLASSICAL_SUITES, Suite

GROUP = b"committee test group"
EPOCH = 5


@pytest.fixture(params=CLASSICAL_SUITES, ids=lambda s: s.name)
def suite(request: pytest.FixtureRequest) -> Suite:
    s: Suite = request.param
    return s


@dataclass
class Member:
    identity: IdentityKeyPair
    keys: RecordKeys
    entry: RosterEntry


def _member(suite: Suite, rng: DeterministicRandom, joiner: bool) -> Member:
    identity = IdentityKeyPair.generate(suite, rng)
    keys = RecordKeys.from_seed(suite, rng(32))
    if joiner:
        join_key = JoinKey.sign(identity, keys, expiry=2_000_000_000_000, inbox_id=rng(32))
        return Member(identity, keys, RosterEntry.of(join_key, 1000))
    record = MemberKeyRecord.sign(identity, keys, group_id=GROUP, counter=1,
                                  purpose=PURPOSE_ROTATE, anchor=creator_anchor(suite))
    return Member(identity, keys, RosterEntry.of(record, 0))


class Run:
    """Epoch 5 of a group of `n` members (the last `joiners` added by the attempt); the first
    `k` members announce; `dormant_before` members (by index) lack init_secret(e)."""

    def __init__(self, suite: Suite, n: int, k: int, *, joiners: int = 0,
                 dormant_before: Sequence[int] = (), label: bytes = b"",
                 epoch: int = EPOCH) -> None:
        self.suite = suite
        self.epoch = epoch
        rng = DeterministicRandom(b"committee " + suite.name.encode() + label)
        self.members = [_member(suite, rng, i >= n - joiners) for i in range(n)]
        self.roster = Roster(suite, tuple(m.entry for m in self.members))
        self.removed = _member(suite, rng, False)  # a member of e the attempt removes
        self.init_secret = rng(suite.hash_len) if epoch else bytes(suite.hash_len)
        self.epoch_id = rng(32) if epoch else b""
        self.applied_hash = rng(suite.hash_len)
        self.k = k
        self.seeds = [RunSeed.generate(suite, rng) for _ in range(k)]
        self.announcements = tuple(self._announce(j) for j in range(k))
        identities = [m.identity.public.to_bytes() for m in self.members]
        self.recipients = recipients_of(self.roster, identities[:k])
        base_to = set(identities[n - joiners:]) | {identities[i] for i in dormant_before}
        self.inputs = RunInputs(
            suite=suite, group_id=GROUP, epoch=epoch, epoch_id=self.epoch_id, run=1,
            applied_hash=self.applied_hash, roster=self.roster,
            announcements=self.announcements,
            dkg_keys=tuple(s.dkg_key() for s in self.seeds), recipients=self.recipients,
            member_base_to=frozenset(base_to))

    def _announce(self, j: int) -> bytes:
        m = self.members[j]
        body = make_announcement(self.seeds[j], group_id=GROUP, epoch=self.epoch, run=1,
                                 identity=m.identity.public.to_bytes(),
                                 applied_hash=self.applied_hash,
                                 roster_hash=self.roster.hash(),
                                 view_hash=self.suite.hash(b"view")).to_bytes()
        return sign_identity_entry(m.identity, TYPE_ANNOUNCEMENT, group_id=GROUP, epoch=self.epoch,
                                   author=j, body=body).entry_bytes()

    def round1(self) -> list[SignedRound1]:
        return [check_round1(self.inputs, j, Round1Item.from_bytes(
                    make_round1(seed, self.inputs).to_bytes()))
                for j, seed in enumerate(self.seeds, start=1)]

    def round3(self, round1: Sequence[SignedRound1]) -> list[tuple[Round3Item, RunOutcome]]:
        out = []
        for seed in self.seeds:
            local = local_round2(seed, self.inputs, round1)
            assert local.payloads is not None and local.blame is None
            out.append(make_round3(seed, self.inputs, round1, local.payloads, self.init_secret))
        return out

    def open(self, round1: Sequence[SignedRound1], commit: Commit, item: Round3Item,
             index: int) -> RunOutcome:
        return open_commit(self.inputs, round1, commit, bundle_root=item.bundle_root,
                           confirmation_tag=item.confirmation_tag, roster_index=index,
                           receive_private_key=self.members[index].keys.receive_key.to_bytes(),
                           init_secret=self.init_secret)


def _flip(data: bytes, i: int) -> bytes:
    return data[:i] + bytes([data[i] ^ 1]) + data[i + 1:]


@pytest.mark.parametrize(("n", "k", "joiners", "dormant"),
                         [(1, 1, 0, ()), (3, 1, 1, ()), (5, 2, 2, (3,)), (6, 3, 1, (4,)),
                          (11, 8, 2, (8,)), (8, 8, 0, ())])
def test_every_member_and_recipient_derives_one_epoch(suite: Suite, n: int, k: int,
                                                      joiners: int,
                                                      dormant: tuple[int, ...]) -> None:
    run = Run(suite, n, k, joiners=joiners, dormant_before=dormant)
    round1 = run.round1()
    results = run.round3(round1)
    first_item, first = results[0]
    transcript = round1_transcript(run.inputs, round1, first.bundle_root)
    for j, (item, outcome) in enumerate(results, start=1):
        assert item.agrees_with(first_item)
        assert outcome.epoch_secret == first.epoch_secret
        assert outcome.bundle == first.bundle
        verify_round3(run.inputs, round1, j, Round3Item.from_bytes(suite, item.to_bytes()))
        verify_round3(run.inputs, round1, j, item, transcript=transcript)
    commit = Commit.from_bytes(suite, make_commit(run.inputs, first).to_bytes())
    assert len(commit.bundle) == n - k
    verify_commit(run.inputs, commit, first.bundle_root)
    want = first.secrets(suite)
    want.check_confirmation_tag(first_item.confirmation_tag)
    for index in run.recipients:
        got = run.open(round1, commit, first_item, index)
        assert got.epoch_secret == first.epoch_secret
        assert got.confirmation_tag == first.confirmation_tag
        assert got.secrets(suite).epoch_id == want.epoch_id
        # a member sealed member_base has no commit_secret; the others have the committee's
        sealed_base = run.inputs.seals_member_base(index)
        assert got.commit_secret == (None if sealed_base else first.commit_secret)


def test_creation_run_seals_member_base_to_every_initial_member(suite: Suite) -> None:
    """11.v2.27: the creator alone is run 1's committee of epoch 0 (empty epoch id,
    init_secret(0) = 0x00 × Nh); every other initial member is a joiner sealed member_base."""
    run = Run(suite, 4, 1, joiners=3, epoch=0)
    round1 = run.round1()
    item, outcome = run.round3(round1)[0]
    commit = make_commit(run.inputs, outcome)
    for index in (1, 2, 3):
        key = run.members[index].keys.receive_key.to_bytes()
        got = open_commit(run.inputs, round1, commit, bundle_root=item.bundle_root,
                          confirmation_tag=item.confirmation_tag, roster_index=index,
                          receive_private_key=key, init_secret=None)
        assert got.secrets(suite).epoch_id == outcome.secrets(suite).epoch_id
    alone = Run(suite, 1, 1, epoch=0)
    r1 = alone.round1()
    _, solo = alone.round3(r1)[0]
    assert solo.bundle_root == suite.hash(b"\x02")  # empty bundle (11.v2.27)
    assert make_commit(alone.inputs, solo).bundle == ()


def test_joiner_without_init_secret_and_commit_secret_member_needs_it(suite: Suite) -> None:
    run = Run(suite, 4, 1, joiners=1)
    round1 = run.round1()
    item, outcome = run.round3(round1)[0]
    commit = make_commit(run.inputs, outcome)
    key = run.members[3].keys.receive_key.to_bytes()
    got = open_commit(run.inputs, round1, commit, bundle_root=item.bundle_root,
                      confirmation_tag=item.confirmation_tag, roster_index=3,
                      receive_private_key=key, init_secret=None)
    assert got.member_base == outcome.member_base
    with pytest.raises(UsageError):
        open_commit(run.inputs, round1, commit, bundle_root=item.bundle_root,
                    confirmation_tag=item.confirmation_tag, roster_index=1,
                    receive_private_key=run.members[1].keys.receive_key.to_bytes(),
                    init_secret=None)
    # a member holding a wrong init_secret(e) derives another member_base: the tag catches it
    with pytest.raises(AuthenticationError):
        open_commit(run.inputs, round1, commit, bundle_root=item.bundle_root,
                    confirmation_tag=item.confirmation_tag, roster_index=1,
                    receive_private_key=run.members[1].keys.receive_key.to_bytes(),
                    init_secret=bytes(suite.hash_len))


def test_member_certifying_another_tag_is_caught_by_reveal(suite: Suite) -> None:
    run = Run(suite, 5, 3)
    round1 = run.round1()
    results = run.round3(round1)
    # position 2 signs, with valid signatures, the right root and another tag
    seed = run.seeds[1]
    d = seed.dkg_secret()
    bad_tag = _flip(results[1][1].confirmation_tag, 0)
    transcript = round1_transcript(run.inputs, round1, results[1][1].bundle_root)
    cheat = Round3Item.sign(suite, d, run=1, context=run.inputs.params().context,
                            run_session_id=run.inputs.session_id(),
                            certeq_signature=schnorr_sign(d, transcript),
                            bundle_root=results[1][1].bundle_root, confirmation_tag=bad_tag)
    verify_round3(run.inputs, round1, 2, cheat)  # authentic: only the disagreement shows it
    items: list[Round3Item | None] = [results[0][0], cheat, results[2][0]]
    assert not results[0][0].agrees_with(cheat)
    # an honest member reveals; every reader recomputes and excludes the cheater
    payloads = local_round2(run.seeds[0], run.inputs, round1).payloads
    assert payloads is not None
    outcome = outcome_from_reveal(run.inputs, round1, make_reveal(run.inputs, payloads),
                                  run.init_secret)
    assert disagreeing(outcome, items) == (2,)
    assert disagreeing(outcome, [results[0][0], None, results[2][0]]) == (2,)
    # a REVEAL with one payload altered names that payload's position (its author is excluded)
    forged = make_reveal(run.inputs, [payloads[0], _flip(payloads[1], 3), payloads[2]])
    with pytest.raises(DkgError) as info:
        outcome_from_reveal(run.inputs, round1, forged, run.init_secret)
    assert info.value.culprit == 2
    with pytest.raises(ProtocolError):
        outcome_from_reveal(run.inputs, round1, replace(forged, run=2), run.init_secret)


def test_member_certifying_another_root_is_caught(suite: Suite) -> None:
    run = Run(suite, 6, 2, joiners=1)
    round1 = run.round1()
    results = run.round3(round1)
    honest_item, outcome = results[1]
    d = run.seeds[1].dkg_secret()
    other_root = _flip(outcome.bundle_root, 5)
    honest_t = round1_transcript(run.inputs, round1, outcome.bundle_root)
    # CertEq over the honest T but another root in the item: the signature fails for readers
    lying = Round3Item.sign(suite, d, run=1, context=run.inputs.params().context,
                            run_session_id=run.inputs.session_id(),
                            certeq_signature=schnorr_sign(d, honest_t), bundle_root=other_root,
                            confirmation_tag=outcome.confirmation_tag)
    with pytest.raises(InvalidSignature):
        verify_round3(run.inputs, round1, 2, lying)
    # signing T over its other root is authentic, but disagrees: REVEAL convicts it
    t_other = round1_transcript(run.inputs, round1, other_root)
    consistent = replace(lying, certeq_signature=schnorr_sign(d, t_other))
    verify_round3(run.inputs, round1, 2, consistent)
    assert disagreeing(outcome, [results[0][0], consistent]) == (2,)
    assert disagreeing(outcome, [results[0][0], honest_item]) == ()
    # a commit carrying the honest bundle does not match the other root
    with pytest.raises(AuthenticationError):
        verify_commit(run.inputs, make_commit(run.inputs, outcome), other_root)


def test_tampered_round1_items_are_typed_errors(suite: Suite) -> None:
    run = Run(suite, 4, 2)
    item = make_round1(run.seeds[0], run.inputs)
    check_round1(run.inputs, 1, item)
    raw = item.signed_round1
    for i in range(0, len(raw), 7):
        with pytest.raises(TripleRatchetError):
            check_round1(run.inputs, 1, replace(item, signed_round1=_flip(raw, i)))
    with pytest.raises(ProtocolError):
        check_round1(run.inputs, 2, item)  # another position's sender
    with pytest.raises(ProtocolError):
        check_round1(run.inputs, 1, replace(item, run=2))
    with pytest.raises(TripleRatchetError):
        check_round1(run.inputs, 1, replace(item, signed_round1=raw[:-1]))


def test_tampered_round3_items_and_commits_are_typed_errors(suite: Suite) -> None:
    run = Run(suite, 5, 2, joiners=1)
    round1 = run.round1()
    item, outcome = run.round3(round1)[0]
    body = item.to_bytes()
    for i in range(len(body)):
        try:
            tampered = Round3Item.from_bytes(suite, _flip(body, i))
        except TripleRatchetError:
            continue
        with pytest.raises((InvalidSignature, ProtocolError)):
            verify_round3(run.inputs, round1, 1, tampered)
    with pytest.raises(InvalidSignature):
        verify_round3(run.inputs, round1, 2, item)  # under another member's DKG key
    commit = make_commit(run.inputs, outcome)
    for p in range(len(commit.bundle)):
        for part in (0, 1):
            pairs = list(commit.bundle)
            pair = list(pairs[p])
            pair[part] = _flip(pair[part], 7)
            pairs[p] = (pair[0], pair[1])
            bad = Commit(commit.run, tuple(pairs))
            with pytest.raises(AuthenticationError):
                verify_commit(run.inputs, bad, item.bundle_root)
    with pytest.raises(ProtocolError):
        verify_commit(run.inputs, Commit(commit.run, commit.bundle[:-1]), item.bundle_root)
    with pytest.raises(ProtocolError):
        verify_commit(run.inputs, replace(commit, run=2), item.bundle_root)
    index = run.recipients[0]
    with pytest.raises(AuthenticationError):  # an altered agreed tag
        open_commit(run.inputs, round1, commit, bundle_root=item.bundle_root,
                    confirmation_tag=_flip(item.confirmation_tag, 0), roster_index=index,
                    receive_private_key=run.members[index].keys.receive_key.to_bytes(),
                    init_secret=run.init_secret)
    with pytest.raises(UsageError):  # a committee member is no recipient
        run.open(round1, commit, item, 0)


def test_removed_member_opens_no_sealing(suite: Suite) -> None:
    run = Run(suite, 6, 2, joiners=2)
    round1 = run.round1()
    _item, outcome = run.round3(round1)[0]
    commit = make_commit(run.inputs, outcome)
    removed = run.removed
    # it holds init_secret(e), its receive key, every public value; it is in no pair
    context = run.inputs.sealing_context()
    for identity in (removed.identity.public.to_bytes(),
                     *(m.identity.public.to_bytes() for m in run.members)):
        for enc, ct in commit.bundle:
            with pytest.raises(AuthenticationError):
                open_sealing(context, identity, removed.keys.receive_key.to_bytes(),
                             Sealing(enc, ct))
    assert removed.keys.receive_public not in {run.roster.entries[i].receive_key
                                               for i in run.recipients}


def test_restored_member_resends_byte_identical_items(suite: Suite) -> None:
    run = Run(suite, 5, 3, joiners=1)
    round1 = run.round1()
    results = run.round3(round1)
    for j, seed in enumerate(run.seeds):
        restored = RunSeed.from_bytes(suite, seed.to_bytes())
        assert restored.dkg_key() == seed.dkg_key()
        assert make_round1(restored, run.inputs).signed_round1 == round1[j].to_bytes()
        assert make_round1(restored, run.inputs) == make_round1(seed, run.inputs)
        local = local_round2(restored, run.inputs, round1)
        assert local.payloads is not None
        item, outcome = make_round3(restored, run.inputs, round1, local.payloads,
                                    run.init_secret)
        assert item.to_bytes() == results[j][0].to_bytes()
        assert make_commit(run.inputs, outcome).to_bytes() == make_commit(
            run.inputs, results[j][1]).to_bytes()
    assert run._announce(0) == run.announcements[0]
    # another seed gives another key and payload
    other = RunSeed(suite, bytes(32))
    assert other.dkg_key() != run.seeds[0].dkg_key() and other.payload() != run.seeds[0].payload()


def test_bad_share_gives_convicting_blame(suite: Suite) -> None:
    run = Run(suite, 4, 3)
    round1 = run.round1()
    params = run.inputs.params()
    # dealer 2 signs a msg1 whose ciphertext to member 3 is garbage (public checks still pass)
    msg = round1[1].parse(params)
    cts = list(msg.ciphertexts)
    cts[2] = _flip(cts[2], 40)
    bad_msg = Round1Message(msg.commitment, msg.pop, msg.ephemeral, tuple(cts))
    dealer = sign_round1(params, run.seeds[1].dkg_secret(), bad_msg, run.seeds[1].payload())
    bad_round1 = [round1[0], check_round1(run.inputs, 2, Round1Item(1, dealer.to_bytes())),
                  round1[2]]
    victim = local_round2(run.seeds[2], run.inputs, bad_round1)
    assert victim.payloads is None and victim.culprit == 2 and victim.blame is not None
    assert "redacted" not in repr(victim) and "culprit=2" in repr(victim)
    blame = decode_blame_evidence(victim.blame.evidence)
    assert blame.culprit == 2 and blame.ecdh is not None
    assert blame_evidence_bytes(blame) == victim.blame.evidence
    verdict = judge_blame_evidence(run.inputs, 3, Evidence.from_bytes(victim.blame.to_bytes()))
    assert verdict.upheld and verdict.culprit == 2
    # posted by another position, the same evidence convicts no dealer (the DLEQ fails)
    with pytest.raises(TripleRatchetError):
        judge_blame_evidence(run.inputs, 1, victim.blame)
    # a blame against an honest dealer convicts the accuser
    honest = Blame(1, round1[0].to_bytes(), blame.ecdh)
    with pytest.raises(TripleRatchetError):  # DLEQ bound to dealer 2's message
        judge_blame_evidence(run.inputs, 3, Evidence.make(1, 3, blame_evidence_bytes(honest)))
    no_ecdh = Evidence.make(1, 3, blame_evidence_bytes(Blame(1, round1[0].to_bytes(), None)))
    false = judge_blame_evidence(run.inputs, 3, no_ecdh)
    assert false.culprit == 3 and false.fault == "false-accusation"
    with pytest.raises(ProtocolError):
        judge_blame_evidence(run.inputs, 3, replace(victim.blame, run=2))
    for i in range(len(victim.blame.evidence)):
        with pytest.raises(TripleRatchetError):
            decode_blame_evidence(victim.blame.evidence[:i])
    # the blame is re-created byte for byte from the seed
    again = local_round2(RunSeed.from_bytes(suite, run.seeds[2].to_bytes()), run.inputs,
                         bad_round1)
    assert again.blame == victim.blame
    # the others still decrypt their shares from dealer 2
    assert local_round2(run.seeds[0], run.inputs, bad_round1).payloads is not None
    # a round-1 list whose item in our position is not ours: another copy of us
    with pytest.raises(DkgError):
        local_round2(run.seeds[1], run.inputs, bad_round1)


def test_run_inputs_refuse_inconsistent_values(suite: Suite) -> None:
    run = Run(suite, 5, 2, joiners=1)
    i = run.inputs
    with pytest.raises(UsageError):  # keys swapped against the announcements
        replace(i, dkg_keys=(i.dkg_keys[1], i.dkg_keys[0]))
    with pytest.raises(UsageError):  # another view's applied hash
        replace(i, applied_hash=bytes(suite.hash_len))
    with pytest.raises(UsageError):  # a committee member as a recipient
        replace(i, recipients=(0, *i.recipients))
    with pytest.raises(UsageError):
        replace(i, recipients=tuple(reversed(i.recipients)))
    with pytest.raises(UsageError):
        replace(i, member_base_to=frozenset({run.members[0].identity.public.to_bytes()}))
    with pytest.raises(UsageError):
        replace(i, run=2)  # the announcements are for run 1
    with pytest.raises(UsageError):
        replace(i, announcements=(), dkg_keys=())
    with pytest.raises(UsageError):
        make_round1(RunSeed(suite, bytes(32)), i)  # not on the committee
    for cut in (1, 20, len(i.announcements[0]) - 1):  # truncated announcement entries
        with pytest.raises(UsageError):
            replace(i, announcements=(i.announcements[0][:cut], i.announcements[1]))
    assert i.committee_indices == (0, 1)


def test_secrets_stay_out_of_repr(suite: Suite) -> None:
    run = Run(suite, 3, 1, joiners=1)
    round1 = run.round1()
    _item, outcome = run.round3(round1)[0]
    seed = run.seeds[0]
    local = local_round2(seed, run.inputs, round1)
    assert local.payloads is not None
    secrets = [seed.seed.hex(), seed.payload().hex(), outcome.epoch_secret.hex(),
               outcome.member_base.hex(), *(p.hex() for p in local.payloads)]
    assert outcome.commit_secret is not None
    secrets.append(outcome.commit_secret.hex())
    for text in (repr(seed), repr(outcome), repr(local), repr(seed.stream(b"round 1"))):
        for secret in secrets:
            assert secret not in text
    assert isinstance(seed.dkg_key(), Point)
