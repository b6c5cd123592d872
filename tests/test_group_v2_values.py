"""Version 2 values of the epoch change (spec 11/08, version 2): member key records, join keys,
the control envelope, proposals, announcements, round-3 items, commits, the roster and the key
schedule. Round trips, strict decoding, signatures that cannot be forged or moved, the supersede
rules, and the binding of the key schedule to every input."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from triple_ratchet import cbor
from triple_ratchet.dkg.cocktail import schnorr_sign
from triple_ratchet.dkg.ed25519 import Point, Scalar
from triple_ratchet.errors import (
    AuthenticationError,
    DecodeError,
    InvalidKey,
    InvalidSignature,
    LimitExceeded,
    ProtocolError,
    RemoteError,
    UsageError,
)
from triple_ratchet.group import key_schedule as ks
from triple_ratchet.group.change_proposal import (
    KIND_ADD,
    KIND_REFRESH,
    KIND_REMOVE,
    KIND_RESUME,
    ChangeProposal,
    ResumeChange,
    applied_proposals_hash,
)
from triple_ratchet.group.control import (
    IDENTITY_SIGNED_TYPES,
    TYPE_COMMIT,
    TYPE_PROPOSAL,
    TYPE_RECORD,
    TYPE_TICK,
    TYPES,
    ControlEntry,
    open_entry,
    seal_entry,
    sign_identity_entry,
    sign_member_entry,
)
from triple_ratchet.group.records import (
    LABEL_MEMBER_POSSESSION,
    PURPOSE_RESUME,
    PURPOSE_ROTATE,
    JoinKey,
    MemberKeyRecord,
    RecordKeys,
    RecordVerdict,
    creator_anchor,
    judge_posted,
    judge_record,
    member_sign,
)
from triple_ratchet.group.roster import Roster, RosterEntry
from triple_ratchet.group.run import (
    Commit,
    Round3Item,
    RunAnnouncement,
    check_tick_body,
    sealing_sizes,
)
from triple_ratchet.identity import (
    LABEL_IDENTITY_JOIN_KEY,
    LABEL_IDENTITY_MEMBER_KEYS,
    LABEL_IDENTITY_PROPOSAL,
    IdentityKeyPair,
)
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import ALL_SUITES, Suite

GROUP = b"group v2 values"
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@pytest.fixture(params=ALL_SUITES, ids=lambda s: s.name)
def suite(request: pytest.FixtureRequest) -> Suite:
    s: Suite = request.param
    return s


class World:
    """Two identities with record keys, a join key, records and a roster, all deterministic."""

    def __init__(self, suite: Suite) -> None:
        self.suite = suite
        self.rng = DeterministicRandom(b"v2 values " + suite.name.encode())
        self.alice = IdentityKeyPair.generate(suite, self.rng)
        self.bob = IdentityKeyPair.generate(suite, self.rng)
        self.alice_keys = RecordKeys.from_seed(suite, self.rng(32))
        self.bob_join_keys = RecordKeys.from_seed(suite, self.rng(32))
        self.bob_keys = RecordKeys.from_seed(suite, self.rng(32))
        self.inbox = self.rng(32)
        self.join_key = JoinKey.sign(self.bob, self.bob_join_keys, expiry=1_700_000_000_000,
                                     inbox_id=self.inbox)
        self.alice_record = MemberKeyRecord.sign(
            self.alice, self.alice_keys, group_id=GROUP, counter=1, purpose=PURPOSE_ROTATE,
            anchor=creator_anchor(suite))
        self.bob_record = MemberKeyRecord.sign(
            self.bob, self.bob_keys, group_id=GROUP, counter=1, purpose=PURPOSE_ROTATE,
            anchor=self.join_key.anchor())
        self.roster = Roster(suite, (
            RosterEntry(self.alice.public.to_bytes(), self.alice_record, 1000),
            RosterEntry(self.bob.public.to_bytes(), self.join_key, 2000),
        ))

    def keys(self) -> RecordKeys:
        return RecordKeys.from_seed(self.suite, self.rng(32))


@pytest.fixture
def w(suite: Suite) -> World:
    return World(suite)


def _reencode(data: bytes, edit: Callable[[list[cbor.CborValue]], None]) -> bytes:
    fields = cbor.decode(data)
    assert isinstance(fields, list)
    edit(fields)
    return cbor.encode(fields)


def _malleate(suite: Suite, signature: bytes) -> bytes:
    """ECDSA's (r, n - s): a second valid signature of the same content (P-256 only)."""
    s = int.from_bytes(signature[32:], "big")
    return signature[:32] + (P256_N - s).to_bytes(32, "big")


