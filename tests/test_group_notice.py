"""Notices, creation, rejoin requests and repaired sealings (spec 11.v2.13-14, 11.v2.25,
11.v2.27-28, 11.v2.31; ASYNC-EPOCHS R7, R9, R12, Decisions 3, 6, 8).

Creation gives every initial member the creator's epoch; a notice altered anywhere, or not ours,
is refused with a typed error and the recipient keeps waiting (its assembler and keys unchanged);
reassembly holds a bounded amount; rejoin requests are checked; a wrong sealing is repaired and
convicted, a right one leads to a resume proposal."""

from __future__ import annotations

import dataclasses
import random

import pytest

from triple_ratchet import cbor
from triple_ratchet.errors import (
    AuthenticationError,
    DecodeError,
    InvalidSignature,
    LimitExceeded,
    ProtocolError,
    RemoteError,
    ReplayError,
    UsageError,
)
from triple_ratchet.group.change_proposal import KIND_RESUME, applied_proposals_hash
from triple_ratchet.group.committee import (
    RunSeed,
    local_round2,
    make_announcement,
    make_commit,
    make_round1,
    make_round3,
    open_commit,
)
from triple_ratchet.group.control import (
    TYPE_ANNOUNCEMENT,
    TYPE_COMMIT,
    TYPE_PROPOSAL,
    TYPE_ROUND1,
    TYPE_ROUND3,
    ControlEntry,
    sign_identity_entry,
    sign_member_entry,
)
from triple_ratchet.group.key_schedule import EpochSecretsV2
from triple_ratchet.group.notice import (
    MAX_NOTICE_CHUNKS,
    MAX_PENDING_NOTICES,
    NOTICE_CHUNK_SIZE,
    CreatorStart,
    DecidedChange,
    JoinStart,
    Notice,
    NoticeAssembler,
    NoticeBody,
    NoticeChunk,
    NoticeHeader,
    OutgoingCommon,
    OutgoingNotice,
    Repair,
    ResumeInstead,
    accept_repaired_sealing,
    answer_rejoin,
    answer_rejoin_for_run,
    build_common,
    build_notice,
    build_notices,
    check_rejoin_request,
    chunk_notice,
    create_group,
    make_rejoin_request,
    notice_id,
    open_notice,
    open_notice_sealing,
    seal_common,
    seal_notice,
)
from triple_ratchet.group.records import (
    PURPOSE_ROTATE,
    JoinKey,
    MemberKeyRecord,
    RecordKeys,
    RejoinRequest,
)
from triple_ratchet.group.roster import Roster, RosterEntry
from triple_ratchet.group.run import Commit, Round1Item, Round3Item
from triple_ratchet.group.run_secrets import RunInputs, check_round1, recipients_of
from triple_ratchet.group.sealing import (
    Recipient,
    Sealing,
    SealingContext,
    leaf_hash,
    merkle_path,
)
from triple_ratchet.identity import IdentityKeyPair
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import CLASSICAL_SUITES, Suite

GROUP = b"notice group"
NOW = 1_700_000_000_000


@pytest.fixture(params=CLASSICAL_SUITES, ids=lambda s: s.name)
def suite(request: pytest.FixtureRequest) -> Suite:
    s: Suite = request.param
    return s


# Every common part made in these tests, by its hash: `_open` finds the one a notice names
# (what a recipient reads from the change's common mailbox).
_COMMONS: dict[bytes, bytes] = {}


def _register(suite: Suite, common: OutgoingCommon | None) -> OutgoingCommon:
    assert common is not None
    _COMMONS[common.common_hash] = b"".join(NoticeChunk.from_bytes(suite, c).data
                                            for c in common.chunks)
    return common


def _insider(header: NoticeHeader, body: NoticeBody | bytes, member_base: bytes,
             identity: bytes, rng: DeterministicRandom) -> bytes:
    """An insider (holding member_base) sealing a common part of its own and a notice naming
    it."""
    plain = body if isinstance(body, bytes) else body.to_bytes()
    common = seal_common(header.suite, plain, member_base, rng)
    _COMMONS[notice_id(header.suite, common)] = common
    return seal_notice(header, notice_id(header.suite, common), member_base, identity, rng)


def _open(suite: Suite, data: bytes, *, identity: bytes,
          keys: list[RecordKeys]) -> JoinStart:
    """`open_notice` with the common part the notice names (empty if none was made)."""
    opened = open_notice_sealing(suite, data, identity=identity, keys=keys)
    return open_notice(suite, data, identity=identity, keys=keys,
                       common=_COMMONS.get(opened.common_hash, b""))


class Member:
    def __init__(self, suite: Suite, rng: DeterministicRandom) -> None:
        self.identity = IdentityKeyPair.generate(suite, rng)
        self.join_keys = RecordKeys.generate(suite, rng)
        self.inbox = rng(32)
        self.join_key = JoinKey.sign(self.identity, self.join_keys, expiry=NOW + 10**9,
                                     inbox_id=self.inbox)

    @property
    def id(self) -> bytes:
        return self.identity.public.to_bytes()


class World:
    """A creator and three initial members, the group created, every notice assembled."""

    def __init__(self, suite: Suite, n: int = 3) -> None:
        self.suite = suite
        self.rng = DeterministicRandom(b"notice tests " + suite.name.encode())
        self.creator = IdentityKeyPair.generate(suite, self.rng)
        self.creator_keys = RecordKeys.generate(suite, self.rng)
        self.members = [Member(suite, self.rng) for _ in range(n)]
        self.start, self.notices = create_group(
            self.creator, self.creator_keys, group_id=GROUP,
            join_keys=[m.join_key for m in self.members], now=NOW, rng=self.rng)
        if self.start.common is not None:  # none for a group alone
            self.common = _register(suite, self.start.common)

    def notice_of(self, i: int) -> bytes:
        data = b"".join(NoticeChunk.from_bytes(self.suite, c).data
                        for c in self.notices[i].chunks)
        return data

    def open(self, i: int, data: bytes | None = None,
             keys: list[RecordKeys] | None = None) -> JoinStart:
        m = self.members[i]
        return _open(self.suite, self.notice_of(i) if data is None else data,
                           identity=m.id, keys=[m.join_keys] if keys is None else keys)

    def reseal(self, i: int, *, header: NoticeHeader | None = None,
               **body_changes: object) -> bytes:
        """An insider (holding member_base) re-sealing member i's notice with changes."""
        change = self.start.change
        m = self.members[i]
        body = dataclasses.replace(change.body(), **body_changes)  # type: ignore[arg-type]
        return _insider(header or change.header_for(m.id), body, self.start.member_base,
                           m.id, self.rng)


