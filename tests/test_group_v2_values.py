"""Version 2 values of the epoch change (spec 11.v2.1-14, 08 "Version 2"): member key records,
join keys, control entries and blobs, proposals, run bodies, the roster and the key schedule.
Round trips, strict decoding, signatures that cannot be forged or moved, the supersede rules of
11.v2.16, and the binding of the key schedule to every input."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triple_ratchet import cbor
from triple_ratchet.dkg.cocktail import make_context, schnorr_sign
from triple_ratchet.dkg.ed25519 import Point, Scalar
from triple_ratchet.errors import (
    AuthenticationError,
    DecodeError,
    InvalidKey,
    InvalidSignature,
    LimitExceeded,
    ProtocolError,
    RemoteError,
    ReplayError,
    UnsupportedError,
    UsageError,
)
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
    IDENTITY_SIGNED_TYPES,
    TYPE_ANNOUNCEMENT,
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
    RejoinRequest,
    creator_anchor,
    decode_keys,
    judge_record,
    member_sign,
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
    check_tick_body,
    sealing_sizes,
)
from triple_ratchet.identity import (
    LABEL_IDENTITY_ANNOUNCEMENT,
    LABEL_IDENTITY_JOIN_KEY,
    LABEL_IDENTITY_MEMBER_KEYS,
    IdentityKeyPair,
)
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import CLASSICAL_SUITES, Suite
from triple_ratchet.testvectors import epoch_v2, verify_document

GROUP = b"group v2 values"
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@pytest.fixture(params=CLASSICAL_SUITES, ids=lambda s: s.name)
def suite(request: pytest.FixtureRequest) -> Suite:
    s: Suite = request.param
    return s


class World:
    """Alice (the creator) and Bob (a joiner), their keys, records and a roster; deterministic."""

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
        self.roster = Roster(suite, (RosterEntry.of(self.alice_record, 0),
                                     RosterEntry.of(self.join_key, 2000)))

    def keys(self) -> RecordKeys:
        return RecordKeys.from_seed(self.suite, self.rng(32))


@pytest.fixture
def w(suite: Suite) -> World:
    return World(suite)


def _edit_outer(data: bytes, edit: Callable[[list[cbor.CborValue]], None]) -> bytes:
    fields = cbor.decode(data)
    assert isinstance(fields, list)
    edit(fields)
    return cbor.encode(fields)


def _edit_body(data: bytes, index: int, value: cbor.CborValue) -> bytes:
    """Change field `index` of the signed body (element 0) of a signed value."""
    def edit(outer: list[cbor.CborValue]) -> None:
        body = outer[0]
        assert isinstance(body, bytes)

        def inner(f: list[cbor.CborValue]) -> None:
            f[index] = value
        outer[0] = _edit_outer(body, inner)
    return _edit_outer(data, edit)


def _set(index: int, value: cbor.CborValue) -> Callable[[list[cbor.CborValue]], None]:
    def edit(f: list[cbor.CborValue]) -> None:
        f[index] = value
    return edit


def _malleate(signature: bytes) -> bytes:
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
    assert decode_keys(w.suite, data) == w.alice_record
    assert decode_keys(w.suite, w.join_key.to_bytes()) == w.join_key
    seed = bytes(range(32))
    a, b = RecordKeys.from_seed(w.suite, seed), RecordKeys.from_seed(w.suite, seed)
    assert (a.receive_public, a.signing_public) == (b.receive_public, b.signing_public)
    other = RecordKeys.from_seed(w.suite, bytes(32))
    assert other.receive_public != a.receive_public and other.signing_public != a.signing_public
    assert w.alice_keys.holds(w.alice_record) and not other.holds(w.alice_record)
    assert a.receive_key.to_bytes().hex() not in repr(a)


def test_record_truncated_or_extended_is_refused(w: World) -> None:
    data = w.alice_record.to_bytes()
    _all_prefixes_fail(data, lambda d: MemberKeyRecord.from_bytes(w.suite, d))
    with pytest.raises(DecodeError):
        MemberKeyRecord.from_bytes(w.suite, _edit_outer(data, lambda f: f.append(b"")))
    with pytest.raises(DecodeError):
        MemberKeyRecord.from_bytes(w.suite, data + b"\x00")
    with pytest.raises(LimitExceeded):
        MemberKeyRecord.from_bytes(w.suite, bytes(1025))


@pytest.mark.parametrize("index, value, error", [
    (0, 0x51, DecodeError),  # a join key's type
    (1, 1, UnsupportedError),  # version 1
    (2, 0x7777, UnsupportedError),  # unknown suite
    (3, b"", DecodeError),  # empty group id
    (5, 0, DecodeError),  # counter 0 is a join key's
    (5, "1", DecodeError),  # counter of the wrong type
    (6, 3, DecodeError),  # unknown purpose
    (7, b"\x00" * 5, DecodeError),  # receive key of the wrong length
    (9, b"\x00", DecodeError),  # anchor of the wrong length
])
def test_record_wrong_fields_are_typed_errors(w: World, index: int, value: cbor.CborValue,
                                              error: type[Exception]) -> None:
    with pytest.raises(error):
        MemberKeyRecord.from_bytes(w.suite, _edit_body(w.alice_record.to_bytes(), index, value))


def test_record_of_another_suite_is_refused(w: World) -> None:
    other = next(s for s in CLASSICAL_SUITES if s.suite_id != w.suite.suite_id)
    with pytest.raises(ProtocolError):
        MemberKeyRecord.from_bytes(other, w.alice_record.to_bytes())


def test_record_invalid_keys_are_refused(w: World) -> None:
    bad_receive = (b"\x04" + b"\x00" * 63 + b"\x01" if w.suite.suite_id == 1  # off the curve
                   else b"\x00" * 32)  # X25519 small-order point
    bad_signing = (b"\x04" + b"\x00" * 63 + b"\x01" if w.suite.suite_id == 1
                   else b"\x01" + b"\x00" * 31)  # the Ed25519 identity point
    for index, value in ((7, bad_receive), (8, bad_signing)):
        with pytest.raises(InvalidKey):
            MemberKeyRecord.from_bytes(w.suite,
                                       _edit_body(w.alice_record.to_bytes(), index, value))


def test_record_forged_or_moved_signatures_are_refused(w: World) -> None:
    rec = w.alice_record
    # Another member's signing key claimed (identity-signed, but no proof of possession).
    claimed = replace(rec, signing_key=w.bob_keys.signing_public)
    claimed = replace(claimed, identity_signature=w.alice.sign(LABEL_IDENTITY_MEMBER_KEYS,
                                                               claimed.body()))
    with pytest.raises(InvalidSignature):
        MemberKeyRecord.from_bytes(w.suite, claimed.to_bytes())
    # The identity signature of another record of the same owner (moved).
    other = MemberKeyRecord.sign(w.alice, w.alice_keys, group_id=GROUP, counter=2,
                                 purpose=PURPOSE_ROTATE, anchor=creator_anchor(w.suite))
    with pytest.raises(InvalidSignature):
        MemberKeyRecord.from_bytes(w.suite, replace_signatures(
            rec, other.identity_signature, rec.possession_signature).to_bytes())
    # The same body under the join-key label, or the possession signature as identity's.
    body = rec.body()
    for sig in (w.alice.sign(LABEL_IDENTITY_JOIN_KEY, body),
                member_sign(w.suite, w.alice_keys.signing_key, LABEL_MEMBER_POSSESSION, body)):
        with pytest.raises(InvalidSignature):
            MemberKeyRecord.from_bytes(w.suite, replace_signatures(
                rec, sig, rec.possession_signature).to_bytes())
    # Signatures swapped.
    with pytest.raises(InvalidSignature):
        MemberKeyRecord.from_bytes(w.suite, replace_signatures(
            rec, rec.possession_signature, rec.identity_signature).to_bytes())


def test_planted_receive_key_is_refused(w: World) -> None:
    """A record naming Alice but signed by Bob's identity does not decode; a valid record of
    Bob's never changes Alice's entry; a record reusing a key of the roster is refused."""
    planted = MemberKeyRecord.sign(w.bob, w.keys(), group_id=GROUP, counter=5,
                                   purpose=PURPOSE_ROTATE, anchor=creator_anchor(w.suite))
    forged = replace(planted, identity=w.alice.public.to_bytes())
    with pytest.raises(InvalidSignature):
        MemberKeyRecord.from_bytes(w.suite, forged.to_bytes())
    alice = w.roster.entries[0]
    with pytest.raises(ProtocolError, match="another identity"):
        judge_record(planted, author_identity=alice.identity, current=alice.keys,
                     anchor=alice.anchor, seen=(),
                     taken_keys=w.roster.taken_keys(alice.identity),
                     group_id=GROUP)


# --- Supersede rules (11.v2.16) ----------------------------------------------------------------


def _next(w: World, counter: int, *, keys: RecordKeys | None = None,
          anchor: bytes | None = None, purpose: int = PURPOSE_ROTATE,
          group_id: bytes = GROUP) -> MemberKeyRecord:
    return MemberKeyRecord.sign(w.alice, keys or w.keys(), group_id=group_id, counter=counter,
                                purpose=purpose,
                                anchor=creator_anchor(w.suite) if anchor is None else anchor)


def _judge(w: World, new: MemberKeyRecord, *, seen: tuple[MemberKeyRecord, ...] = (),
           purpose: int = PURPOSE_ROTATE) -> RecordVerdict:
    alice = w.roster.entries[0]
    taken = w.roster.taken_keys(alice.identity) | {
        k for r in seen for k in (r.receive_key, r.signing_key)}
    return judge_record(new, author_identity=alice.identity, current=alice.keys,
                        anchor=alice.anchor, seen=seen, taken_keys=taken, group_id=GROUP,
                        purpose=purpose)


def test_supersede_rules(w: World) -> None:
    assert _judge(w, _next(w, 2)) is RecordVerdict.SUPERSEDES
    assert _judge(w, _next(w, 2**64 - 1)) is RecordVerdict.SUPERSEDES
    with pytest.raises(ReplayError):  # the same record again
        _judge(w, w.alice_record)
    assert _judge(w, _next(w, 1)) is RecordVerdict.EQUIVOCATION  # same counter, other body
    second = _next(w, 2)
    with pytest.raises(ReplayError):  # seen in this window already
        _judge(w, second, seen=(second,))
    assert _judge(w, _next(w, 2), seen=(second,)) is RecordVerdict.EQUIVOCATION
    assert _judge(w, _next(w, 3), seen=(second,)) is RecordVerdict.SUPERSEDES
    with pytest.raises(ReplayError):  # older than one seen
        _judge(w, _next(w, 3), seen=(second, _next(w, 4)))
    alice = w.roster.entries[0]
    with pytest.raises(ReplayError):  # `seen` may be any iterable, read more than once
        judge_record(second, author_identity=alice.identity, current=alice.keys,
                     anchor=alice.anchor, seen=(r for r in (second,)),
                     taken_keys=w.roster.taken_keys(alice.identity), group_id=GROUP)


def test_duplicate_is_judged_on_body_not_signature_bytes(w: World) -> None:
    if w.suite.suite_id != 1:
        pytest.skip("only ECDSA signatures are malleable")
    rec = w.alice_record
    twin = replace_signatures(rec, _malleate(rec.identity_signature), rec.possession_signature)
    assert twin.to_bytes() != rec.to_bytes()
    twin = MemberKeyRecord.from_bytes(w.suite, twin.to_bytes())  # still valid
    with pytest.raises(ReplayError):  # a duplicate, not an equivocation
        _judge(w, twin)


def test_supersede_refusals(w: World) -> None:
    with pytest.raises(ProtocolError, match="another membership"):
        _judge(w, _next(w, 2, anchor=w.join_key.anchor()))
    with pytest.raises(ProtocolError, match="another group"):
        _judge(w, _next(w, 2, group_id=b"other"))
    with pytest.raises(ProtocolError, match="already in the roster"):  # its own current key
        _judge(w, _next(w, 2, keys=w.alice_keys))
    # Another member's receive key proves nothing and is allowed (review F4): a copy only
    # keeps its holder from opening its own sealing.
    planted = RecordKeys(w.suite, w.bob_join_keys.receive_key, w.keys().signing_key)
    assert _judge(w, _next(w, 2, keys=planted)) is RecordVerdict.SUPERSEDES
    stolen = RecordKeys(w.suite, w.keys().receive_key, w.bob_join_keys.signing_key)
    with pytest.raises(ProtocolError, match="already in the roster"):  # Bob's signing key
        _judge(w, _next(w, 2, keys=stolen))
    seen_keys = w.keys()
    seen = _next(w, 2, keys=seen_keys)
    reused = RecordKeys(w.suite, w.keys().receive_key, seen_keys.signing_key)
    with pytest.raises(ProtocolError, match="already in the roster"):  # a seen record's key
        _judge(w, _next(w, 3, keys=reused), seen=(seen,))
    # A resume record is not a rotation, and a rotation record is not a resume.
    with pytest.raises(ProtocolError, match="resume proposal"):
        _judge(w, _next(w, 2, purpose=PURPOSE_RESUME))
    with pytest.raises(ProtocolError, match="never a resume"):
        _judge(w, _next(w, 2), purpose=PURPOSE_RESUME)
    assert _judge(w, _next(w, 2, purpose=PURPOSE_RESUME), purpose=PURPOSE_RESUME) is (
        RecordVerdict.SUPERSEDES)


def test_join_key_entry_first_rotation_and_old_membership(w: World) -> None:
    """A joiner's entry holds its join key (counter 0); its first record must carry the join
    key's anchor, and a record of an earlier membership is refused after a re-add."""
    bob = w.roster.entries[1]
    assert judge_record(w.bob_record, author_identity=bob.identity, current=bob.keys,
                        anchor=bob.anchor, seen=(),
                        taken_keys=w.roster.taken_keys(bob.identity),
                        group_id=GROUP) is RecordVerdict.SUPERSEDES
    readd = RosterEntry.of(JoinKey.sign(w.bob, w.keys(), expiry=1, inbox_id=w.inbox), 3000)
    with pytest.raises(ProtocolError, match="another membership"):
        judge_record(w.bob_record, author_identity=readd.identity, current=readd.keys,
                     anchor=readd.anchor, seen=(),
                     taken_keys=w.roster.taken_keys(bob.identity),
                     group_id=GROUP)


