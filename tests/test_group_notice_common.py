"""The notices' common part (spec 11.v2.13, 11.v2.27, 11.v2.28; issue 8: nothing grows with n²).

A change's notice body (roster, applied proposals, certificate) is sealed once under a key from
`member_base` and posted once in the change's common mailbox; each notice seals only its hash.
A joiner opens its notice, derives the common mailbox, reads it (a second fetch), checks the hash
before decoding, then runs every check of 11.v2.28 as before."""

from __future__ import annotations

import random

import pytest
from group_v2_sim import Hub, create, make_node, settle

from triple_ratchet import cbor
from triple_ratchet.errors import (
    AuthenticationError,
    DecodeError,
    LimitExceeded,
    RemoteError,
    UnsupportedError,
)
from triple_ratchet.group.events import CommonOut, Outgoing
from triple_ratchet.group.notice import (
    MAX_NOTICE_CHUNKS,
    NOTICE_CHUNK_SIZE,
    WIRE_MEMBERSHIP_HINT,
    WIRE_NOTICE_COMMON,
    CreatorStart,
    MembershipHint,
    NoticeChunk,
    OpenedNotice,
    OutgoingNotice,
    chunk_notice,
    common_key,
    common_mailbox,
    create_group,
    notice_id,
    open_common,
    open_notice,
    open_notice_sealing,
    seal_common,
)
from triple_ratchet.group.records import JoinKey, RecordKeys
from triple_ratchet.group.session import GroupSession
from triple_ratchet.identity import IdentityKeyPair
from triple_ratchet.mailbox import mailbox_id
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import CLASSICAL_SUITES, DEFAULT_SUITE, Suite

NOW = 1_700_000_000_000


class Joiner:
    def __init__(self, suite: Suite, rng: DeterministicRandom) -> None:
        self.identity = IdentityKeyPair.generate(suite, rng)
        self.keys = RecordKeys.generate(suite, rng)
        self.join_key = JoinKey.sign(self.identity, self.keys, expiry=NOW + 10**9,
                                     inbox_id=rng(32))

    @property
    def id(self) -> bytes:
        return self.identity.public.to_bytes()


def _creation(suite: Suite, n: int, label: bytes = b"common"
              ) -> tuple[CreatorStart, tuple[OutgoingNotice, ...], list[Joiner]]:
    rng = DeterministicRandom(label + suite.name.encode())
    creator = IdentityKeyPair.generate(suite, rng)
    joiners = [Joiner(suite, rng) for _ in range(n)]
    start, notices = create_group(creator, RecordKeys.generate(suite, rng),
                                  group_id=b"group " + label,
                                  join_keys=[j.join_key for j in joiners], now=NOW, rng=rng)
    return start, notices, joiners


def _joined(chunks: tuple[bytes, ...], suite: Suite) -> bytes:
    return b"".join(NoticeChunk.from_bytes(suite, c).data for c in chunks)


def _opened(suite: Suite, notices: tuple[OutgoingNotice, ...], joiners: list[Joiner],
            i: int = 0) -> OpenedNotice:
    return open_notice_sealing(suite, _joined(notices[i].chunks, suite), identity=joiners[i].id,
                               keys=[joiners[i].keys])


@pytest.fixture(params=CLASSICAL_SUITES, ids=lambda s: s.name)
def suite(request: pytest.FixtureRequest) -> Suite:
    s: Suite = request.param
    return s


@pytest.fixture(scope="module")
def big() -> tuple[CreatorStart, tuple[OutgoingNotice, ...], list[Joiner]]:
    """64 members (suite 2): a common part of two chunks."""
    return _creation(DEFAULT_SUITE, 63, b"big")


def test_each_notice_names_one_common_part_posted_once(suite: Suite) -> None:
    start, notices, joiners = _creation(suite, 5)
    assert start.common is not None
    # The common mailbox and key come from member_base (08: two labels), as the mailbox keys do.
    assert start.common.mailbox == common_mailbox(suite, start.member_base)
    assert start.common.mailbox.mailbox_id not in (start.secrets.mailbox.mailbox_id,
                                                   start.secrets.control_mailbox.mailbox_id)
    common = _joined(start.common.chunks, suite)
    assert notice_id(suite, common) == start.common.common_hash
    assert open_common(suite, common, start.member_base) == start.change.body_bytes
    for i, j in enumerate(joiners):
        opened = _opened(suite, notices, joiners, i)
        assert opened.common_hash == start.common.common_hash
        assert opened.common_mailbox == start.common.mailbox
        assert len(notices[i].chunks) == 1  # a notice is its header and a hash
        js = opened.complete(common)
        assert js.own_index == i + 1 and js.epoch_id == start.epoch_id
        assert open_notice(suite, _joined(notices[i].chunks, suite), identity=j.id,
                           keys=[j.keys], common=common).epoch_id == start.epoch_id