def _all_prefixes_fail(data: bytes, decode: Callable[[bytes], object]) -> None:
    for cut in range(len(data)):
        with pytest.raises(RemoteError):
            decode(data[:cut])


# --- Member key records ---------------------------------------------------------------------


def test_record_round_trip_and_keys_from_seed(w: World) -> None:
    data = w.alice_record.to_bytes()
    assert MemberKeyRecord.from_bytes(w.suite, data) == w.alice_record
    assert MemberKeyRecord.from_bytes(w.suite, data).to_bytes() == data
    seed = bytes(range(32))
    a, b = RecordKeys.from_seed(w.suite, seed), RecordKeys.from_seed(w.suite, seed)
    assert (a.receive_public, a.signing_public) == (b.receive_public, b.signing_public)
    other = RecordKeys.from_seed(w.suite, bytes(32))
    assert other.receive_public != a.receive_public and other.signing_public != a.signing_public
    assert a.holds(MemberKeyRecord.sign(w.alice, a, group_id=GROUP, counter=2,
                                        purpose=PURPOSE_ROTATE, anchor=creator_anchor(w.suite)))
    assert not other.holds(w.alice_record)
    assert "secret" in repr(a) and a.receive_key.to_bytes().hex() not in repr(a)


def test_record_truncated_or_extended_is_refused(w: World) -> None:
    data = w.alice_record.to_bytes()
    _all_prefixes_fail(data, lambda d: MemberKeyRecord.from_bytes(w.suite, d))
    with pytest.raises(DecodeError):
        MemberKeyRecord.from_bytes(w.suite, _reencode(data, lambda f: f.append(b"")))
    with pytest.raises(DecodeError):
        MemberKeyRecord.from_bytes(w.suite, data + b"\x00")


@pytest.mark.parametrize("index, value, error", [
    (0, b"", DecodeError),  # empty group id
    (2, "1", DecodeError),  # counter of the wrong type
    (2, 2**32, DecodeError),  # counter out of range
    (3, 7, DecodeError),  # unknown purpose
    (4, b"\x00" * 5, DecodeError),  # receive key of the wrong length
    (6, b"\x00", DecodeError),  # anchor of the wrong length
    (7, b"\x00" * 63, DecodeError),  # short signature
])
def test_record_wrong_fields_are_typed_errors(w: World, index: int, value: cbor.CborValue,
                                              error: type[Exception]) -> None:
    def edit(f: list[cbor.CborValue]) -> None:
        f[index] = value
    with pytest.raises(error):
        MemberKeyRecord.from_bytes(w.suite, _reencode(w.alice_record.to_bytes(), edit))


def test_record_invalid_receive_key_is_refused(w: World) -> None:
    bad = (b"\x04" + b"\x00" * 63 + b"\x01" if w.suite.suite_id == 1  # off the curve
           else b"\x00" * 32)  # X25519 small-order point
    def edit(f: list[cbor.CborValue]) -> None:
        f[4] = bad
    with pytest.raises(InvalidKey):
        MemberKeyRecord.from_bytes(w.suite, _reencode(w.alice_record.to_bytes(), edit))


def test_record_forged_or_moved_signatures_are_refused(w: World) -> None:
    rec = w.alice_record
    # Another key's proof of possession: a key the owner does not hold.
    stolen = replace(rec, signing_key=w.bob_keys.signing_public)
    with pytest.raises(InvalidSignature):
        MemberKeyRecord.from_bytes(w.suite, stolen.to_bytes())
    # The identity signature of another record of the same owner (moved).
    other = MemberKeyRecord.sign(w.alice, w.alice_keys, group_id=GROUP, counter=2,
                                 purpose=PURPOSE_ROTATE, anchor=creator_anchor(w.suite))
    with pytest.raises(InvalidSignature):
        MemberKeyRecord.from_bytes(
            w.suite, replace(rec, identity_signature=other.identity_signature).to_bytes())
    # The same content signed under the join-key label, or with the PoP label by the identity.
    content = rec.content()
    for sig in (w.alice.sign(LABEL_IDENTITY_JOIN_KEY, content),
                member_sign(w.suite, w.alice_keys.signing_key, LABEL_MEMBER_POSSESSION,
                            content)):
        with pytest.raises(InvalidSignature):
            MemberKeyRecord.from_bytes(w.suite, replace(rec, identity_signature=sig).to_bytes())