# --- Join keys and rejoin requests ----------------------------------------------------------


def test_join_key_round_trip_and_strictness(w: World) -> None:
    data = w.join_key.to_bytes()
    assert JoinKey.from_bytes(w.suite, data) == w.join_key
    assert w.join_key.usable_at(1_699_999_999_999)
    assert not w.join_key.usable_at(1_700_000_000_000)
    _all_prefixes_fail(data, lambda d: JoinKey.from_bytes(w.suite, d))
    with pytest.raises(DecodeError):
        JoinKey.from_bytes(w.suite, _edit_outer(data, lambda f: f.append(b"")))
    with pytest.raises(DecodeError):  # short inbox id
        JoinKey.from_bytes(w.suite, _edit_body(data, 7, b"\x00" * 31))
    with pytest.raises(DecodeError):  # a record is not a join key
        JoinKey.from_bytes(w.suite, w.alice_record.to_bytes())
    jk = w.join_key
    # Signed under the member-keys label: not a join key.
    moved = replace(jk, identity_signature=w.bob.sign(LABEL_IDENTITY_MEMBER_KEYS, jk.body()))
    with pytest.raises(InvalidSignature):
        JoinKey.from_bytes(w.suite, moved.to_bytes())
    # Claimed by another identity; another expiry under the old signature.
    for forged in (replace(jk, identity=w.alice.public.to_bytes()), replace(jk, expiry=2**40)):
        with pytest.raises(InvalidSignature):
            JoinKey.from_bytes(w.suite, forged.to_bytes())
    assert jk.anchor() != JoinKey.sign(w.bob, w.bob_join_keys, expiry=1,
                                       inbox_id=w.inbox).anchor()


