"""Adversarial review of the newest paths of version 2's group layer: the notices' common part
(11.v2.13, 11.v2.28), the rejoin path without a session (11.v2.31), and the rule that a member
sends nothing while its control mailbox was last read more than GRACE ago (11.v2.29) under a
hub that lies about its clock. An attack the code withstands is a passing test that pins the
property; a flaw is a strict xfail naming the rule it breaks."""

from __future__ import annotations

from dataclasses import replace

import pytest
from group_v2_sim import T_START, Hub, Node, common_at, create, make_node, settle

from triple_ratchet.errors import (
    AuthenticationError,
    ProtocolError,
    StateError,
    TripleRatchetError,
)
from triple_ratchet.group.events import ForkDetected, Outgoing, RejoinNeeded
from triple_ratchet.group.notice import (
    NOTICE_CHUNK_SIZE,
    CommonAssembler,
    NoticeAssembler,
    NoticeBody,
    NoticeChunk,
    chunk_notice,
    common_mailbox,
    create_group,
    notice_id,
    open_common,
    open_notice_sealing,
    seal_common,
    seal_notice,
)
from triple_ratchet.group.records import JoinKey, RecordKeys
from triple_ratchet.group.session import GroupSession
from triple_ratchet.identity import IdentityKeyPair
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import DEFAULT_SUITE

HOUR = 3_600_000
YEAR = 365 * 24 * HOUR


def _s(node: Node) -> GroupSession:
    assert node.session is not None
    return node.session


def _group(names: str) -> tuple[Hub, list[Node]]:
    hub = Hub()
    nodes = [make_node(n) for n in names]
    create(hub, nodes[0], nodes[1:])
    settle(hub, nodes)
    assert all(n.session is not None and n.session.epoch == 1 for n in nodes)
    return hub, nodes


def _common_chunks(rng: DeterministicRandom, member_base: bytes
                   ) -> tuple[bytes, bytes, list[bytes]]:
    """A common part of three chunks (a big group's roster makes one this long)."""
    body = rng(2 * NOTICE_CHUNK_SIZE + 1000)
    common = seal_common(DEFAULT_SUITE, body, member_base, rng)
    return body, common, list(chunk_notice(DEFAULT_SUITE, common))


# --- (1) the common part: a member injects one chunk while the honest copy is being posted ----


@pytest.mark.xfail(strict=True, reason=(
    "11.v2.13/11.v2.28: every member of e+1 knows member_base, so it can read the common "
    "mailbox, learn the common_hash from the first honest chunk, and post one chunk with that "
    "hash and the same index but other data before the honest copy's next chunk lands; "
    "CommonAssembler.receive then drops every chunk it held, and the honest copy never "
    "completes although all of its chunks are in the mailbox: the joiner never joins"))
def test_one_injected_chunk_keeps_the_joiner_from_assembling_a_common_part_all_at_the_hub(
) -> None:
    rng = DeterministicRandom(b"review3 common")
    member_base = rng(DEFAULT_SUITE.hash_len)
    body, common, honest = _common_chunks(rng, member_base)
    assert len(honest) == 3
    nid = notice_id(DEFAULT_SUITE, common)
    # The insider saw chunk 0 (its id is in the clear); it posts a chunk 1 of its own.
    forged = NoticeChunk(nid, 1, 3, bytes(NOTICE_CHUNK_SIZE)).to_bytes()
    mailbox = [honest[0], forged, honest[1], honest[2]]  # in the order the hub accepted them
    # The joiner reads the mailbox as 11.v2.28 says: refused chunks reset, read on.
    assembler = CommonAssembler(DEFAULT_SUITE, nid)
    got = None
    for blob in mailbox:
        try:
            assembler, part = assembler.receive(blob)
        except AuthenticationError:
            assembler = assembler.reset()
            continue
        got = part if part is not None else got
    assert got == common
    assert open_common(DEFAULT_SUITE, got, member_base) == body


@pytest.mark.xfail(strict=True, reason=(
    "11.v2.13/11.v2.28 (CommonAssembler.receive): a group of 64 already has a common part of "
    "two chunks; the insider (any member of epoch 1: it holds member_base, so the common "
    "mailbox's key and the part's key) posts a chunk 1 of its own under the notice's hash "
    "between the honest chunks; the joiner, reading the mailbox from its start as often as it "
    "likes, never completes the part and is never told why: it never joins"))