def test_planted_receive_key_is_refused(w: World) -> None:
    """A record naming Alice but signed by Bob's identity does not decode; a valid record of
    Bob's never changes Alice's entry."""
    planted = MemberKeyRecord.sign(w.bob, w.keys(), group_id=GROUP, counter=5,
                                   purpose=PURPOSE_ROTATE, anchor=creator_anchor(w.suite))
    forged = replace(planted, identity=w.alice.public.to_bytes())
    with pytest.raises(InvalidSignature):
        MemberKeyRecord.from_bytes(w.suite, forged.to_bytes())
    with pytest.raises(ProtocolError, match="another identity"):
        judge_record(w.alice_record, creator_anchor(w.suite), planted, w.roster.receive_keys(),
                     group_id=GROUP)


# --- Supersede rules ---------------------------------------------------------------------------


def _next(w: World, counter: int, *, keys: RecordKeys | None = None,
          anchor: bytes | None = None, purpose: int = PURPOSE_ROTATE,
          group_id: bytes = GROUP) -> MemberKeyRecord:
    return MemberKeyRecord.sign(w.alice, keys or w.keys(), group_id=group_id, counter=counter,
                                purpose=purpose,
                                anchor=creator_anchor(w.suite) if anchor is None else anchor)


def test_supersede_rules(w: World) -> None:
    current, anchor, keys = w.alice_record, creator_anchor(w.suite), w.roster.receive_keys()
    assert judge_record(current, anchor, _next(w, 2), keys, group_id=GROUP) is (
        RecordVerdict.SUPERSEDES)
    assert judge_record(current, anchor, _next(w, 0), keys, group_id=GROUP) is (
        RecordVerdict.STALE)
    assert judge_record(current, anchor, current, keys, group_id=GROUP) is (
        RecordVerdict.DUPLICATE)
    assert judge_record(current, anchor, _next(w, 1), keys, group_id=GROUP) is (
        RecordVerdict.EQUIVOCATION)


def test_duplicate_is_judged_on_content_not_signature_bytes(w: World) -> None:
    if w.suite.suite_id != 1:
        pytest.skip("only ECDSA signatures are malleable")
    rec = w.alice_record
    twin = replace(rec, identity_signature=_malleate(w.suite, rec.identity_signature))
    assert twin.to_bytes() != rec.to_bytes()
    twin = MemberKeyRecord.from_bytes(w.suite, twin.to_bytes())  # still valid
    assert judge_record(rec, creator_anchor(w.suite), twin, w.roster.receive_keys(),
                        group_id=GROUP) is RecordVerdict.DUPLICATE
    assert judge_posted([rec], twin) is RecordVerdict.DUPLICATE


def test_supersede_refusals(w: World) -> None:
    current, anchor, keys = w.alice_record, creator_anchor(w.suite), w.roster.receive_keys()
    with pytest.raises(ProtocolError, match="anchored"):
        judge_record(current, anchor, _next(w, 2, anchor=w.join_key.anchor()), keys,
                     group_id=GROUP)
    with pytest.raises(ProtocolError, match="another group"):
        judge_record(current, anchor, _next(w, 2, group_id=b"other"), keys, group_id=GROUP)
    with pytest.raises(ProtocolError, match="receive key already"):
        judge_record(current, anchor, _next(w, 2, keys=w.alice_keys), keys, group_id=GROUP)
    bobs_key = RecordKeys(w.suite, w.bob_join_keys.receive_key, w.keys().signing_key)
    with pytest.raises(ProtocolError, match="receive key already"):
        judge_record(current, anchor, _next(w, 2, keys=bobs_key), keys, group_id=GROUP)
    # A resume record is not a rotation, and a rotation record is not a resume.
    with pytest.raises(ProtocolError, match="purpose"):
        judge_record(current, anchor, _next(w, 2, purpose=PURPOSE_RESUME), keys,
                     group_id=GROUP)
    with pytest.raises(ProtocolError, match="purpose"):
        judge_record(current, anchor, _next(w, 2), keys, group_id=GROUP,
                     purpose=PURPOSE_RESUME)


def test_join_key_entry_first_rotation_and_old_membership(w: World) -> None:
    """A joiner's entry holds its join key (counter 0); its first record must carry the join
    key's anchor, and a record of an earlier membership is refused after a re-add."""
    entry = w.roster.entries[1]
    assert judge_record(entry.record, entry.anchor, w.bob_record, w.roster.receive_keys(),
                        group_id=GROUP) is RecordVerdict.SUPERSEDES
    readd = JoinKey.sign(w.bob, w.keys(), expiry=1, inbox_id=w.inbox)
    with pytest.raises(ProtocolError, match="anchored"):
        judge_record(readd, readd.anchor(), w.bob_record, w.roster.receive_keys(),
                     group_id=GROUP)