def test_rejoin_request(w: World) -> None:
    resume = MemberKeyRecord.sign(w.bob, w.keys(), group_id=GROUP, counter=9,
                                  purpose=PURPOSE_RESUME, anchor=w.join_key.anchor())
    request = RejoinRequest.make(resume, w.inbox)
    data = request.to_bytes()
    assert RejoinRequest.from_bytes(w.suite, data, group_id=GROUP, peer=w.bob.public) == request
    with pytest.raises(ProtocolError):  # sent by someone else than its owner
        RejoinRequest.from_bytes(w.suite, data, group_id=GROUP, peer=w.alice.public)
    with pytest.raises(ProtocolError):
        RejoinRequest.from_bytes(w.suite, data, group_id=b"other", peer=w.bob.public)
    rotation = MemberKeyRecord.sign(w.bob, w.keys(), group_id=GROUP, counter=9,
                                    purpose=PURPOSE_ROTATE, anchor=w.join_key.anchor())
    with pytest.raises(UsageError):
        RejoinRequest.make(rotation, w.inbox)
    wrapped = RejoinRequest(rotation, w.inbox).to_bytes()
    with pytest.raises(ProtocolError, match="never a resume"):
        RejoinRequest.from_bytes(w.suite, wrapped, group_id=GROUP, peer=w.bob.public)
    _all_prefixes_fail(data, lambda d: RejoinRequest.from_bytes(w.suite, d, group_id=GROUP,
                                                                peer=w.bob.public))