def test_a_joiner_of_a_64_member_group_joins_despite_an_insiders_chunk_in_the_common_mailbox(
) -> None:
    suite = DEFAULT_SUITE
    rng = DeterministicRandom(b"review3 big creation")
    creator = IdentityKeyPair.generate(suite, rng)
    joiners = []
    for _ in range(63):
        identity = IdentityKeyPair.generate(suite, rng)
        keys = RecordKeys.generate(suite, rng)
        joiners.append((identity, keys, JoinKey.sign(identity, keys, expiry=T_START + 10**9,
                                                      inbox_id=rng(32))))
    start, notices = create_group(creator, RecordKeys.generate(suite, rng),
                                  group_id=b"review3 big", join_keys=[j[2] for j in joiners],
                                  now=T_START, rng=rng)
    assert start.common is not None and len(start.common.chunks) == 2
    identity, keys, _ = joiners[0]
    me = identity.public.to_bytes()
    notice = b"".join(NoticeChunk.from_bytes(suite, c).data for c in notices[0].chunks)
    opened = open_notice_sealing(suite, notice, identity=me, keys=[keys])
    first = NoticeChunk.from_bytes(suite, start.common.chunks[0])
    # Insider: it read chunk 0 (or computed member_base's mailbox and watched it).
    forged = NoticeChunk(first.notice_id, 1, first.count, b"insider").to_bytes()
    mailbox = [start.common.chunks[0], forged, start.common.chunks[1]]
    got = None
    for _ in range(3):  # the joiner reads the whole mailbox again, and again
        assembler = opened.assembler()
        for blob in mailbox:
            try:
                assembler, part = assembler.receive(blob)
            except AuthenticationError:
                assembler = assembler.reset()
                continue
            got = part if part is not None else got
    assert got is not None
    assert opened.complete(got).epoch_id == start.epoch_id


def test_a_forged_whole_copy_under_the_notices_hash_is_refused_and_the_honest_one_still_read(
) -> None:
    """Withstood: a complete wrong copy named by the notice's hash (posted before the honest
    one) fails the hash check at its last chunk; after `reset` the honest copy assembles."""
    rng = DeterministicRandom(b"review3 common whole")
    member_base = rng(DEFAULT_SUITE.hash_len)
    body, common, honest = _common_chunks(rng, member_base)
    nid = notice_id(DEFAULT_SUITE, common)
    forged = [NoticeChunk(nid, i, 3, bytes(len(NoticeChunk.from_bytes(
        DEFAULT_SUITE, c).data))).to_bytes() for i, c in enumerate(honest)]
    assembler = CommonAssembler(DEFAULT_SUITE, nid)
    refused = 0
    got = None
    for blob in forged + honest:
        try:
            assembler, part = assembler.receive(blob)
        except AuthenticationError:
            assembler = assembler.reset()
            refused += 1
            continue
        got = part if part is not None else got
    assert refused == 1
    assert got is not None and open_common(DEFAULT_SUITE, got, member_base) == body
    # An outsider (no member_base) learns nothing from the mailbox.
    with pytest.raises(AuthenticationError):
        open_common(DEFAULT_SUITE, common, rng(DEFAULT_SUITE.hash_len))


# --- (2) the GRACE rule of 11.v2.29 under a hub that lies about its clock -------------------


def _lie_once(hub: Hub, node: Node, ahead_ms: int) -> None:
    """The hub answers one PUT with an acceptance time `ahead_ms` in the future."""
    s = _s(node)
    s.put_accepted(s.control_mailbox_id, hub.t + ahead_ms, node.now(hub))


def test_a_hub_time_a_year_ahead_does_not_stop_a_member_sending_for_good() -> None:
    """The hub's one lie moves the member's estimate of hub time a year on (it never goes back:
    11.v2.32). The member is refused at once (its last read looks a year old), but reading the
    control mailbox to its end again lets it send, and it still sends after the next change."""
    hub, nodes = _group("ABCD")
    a, b, c, d = nodes
    _lie_once(hub, b, YEAR)
    with pytest.raises(StateError):
        _s(b).encrypt(b"too early", b.now(hub))
    settle(hub, nodes)
    hub.post(_s(b).encrypt(b"after reading to the end", b.now(hub)))
    hub.post(_s(a).propose(a.now(hub), remove=[d.id]))
    settle(hub, nodes)
    assert _s(b).epoch == _s(a).epoch == 2 and d.id not in _s(b).roster
    hub.post(_s(b).encrypt(b"in the next epoch", b.now(hub)))
    settle(hub, nodes)
    assert b"after reading to the end" in a.messages()
    assert b"in the next epoch" in a.messages() and b"in the next epoch" in c.messages()