@pytest.fixture
def w(suite: Suite) -> World:
    return World(suite)


def _same_epoch(a: EpochSecretsV2, b: EpochSecretsV2) -> bool:
    return (a.epoch_id == b.epoch_id and a.chain_roots == b.chain_roots
            and a.sender_data_secret == b.sender_data_secret
            and a.control_traffic_key == b.control_traffic_key
            and a.init_secret_next == b.init_secret_next
            and a.control_mailbox.mailbox_id == b.control_mailbox.mailbox_id
            and a.mailbox.mailbox_id == b.mailbox.mailbox_id)


# --- Creation -------------------------------------------------------------------------------


def test_creation_every_member_opens_its_notice_and_derives_the_creators_epoch(
        w: World) -> None:
    assert [n.identity for n in w.notices] == [m.id for m in w.members]
    assert [n.inbox_id for n in w.notices] == [m.inbox for m in w.members]
    assert w.start.epoch == 1 and w.start.record.counter == 1
    assert w.start.record.anchor == bytes(w.suite.hash_len)
    assert [e.identity for e in w.start.roster.entries] == [
        w.creator.public.to_bytes(), *(m.id for m in w.members)]
    assert all(e.posted_at == 0 for e in w.start.roster.entries)
    for i, m in enumerate(w.members):
        assembler = NoticeAssembler(w.suite)
        done = None
        for chunk in reversed(w.notices[i].chunks):
            assembler, done = assembler.receive(chunk)
        assert done is not None and assembler.pending == ()
        js = w.open(i, done)
        assert _same_epoch(js.secrets, w.start.secrets)
        assert js.epoch == 1 and js.previous_epoch_id == b"" and js.t0 is None
        assert js.carried == () and js.run == 1
        assert js.own_index == i + 1 and js.own_entry.identity == m.id
        assert js.own_entry.keys == m.join_key and js.opened_with == m.join_keys.receive_public
        assert js.added_by == w.creator.public.to_bytes() and not js.resumed
        assert js.roster.hash() == w.start.roster.hash()
        assert js.epoch_id == w.start.epoch_id


def test_a_group_alone_has_an_empty_bundle_and_no_notice(suite: Suite) -> None:
    world = World(suite, n=0)
    assert world.notices == ()
    assert world.start.change.bundle == ()
    assert len(world.start.roster) == 1 and world.start.secrets.roster_size == 1


def test_creation_refuses_bad_join_keys(w: World) -> None:
    m = w.members[0]
    with pytest.raises(UsageError):
        create_group(w.creator, w.creator_keys, group_id=GROUP, join_keys=[m.join_key] * 2,
                     now=NOW, rng=w.rng)
    with pytest.raises(ProtocolError):
        create_group(w.creator, w.creator_keys, group_id=GROUP, join_keys=[m.join_key],
                     now=m.join_key.expiry, rng=w.rng)
    mine = JoinKey.sign(w.creator, RecordKeys.generate(w.suite, w.rng), expiry=NOW + 1,
                        inbox_id=bytes(32))
    with pytest.raises(UsageError):
        create_group(w.creator, w.creator_keys, group_id=GROUP, join_keys=[mine], now=NOW,
                     rng=w.rng)


def test_join_start_and_creator_start_keep_secrets_out_of_repr(w: World) -> None:
    js = w.open(0)
    for text in (repr(js), repr(w.start)):
        for secret in (w.start.member_base, w.start.commit_secret,
                       w.start.secrets.chain_roots[0], w.start.secrets.init_secret_next,
                       w.start.secrets.control_traffic_key):
            assert secret.hex() not in text and repr(secret) not in text


def test_the_clear_header_names_no_identity_roster_or_signature(w: World) -> None:
    data = w.notice_of(0)
    for m in w.members:
        assert m.id not in data and m.join_key.receive_key not in data
    assert w.creator.public.to_bytes() not in data


# --- Tampered notices -------------------------------------------------------------------------


def test_a_byte_changed_anywhere_in_a_chunk_is_refused_and_the_recipient_keeps_waiting(
        w: World) -> None:
    (chunk,) = w.notices[0].chunks
    assembler = NoticeAssembler(w.suite)
    for at in range(0, len(chunk), 7):
        bad = bytearray(chunk)
        bad[at] ^= 0x01
        with pytest.raises(RemoteError):
            assembler.receive(bytes(bad))
    assert assembler.pending == ()
    assembler, done = assembler.receive(chunk)
    assert done is not None and w.open(0, done).epoch == 1


def test_a_byte_changed_anywhere_in_the_notice_is_refused(w: World) -> None:
    data = w.notice_of(0)
    for at in range(0, len(data), 5):
        bad = bytearray(data)
        bad[at] ^= 0x80
        with pytest.raises(RemoteError):
            w.open(0, bytes(bad))
    assert w.open(0, data).epoch == 1  # nothing was kept: the good copy still opens


def test_another_recipients_notice_is_refused(w: World) -> None:
    with pytest.raises(AuthenticationError):
        w.open(0, w.notice_of(1))
    # Even with both members' keys, the sealing of member 1 names member 1 in its info.
    with pytest.raises(AuthenticationError):
        w.open(0, w.notice_of(1), keys=[w.members[0].join_keys, w.members[1].join_keys])