# --- Control entries and blobs -------------------------------------------------------------------


def _open(w: World, key: bytes, mailbox: bytes, blob: bytes, *, epoch: int = 3,
          group_id: bytes = GROUP, roster_size: int = 2) -> ControlEntry:
    return open_entry(w.suite, key, mailbox, blob, group_id=group_id, epoch=epoch,
                      roster_size=roster_size)


def test_control_entry_round_trip_and_signers(w: World) -> None:
    key, mailbox = w.rng(32), w.rng(32)
    body = w.alice_record.to_bytes()
    entry = sign_identity_entry(w.alice, TYPE_RECORD, group_id=GROUP, epoch=3, author=0,
                                body=body)
    blob = seal_entry(w.suite, key, mailbox, entry, w.rng)
    opened = _open(w, key, mailbox, blob)
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
    assert IDENTITY_SIGNED_TYPES < TYPES and len(TYPES) == 10


def test_entry_labels_are_per_type(w: World) -> None:
    """A record entry's signature does not verify as the same bytes of another type, and an
    identity signature under another label is refused."""
    body = w.rng(40)
    entry = sign_identity_entry(w.alice, TYPE_PROPOSAL, group_id=GROUP, epoch=3, author=0,
                                body=body)
    as_announcement = replace(entry, entry_type=TYPE_ANNOUNCEMENT)
    with pytest.raises(InvalidSignature):
        as_announcement.verify(w.alice.public, None)
    relabelled = replace(entry, signature=w.alice.sign(LABEL_IDENTITY_ANNOUNCEMENT,
                                                       entry.entry_bytes()))
    with pytest.raises(InvalidSignature):
        relabelled.verify(w.alice.public, None)


@pytest.mark.parametrize("index, value", [(4, 4), (5, 1), (6, b"another body")])
def test_control_entry_moved_to_another_place_fails(w: World, index: int,
                                                    value: cbor.CborValue) -> None:
    entry = sign_identity_entry(w.alice, TYPE_RECORD, group_id=GROUP, epoch=3, author=0,
                                body=w.alice_record.to_bytes())
    moved = _edit_body(entry.to_bytes(), index, value)
    epoch = value if index == 4 else 3
    assert isinstance(epoch, int)
    decoded = ControlEntry.from_bytes(w.suite, moved, group_id=GROUP, epoch=epoch)
    with pytest.raises(InvalidSignature):
        decoded.verify(w.alice.public, None)


def test_control_blob_is_strict(w: World) -> None:
    key, mailbox = w.rng(32), w.rng(32)
    entry = sign_member_entry(w.suite, w.alice_keys.signing_key, TYPE_TICK, group_id=GROUP,
                              epoch=3, author=1, body=b"")
    blob = seal_entry(w.suite, key, mailbox, entry, w.rng)
    # Random nonces: sealing twice gives two blobs.
    assert seal_entry(w.suite, key, mailbox, entry, w.rng) != blob
    _all_prefixes_fail(blob, lambda b: _open(w, key, mailbox, b))
    with pytest.raises(AuthenticationError):
        _open(w, w.rng(32), mailbox, blob)
    with pytest.raises(ProtocolError):
        _open(w, key, w.rng(32), blob)
    with pytest.raises(ProtocolError):
        _open(w, key, mailbox, blob, epoch=4)
    with pytest.raises(ProtocolError):
        _open(w, key, mailbox, blob, group_id=b"other")
    with pytest.raises(ProtocolError):  # author index 1 in a roster of one
        _open(w, key, mailbox, blob, roster_size=1)
    flipped = bytearray(blob)
    flipped[-1] ^= 1
    with pytest.raises(AuthenticationError):
        _open(w, key, mailbox, bytes(flipped))
    with pytest.raises(LimitExceeded):
        _open(w, key, mailbox, bytes(200_000))
    with pytest.raises(UnsupportedError):
        _open(w, key, mailbox, _edit_outer(blob, _set(1, 1)))
    data = entry.to_bytes()
    for index, value, error in ((0, 0x4A, DecodeError), (1, 1, UnsupportedError),
                                (2, 0x7777, ProtocolError), (5, 1000, DecodeError)):
        with pytest.raises(error):
            ControlEntry.from_bytes(w.suite, _edit_body(data, index, value), group_id=GROUP,
                                    epoch=3)
    big = sign_member_entry(w.suite, w.alice_keys.signing_key, TYPE_COMMIT, group_id=GROUP,
                            epoch=3, author=0, body=bytes(20_000))
    as_tick = _edit_body(big.to_bytes(), 0, TYPE_TICK)
    with pytest.raises(LimitExceeded):  # only a commit may exceed 16 KiB
        ControlEntry.from_bytes(w.suite, as_tick, group_id=GROUP, epoch=3)
    with pytest.raises(UsageError):
        sign_member_entry(w.suite, w.alice_keys.signing_key, TYPE_TICK, group_id=GROUP,
                          epoch=3, author=0, body=bytes(20_000))