def test_a_hub_time_a_year_ahead_does_not_make_the_group_change_epochs_without_end() -> None:
    """The same lie makes every own record of the member look older than ROTATE_MAX_AGE
    (R10): it must rotate once, not after every commit (each rotation is a change of the whole
    group)."""
    hub, nodes = _group("ABC")
    a, b, _ = nodes
    _lie_once(hub, b, YEAR)
    settle(hub, nodes)
    first = _s(a).epoch
    for _ in range(3):
        settle(hub, nodes)
    assert _s(a).epoch == first
    assert first <= 3


# --- (3) the grace after a change: a late member's last epoch-e message -------------------------


def test_a_late_members_message_within_the_grace_reaches_the_members_that_moved_on() -> None:
    hub, nodes = _group("ABCD")
    a, b, c, d = nodes
    hub.advance(61_000)
    b.online = False  # B reads the change late (its last read is recent: it may still send)
    hub.post(_s(a).propose(a.now(hub), remove=[d.id]))
    settle(hub, [a, c, d])
    assert _s(a).epoch == _s(c).epoch == 2 and _s(b).epoch == 1
    decided_at = _s(a).control_log.view.t0
    assert decided_at is not None
    hub.t = max(hub.t, decided_at) + 60_000  # a minute after the change: within GRACE
    b.online = True
    out = _s(b).encrypt(b"B, a minute after the change, in epoch 1", b.now(hub))
    hub.post(out)
    assert hub.t - decided_at <= 300_000
    settle(hub, nodes)
    assert _s(b).epoch == 2
    assert b"B, a minute after the change, in epoch 1" in a.messages()
    assert b"B, a minute after the change, in epoch 1" in c.messages()


U64_MAX = 2**64 - 1


def test_one_frame_with_the_largest_hub_time_does_not_make_the_session_unsavable() -> None:
    hub, nodes = _group("ABC")
    a, b, _ = nodes
    hub.post(_s(a).encrypt(b"hello", a.now(hub)))
    blob, t = hub.boxes[_s(a).mailbox_id][-1]
    s = _s(b)
    before = s.to_bytes()
    with pytest.raises(ProtocolError, match="hub time"):  # refused outright, nothing kept
        s.receive(blob, b.now(hub), entry_time=t, hub_time=U64_MAX)
    assert s.to_bytes() == before
    with pytest.raises(ProtocolError, match="hub time"):
        s.put_accepted(s.mailbox_id, U64_MAX, b.now(hub))
    assert s.to_bytes() == before
    hub.advance(5_000)
    s.caught_up(s.control_mailbox_id, b.now(hub))
    try:
        data = s.to_bytes()
    except TripleRatchetError as exc:
        pytest.fail(f"the session can no longer be saved: {exc}")
    loaded = GroupSession.from_bytes(data, b.identity, rng=b.rng)
    assert loaded.to_bytes() == data


def test_an_old_epochs_reading_state_goes_once_a_later_epochs_entry_past_the_grace_is_read(
) -> None:
    hub, nodes = _group("ABCD")
    a, b, c, d = nodes
    hub.advance(61_000)
    epoch1_box = _s(a).mailbox_id
    hub.post(_s(b).encrypt(b"epoch 1", b.now(hub)))
    c.online = False
    hub.post(_s(a).propose(a.now(hub), remove=[d.id]))
    settle(hub, [a, b, d])
    decided_at = _s(a).control_log.view.t0
    assert _s(a).epoch == 2 and decided_at is not None
    # C catches up by hand: epoch 1's group mailbox to its end, then the control mailbox (the
    # deciding commit); it says caught_up of neither.
    read: list[object] = []
    for box in (epoch1_box, _s(c).control_mailbox_id):
        for blob, t in hub.boxes[box]:
            read += _s(c).receive(blob, c.now(hub), entry_time=t, hub_time=hub.t)[0]
    assert _s(c).epoch == 2
    assert [getattr(e, "body", None) for e in read].count(b"epoch 1") == 1
    assert epoch1_box in _s(c).mailboxes()
    hub.t = decided_at + 300_000 + 10_000  # past the grace of C(1)
    hub.post(_s(a).encrypt(b"epoch 2, past the grace", a.now(hub)))
    blob, t = hub.boxes[_s(a).mailbox_id][-1]
    events, _ = _s(c).receive(blob, c.now(hub), entry_time=t, hub_time=hub.t)
    assert [getattr(e, "body", None) for e in events].count(b"epoch 2, past the grace") == 1
    assert epoch1_box not in _s(c).mailboxes()