def test_another_recipients_chunk_does_not_complete_ours(w: World) -> None:
    big = w.rng(150_000)
    ours, theirs = chunk_notice(w.suite, big), chunk_notice(w.suite, big[::-1])
    assembler = NoticeAssembler(w.suite)
    assembler, done = assembler.receive(ours[0])
    assembler, done = assembler.receive(theirs[1])
    assembler, done = assembler.receive(theirs[2])
    assert done is None and len(assembler.pending) == 2
    # Their chunk's data relabelled with our id: the joined notice is not the one named.
    relabelled = NoticeChunk(NoticeChunk.from_bytes(w.suite, ours[0]).notice_id, 1, len(ours),
                             NoticeChunk.from_bytes(w.suite, theirs[1]).data).to_bytes()
    assembler, _ = assembler.receive(relabelled)
    with pytest.raises(AuthenticationError):
        assembler.receive(ours[2])


def test_chunks_in_the_wrong_order_are_refused(w: World) -> None:
    big = w.rng(150_000)  # three chunks, each different
    chunks = [NoticeChunk.from_bytes(w.suite, c) for c in chunk_notice(w.suite, big)]
    assert len(chunks) == 3
    swapped = [dataclasses.replace(chunks[0], data=chunks[1].data),
               dataclasses.replace(chunks[1], data=chunks[0].data), chunks[2]]
    assembler = NoticeAssembler(w.suite)
    assembler, _ = assembler.receive(swapped[0].to_bytes())
    assembler, _ = assembler.receive(swapped[1].to_bytes())
    with pytest.raises(AuthenticationError):
        assembler.receive(swapped[2].to_bytes())
    # The good chunks in any arrival order assemble.
    assembler = NoticeAssembler(w.suite)
    for c in (chunks[2], chunks[0], chunks[1]):
        assembler, done = assembler.receive(c.to_bytes())
    assert done == big


def test_a_wrong_roster_is_refused(w: World) -> None:
    roster = w.start.roster
    reordered = Roster(w.suite, (roster.entries[0], roster.entries[2], roster.entries[1],
                                 roster.entries[3]))
    with pytest.raises(ProtocolError):
        w.open(0, w.reseal(0, roster=reordered))
    later = Roster(w.suite, tuple(dataclasses.replace(e, posted_at=5) for e in roster.entries))
    with pytest.raises(ProtocolError):
        w.open(0, w.reseal(0, roster=later))


def test_a_roster_whose_hash_matches_but_not_our_keys_is_refused(w: World) -> None:
    # A roster (and hash, header and sealing) made for another join key of ours: the sealing
    # opens with the other key but the roster must carry the keys that opened it.
    other = RecordKeys.generate(w.suite, w.rng)
    with pytest.raises(AuthenticationError):
        w.open(0, keys=[other])


def test_a_forged_round3_item_is_refused(w: World) -> None:
    raw = w.start.change.round3[0]
    entry = ControlEntry.from_bytes(w.suite, raw, group_id=GROUP, epoch=0)
    item = Round3Item.from_bytes(w.suite, entry.body)
    forged_sig = dataclasses.replace(item, certeq_signature=bytes(64))
    forged_dkg = dataclasses.replace(  # flip a bit: a set byte could already be the one set
        item, dkg_signature=item.dkg_signature[:-1] + bytes([item.dkg_signature[-1] ^ 1]))
    other_tag = dataclasses.replace(item, confirmation_tag=bytes(w.suite.hash_len))
    for forged, error in ((forged_sig, InvalidSignature), (forged_dkg, InvalidSignature),
                          (other_tag, InvalidSignature)):
        bad = dataclasses.replace(entry, body=forged.to_bytes()).to_bytes()
        with pytest.raises(error):
            w.open(0, w.reseal(0, round3=(bad,)))
    assert entry.entry_type == TYPE_ROUND3


def test_a_forged_or_missing_certificate_part_is_refused(w: World) -> None:
    change = w.start.change
    ann = ControlEntry.from_bytes(w.suite, change.announcements[0], group_id=GROUP, epoch=0)
    assert ann.entry_type == TYPE_ANNOUNCEMENT
    bad_ann = dataclasses.replace(ann, signature=bytes(len(ann.signature))).to_bytes()
    with pytest.raises(InvalidSignature):
        w.open(0, w.reseal(0, announcements=(bad_ann,)))
    with pytest.raises(ProtocolError):  # our add left out of the applied proposals
        w.open(0, w.reseal(0, applied=change.applied[1:]))
    with pytest.raises(ProtocolError):  # applied proposals reordered: another hash
        w.open(0, w.reseal(0, applied=change.applied[::-1]))
    with pytest.raises(ProtocolError):  # a round-1 item more than the committee
        w.open(0, w.reseal(0, round1=change.round1 * 2))
    with pytest.raises(DecodeError):  # no round-1 item at all
        w.open(0, w.reseal(0, round1=()))
    with pytest.raises(ProtocolError):  # a carried entry that is no proposal or record
        w.open(0, w.reseal(0, carried=change.round3))


def test_a_wrong_merkle_path_or_position_is_refused(w: World) -> None:
    m = w.members[1]
    header = w.start.change.header_for(m.id)
    assert header.path  # three leaves: every path is non-empty
    for bad in (dataclasses.replace(header, path=(bytes(w.suite.hash_len), *header.path[1:])),
                dataclasses.replace(header, path=header.path[:-1]),
                dataclasses.replace(header, path=header.path + header.path[:1]),
                dataclasses.replace(header, position=0)):
        with pytest.raises(AuthenticationError):
            w.open(1, w.reseal(1, header=bad))