def test_judge_posted_window(w: World) -> None:
    first = _next(w, 3)
    assert judge_posted([], first) is RecordVerdict.SUPERSEDES
    assert judge_posted([first], first) is RecordVerdict.DUPLICATE
    assert judge_posted([first], _next(w, 3)) is RecordVerdict.EQUIVOCATION
    assert judge_posted([first], _next(w, 4)) is RecordVerdict.SUPERSEDES
    assert judge_posted([w.bob_record], replace(first, counter=1)) is RecordVerdict.SUPERSEDES


# --- Join keys --------------------------------------------------------------------------------


def test_join_key_round_trip_and_strictness(w: World) -> None:
    data = w.join_key.to_bytes()
    assert JoinKey.from_bytes(w.suite, data) == w.join_key
    assert not w.join_key.expired_at(1_700_000_000_000)
    assert w.join_key.expired_at(1_700_000_000_001)
    _all_prefixes_fail(data, lambda d: JoinKey.from_bytes(w.suite, d))
    with pytest.raises(DecodeError):
        JoinKey.from_bytes(w.suite, _reencode(data, lambda f: f.append(0)))

    def short_inbox(f: list[cbor.CborValue]) -> None:
        f[4] = b"\x00" * 31
    with pytest.raises(DecodeError):
        JoinKey.from_bytes(w.suite, _reencode(data, short_inbox))
    # Signed under the member-keys label: not a join key.
    moved = replace(w.join_key, signature=w.bob.sign(LABEL_IDENTITY_MEMBER_KEYS,
                                                     w.join_key.content()))
    with pytest.raises(InvalidSignature):
        JoinKey.from_bytes(w.suite, moved.to_bytes())
    # Claimed by another identity.
    with pytest.raises(InvalidSignature):
        JoinKey.from_bytes(w.suite, replace(w.join_key,
                                            identity=w.alice.public.to_bytes()).to_bytes())


# --- Control envelope -------------------------------------------------------------------------


def test_control_entry_round_trip_and_signers(w: World) -> None:
    key, mailbox = w.rng(32), w.rng(32)
    body = w.alice_record.to_bytes()
    entry = sign_identity_entry(w.alice, TYPE_RECORD, group_id=GROUP, epoch=3, author=0,
                                body=body)
    blob = seal_entry(w.suite, key, mailbox, entry, w.rng)
    opened = open_entry(w.suite, key, mailbox, blob, group_id=GROUP, epoch=3)
    assert opened == entry and opened.body == body
    opened.verify(w.alice.public, None)
    with pytest.raises(InvalidSignature):
        opened.verify(w.bob.public, None)
    tick = sign_member_entry(w.suite, w.alice_keys.signing_key, TYPE_TICK, group_id=GROUP,
                             epoch=3, author=0, body=b"")
    tick.verify(w.alice.public, w.alice_record.verifying_key())
    check_tick_body(tick.body)
    with pytest.raises(InvalidSignature):
        tick.verify(w.alice.public, w.bob_record.verifying_key())
    with pytest.raises(ProtocolError):
        tick.verify(w.alice.public, None)
    with pytest.raises(UsageError):
        sign_identity_entry(w.alice, TYPE_TICK, group_id=GROUP, epoch=3, author=0, body=b"")
    with pytest.raises(UsageError):
        sign_member_entry(w.suite, w.alice_keys.signing_key, TYPE_PROPOSAL, group_id=GROUP,
                          epoch=3, author=0, body=b"")
    assert IDENTITY_SIGNED_TYPES < TYPES and len(TYPES) == 11


@pytest.mark.parametrize("field_index, value", [(3, b"another group"), (4, 4), (5, 1)])
def test_control_entry_moved_to_another_place_fails(w: World, field_index: int,
                                                    value: cbor.CborValue) -> None:
    entry = sign_identity_entry(w.alice, TYPE_RECORD, group_id=GROUP, epoch=3, author=0,
                                body=w.alice_record.to_bytes())

    def edit(f: list[cbor.CborValue]) -> None:
        f[field_index] = value
    moved = ControlEntry.from_bytes(_reencode(entry.to_bytes(), edit))
    with pytest.raises(InvalidSignature):
        moved.verify(w.alice.public, None)