# --- (4) the GRACE rule for the creator, who has never said caught_up ---------------------------


def test_a_creator_back_a_day_after_creating_cannot_send_in_the_epoch_a_removal_ended() -> None:
    hub = Hub()
    a, b, c, d = (make_node(n) for n in "ABCD")
    create(hub, a, [b, c, d])
    a.online = False  # the creator's device sleeps right after creating
    settle(hub, [b, c, d])
    assert _s(b).epoch == 1
    hub.advance(61_000)
    hub.post(_s(b).propose(b.now(hub), remove=[d.id]))
    settle(hub, [b, c, d])
    assert _s(b).epoch == 2 and d.id not in _s(b).roster and _s(a).epoch == 1
    hub.advance(24 * 3_600_000)
    a.online = True
    before = _s(a).to_bytes()
    with pytest.raises(StateError, match="caught_up"):
        _s(a).encrypt(b"a day after D's removal", a.now(hub))
    assert _s(a).to_bytes() == before


# --- (5) the notice's T0, taken as given: an insider's own notice to a joiner -------------------


def test_an_insiders_notice_with_a_later_t0_does_not_split_the_joiner_off_silently() -> None:
    _insiders_notice_moves_t0(30 * 60_000)


def test_an_insiders_notice_with_an_earlier_t0_is_caught_at_the_next_announcement() -> None:
    """Withstood: T0 moved 30 min earlier leaves the honest announcements in time for the
    joiner, whose view hash then differs: RejoinNeeded, not a silent split."""
    _insiders_notice_moves_t0(-30 * 60_000)


def _insiders_notice_moves_t0(delta_ms: int) -> None:
    suite = DEFAULT_SUITE
    hub, nodes = _group("ABC")
    a, b, c = nodes
    e = make_node("E")
    hub.advance(61_000)
    first = len(hub.boxes.get(e.inbox, []))
    hub.post(_s(a).propose(a.now(hub), add=[e.take_join_key()]))
    settle(hub, [a, b, c])
    assert _s(a).epoch == 2
    # The insider B (a member of epoch 2: it holds member_base, as every recipient of C(1))
    # reads the honest notice's public header and the common part, and sends E its own.
    assembler, notice, at = NoticeAssembler(suite), None, first
    for blob, _ in hub.boxes[e.inbox][first:]:
        assembler, notice = assembler.receive(blob)
        if notice is not None:
            break
        at += 1
    assert notice is not None
    opened = open_notice_sealing(suite, notice, identity=e.id, keys=e.keyring.keys())
    member_base = opened.member_base  # what B computes itself
    body = NoticeBody.from_bytes(suite, open_common(suite, common_at(hub, opened), member_base),
                                 group_id=opened.header.group_id)
    assert body.t0 is not None
    rng = DeterministicRandom(b"review3 insider B")
    forged = seal_common(suite, replace(body, t0=body.t0 + delta_ms).to_bytes(),
                         member_base, rng)
    hub.post([Outgoing(common_mailbox(suite, member_base).mailbox_id, ch)
              for ch in chunk_notice(suite, forged)])
    own_notice = seal_notice(opened.header, notice_id(suite, forged), member_base, e.id, rng)
    for j, chunk in enumerate(chunk_notice(suite, own_notice)):  # B's came first
        hub.boxes[e.inbox].insert(at + j, (chunk, hub.t))
    settle(hub, [a, b, c, e])
    assert _s(e).epoch == 2
    hub.advance(61_000)
    hub.post(_s(b).propose(b.now(hub), remove=[c.id]))
    settle(hub, [a, b, c, e])
    hub.advance(HOUR)
    settle(hub, [a, b, c, e])
    assert _s(a).epoch == _s(b).epoch == 3
    told = any(isinstance(ev, RejoinNeeded | ForkDetected) for ev in e.events)
    assert told or _s(e).public_epoch_id == _s(a).public_epoch_id


def test_an_absurd_local_clock_cannot_make_the_saved_state_unloadable() -> None:
    """The caller's clock feeds the hub-time estimate saved with the session: one far beyond
    any real time is clamped, so the state still saves and loads."""
    _, nodes = _group("ABC")
    b = nodes[1]
    s = _s(b)
    s.caught_up(s.control_mailbox_id, 2.0**62)  # seconds: far past 2^53 ms
    data = s.to_bytes()
    assert GroupSession.from_bytes(data, b.identity, rng=b.rng).to_bytes() == data