def test_thousand_member_commit_fits_one_control_entry(w: World) -> None:
    enc, ct = sealing_sizes(w.suite)
    commit = Commit.make(w.suite, 1, [(w.rng(enc), w.rng(ct)) for _ in range(1000)])
    entry = sign_member_entry(w.suite, w.alice_keys.signing_key, TYPE_COMMIT,
                              group_id=b"g" * 64, epoch=2**40, author=999, body=commit.to_bytes())
    key, mailbox = w.rng(32), w.rng(32)
    blob = seal_entry(w.suite, key, mailbox, entry, w.rng)
    opened = _open(w, key, mailbox, blob, group_id=b"g" * 64, epoch=2**40, roster_size=1000)
    assert Commit.from_bytes(w.suite, opened.body) == commit


# --- Proposals --------------------------------------------------------------------------------


def _proposal_entries(w: World) -> list[ControlEntry]:
    resume = MemberKeyRecord.sign(w.bob, w.keys(), group_id=GROUP, counter=9,
                                  purpose=PURPOSE_RESUME, anchor=w.join_key.anchor())
    e, eid = 4, w.rng(32)
    author = w.alice.public.to_bytes()
    out = []
    for kind, change in ((KIND_ADD, w.join_key), (KIND_REMOVE, w.bob.public.to_bytes()),
                         (KIND_REFRESH, None), (KIND_RESUME, resume)):
        p = ChangeProposal.make(w.suite, kind, group_id=GROUP, epoch=e, epoch_id=eid,
                                author=author, change=change)
        out.append(sign_identity_entry(w.alice, TYPE_PROPOSAL, group_id=GROUP, epoch=e,
                                       author=0, body=p.to_bytes()))
    return out


def test_proposal_each_kind_round_trips(w: World) -> None:
    for entry in _proposal_entries(w):
        back = ControlEntry.from_bytes(w.suite, entry.to_bytes(), group_id=GROUP, epoch=4)
        back.verify(w.alice.public, None)
        p = ChangeProposal.from_entry(back, w.alice.public)
        assert p.to_bytes() == entry.body
        assert p.subject() == (None if p.kind == KIND_REFRESH else w.bob.public.to_bytes())
    creation = ChangeProposal.make(w.suite, KIND_ADD, group_id=GROUP, epoch=0, epoch_id=b"",
                                   author=w.alice.public.to_bytes(), change=w.join_key)
    assert ChangeProposal.from_bytes(w.suite, creation.to_bytes()) == creation


def test_proposal_strict_decoding(w: World) -> None:
    add, remove, refresh, resume = (e.body for e in _proposal_entries(w))
    _all_prefixes_fail(refresh, lambda d: ChangeProposal.from_bytes(w.suite, d))
    cases: list[tuple[bytes, int, cbor.CborValue, type[Exception]]] = [
        (refresh, 0, 5, DecodeError),  # unknown kind
        (refresh, 0, 0, DecodeError),
        (refresh, 5, b"x", DecodeError),  # a refresh carries nothing
        (refresh, 3, b"", DecodeError),  # epoch id empty after epoch 0
        (refresh, 5, [], DecodeError),  # change of the wrong type
        (refresh, 4, b"", DecodeError),  # no author
        (refresh, 4, bytes(513), DecodeError),  # an identity is at most 512 bytes
        (remove, 5, b"", DecodeError),  # nobody to remove
        (add, 5, w.alice_record.to_bytes(), DecodeError),  # a record is not a join key
        (add, 5, bytes(1025), LimitExceeded),
        (resume, 5, w.join_key.to_bytes(), DecodeError),  # a join key is not a record
    ]
    for body, index, value, error in cases:
        with pytest.raises(error):
            ChangeProposal.from_bytes(w.suite, _edit_outer(body, _set(index, value)))


def test_proposal_must_match_its_entry(w: World) -> None:
    add = _proposal_entries(w)[0]
    with pytest.raises(ProtocolError):  # signed by Bob's entry: another author
        ChangeProposal.from_entry(add, w.bob.public)
    other_epoch = sign_identity_entry(w.alice, TYPE_PROPOSAL, group_id=GROUP, epoch=5, author=0,
                                      body=add.body)
    with pytest.raises(ProtocolError):
        ChangeProposal.from_entry(other_epoch, w.alice.public)


def test_wrapped_rotation_record_is_refused_as_resume(w: World) -> None:
    rotation = MemberKeyRecord.sign(w.bob, w.keys(), group_id=GROUP, counter=9,
                                    purpose=PURPOSE_ROTATE, anchor=w.join_key.anchor())
    with pytest.raises(UsageError):
        ChangeProposal.make(w.suite, KIND_RESUME, group_id=GROUP, epoch=4, epoch_id=w.rng(32),
                            author=w.alice.public.to_bytes(), change=rotation)
    resume_body = _proposal_entries(w)[3].body
    wrapped = _edit_outer(resume_body, _set(5, rotation.to_bytes()))
    with pytest.raises(ProtocolError, match="never a resume"):
        ChangeProposal.from_bytes(w.suite, wrapped)


def test_applied_proposals_hash_binds_order_and_content(w: World) -> None:
    ps = _proposal_entries(w)
    h = applied_proposals_hash(w.suite, ps)
    assert len(h) == w.suite.hash_len
    assert applied_proposals_hash(w.suite, list(reversed(ps))) != h
    assert applied_proposals_hash(w.suite, ps[:3]) != h
    assert applied_proposals_hash(w.suite, []) != h
    if w.suite.suite_id == 1:  # a re-randomised signature does not change it
        twin = replace(ps[0], signature=_malleate(ps[0].signature))
        twin.verify(w.alice.public, None)
        assert applied_proposals_hash(w.suite, [twin, *ps[1:]]) == h
    with pytest.raises(UsageError):
        applied_proposals_hash(w.suite, [replace(ps[0], entry_type=TYPE_RECORD)])