def test_control_blob_is_strict(w: World) -> None:
    key, mailbox = w.rng(32), w.rng(32)
    entry = sign_member_entry(w.suite, w.alice_keys.signing_key, TYPE_TICK, group_id=GROUP,
                              epoch=3, author=0, body=b"")
    blob = seal_entry(w.suite, key, mailbox, entry, w.rng)
    # Random nonces: sealing twice gives two blobs.
    assert seal_entry(w.suite, key, mailbox, entry, w.rng) != blob
    _all_prefixes_fail(blob, lambda b: open_entry(w.suite, key, mailbox, b, group_id=GROUP,
                                                  epoch=3))
    with pytest.raises(AuthenticationError):
        open_entry(w.suite, w.rng(32), mailbox, blob, group_id=GROUP, epoch=3)
    with pytest.raises(DecodeError):
        open_entry(w.suite, key, w.rng(32), blob, group_id=GROUP, epoch=3)
    with pytest.raises(ProtocolError):
        open_entry(w.suite, key, mailbox, blob, group_id=GROUP, epoch=4)
    with pytest.raises(ProtocolError):
        open_entry(w.suite, key, mailbox, blob, group_id=b"other", epoch=3)
    flipped = bytearray(blob)
    flipped[-1] ^= 1
    with pytest.raises(AuthenticationError):
        open_entry(w.suite, key, mailbox, bytes(flipped), group_id=GROUP, epoch=3)
    with pytest.raises(LimitExceeded):
        open_entry(w.suite, key, mailbox, bytes(200_000), group_id=GROUP, epoch=3)
    data = entry.to_bytes()
    for index, value in ((0, 12), (1, 1), (5, 1000), (7, b"\x00")):
        def edit(f: list[cbor.CborValue], i: int = index, v: cbor.CborValue = value) -> None:
            f[i] = v
        with pytest.raises(DecodeError):
            ControlEntry.from_bytes(_reencode(data, edit))


def test_thousand_member_commit_fits_one_control_entry(w: World) -> None:
    enc, ct = sealing_sizes(w.suite)
    commit = Commit.make(w.suite, 1, [(w.rng(enc), w.rng(ct)) for _ in range(1000)])
    entry = sign_member_entry(w.suite, w.alice_keys.signing_key, TYPE_COMMIT,
                              group_id=b"g" * 64, epoch=2**40, author=999, body=commit.to_bytes())
    key, mailbox = w.rng(32), w.rng(32)
    blob = seal_entry(w.suite, key, mailbox, entry, w.rng)
    opened = open_entry(w.suite, key, mailbox, blob, group_id=b"g" * 64, epoch=2**40)
    assert Commit.from_bytes(w.suite, opened.body) == commit


# --- Proposals --------------------------------------------------------------------------------


def _proposals(w: World) -> list[ChangeProposal]:
    resume = MemberKeyRecord.sign(w.bob, w.keys(), group_id=GROUP, counter=9,
                                  purpose=PURPOSE_RESUME, anchor=w.join_key.anchor())
    e, eid = 4, w.rng(32)
    return [
        ChangeProposal.sign(w.alice, KIND_ADD, group_id=GROUP, epoch=e, epoch_id=eid,
                            change=w.join_key),
        ChangeProposal.sign(w.alice, KIND_REMOVE, group_id=GROUP, epoch=e, epoch_id=eid,
                            change=w.bob.public.to_bytes()),
        ChangeProposal.sign(w.alice, KIND_REFRESH, group_id=GROUP, epoch=e, epoch_id=eid,
                            change=None),
        ChangeProposal.sign(w.alice, KIND_RESUME, group_id=GROUP, epoch=e, epoch_id=eid,
                            change=ResumeChange(resume, w.inbox)),
    ]


def test_proposal_each_kind_round_trips(w: World) -> None:
    for p in _proposals(w):
        data = p.to_bytes()
        back = ChangeProposal.from_bytes(w.suite, data)
        assert back == p and back.to_bytes() == data
        assert back.subject() == (None if p.kind == KIND_REFRESH else w.bob.public.to_bytes())
    creation = ChangeProposal.sign(w.alice, KIND_ADD, group_id=GROUP, epoch=0, epoch_id=b"",
                                   change=w.join_key)
    assert ChangeProposal.from_bytes(w.suite, creation.to_bytes()) == creation


def test_proposal_strict_decoding(w: World) -> None:
    add, remove, refresh, resume = _proposals(w)
    _all_prefixes_fail(refresh.to_bytes(), lambda d: ChangeProposal.from_bytes(w.suite, d))
    cases: list[tuple[ChangeProposal, int, cbor.CborValue]] = [
        (refresh, 0, 4),  # unknown kind
        (refresh, 5, b"x"),  # a refresh carries nothing
        (refresh, 3, b""),  # epoch id empty after epoch 0
        (remove, 5, b""),  # nobody to remove
        (add, 5, w.alice_record.to_bytes()),  # a record is not a join key
        (resume, 5, [b"", w.inbox]),
    ]
    for p, index, value in cases:
        def edit(f: list[cbor.CborValue], i: int = index, v: cbor.CborValue = value) -> None:
            f[i] = v
        with pytest.raises(RemoteError):
            ChangeProposal.from_bytes(w.suite, _reencode(p.to_bytes(), edit))