def test_a_notice_does_not_grow_with_the_group_but_for_its_merkle_path(suite: Suite) -> None:
    """Issue 8: the creator's upload is one common part plus n − 1 notices whose size depends on
    n only through the Merkle path (one hash per level)."""
    sizes = {}
    for n in (2, 16, 64):
        start, notices, _ = _creation(suite, n - 1, b"size %d" % n)
        assert start.common is not None
        notice = _joined(notices[0].chunks, suite)
        path = len(start.change.header_for(notices[0].identity).path)
        sizes[n] = (len(notice) - path * (suite.hash_len + 1), len(start.common.chunks))
    fixed = {s for s, _ in sizes.values()}
    assert max(fixed) - min(fixed) <= 16  # CBOR length prefixes and position, count only
    assert sizes[64][1] >= 1 and max(fixed) < 1200


def test_a_common_part_whose_hash_is_not_the_named_one_is_refused(suite: Suite) -> None:
    """A common part another than the notice names (a byte changed, another copy, an insider's
    other body): `AuthenticationError` before it is decoded, and the opened notice can still
    complete with the right one."""
    start, notices, joiners = _creation(suite, 2)
    assert start.common is not None
    opened = _opened(suite, notices, joiners)
    good = _joined(start.common.chunks, suite)
    r = random.Random(3)
    for _ in range(40):
        bad = bytearray(good)
        bad[r.randrange(len(bad))] ^= 1 + r.randrange(255)
        with pytest.raises(AuthenticationError):
            opened.complete(bytes(bad))
    # Another copy of the same body (another nonce): a valid common part, but not the one named.
    other = seal_common(suite, start.change.body_bytes, start.member_base,
                        DeterministicRandom(b"other copy"))
    with pytest.raises(AuthenticationError):
        opened.complete(other)
    for junk in (b"", good[:-1], good + b"\x00", good[: len(good) // 2]):  # truncated, extended
        with pytest.raises(AuthenticationError):
            opened.complete(junk)
    assert opened.complete(good).epoch_id == start.epoch_id


def test_a_common_part_of_another_change_is_refused_and_its_chunks_are_skipped(
        suite: Suite) -> None:
    """Another group's (another change's) common part: another mailbox, another key, another
    hash — refused if given, and its chunks are ignored by the assembler (not errors, not held)."""
    start, notices, joiners = _creation(suite, 2, b"one")
    other, _, _ = _creation(suite, 2, b"two")
    assert start.common is not None and other.common is not None
    assert start.common.mailbox.mailbox_id != other.common.mailbox.mailbox_id
    assert common_key(suite, start.member_base) != common_key(suite, other.member_base)
    opened = _opened(suite, notices, joiners)
    with pytest.raises(AuthenticationError):
        opened.complete(_joined(other.common.chunks, suite))
    asm = opened.assembler()
    for chunk in other.common.chunks:
        asm, done = asm.receive(chunk)
        assert done is None
    assert asm.held_bytes() == 0
    for chunk in start.common.chunks:
        asm, done = asm.receive(chunk)
    assert done is not None and opened.complete(done).epoch_id == start.epoch_id


def test_an_insiders_part_under_the_right_hash_but_another_key_or_shape_is_a_typed_error(
        suite: Suite) -> None:
    """A member of the change can name anything it seals: a part sealed under another key, of
    another type or version, or with a short nonce is a typed error, never a crash."""
    start, _, _ = _creation(suite, 2)
    nonce = bytes(suite.aead_nonce_len)
    body = start.change.body_bytes
    wrong_key = cbor.encode([WIRE_NOTICE_COMMON, 2, nonce,
                             suite.aead_encrypt(bytes(suite.aead_key_len), nonce, body, b"")])
    with pytest.raises(AuthenticationError):
        open_common(suite, wrong_key, start.member_base)
    sealed = suite.aead_encrypt(common_key(suite, start.member_base), nonce, body, b"")
    for data, error in ((cbor.encode([0x52, 2, nonce, sealed]), DecodeError),
                        (cbor.encode([WIRE_NOTICE_COMMON, 1, nonce, sealed]), UnsupportedError),
                        (cbor.encode([WIRE_NOTICE_COMMON, 2, nonce[1:], sealed]), DecodeError),
                        (cbor.encode([WIRE_NOTICE_COMMON, 2, nonce]), DecodeError),
                        (b"\xff", DecodeError)):
        with pytest.raises(error):
            open_common(suite, data, start.member_base)


def test_a_truncated_or_missing_common_part_keeps_the_joiner_waiting(
        big: tuple[CreatorStart, tuple[OutgoingNotice, ...], list[Joiner]]) -> None:
    """Chunks missing or in any order: no error and no result until all are there; duplicates
    change nothing; a chunk with another count or other data at an index held restarts; memory
    stays within MAX_NOTICE_CHUNKS chunks."""
    start, notices, joiners = big
    suite = DEFAULT_SUITE
    assert start.common is not None and len(start.common.chunks) >= 2
    opened = _opened(suite, notices, joiners)
    asm = opened.assembler()
    for chunk in start.common.chunks[1:]:  # the first is missing: waiting
        asm, done = asm.receive(chunk)
        assert done is None
        asm, done = asm.receive(chunk)  # a duplicate changes nothing
        assert done is None
    before = asm
    # A poisoned chunk with the right id but another count replaces what was held.
    head = NoticeChunk.from_bytes(suite, start.common.chunks[0])
    poisoned = NoticeChunk(head.notice_id, 0, MAX_NOTICE_CHUNKS, b"x" * NOTICE_CHUNK_SIZE)
    asm, done = asm.receive(poisoned.to_bytes())
    assert done is None and asm.held_bytes() <= MAX_NOTICE_CHUNKS * NOTICE_CHUNK_SIZE
    # Reading the mailbox again from its start completes it (the honest chunks replace it).
    for chunk in start.common.chunks:
        asm, done = asm.receive(chunk)
    assert done is not None and opened.complete(done).epoch_id == start.epoch_id
    # From `before`, the missing first chunk completes it too, in any order.
    asm, done = before.receive(start.common.chunks[0])
    assert done is not None


def test_joined_chunks_that_do_not_hash_to_the_name_are_dropped_and_a_good_copy_completes(
        big: tuple[CreatorStart, tuple[OutgoingNotice, ...], list[Joiner]]) -> None:
    start, notices, joiners = big
    suite = DEFAULT_SUITE
    assert start.common is not None
    opened = _opened(suite, notices, joiners)
    head = NoticeChunk.from_bytes(suite, start.common.chunks[-1])
    forged_last = NoticeChunk(head.notice_id, head.index, head.count,
                              bytes([head.data[0] ^ 1]) + head.data[1:]).to_bytes()
    asm = opened.assembler()
    for chunk in start.common.chunks[:-1]:
        asm, _ = asm.receive(chunk)
    held = asm
    with pytest.raises(AuthenticationError):
        asm.receive(forged_last)
    assert asm == held  # the refused chunk left the value as it was
    asm = asm.reset()
    assert asm.held_bytes() == 0
    for chunk in start.common.chunks:
        asm, done = asm.receive(chunk)
    assert done is not None and opened.complete(done).own_index == 1


def test_the_common_part_and_the_membership_hint_have_types_of_their_own() -> None:
    """0x57 is the membership hint's (11.v2.14), 0x58 the common part's (spec 01, 11.v2.2): a
    hint read as a common part, or a common part as a hint, is refused by its type."""
    from triple_ratchet.group import (
        control,
        epoch_claim,
        message,
        notice,
        records,
        run,
    )
    assert (WIRE_MEMBERSHIP_HINT, WIRE_NOTICE_COMMON) == (0x57, 0x58)
    codes = [v for m in (control, epoch_claim, message, notice, records, run)
             for k, v in vars(m).items() if k.startswith("WIRE_")]
    assert len(codes) == len(set(codes))
    suite = DEFAULT_SUITE
    start, _, _ = _creation(suite, 2)
    common = seal_common(suite, start.change.body_bytes, start.member_base,
                         rng=DeterministicRandom(b"common"))
    # the common part's own shape and key under the hint's type: refused by the type alone
    _, _, nonce, sealed = cbor.as_list(cbor.decode(common), "common part", 4)
    as_hint = cbor.encode([WIRE_MEMBERSHIP_HINT, 2, nonce, sealed])
    assert open_common(suite, common, start.member_base) == start.change.body_bytes
    with pytest.raises(DecodeError, match="not a notice's common part"):
        open_common(suite, as_hint, start.member_base)
    # and a hint's own shape under the common part's type is no hint
    hint = MembershipHint(suite, b"g", bytes(suite.hash_len), 1)
    assert MembershipHint.from_bytes(suite, hint.to_bytes()) == hint
    fields = cbor.as_list(cbor.decode(hint.to_bytes()), "hint", 6)
    as_common = cbor.encode([WIRE_NOTICE_COMMON, *fields[1:]])
    with pytest.raises(DecodeError, match="not a membership hint"):
        MembershipHint.from_bytes(suite, as_common)


def test_junk_in_the_common_mailbox_is_a_typed_error_or_skipped(suite: Suite) -> None:
    start, notices, joiners = _creation(suite, 2)
    opened = _opened(suite, notices, joiners)
    asm = opened.assembler()
    r = random.Random(11)
    assert start.common is not None
    good = start.common.chunks[0]
    for _ in range(200):
        blob = bytearray(good)
        for _ in range(r.choice((1, 3))):
            blob[r.randrange(len(blob))] ^= 1 + r.randrange(255)
        try:
            after, done = asm.receive(bytes(blob))
        except RemoteError:
            continue
        assert done is None or done != _joined(start.common.chunks, suite)
        assert after.held_bytes() <= MAX_NOTICE_CHUNKS * NOTICE_CHUNK_SIZE
    assert asm.held_bytes() == 0


def test_a_seal_refuses_a_common_part_beyond_its_bound() -> None:
    suite = DEFAULT_SUITE
    too_long = bytes(MAX_NOTICE_CHUNKS * NOTICE_CHUNK_SIZE)
    with pytest.raises(LimitExceeded):
        seal_common(suite, too_long, bytes(suite.hash_len), DeterministicRandom(b"x"))
    with pytest.raises(LimitExceeded):
        open_common(suite, too_long + b"\x00", bytes(suite.hash_len))
    assert len(chunk_notice(suite, b"\x00" * (NOTICE_CHUNK_SIZE + 1))) == 2


# --- end to end through the session and the sim hub ------------------------------------------


def test_creation_posts_the_common_part_once_as_control_mailbox_entries() -> None:
    hub = Hub()
    a, b, c = (make_node(n) for n in "ABC")
    a.session, out = GroupSession.create(a.identity, [b.take_join_key(), c.take_join_key()],
                                         hub.now, group_id=b"e2e", rng=a.rng)
    common = [o for o in out if isinstance(o, CommonOut)]
    assert common and len({o.mailbox_id for o in common}) == 1
    box = common[0].mailbox_id
    # The session hands the access key that opens it at the hub (a control-kind mailbox).
    assert mailbox_id(DEFAULT_SUITE, common[0].access_key.public_key().to_bytes()) == box
    assert box not in a.session.mailboxes()  # the session does not read it itself
    notices = [o for o in out if not isinstance(o, CommonOut)]
    assert {o.mailbox_id for o in notices} == {b.inbox, c.inbox}
    assert all(len(o.blob) < 2048 for o in notices)
    assert "access_key" not in repr(common[0]) and "blob" not in repr(common[0])
    hub.post(out)
    settle(hub, [a, b, c])
    assert b.session is not None and c.session is not None
    assert b.session.public_epoch_id == a.session.public_epoch_id == c.session.public_epoch_id


def test_a_joiner_whose_common_part_is_not_there_yet_waits_then_joins() -> None:
    """The notice arrives before its common part (or the hub lost it for a while): the joiner
    keeps its opened notice, holds no session, raises nothing; once the part is posted it
    joins on its next read."""
    hub = Hub()
    a, b = make_node("A"), make_node("B")
    a.session, out = GroupSession.create(a.identity, [b.take_join_key()], hub.now,
                                         group_id=b"late common", rng=a.rng)
    common = [o for o in out if isinstance(o, CommonOut)]
    hub.post([o for o in out if not isinstance(o, CommonOut)])
    for _ in range(3):
        b.pump(hub)
    assert b.session is None and b.opened is not None
    # Half of a (multi-chunk) part, or the whole of a one-chunk part withheld: still waiting.
    hub.post(common[:-1])
    b.pump(hub)
    assert b.session is None
    hub.post(common[-1:])
    b.pump(hub)
    assert b.session is not None and b.session.public_epoch_id == a.session.public_epoch_id


def test_a_later_change_posts_one_common_part_and_a_small_notice_per_joiner() -> None:
    """Committee position 1 of a later change posts the common part once (a mailbox of its own,
    not the epoch's) and a one-chunk notice to the joiner, which reads the common mailbox and
    enters the epoch of the others."""
    hub = Hub()
    a, b, c = (make_node(n) for n in "ABC")
    create(hub, a, [b])
    settle(hub, [a, b])
    assert a.session is not None and b.session is not None
    hub.advance(61_000)
    before = set(hub.boxes)
    posted: list[Outgoing] = []
    real_post = hub.post

    def recording(outs: list[Outgoing]) -> None:
        posted.extend(outs)
        real_post(outs)

    hub.post = recording  # type: ignore[method-assign]
    hub.post(a.session.propose(hub.now, add=[c.take_join_key()]))
    settle(hub, [a, b, c])
    commons = [o for o in posted if isinstance(o, CommonOut)]
    assert len({o.mailbox_id for o in commons}) == 1
    (box,) = {o.mailbox_id for o in commons}
    assert box not in before and box not in a.session.mailboxes()
    (notice,) = [o for o in posted if o.mailbox_id == c.inbox]
    assert len(notice.blob) < 2048
    assert c.session is not None and a.session.epoch == b.session.epoch == c.session.epoch == 2
    assert c.session.public_epoch_id == a.session.public_epoch_id == b.session.public_epoch_id