def test_a_one_time_join_key_used_by_another_notice_cannot_open_it(suite: Suite) -> None:
    world = World(suite, n=1)
    bob = world.members[0]
    js = world.open(0)
    # Bob deletes the one-time private key after the first commit he opened with it.
    remaining = [k for k in [bob.join_keys] if k.receive_public != js.opened_with]
    assert remaining == []
    second_creator = IdentityKeyPair.generate(suite, world.rng)
    second, notices = create_group(second_creator, RecordKeys.generate(suite, world.rng),
                                   group_id=b"second group", join_keys=[bob.join_key], now=NOW,
                                   rng=world.rng)
    _register(suite, second.common)
    data = b"".join(NoticeChunk.from_bytes(suite, c).data for c in notices[0].chunks)
    with pytest.raises(AuthenticationError):
        _open(suite, data, identity=bob.id, keys=remaining)
    assert _open(suite, data, identity=bob.id, keys=[bob.join_keys]).group_id == (
        b"second group")


# --- Reassembly is bounded ---------------------------------------------------------------------


def test_reassembly_keeps_at_most_max_pending_notices(w: World) -> None:
    assembler = NoticeAssembler(w.suite)
    firsts = []
    for i in range(MAX_PENDING_NOTICES + 3):
        chunks = chunk_notice(w.suite, bytes([i]) * (2 * NOTICE_CHUNK_SIZE + 1))
        firsts.append(chunks)
        assembler, done = assembler.receive(chunks[0])
        assert done is None
        assert len(assembler.pending) <= MAX_PENDING_NOTICES
        assert assembler.held_bytes() <= MAX_PENDING_NOTICES * MAX_NOTICE_CHUNKS * (
            NOTICE_CHUNK_SIZE)
    # The oldest were dropped: the newest still completes, the first no longer can.
    newest = firsts[-1]
    a2, _ = assembler.receive(newest[1])
    a2, done = a2.receive(newest[2])
    assert done == bytes([MAX_PENDING_NOTICES + 2]) * (2 * NOTICE_CHUNK_SIZE + 1)
    a3, _ = assembler.receive(firsts[0][1])
    a3, done = a3.receive(firsts[0][2])
    assert done is None
    # A notice complete in one chunk is returned at once and evicts nothing.
    (single,) = chunk_notice(w.suite, b"one chunk")
    a4, done = assembler.receive(single)
    assert done == b"one chunk" and a4.pending == assembler.pending


def test_inconsistent_duplicate_and_garbage_chunks(w: World) -> None:
    chunks = chunk_notice(w.suite, b"x" * (NOTICE_CHUNK_SIZE + 10))
    first = NoticeChunk.from_bytes(w.suite, chunks[0])
    assembler, _ = NoticeAssembler(w.suite).receive(chunks[0])
    same, done = assembler.receive(chunks[0])  # a duplicate changes nothing
    assert same == assembler and done is None
    # Another count, or other data for a chunk held, for the same id: it replaces what was held
    # (review F5: a poisoned chunk must not make the later honest ones refused).
    poisoned, _ = assembler.receive(dataclasses.replace(first, count=3, index=2,
                                                        data=b"y").to_bytes())
    assert [(p.count, len(p.chunks)) for p in poisoned.pending] == [(3, 1)]
    other, _ = assembler.receive(dataclasses.replace(first, data=b"z" * NOTICE_CHUNK_SIZE)
                                 .to_bytes())
    assert dict(other.pending[0].chunks)[0] == b"z" * NOTICE_CHUNK_SIZE
    bad_chunks = [
        dataclasses.replace(first, index=2),  # index >= count
        dataclasses.replace(first, data=b"short"),  # a non-final chunk shorter than the size
        dataclasses.replace(first, data=b"", index=1),  # empty
        dataclasses.replace(first, count=MAX_NOTICE_CHUNKS + 1),
        dataclasses.replace(first, notice_id=first.notice_id[:-1]),
    ]
    for bad in bad_chunks:
        with pytest.raises(DecodeError):
            assembler.receive(bad.to_bytes())
    for garbage in (b"", b"\x00", cbor.encode([0x53, 2]), cbor.encode([0x52, 2, b"", 0, 1, b""]),
                    chunks[0][:-1], chunks[0] + b"\x00"):
        with pytest.raises(RemoteError):
            assembler.receive(garbage)
    with pytest.raises(LimitExceeded):
        assembler.receive(bytes(NOTICE_CHUNK_SIZE + 1000))
    with pytest.raises(UsageError):
        chunk_notice(w.suite, bytes(MAX_NOTICE_CHUNKS * NOTICE_CHUNK_SIZE + 1))
    assembler, done = assembler.receive(chunks[1])
    assert done == b"x" * (NOTICE_CHUNK_SIZE + 10) and assembler.pending == ()


def test_junk_chunks_cannot_starve_a_notice_whose_first_chunk_opened(w: World) -> None:
    """Review F5: the inbox is public. With our keys, the assembler opens a notice's first
    chunk at once (a first chunk none of our keys opens is refused) and evicts the notices not
    yet opened first: junk between honest chunks no longer evicts the honest notice; and a
    chunk with the honest id but another count does not make later honest chunks refused."""
    m = w.members[0]
    notice = w.notice_of(0)
    filler = seal_notice(w.start.change.header_for(m.id), b"\x00" * (3 * NOTICE_CHUNK_SIZE),
                         w.start.member_base, m.id, w.rng)  # a long notice: several chunks
    honest = chunk_notice(w.suite, filler)
    assert len(honest) >= 3
    asm = NoticeAssembler(w.suite, identity=m.id, keys=(m.join_keys,))
    done = None
    for c in honest:
        asm, done = asm.receive(c)
        for j in range(MAX_PENDING_NOTICES):  # junk of fresh ids, never a first chunk
            junk = chunk_notice(w.suite, bytes([j]) * (2 * NOTICE_CHUNK_SIZE + 1))[1]
            asm, _ = asm.receive(junk)
    assert done == filler
    # A first chunk that none of our keys opens is refused and nothing changes.
    with pytest.raises(AuthenticationError):
        asm.receive(chunk_notice(w.suite, w.notice_of(1))[0])
    # A poisoned count with the honest id, then the honest chunks: they complete.
    nid = NoticeChunk.from_bytes(w.suite, honest[0]).notice_id
    asm = NoticeAssembler(w.suite, identity=m.id, keys=(m.join_keys,))
    asm, _ = asm.receive(NoticeChunk(nid, 5, 64, b"x" * NOTICE_CHUNK_SIZE).to_bytes())
    for c in honest:
        asm, done = asm.receive(c)
    assert done == filler
    (one,) = chunk_notice(w.suite, notice)
    assert NoticeAssembler(w.suite, identity=m.id, keys=(m.join_keys,)).receive(one)[1] == notice