def test_wrapped_rotation_record_is_refused_as_resume(w: World) -> None:
    _, _, _, resume = _proposals(w)
    rotation = MemberKeyRecord.sign(w.bob, w.keys(), group_id=GROUP, counter=9,
                                    purpose=PURPOSE_ROTATE, anchor=w.join_key.anchor())
    with pytest.raises(UsageError):
        ChangeProposal.sign(w.alice, KIND_RESUME, group_id=GROUP, epoch=4,
                            epoch_id=resume.epoch_id, change=ResumeChange(rotation, w.inbox))
    forged = replace(resume, change=ResumeChange(rotation, w.inbox), signature=b"")
    forged = replace(forged, signature=w.alice.sign(b"identity: v2 group proposal",
                                                    forged.content()))
    with pytest.raises(ProtocolError, match="purpose resume"):
        ChangeProposal.from_bytes(w.suite, forged.to_bytes())


def test_proposal_signatures_cannot_be_forged_or_moved(w: World) -> None:
    _, remove, refresh, _ = _proposals(w)
    # Version 1's proposal label over the same content is not a version-2 proposal.
    v1 = replace(refresh, signature=w.alice.sign(LABEL_IDENTITY_PROPOSAL, refresh.content()))
    with pytest.raises(InvalidSignature):
        ChangeProposal.from_bytes(w.suite, v1.to_bytes())
    with pytest.raises(InvalidSignature):
        ChangeProposal.from_bytes(w.suite, replace(refresh, signature=remove.signature)
                                  .to_bytes())
    with pytest.raises(InvalidSignature):
        ChangeProposal.from_bytes(w.suite, replace(refresh, author=w.bob.public.to_bytes())
                                  .to_bytes())


def test_applied_proposals_hash_binds_order_and_content(w: World) -> None:
    ps = _proposals(w)
    h = applied_proposals_hash(w.suite, ps)
    assert len(h) == w.suite.hash_len
    assert applied_proposals_hash(w.suite, list(reversed(ps))) != h
    assert applied_proposals_hash(w.suite, ps[:3]) != h
    assert applied_proposals_hash(w.suite, []) != h
    if w.suite.suite_id == 1:  # a re-randomised signature does not change it
        twin = replace(ps[0], signature=_malleate(w.suite, ps[0].signature))
        assert applied_proposals_hash(w.suite, [twin, *ps[1:]]) == h


# --- Announcements, round-3 items, commits -----------------------------------------------------


def _announcement(w: World, **kw: object) -> RunAnnouncement:
    args: dict[str, object] = dict(group_id=GROUP, epoch=4, run=1,
                                   dkg_key=Point.base_mul(Scalar(7)),
                                   applied_proposals_hash=w.rng(w.suite.hash_len),
                                   roster_hash=w.roster.hash())
    args.update(kw)
    return RunAnnouncement.sign(w.alice, **args)  # type: ignore[arg-type]


def test_announcement_round_trip_and_strictness(w: World) -> None:
    a = _announcement(w)
    assert RunAnnouncement.from_bytes(w.suite, a.to_bytes()) == a
    _all_prefixes_fail(a.to_bytes(), lambda d: RunAnnouncement.from_bytes(w.suite, d))

    def identity_point(f: list[cbor.CborValue]) -> None:
        f[4] = b"\x01" + bytes(31)
    with pytest.raises(InvalidKey):
        RunAnnouncement.from_bytes(w.suite, _reencode(a.to_bytes(), identity_point))

    def run_zero(f: list[cbor.CborValue]) -> None:
        f[2] = 0
    with pytest.raises(DecodeError):
        RunAnnouncement.from_bytes(w.suite, _reencode(a.to_bytes(), run_zero))
    other_run = _announcement(w, run=2, applied_proposals_hash=a.applied_proposals_hash)
    with pytest.raises(InvalidSignature):
        RunAnnouncement.from_bytes(w.suite, replace(a, signature=other_run.signature)
                                   .to_bytes())
    assert not a.same_as(other_run) and a.same_as(a)