# --- Run bodies ----------------------------------------------------------------------------------


def test_announcement_round_trip_and_strictness(w: World) -> None:
    a = RunAnnouncement.make(w.suite, group_id=GROUP, epoch=4, run=1,
                             identity=w.alice.public.to_bytes(),
                             dkg_key=Point.base_mul(Scalar(7)),
                             applied_proposals_hash=w.rng(w.suite.hash_len),
                             roster_hash=w.roster.hash(), view_hash=w.suite.hash(b"view"))
    entry = sign_identity_entry(w.alice, TYPE_ANNOUNCEMENT, group_id=GROUP, epoch=4, author=0,
                                body=a.to_bytes())
    entry.verify(w.alice.public, None)
    assert RunAnnouncement.from_entry(entry, w.alice.public) == a
    with pytest.raises(ProtocolError):
        RunAnnouncement.from_entry(entry, w.bob.public)
    _all_prefixes_fail(a.to_bytes(), lambda d: RunAnnouncement.from_bytes(w.suite, d))
    with pytest.raises(InvalidKey):  # the identity point
        RunAnnouncement.from_bytes(w.suite, _edit_outer(a.to_bytes(),
                                                        _set(4, b"\x01" + bytes(31))))
    with pytest.raises(DecodeError):  # run 0
        RunAnnouncement.from_bytes(w.suite, _edit_outer(a.to_bytes(), _set(2, 0)))
    with pytest.raises(DecodeError):  # no identity
        RunAnnouncement.from_bytes(w.suite, _edit_outer(a.to_bytes(), _set(3, b"")))
    with pytest.raises(DecodeError):  # a hash of the other suite's length
        RunAnnouncement.from_bytes(w.suite, _edit_outer(a.to_bytes(), _set(6, bytes(48))))


def test_round3_item_signatures(w: World) -> None:
    d = Scalar(12345)
    key = Point.base_mul(d)
    context = make_context(b"session", [key])
    transcript = b"the run's transcript"
    sid = w.rng(w.suite.hash_len)
    item = Round3Item.sign(w.suite, d, run=1, context=context, run_session_id=sid,
                           certeq_signature=schnorr_sign(d, transcript),
                           bundle_root=w.rng(w.suite.hash_len),
                           confirmation_tag=w.rng(w.suite.hash_len), rng=w.rng)
    back = Round3Item.from_bytes(w.suite, item.to_bytes())
    assert back == item
    back.verify(key, context=context, run_session_id=sid, transcript=transcript)
    with pytest.raises(InvalidSignature):  # moved to another run
        back.verify(key, context=context, run_session_id=w.rng(w.suite.hash_len),
                    transcript=transcript)
    with pytest.raises(InvalidSignature):  # another session's context
        back.verify(key, context=make_context(b"other", [key]), run_session_id=sid,
                    transcript=transcript)
    with pytest.raises(InvalidSignature):  # CertEq over another transcript
        back.verify(key, context=context, run_session_id=sid, transcript=transcript + b"!")
    with pytest.raises(InvalidSignature):  # another member's key
        back.verify(Point.base_mul(Scalar(2)), context=context, run_session_id=sid,
                    transcript=transcript)
    with pytest.raises(InvalidSignature):  # another root under the same signature
        replace(back, bundle_root=w.rng(w.suite.hash_len)).verify(
            key, context=context, run_session_id=sid, transcript=transcript)
    assert item.agrees_with(replace(item, dkg_signature=bytes(64)))
    assert not item.agrees_with(replace(item, confirmation_tag=bytes(w.suite.hash_len)))
    _all_prefixes_fail(item.to_bytes(), lambda b: Round3Item.from_bytes(w.suite, b))


def test_commit_and_small_bodies_are_strict(w: World) -> None:
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
    r1 = Round1Item(3, b"signed round 1")
    assert Round1Item.from_bytes(r1.to_bytes()) == r1
    reveal = Reveal.make(1, [w.rng(32), w.rng(32)])
    assert Reveal.from_bytes(reveal.to_bytes()) == reveal
    with pytest.raises(DecodeError):
        Reveal.from_bytes(cbor.encode([1, [bytes(31)]]))
    with pytest.raises(DecodeError):
        Reveal.from_bytes(cbor.encode([1, []]))
    evidence = Evidence.make(1, 2, b"two round-1 messages")
    assert Evidence.from_bytes(evidence.to_bytes()) == evidence
    with pytest.raises(DecodeError):
        Evidence.from_bytes(cbor.encode([1, 4, b""]))
    conviction = Conviction(4, 1, 7, w.rng(enc), w.rng(ct))
    assert Conviction.from_bytes(w.suite, conviction.to_bytes()) == conviction
    with pytest.raises(DecodeError):
        Conviction.from_bytes(w.suite, cbor.encode([4, 1, 7, w.rng(enc), w.rng(ct + 1)]))
    repaired = RepairedSealing(w.suite, GROUP, 4, 1, w.rng(enc), w.rng(ct))
    assert RepairedSealing.from_bytes(w.suite, repaired.to_bytes()) == repaired
    with pytest.raises(UnsupportedError):
        RepairedSealing.from_bytes(w.suite, _edit_outer(repaired.to_bytes(), _set(1, 1)))


# --- Roster ---------------------------------------------------------------------------------