# --- Rejoin requests -----------------------------------------------------------------------------


def test_rejoin_request_round_trip_and_checks(w: World) -> None:
    bob = w.members[0]
    roster = w.start.roster
    entry = roster.entries[1]
    fresh = RecordKeys.generate(w.suite, w.rng)
    request = make_rejoin_request(bob.identity, fresh, group_id=GROUP, own_counters=[0, 3],
                                  anchor=entry.anchor, inbox_id=bob.inbox)
    assert request.record.counter == 4 and request.record.purpose == 2
    checked = check_rejoin_request(w.suite, request.to_bytes(), group_id=GROUP,
                                   peer=bob.identity.public, roster=roster)
    assert checked == request
    with pytest.raises(ProtocolError):  # sent by another peer
        check_rejoin_request(w.suite, request.to_bytes(), group_id=GROUP,
                             peer=w.members[1].identity.public, roster=roster)
    with pytest.raises(ProtocolError):  # another membership's anchor
        other = make_rejoin_request(bob.identity, fresh, group_id=GROUP, own_counters=[0],
                                    anchor=bytes(w.suite.hash_len), inbox_id=bob.inbox)
        check_rejoin_request(w.suite, other.to_bytes(), group_id=GROUP,
                             peer=bob.identity.public, roster=roster)
    with pytest.raises(ProtocolError):  # a key already in the roster
        planted = make_rejoin_request(bob.identity, w.members[1].join_keys, group_id=GROUP,
                                      own_counters=[0], anchor=entry.anchor,
                                      inbox_id=bob.inbox)
        check_rejoin_request(w.suite, planted.to_bytes(), group_id=GROUP,
                             peer=bob.identity.public, roster=roster)


def test_a_rotation_record_wrapped_as_a_resume_is_refused(w: World) -> None:
    bob = w.members[0]
    rotation = MemberKeyRecord.sign(bob.identity, RecordKeys.generate(w.suite, w.rng),
                                    group_id=GROUP, counter=2, purpose=PURPOSE_ROTATE,
                                    anchor=w.start.roster.entries[1].anchor)
    with pytest.raises(UsageError):
        RejoinRequest.make(rotation, bob.inbox)
    wrapped = cbor.encode([0x54, 2, w.suite.suite_id, GROUP, rotation.to_bytes(), bob.inbox])
    with pytest.raises(ProtocolError, match="rotation record is never a resume"):
        check_rejoin_request(w.suite, wrapped, group_id=GROUP, peer=bob.identity.public,
                             roster=w.start.roster)


def test_a_resume_for_a_removed_member_is_invalid(w: World) -> None:
    bob = w.members[0]
    entry = w.start.roster.entries[1]
    without_bob = Roster(w.suite, tuple(e for e in w.start.roster.entries
                                        if e.identity != bob.id))
    request = make_rejoin_request(bob.identity, RecordKeys.generate(w.suite, w.rng),
                                  group_id=GROUP, own_counters=[0], anchor=entry.anchor,
                                  inbox_id=bob.inbox)
    with pytest.raises(ProtocolError, match="not in the current roster"):
        check_rejoin_request(w.suite, request.to_bytes(), group_id=GROUP,
                             peer=bob.identity.public, roster=without_bob)


def test_a_resume_counter_not_above_the_entry_is_a_replay(w: World) -> None:
    bob = w.members[0]
    rotated_keys = RecordKeys.generate(w.suite, w.rng)
    anchor = w.start.roster.entries[1].anchor
    rotated = MemberKeyRecord.sign(bob.identity, rotated_keys, group_id=GROUP, counter=5,
                                   purpose=PURPOSE_ROTATE, anchor=anchor)
    entries = list(w.start.roster.entries)
    entries[1] = RosterEntry(bob.id, rotated, 10, anchor)
    roster = Roster(w.suite, tuple(entries))
    request = make_rejoin_request(bob.identity, RecordKeys.generate(w.suite, w.rng),
                                  group_id=GROUP, own_counters=[3], anchor=anchor,
                                  inbox_id=bob.inbox)
    with pytest.raises(ReplayError):
        check_rejoin_request(w.suite, request.to_bytes(), group_id=GROUP,
                             peer=bob.identity.public, roster=roster)


# --- Repair or resume (11.v2.25) ---------------------------------------------------------------


def _rejoin_setup(w: World) -> tuple[RejoinRequest, SealingContext, Recipient, Sealing]:
    bob = w.members[0]
    change = w.start.change
    request = make_rejoin_request(bob.identity, RecordKeys.generate(w.suite, w.rng),
                                  group_id=GROUP, own_counters=[0],
                                  anchor=w.start.roster.entries[1].anchor, inbox_id=bob.inbox)
    decided = SealingContext(w.suite, GROUP, 1, change.run_session_id, w.start.roster.hash())
    recipient = Recipient(1, bob.id, bob.join_key.receive_key, w.start.member_base)
    return request, decided, recipient, change.bundle[0]