def test_round3_item_signatures(w: World) -> None:
    d = Scalar(12345)
    key = Point.base_mul(d)
    transcript = b"the run's transcript"
    sid = w.rng(w.suite.hash_len)
    item = Round3Item.sign(w.suite, d, certeq_signature=schnorr_sign(d, transcript),
                           run_session_id=sid, bundle_root=w.rng(w.suite.hash_len),
                           confirmation_tag=w.rng(w.suite.hash_len), rng=w.rng)
    back = Round3Item.from_bytes(w.suite, item.to_bytes())
    assert back == item
    back.verify(key, sid, transcript)
    with pytest.raises(InvalidSignature):  # moved to another run
        back.verify(key, w.rng(w.suite.hash_len), transcript)
    with pytest.raises(InvalidSignature):  # CertEq over another transcript
        back.verify(key, sid, transcript + b"!")
    with pytest.raises(InvalidSignature):  # another member's key
        back.verify(Point.base_mul(Scalar(2)), sid, transcript)
    with pytest.raises(InvalidSignature):  # another root under the same signature
        replace(back, bundle_root=w.rng(w.suite.hash_len)).verify(key, sid, transcript)
    assert item.agrees_with(replace(item, dkg_signature=bytes(64)))
    assert not item.agrees_with(replace(item, confirmation_tag=bytes(w.suite.hash_len)))
    _all_prefixes_fail(item.to_bytes(), lambda b: Round3Item.from_bytes(w.suite, b))


def test_commit_strictness(w: World) -> None:
    enc, ct = sealing_sizes(w.suite)
    commit = Commit.make(w.suite, 2, [(w.rng(enc), w.rng(ct)) for _ in range(3)])
    assert Commit.from_bytes(w.suite, commit.to_bytes()) == commit
    assert Commit.from_bytes(w.suite, Commit.make(w.suite, 1, []).to_bytes()).bundle == ()
    _all_prefixes_fail(commit.to_bytes(), lambda b: Commit.from_bytes(w.suite, b))
    with pytest.raises(DecodeError):
        Commit.from_bytes(w.suite, cbor.encode([2, [[w.rng(enc - 1), w.rng(ct)]]]))
    with pytest.raises(DecodeError):
        Commit.from_bytes(w.suite, cbor.encode([0, []]))
    with pytest.raises(LimitExceeded):
        Commit.from_bytes(w.suite, cbor.encode([1, [[b"", b""]] * 1001]))
    with pytest.raises(DecodeError):
        check_tick_body(b"\x00")


# --- Roster ---------------------------------------------------------------------------------


def test_roster_round_trip_and_hash(w: World) -> None:
    data = w.roster.to_bytes()
    back = Roster.from_bytes(w.suite, data, group_id=GROUP)
    assert back == w.roster and back.hash() == w.roster.hash()
    assert back.index_of(w.bob.public.to_bytes()) == 1
    a, b = w.roster.entries
    assert Roster(w.suite, (b, a)).hash() != w.roster.hash()
    assert Roster(w.suite, (a, replace(b, posted_at=2001))).hash() != w.roster.hash()
    assert Roster(w.suite, (a, replace(b, record=w.bob_record))).hash() != w.roster.hash()
    if w.suite.suite_id == 1:
        twin = replace(w.alice_record,
                       identity_signature=_malleate(w.suite, w.alice_record.identity_signature))
        assert Roster(w.suite, (replace(a, record=twin), b)).hash() == w.roster.hash()
    with pytest.raises(ProtocolError):
        Roster.from_bytes(w.suite, data, group_id=b"another group")
    _all_prefixes_fail(data, lambda d: Roster.from_bytes(w.suite, d, group_id=GROUP))


def test_roster_refuses_duplicates_and_foreign_records(w: World) -> None:
    a, b = w.roster.entries
    with pytest.raises(ProtocolError):
        Roster(w.suite, (a, a))
    with pytest.raises(ProtocolError):  # Bob's entry holding Alice's record
        Roster(w.suite, (a, replace(b, record=w.alice_record)))
    shared = MemberKeyRecord.sign(
        w.bob, RecordKeys(w.suite, w.alice_keys.receive_key, w.keys().signing_key),
        group_id=GROUP, counter=1, purpose=PURPOSE_ROTATE, anchor=w.join_key.anchor())
    with pytest.raises(ProtocolError, match="receive key"):
        Roster(w.suite, (a, replace(b, record=shared)))
    with pytest.raises(LimitExceeded):
        Roster(w.suite, ())


# --- Key schedule v2 ----------------------------------------------------------------------------


def _defaults(suite: Suite) -> dict[str, object]:
    rng = DeterministicRandom(b"ks v2 " + suite.name.encode())
    h = suite.hash_len
    return dict(
        group_id=GROUP, epoch=5, epoch_id=rng(32), run=1, applied=rng(h),
        announcements=[rng(100), rng(100)], payloads=[rng(32), rng(32)], init=rng(h),
        roster_hash=rng(h), bundle_root=rng(h), transcript_hash=rng(64), n=3)