def test_roster_round_trip_and_hash(w: World) -> None:
    data = w.roster.to_bytes()
    back = Roster.from_bytes(w.suite, data, group_id=GROUP)
    assert back == w.roster and back.hash() == w.roster.hash()
    assert back.index_of(w.bob.public.to_bytes()) == 1
    a, b = w.roster.entries
    assert Roster(w.suite, (b, a)).hash() != w.roster.hash()
    assert Roster(w.suite, (a, replace(b, posted_at=2001))).hash() != w.roster.hash()
    rotated = RosterEntry(b.identity, w.bob_record, 2000, b.anchor)
    assert Roster(w.suite, (a, rotated)).hash() != w.roster.hash()
    if w.suite.suite_id == 1:
        rec = w.alice_record
        twin = replace_signatures(rec, _malleate(rec.identity_signature),
                                  rec.possession_signature)
        assert Roster(w.suite, (replace(a, keys=twin), b)).hash() == w.roster.hash()
    with pytest.raises(ProtocolError):
        Roster.from_bytes(w.suite, data, group_id=b"another group")
    _all_prefixes_fail(data, lambda d: Roster.from_bytes(w.suite, d, group_id=GROUP))


def test_roster_refuses_duplicates_and_wrong_anchors(w: World) -> None:
    a, b = w.roster.entries
    with pytest.raises(ProtocolError):
        Roster(w.suite, (a, a))
    with pytest.raises(ProtocolError):  # Bob's entry holding Alice's record
        Roster(w.suite, (a, replace(b, keys=w.alice_record)))
    # A rotation record's entry carries the record's anchor field; a join key's the anchor set
    # by the change that added it (it depends on that epoch: review F3), Nh bytes.
    with pytest.raises(ProtocolError, match="anchor"):
        Roster(w.suite, (replace(a, anchor=w.join_key.anchor()), b))
    with pytest.raises(ProtocolError, match="anchor"):
        Roster(w.suite, (a, replace(b, anchor=b.anchor[1:])))
    # A signing key twice is refused; a receive key twice is not (it proves nothing, review F4).
    shared = MemberKeyRecord.sign(
        w.bob, RecordKeys(w.suite, w.keys().receive_key, w.alice_keys.signing_key),
        group_id=GROUP, counter=1, purpose=PURPOSE_ROTATE, anchor=w.join_key.anchor())
    with pytest.raises(ProtocolError, match="key appears twice"):
        Roster(w.suite, (a, RosterEntry(b.identity, shared, 1, b.anchor)))
    copied = MemberKeyRecord.sign(
        w.bob, RecordKeys(w.suite, w.alice_keys.receive_key, w.keys().signing_key),
        group_id=GROUP, counter=1, purpose=PURPOSE_ROTATE, anchor=w.join_key.anchor())
    Roster(w.suite, (a, RosterEntry(b.identity, copied, 1, b.anchor)))
    with pytest.raises(LimitExceeded):
        Roster(w.suite, ())
    # A resumed member's entry is anchored to its resume record.
    resume = MemberKeyRecord.sign(w.bob, w.keys(), group_id=GROUP, counter=9,
                                  purpose=PURPOSE_RESUME, anchor=b.anchor)
    resumed = RosterEntry.of(resume, 5000)
    assert resumed.anchor != b.anchor
    Roster(w.suite, (a, resumed))


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


def test_run_extension_binds_every_input(suite: Suite) -> None:
    rng = DeterministicRandom(b"extension " + suite.name.encode())
    h = suite.hash_len
    args: dict[str, object] = dict(payload_hashes=[rng(64), rng(64)],
                                   announcements=[rng(300), rng(300)], roster_hash=rng(h),
                                   applied_proposals_hash=rng(h), bundle_root=rng(h),
                                   epoch_id=rng(32))
    base = ks.run_extension(suite, **args)  # type: ignore[arg-type]
    assert len(base) == 64
    for name, value in args.items():
        if isinstance(value, list):
            changed: object = list(reversed(value))
        else:
            assert isinstance(value, bytes)
            changed = bytes(len(value)) if value else b"\x00" * 32
        assert ks.run_extension(suite, **{**args, name: changed}) != base, name  # type: ignore[arg-type]
    assert ks.run_extension(suite, **{**args, "epoch_id": b""}) != base  # type: ignore[arg-type]
    with pytest.raises(LimitExceeded):
        ks.run_extension(suite, **{**args, "payload_hashes": [rng(64)]})  # type: ignore[arg-type]


# --- Vectors ------------------------------------------------------------------------------------


def test_vector_files_match_the_generator() -> None:
    vectors = Path(__file__).resolve().parents[1] / "vectors"
    for name, doc in epoch_v2.generate().items():
        path = vectors / name
        assert path.exists(), f"vectors/{name} not generated"
        assert json.loads(path.read_text()) == doc, name


def test_vectors_pass_and_detect_alterations() -> None:
    for doc in epoch_v2.generate().values():
        results = list(verify_document(doc))
        assert results and all(r.status == "passed" for r in results), [
            r for r in results if r.status != "passed"]
        # Flip one output byte of each valid case: that case, and only it, fails.
        for index, c in enumerate(doc["cases"]):
            if "outputs" not in c or not c["outputs"]:
                continue
            altered = copy.deepcopy(doc)
            key = next(k for k, v in c["outputs"].items() if isinstance(v, str) and v)
            value = altered["cases"][index]["outputs"][key]
            altered["cases"][index]["outputs"][key] = ("1" if value[0] == "0" else "0") + value[1:]
            statuses = [r.status for r in verify_document(altered)]
            assert statuses[index] == "failed", (c["description"], key)
            assert statuses.count("failed") == 1
        # A negative case whose input is made valid no longer passes.
        for index, c in enumerate(doc["cases"]):
            if c["inputs"]["operation"] == "parse" and c["inputs"]["what"] == "record":
                altered = copy.deepcopy(doc)
                good = next(x for x in doc["cases"] if x["inputs"]["operation"] == "record"
                            and x["suite"] == c["suite"])
                altered["cases"][index]["inputs"]["data"] = good["outputs"]["signed_record"]
                assert list(verify_document(altered))[index].status == "failed"
                break