def _answer(w: World, start: CreatorStart, request: RejoinRequest, decided: SealingContext,
            recipient: Recipient, certified: Sealing) -> Repair | ResumeInstead:
    return answer_rejoin(request, decided=decided, decided_run=1,
                         commit_secret=start.commit_secret, recipient=recipient,
                         certified=certified, author=w.creator.public.to_bytes(),
                         current_epoch=1, current_epoch_id=start.epoch_id)


def test_a_right_sealing_leads_to_a_resume_proposal(w: World) -> None:
    request, decided, recipient, certified = _rejoin_setup(w)
    answer = _answer(w, w.start, request, decided, recipient, certified)
    assert isinstance(answer, ResumeInstead)
    proposal = answer.proposal
    assert proposal.kind == KIND_RESUME and proposal.change == request.record
    assert proposal.epoch == 1 and proposal.epoch_id == w.start.epoch_id


def test_a_wrong_sealing_is_repaired_and_convicted(w: World) -> None:
    request, decided, recipient, _ = _rejoin_setup(w)
    wrong = w.start.change.bundle[1]  # the committee put Carol's pair at Bob's place
    answer = _answer(w, w.start, request, decided, recipient, wrong)
    assert isinstance(answer, Repair)
    repaired, conviction = answer.repaired, answer.conviction
    assert (conviction.decided_epoch, conviction.run, conviction.recipient) == (0, 1, 1)
    assert (conviction.enc, conviction.ct) == (repaired.enc, repaired.ct)
    assert (repaired.enc, repaired.ct) == (w.start.change.bundle[0].enc,
                                           w.start.change.bundle[0].ct)
    # The requester accepts it only if the tag checks.
    bob = w.members[0]
    kwargs = dict(decided=decided, decided_run=1, identity=bob.id,
                  private_key=bob.join_keys.receive_key.to_bytes(), init_secret=None,
                  group_context=w.start.group_context, roster_size=len(w.start.roster))
    secrets = accept_repaired_sealing(repaired, tag=w.start.secrets.confirmation_tag,
                                      **kwargs)  # type: ignore[arg-type]
    assert _same_epoch(secrets, w.start.secrets)
    with pytest.raises(AuthenticationError):
        accept_repaired_sealing(repaired, tag=bytes(w.suite.hash_len),
                                **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError):
        accept_repaired_sealing(dataclasses.replace(repaired, run=2),
                                tag=w.start.secrets.confirmation_tag,
                                **kwargs)  # type: ignore[arg-type]
    with pytest.raises(AuthenticationError):  # the wrong pair itself does not open for Bob
        accept_repaired_sealing(dataclasses.replace(repaired, enc=wrong.enc, ct=wrong.ct),
                                tag=w.start.secrets.confirmation_tag,
                                **kwargs)  # type: ignore[arg-type]


def test_outgoing_notice_and_build_notice_agree(w: World) -> None:
    m = w.members[2]
    again = build_notice(w.start.change, w.start.member_base, m.id, w.common.common_hash,
                         w.rng)
    assert w.open(2, again).own_index == 3  # a repeated notice (fresh nonce) opens too
    assert isinstance(w.notices[2], OutgoingNotice)
    with pytest.raises(UsageError):
        build_notice(w.start.change, w.start.member_base, w.creator.public.to_bytes(),
                     w.common.common_hash, w.rng)


def test_a_forged_round1_item_is_refused(w: World) -> None:
    raw = w.start.change.round1[0]
    entry = ControlEntry.from_bytes(w.suite, raw, group_id=GROUP, epoch=0)
    assert entry.entry_type == TYPE_ROUND1
    item = Round1Item.from_bytes(entry.body)
    signed = bytearray(item.signed_round1)
    signed[-1] ^= 0x01  # the DKG signature's last byte
    bad = dataclasses.replace(entry, body=Round1Item(1, bytes(signed)).to_bytes()).to_bytes()
    with pytest.raises(RemoteError):
        w.open(0, w.reseal(0, round1=(bad,)))
    other_run = dataclasses.replace(entry, body=Round1Item(2, item.signed_round1).to_bytes())
    with pytest.raises(ProtocolError):
        w.open(0, w.reseal(0, round1=(other_run.to_bytes(),)))


def test_t0_is_null_exactly_for_a_created_group(w: World) -> None:
    with pytest.raises(DecodeError):
        w.open(0, w.reseal(0, t0=5))


def test_a_failed_notice_can_be_dropped(w: World) -> None:
    chunks = [NoticeChunk.from_bytes(w.suite, c) for c in chunk_notice(w.suite, w.rng(70_000))]
    bad = dataclasses.replace(chunks[1], data=bytes(len(chunks[1].data)))
    assembler, _ = NoticeAssembler(w.suite).receive(chunks[0].to_bytes())
    with pytest.raises(AuthenticationError):
        assembler.receive(bad.to_bytes())
    assert len(assembler.pending) == 1
    assert assembler.drop(chunks[0].notice_id).pending == ()


# --- A resume after creation: epoch 1 -> 2, the creator alone on the committee ------------------