def _schedule(suite: Suite, **over: object) -> tuple[bytes, ks.EpochSecretsV2]:
    p = {**_defaults(suite), **over}
    sid = ks.run_session_id(suite, p["group_id"], p["epoch"], p["epoch_id"],  # type: ignore[arg-type]
                            p["run"], p["applied"], p["announcements"])  # type: ignore[arg-type]
    commit = ks.extract_commit_secret(suite, sid, p["payloads"])  # type: ignore[arg-type]
    base = ks.extract_member_base(suite, p["init"], commit)  # type: ignore[arg-type]
    ctx = ks.group_context(suite, p["group_id"], p["epoch"] + 1,  # type: ignore[arg-type, operator]
                           p["epoch_id"], p["roster_hash"], p["applied"],  # type: ignore[arg-type]
                           p["bundle_root"], p["transcript_hash"])  # type: ignore[arg-type]
    secret = ks.expand_epoch_secret(suite, base, ctx)
    return secret, ks.derive_epoch_v2(suite, base, ctx, p["n"])  # type: ignore[arg-type]


def test_key_schedule_v2_binds_every_input(suite: Suite) -> None:
    rng = DeterministicRandom(b"other inputs")
    h = suite.hash_len
    defaults = _defaults(suite)
    secret, epoch = _schedule(suite)
    assert _schedule(suite) == (secret, epoch)
    changes: list[dict[str, object]] = [
        {"group_id": b"another group"}, {"epoch_id": rng(32)}, {"run": 2},
        {"applied": rng(h)}, {"announcements": [rng(100)]},
        {"announcements": list(reversed(defaults["announcements"]))},  # type: ignore[call-overload]
        {"payloads": [rng(32), rng(32)]},
        {"payloads": list(reversed(defaults["payloads"]))},  # type: ignore[call-overload]
        {"init": rng(h)}, {"roster_hash": rng(h)}, {"bundle_root": rng(h)},
        {"transcript_hash": rng(64)},
    ]
    seen = {secret}
    for change in changes:
        other_secret, other = _schedule(suite, **change)
        assert other_secret != secret, change
        assert other.confirmation_tag != epoch.confirmation_tag, change
        assert other.epoch_id != epoch.epoch_id, change
        seen.add(other_secret)
    assert len(seen) == len(changes) + 1
    # The roster size changes the chain roots only (it is bound through the roster hash).
    _, bigger = _schedule(suite, n=4)
    assert bigger.chain_roots[:3] == epoch.chain_roots


def test_key_schedule_v2_values(suite: Suite) -> None:
    secret, epoch = _schedule(suite)
    h = suite.hash_len
    values = [*epoch.chain_roots, epoch.sender_data_secret, epoch.mailbox.access_public,
              epoch.control_mailbox.access_public, epoch.control_traffic_key, epoch.epoch_id,
              epoch.init_secret_next, epoch.confirmation_tag]
    assert len(set(values)) == len(values)
    assert epoch.roster_size == 3 and all(len(r) == h for r in epoch.chain_roots)
    assert epoch.mailbox.mailbox_id != epoch.control_mailbox.mailbox_id
    assert len(epoch.control_traffic_key) == suite.aead_key_len
    epoch.check_confirmation_tag(epoch.confirmation_tag)
    with pytest.raises(AuthenticationError):
        epoch.check_confirmation_tag(bytes(h))
    for value in values:
        if value not in (epoch.epoch_id,):
            assert value.hex() not in repr(epoch)
    assert secret.hex() not in repr(epoch)


def test_key_schedule_v2_creation_and_bounds(suite: Suite) -> None:
    zero = ks.initial_init_secret(suite)
    assert zero == bytes(suite.hash_len)
    _schedule(suite, epoch=0, epoch_id=b"", init=zero, payloads=[bytes(32)],
              announcements=[b"creator"], n=1)
    with pytest.raises(UsageError):  # epoch_id(0) is empty
        _schedule(suite, epoch=0)
    with pytest.raises(UsageError):
        _schedule(suite, epoch_id=b"")
    with pytest.raises(LimitExceeded):
        _schedule(suite, payloads=[bytes(32)] * 9)
    with pytest.raises(LimitExceeded):
        _schedule(suite, payloads=[])
    with pytest.raises(UsageError):
        _schedule(suite, payloads=[bytes(31)])
    with pytest.raises(LimitExceeded):
        _schedule(suite, n=1001)
    with pytest.raises(UsageError):
        _schedule(suite, run=0)
    with pytest.raises(UsageError):
        _schedule(suite, transcript_hash=bytes(32))
    with pytest.raises(UsageError):
        _schedule(suite, init=bytes(suite.hash_len - 1))
    _, big = _schedule(suite, n=1000)
    assert len(set(big.chain_roots)) == 1000