# --- Hostile bytes: every decoder answers a typed error, never anything else ----------------------

_FUZZ_SUITE = CLASSICAL_SUITES[0]
_FUZZ = World(_FUZZ_SUITE)
_FUZZ_ENTRY = sign_identity_entry(_FUZZ.alice, TYPE_RECORD, group_id=GROUP, epoch=3, author=0,
                                  body=_FUZZ.alice_record.to_bytes())
_FUZZ_SAMPLES: list[tuple[bytes, Callable[[bytes], object]]] = [
    (_FUZZ.alice_record.to_bytes(), lambda d: MemberKeyRecord.from_bytes(_FUZZ_SUITE, d)),
    (_FUZZ.join_key.to_bytes(), lambda d: JoinKey.from_bytes(_FUZZ_SUITE, d)),
    (_FUZZ.roster.to_bytes(), lambda d: Roster.from_bytes(_FUZZ_SUITE, d, group_id=GROUP)),
    (_FUZZ_ENTRY.to_bytes(),
     lambda d: ControlEntry.from_bytes(_FUZZ_SUITE, d, group_id=GROUP, epoch=3)),
    (ChangeProposal.make(_FUZZ_SUITE, KIND_ADD, group_id=GROUP, epoch=0, epoch_id=b"",
                         author=_FUZZ.alice.public.to_bytes(), change=_FUZZ.join_key).to_bytes(),
     lambda d: ChangeProposal.from_bytes(_FUZZ_SUITE, d)),
    (Commit.make(_FUZZ_SUITE, 1, [(bytes([4]) + bytes(64), bytes(48))]).to_bytes(),
     lambda d: Commit.from_bytes(_FUZZ_SUITE, d)),
    (Reveal.make(1, [bytes(32)]).to_bytes(), Reveal.from_bytes),
    (Evidence.make(1, 1, b"e").to_bytes(), Evidence.from_bytes),
]


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_decoders_refuse_mutations_with_typed_errors(data: st.DataObject) -> None:
    sample, decode = data.draw(st.sampled_from(_FUZZ_SAMPLES))
    mutated = bytearray(sample)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(mutated) - 1))
        mutated[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    try:
        decode(bytes(mutated[:cut]) + data.draw(st.binary(max_size=4)))
    except RemoteError as exc:  # anything else (a crash, an AssertionError) fails the test
        assert str(exc), "a refusal says what was wrong"


def test_every_body_refuses_an_extra_field_and_a_wrong_type(w: World) -> None:
    enc, ct = sealing_sizes(w.suite)
    d = Scalar(99)
    sid = w.rng(w.suite.hash_len)
    context = make_context(sid, [Point.base_mul(d)])
    resume = MemberKeyRecord.sign(w.bob, w.keys(), group_id=GROUP, counter=9,
                                  purpose=PURPOSE_RESUME, anchor=w.join_key.anchor())
    announcement = RunAnnouncement.make(
        w.suite, group_id=GROUP, epoch=4, run=1, identity=w.alice.public.to_bytes(),
        dkg_key=Point.base_mul(d), applied_proposals_hash=w.rng(w.suite.hash_len),
        roster_hash=w.roster.hash(), view_hash=w.suite.hash(b"view"))
    round3 = Round3Item.sign(w.suite, d, run=1, context=context, run_session_id=sid,
                             certeq_signature=schnorr_sign(d, b"t"),
                             bundle_root=w.rng(w.suite.hash_len),
                             confirmation_tag=w.rng(w.suite.hash_len), rng=w.rng)
    decoders: list[tuple[bytes, Callable[[bytes], object]]] = [
        (_proposal_entries(w)[2].body, lambda b: ChangeProposal.from_bytes(w.suite, b)),
        (announcement.to_bytes(), lambda b: RunAnnouncement.from_bytes(w.suite, b)),
        (Round1Item(1, b"x").to_bytes(), Round1Item.from_bytes),
        (round3.to_bytes(), lambda b: Round3Item.from_bytes(w.suite, b)),
        (Commit.make(w.suite, 1, [(w.rng(enc), w.rng(ct))]).to_bytes(),
         lambda b: Commit.from_bytes(w.suite, b)),
        (Reveal.make(1, [w.rng(32)]).to_bytes(), Reveal.from_bytes),
        (Evidence.make(1, 3, b"blame").to_bytes(), Evidence.from_bytes),
        (Conviction(1, 1, 0, w.rng(enc), w.rng(ct)).to_bytes(),
         lambda b: Conviction.from_bytes(w.suite, b)),
        (RejoinRequest.make(resume, w.inbox).to_bytes(),
         lambda b: RejoinRequest.from_bytes(w.suite, b, group_id=GROUP, peer=w.bob.public)),
        (RepairedSealing(w.suite, GROUP, 1, 1, w.rng(enc), w.rng(ct)).to_bytes(),
         lambda b: RepairedSealing.from_bytes(w.suite, b)),
    ]
    for data, decode in decoders:
        decode(data)  # the original decodes
        with pytest.raises(DecodeError):
            decode(_edit_outer(data, lambda f: f.append(0)))
        with pytest.raises(DecodeError):
            decode(_edit_outer(data, lambda f: f.__delitem__(-1)))
        fields = cbor.decode(data)
        assert isinstance(fields, list)
        for index, value in enumerate(fields):
            wrong: cbor.CborValue = "text" if not isinstance(value, str) else 0
            with pytest.raises(RemoteError):
                decode(_edit_outer(data, _set(index, wrong)))