class Resumed:
    """Bob lost his keys in epoch 1 and asks the creator to rejoin; the creator (holding
    epoch 0's commit_secret) finds Bob's sealing right and posts a resume proposal, then runs
    epoch 1's change alone and sends Bob a notice to the inbox of his request."""

    T0 = 1_800_000_000_000

    def __init__(self, w: World, dormant: frozenset[bytes] = frozenset()) -> None:
        suite, start, bob = w.suite, w.start, w.members[0]
        self.w, self.bob = w, bob
        self.resume_keys = RecordKeys.generate(suite, w.rng)
        self.inbox = w.rng(32)
        request = check_rejoin_request(
            suite, make_rejoin_request(bob.identity, self.resume_keys, group_id=GROUP,
                                       own_counters=[0], anchor=start.roster.entries[1].anchor,
                                       inbox_id=self.inbox).to_bytes(),
            group_id=GROUP, peer=bob.identity.public, roster=start.roster)
        commit0 = Commit.from_bytes(suite, start.commit.body)
        answer = answer_rejoin_for_run(
            request, start.inputs, commit0, commit_secret=start.commit_secret,
            member_base=start.member_base, author=w.creator.public.to_bytes(), current_epoch=1,
            current_epoch_id=start.epoch_id)
        assert isinstance(answer, ResumeInstead)
        proposal = sign_identity_entry(w.creator, TYPE_PROPOSAL, group_id=GROUP, epoch=1,
                                       author=0, body=answer.proposal.to_bytes())
        entries = list(start.roster.entries)
        entries[1] = RosterEntry.of(request.record, self.T0 - 5000)
        roster = Roster(suite, tuple(entries))
        applied_hash = applied_proposals_hash(suite, [proposal])
        seed = RunSeed.generate(suite, w.rng)
        announcement = sign_identity_entry(
            w.creator, TYPE_ANNOUNCEMENT, group_id=GROUP, epoch=1, author=0,
            body=make_announcement(seed, group_id=GROUP, epoch=1, run=1,
                                   identity=w.creator.public.to_bytes(),
                                   applied_hash=applied_hash,
                                   roster_hash=roster.hash(),
                                   view_hash=suite.hash(b"view")).to_bytes())
        self.inputs = RunInputs(suite, GROUP, 1, start.epoch_id, 1, applied_hash, roster,
                                (announcement.entry_bytes(),), (seed.dkg_key(),),
                                recipients_of(roster, [w.creator.public.to_bytes()], dormant),
                                frozenset({bob.id}))
        item1 = make_round1(seed, self.inputs)
        self.round1 = (check_round1(self.inputs, 1, item1),)
        payloads = local_round2(seed, self.inputs, self.round1).payloads
        assert payloads is not None
        item3, self.outcome = make_round3(seed, self.inputs, self.round1, payloads,
                                          start.secrets.init_secret_next)
        self.commit = make_commit(self.inputs, self.outcome)
        assert self.outcome.bundle is not None

        def signed(entry_type: int, body: bytes) -> bytes:
            return sign_member_entry(suite, w.creator_keys.signing_key, entry_type,
                                     group_id=GROUP, epoch=1, author=0, body=body).to_bytes()

        carried = (signed(TYPE_COMMIT, b"\xa0"),)  # any entry; only its shape is checked
        self.change = DecidedChange(
            suite, GROUP, 1, start.epoch_id, 1, self.inputs.session_id(),
            (announcement.to_bytes(),), (signed(TYPE_ROUND1, item1.to_bytes()),),
            (signed(TYPE_ROUND3, item3.to_bytes()),), (proposal.to_bytes(),), (), self.T0,
            roster, self.outcome.bundle.sealings, self.inputs.recipients)
        self.common = _register(suite, build_common(self.change, self.outcome.member_base,
                                                    w.rng))
        self.bad_carried = carried


def test_a_resumed_member_gets_a_notice_and_joins_the_epoch_of_the_others(w: World) -> None:
    r = Resumed(w)
    # The inbox unknown: no notice.
    assert build_notices(r.change, r.outcome.member_base, common=r.common, rng=w.rng) == ()
    (notice,) = build_notices(r.change, r.outcome.member_base, common=r.common,
                              resumed_inboxes={r.bob.id: r.inbox}, rng=w.rng)
    assert notice.identity == r.bob.id and notice.inbox_id == r.inbox
    # Had a later proposal of the attempt removed Bob again, he would be no recipient: no notice.
    gone = dataclasses.replace(r.change, bundle=r.change.bundle[1:],
                               recipient_indices=r.change.recipient_indices[1:])
    assert build_notices(gone, r.outcome.member_base, common=r.common,
                         resumed_inboxes={r.bob.id: r.inbox}, rng=w.rng) == ()
    data = b"".join(NoticeChunk.from_bytes(w.suite, c).data for c in notice.chunks)
    with pytest.raises(AuthenticationError):  # sealed to the resume record's key only
        _open(w.suite, data, identity=r.bob.id, keys=[r.bob.join_keys])
    js = _open(w.suite, data, identity=r.bob.id, keys=[r.bob.join_keys, r.resume_keys])
    assert js.resumed and js.added_by == w.creator.public.to_bytes()
    assert js.epoch == 2 and js.previous_epoch_id == w.start.epoch_id and js.t0 == r.T0
    assert js.own_index == 1 and js.opened_with == r.resume_keys.receive_public
    assert js.own_entry.keys.counter == 1 and js.own_entry.posted_at == r.T0 - 5000
    # Carol, sealed commit_secret, opens the commit as a member of epoch 1 does: same epoch.
    carol = w.members[1]
    theirs = open_commit(r.inputs, r.round1, r.commit, bundle_root=r.outcome.bundle_root,
                         confirmation_tag=r.outcome.confirmation_tag, roster_index=2,
                         receive_private_key=carol.join_keys.receive_key.to_bytes(),
                         init_secret=w.start.secrets.init_secret_next)
    assert _same_epoch(js.secrets, theirs.secrets(w.suite))
    assert _same_epoch(js.secrets, r.outcome.secrets(w.suite))
    # A carried entry that is neither a proposal nor a record is refused.
    bad = dataclasses.replace(r.change, carried=r.bad_carried)
    with pytest.raises(ProtocolError):
        _open(w.suite, build_notice(bad, r.outcome.member_base, r.bob.id,
                                    _register(w.suite, build_common(bad, r.outcome.member_base,
                                                                    w.rng)).common_hash, w.rng),
                    identity=r.bob.id, keys=[r.resume_keys])


def test_a_notice_tells_the_newcomer_who_was_dormant_at_the_previous_snapshot(w: World) -> None:
    """Review F2: a member dormant at S(e) lacks init_secret(e+1) and must be sealed member_base
    by C(e+1); a newcomer on that committee learns the set from its notice (and its first
    epoch's view holds it), and a notice whose dormant set does not fit the bundle is refused."""
    dave = w.members[2].id
    r = Resumed(w, frozenset({dave}))
    (notice,) = build_notices(r.change, r.outcome.member_base, common=r.common,
                              resumed_inboxes={r.bob.id: r.inbox}, rng=w.rng)
    data = b"".join(NoticeChunk.from_bytes(w.suite, c).data for c in notice.chunks)
    js = _open(w.suite, data, identity=r.bob.id, keys=[r.resume_keys])
    assert js.dormant_before == frozenset({dave})
    assert r.change.body().dormant == (js.roster.index_of(dave),)
    # An insider holding member_base hides or invents a dormant member: refused.
    header = r.change.header_for(r.bob.id)
    for dormant in ((), (js.roster.index_of(w.members[1].id),),
                    (js.roster.index_of(w.creator.public.to_bytes()),)):
        body = dataclasses.replace(r.change.body(), dormant=tuple(sorted(
            {*dormant, *(() if dormant == () else r.change.dormant)})))
        forged = _insider(header, body, r.outcome.member_base, r.bob.id, w.rng)
        with pytest.raises(ProtocolError):
            _open(w.suite, forged, identity=r.bob.id, keys=[r.resume_keys])


def test_a_carried_entry_without_its_authors_identity_signature_is_refused(w: World) -> None:
    """Review F1: an insider holding member_base cannot slip an unsigned or re-signed carried
    proposal into a notice: every carried entry's identity signature is checked."""
    from triple_ratchet.group.change_proposal import KIND_REMOVE, ChangeProposal

    r = Resumed(w)
    carol = w.members[1]
    proposal = sign_identity_entry(
        carol.identity, TYPE_PROPOSAL, group_id=GROUP, epoch=1, author=2,
        body=ChangeProposal.make(w.suite, KIND_REMOVE, group_id=GROUP, epoch=1,
                                 epoch_id=w.start.epoch_id, author=carol.id,
                                 change=w.creator.public.to_bytes()).to_bytes())
    header = r.change.header_for(r.bob.id)

    def opened(carried: tuple[bytes, ...]) -> JoinStart:
        body = dataclasses.replace(r.change.body(), carried=carried)
        return _open(w.suite, _insider(header, body, r.outcome.member_base, r.bob.id,
                                                w.rng), identity=r.bob.id, keys=[r.resume_keys])

    assert opened((proposal.to_bytes(),)).carried == (proposal.to_bytes(),)
    raw = bytearray(proposal.to_bytes())
    raw[-1] ^= 1  # the signature's last byte
    with pytest.raises(InvalidSignature):
        opened((bytes(raw),))
    # Signed by the creator's identity though Carol's proposal names Carol as author.
    forged = sign_identity_entry(w.creator, TYPE_PROPOSAL, group_id=GROUP, epoch=1, author=2,
                                 body=proposal.body)
    with pytest.raises(InvalidSignature):
        opened((forged.to_bytes(),))


def test_answer_rejoin_for_run_refuses_a_requester_that_was_no_recipient(w: World) -> None:
    commit0 = Commit.from_bytes(w.suite, w.start.commit.body)
    request = make_rejoin_request(w.creator, RecordKeys.generate(w.suite, w.rng),
                                  group_id=GROUP, own_counters=[1],
                                  anchor=w.start.record.anchor, inbox_id=bytes(32))
    with pytest.raises(ProtocolError):  # the creator was on the committee, not sealed to
        answer_rejoin_for_run(request, w.start.inputs, commit0,
                              commit_secret=w.start.commit_secret,
                              member_base=w.start.member_base,
                              author=w.members[0].id, current_epoch=1,
                              current_epoch_id=w.start.epoch_id)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_every_notice_path_is_the_bundles_merkle_path(suite: Suite, n: int) -> None:
    world = World(suite, n=n)
    change = world.start.change
    leaves = [leaf_hash(suite, i, change.roster.entries[i].identity, s)
              for i, s in zip(change.recipient_indices, change.bundle, strict=True)]
    for p, m in enumerate(world.members):
        header = change.header_for(m.id)
        assert header.position == p and header.count == n
        assert header.path == merkle_path(suite, leaves, p)
    assert world.open(n - 1).own_index == n


def test_any_change_to_a_notices_body_or_header_by_an_insider_is_a_typed_error(w: World) -> None:
    """An insider holding member_base can seal anything: every altered body or header must
    still be refused with a `RemoteError`, never a crash (and nothing is kept). The record-key
    signatures of the round items are the one part a recipient cannot check (it lacks epoch
    e's roster, 11.v2.28 step 4), so they are left alone."""
    m = w.members[0]
    change = w.start.change
    body, header = change.body_bytes, change.header_for(m.id).to_bytes()
    unchecked: set[int] = set()
    for raw in change.round1 + change.round3:
        end = body.index(raw) + len(raw)
        unchecked.update(range(end - w.suite.signature_len, end))
    mutable = [i for i in range(len(body)) if i not in unchecked]
    good = Notice.from_bytes(w.notice_of(0))
    r = random.Random(7)
    for _ in range(120):
        b = bytearray(body)
        for at in r.sample(mutable, r.choice((1, 2, 5))):
            b[at] ^= 1 + r.randrange(255)
        with pytest.raises(RemoteError):
            w.open(0, _insider(change.header_for(m.id), bytes(b), w.start.member_base, m.id,
                                  w.rng))
    for _ in range(120):
        h = bytearray(header)
        h[r.randrange(len(h))] ^= 1 + r.randrange(255)
        with pytest.raises(RemoteError):
            w.open(0, Notice(bytes(h), good.nonce, good.sealed_body).to_bytes())
    assert w.open(0).epoch == 1
