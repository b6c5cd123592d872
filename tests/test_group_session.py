"""GroupSession version 2 end to end through an in-memory hub (tests/group_v2_sim.py)."""

from __future__ import annotations

import pytest
from group_v2_sim import Hub, create, make_node, open_from_hub, settle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triple_ratchet import cbor
from triple_ratchet.errors import (
    DecodeError,
    LimitExceeded,
    TripleRatchetError,
    UnsupportedError,
    UsageError,
)
from triple_ratchet.group.events import ForkDetected, Ignored, RemovedFromGroup
from triple_ratchet.group.join_keys import JoinKeyring
from triple_ratchet.group.message import MAX_BODY
from triple_ratchet.group.notice import NoticeAssembler
from triple_ratchet.group.session import GroupSession


def test_create_join_and_talk() -> None:
    hub = Hub()
    a, b, c = (make_node(n) for n in "ABC")
    create(hub, a, [b, c])
    settle(hub, [a, b, c])
    assert b.session is not None and c.session is not None and a.session is not None
    assert a.session.epoch == b.session.epoch == c.session.epoch
    assert a.session.public_epoch_id == b.session.public_epoch_id == c.session.public_epoch_id
    hub.post(a.session.encrypt(b"hello v2", hub.now))
    settle(hub, [a, b, c])
    assert b.messages() == [b"hello v2"] and c.messages() == [b"hello v2"]


@pytest.mark.parametrize("reload", [False, True], ids=["live", "reloaded"])
def test_add_remove_refresh_with_a_member_offline_then_catch_up(reload: bool) -> None:
    hub = Hub()
    a, b, c, d, e = (make_node(n) for n in "ABCDE")
    for n in (c, d):  # the one offline and the joiner: saved and loaded after every step
        n.reload = reload
    create(hub, a, [b, c, e])
    settle(hub, [a, b, c, e])
    assert a.session and b.session and c.session and e.session
    hub.post(a.session.encrypt(b"epoch 1", hub.now))
    settle(hub, [a, b, c, e])
    c.online = False
    # An add while C is offline.
    hub.advance(61_000)
    hub.post(b.session.propose(hub.now, add=[d.take_join_key()]))
    settle(hub, [a, b, c, d, e])
    assert d.session is not None, "the joiner got its notice"
    assert a.session.epoch == 2 and d.session.epoch == 2
    assert a.session.public_epoch_id == d.session.public_epoch_id
    hub.post(d.session.encrypt(b"hi from D", hub.now))
    settle(hub, [a, b, c, d, e])
    assert a.messages()[-1] == b"hi from D"
    # A remove while C is offline.
    hub.advance(61_000)
    hub.post(a.session.propose(hub.now, remove=[e.id]))
    settle(hub, [a, b, c, d, e])
    assert e.session is not None and e.session.status == "removed"
    assert any(isinstance(x, RemovedFromGroup) for x in e.events)
    assert a.session.epoch == 3 and e.id not in a.session.roster
    assert c.id in a.session.roster  # nobody is removed for being offline
    hub.post(b.session.encrypt(b"epoch 3", hub.now))
    settle(hub, [a, b, c, d, e])
    # A refresh while C is offline.
    hub.advance(3_601_000)
    hub.post(d.session.propose(hub.now, refresh=True))
    settle(hub, [a, b, c, d, e])
    assert a.session.epoch == 4 == d.session.epoch
    hub.post(a.session.encrypt(b"epoch 4", hub.now))
    settle(hub, [a, b, c, d, e])
    # C comes back: it reads each epoch's control mailbox to its commit and each group mailbox.
    assert c.session.epoch == 1
    c.online = True
    settle(hub, [a, b, c, d, e])
    assert c.session.epoch == 4
    assert c.session.public_epoch_id == a.session.public_epoch_id
    assert c.messages() == [b"epoch 1", b"hi from D", b"epoch 3", b"epoch 4"]
    hub.post(c.session.encrypt(b"back", hub.now))
    settle(hub, [a, b, c, d, e])
    assert a.messages()[-1] == b"back" and d.messages()[-1] == b"back"


def _group() -> tuple[Hub, list]:  # type: ignore[type-arg]
    hub = Hub()
    nodes = [make_node(n) for n in "ABC"]
    create(hub, nodes[0], nodes[1:])
    settle(hub, nodes)
    return hub, nodes


def test_encrypt_refuses_oversized_at_once_and_holds_nothing() -> None:
    hub, (a, _, _) = _group()
    before = a.session.to_bytes()
    with pytest.raises(LimitExceeded):
        a.session.encrypt(bytes(MAX_BODY + 1), hub.now)
    assert a.session.to_bytes() == before


def test_saved_state_version_1_is_unsupported_and_junk_is_decode_error() -> None:
    _, (a, b, _) = _group()
    data = a.session.to_bytes()
    items = cbor.decode(data, max_size=len(data), max_items=10**6, max_depth=8)
    assert isinstance(items, list)
    items[1] = 1
    with pytest.raises(UnsupportedError, match="protocol version 1 is no longer supported"):
        GroupSession.from_bytes(cbor.encode(items), a.identity)
    with pytest.raises(UsageError):
        GroupSession.from_bytes(data, b.identity)
    for cut in (10, len(data) // 2, len(data) - 1):
        with pytest.raises(DecodeError):
            GroupSession.from_bytes(data[:cut], a.identity)


def test_version_1_group_message_is_refused() -> None:
    hub, (a, b, _) = _group()
    (out,) = a.session.encrypt(b"x", hub.now)
    v1 = bytearray(out.blob)
    assert v1[1:3] == b"\x18\x20" and v1[3] == 2
    v1[3] = 1
    before = b.session.to_bytes()
    with pytest.raises(UnsupportedError, match="protocol version 1 is no longer supported"):
        b.session.receive(bytes(v1), hub.now, entry_time=hub.t)
    assert b.session.to_bytes() == before


def test_forged_control_entries_never_raise_and_change_nothing_but_the_cursor() -> None:
    hub, (a, _b, _) = _group()
    control = a.session.control_mailbox_id
    junk = cbor.encode([0x22, 2, control, bytes(24), bytes(300)])
    events, out = a.session.receive(junk, hub.now, entry_time=hub.t)
    assert out == [] and events and a.session.epoch == 1


def test_altered_echo_of_our_message_is_reported() -> None:
    hub, (a, _b, _) = _group()
    # A copy of A's state (someone holding the epoch's keys) writes under A's index and the
    # generation A is about to use.
    forged = GroupSession.from_bytes(a.session.to_bytes(), a.identity)
    (mine,) = a.session.encrypt(b"second", hub.now)
    events, _ = a.session.receive(mine.blob, hub.now, entry_time=hub.t)
    assert events == []  # the byte-identical echo is ignored
    altered = forged.encrypt(b"altered", hub.now)[0].blob  # same generation, other bytes
    events, _ = a.session.receive(altered, hub.now, entry_time=hub.t)
    assert any(isinstance(e, ForkDetected) and e.kind == "altered echo of our message"
               for e in events)


def test_join_keyring_round_trip_and_one_time_deletion() -> None:
    n = make_node("K")
    ring = n.keyring
    last, one_time = ring.publishable()
    assert last is not None and len(one_time) == 2
    assert JoinKeyring.from_bytes(ring.to_bytes()).to_bytes() == ring.to_bytes()
    used = ring.used(ring.held[0].join_key.receive_key)
    assert len(used.held) == 2 and used.publishable()[1] == one_time[1:]
    # The last-resort key is kept after use; every key goes once expired.
    last_key = ring.held[-1].join_key
    assert len(ring.used(last_key.receive_key).held) == 3
    assert ring.expire(last_key.expiry).held == ()
    bad = bytearray(ring.to_bytes())
    bad[-40] ^= 1
    with pytest.raises(Exception) as info:
        JoinKeyring.from_bytes(bytes(bad))
    assert type(info.value).__module__ == "triple_ratchet.errors"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.integers(0, 3), st.integers(0, 2**40))
def test_hostile_blobs_give_typed_errors_and_leave_the_state_unchanged(
        junk: bytes, where: int, t: int) -> None:
    hub, (a, b, _c) = _SHARED
    assert a.session is not None and b.session is not None
    s2 = GroupSession.from_bytes(b.session.to_bytes(), b.identity)
    boxes = [s2.mailbox_id, s2.control_mailbox_id]
    if where == 0:
        blob = junk
    elif where in (1, 2):  # framed like a group message / control blob of our mailboxes
        blob = cbor.encode([0x20 if where == 1 else 0x22, 2, boxes[where - 1], junk[:32],
                            junk[32:]])
    else:  # a real message of A's, one byte changed
        sender = GroupSession.from_bytes(a.session.to_bytes(), a.identity)
        flipped = bytearray(sender.encrypt(b"x", hub.now)[0].blob)
        flipped[len(junk) % len(flipped)] ^= 1 + (len(junk) % 255)
        blob = bytes(flipped)
    state = s2.to_bytes()
    try:
        s2.receive(blob, hub.now, entry_time=t)
    except TripleRatchetError:
        assert s2.to_bytes() == state
    except Exception as exc:  # pragma: no cover - the property
        raise AssertionError(f"untyped {type(exc).__name__}") from exc


def test_hostile_saved_state_is_refused_quickly() -> None:
    _, (a, _b, _c) = _SHARED
    huge = cbor.encode(["triple-ratchet group session", 2, 1, b"g", "active", None, None, b"",
                        [[b"", b""]] * 100_000, [], [], 0, [], False])
    with pytest.raises((DecodeError, LimitExceeded)):
        GroupSession.from_bytes(huge, a.identity)
    wrong_status = cbor.encode(["triple-ratchet group session", 2, 1, b"g", "active", None,
                                None, b"", [], [], [], 0, [], False])
    with pytest.raises(DecodeError):
        GroupSession.from_bytes(wrong_status, a.identity)


_SHARED = _group()


def test_rejoin_request_resume_proposal_and_notice() -> None:
    hub = Hub()
    a, b, c = (make_node(n) for n in "ABC")
    create(hub, a, [b, c])
    settle(hub, [a, b, c])
    assert a.session and b.session and c.session
    # C lost its keys (say, restored without them): it asks A, over their pairwise session,
    # to resume it; its notice is to come to its inbox.
    c.online = False
    request = c.session.rejoin_request(c.inbox)
    hub.advance(61_000)
    events, out = a.session.on_rejoin_request(request, c.identity.public, hub.now)
    assert events == [] and out
    hub.post(out)
    # A forged request (another peer) is ignored, not posted.
    events, out = b.session.on_rejoin_request(request, a.identity.public, hub.now)
    assert out == [] and isinstance(events[0], Ignored)
    settle(hub, [a, b, c])
    assert a.session.epoch == 2 == b.session.epoch
    # The notice is in C's inbox: C resumes into epoch 2 with its resume record.
    asm = NoticeAssembler(c.identity.suite)
    notice = None
    for blob, _ in hub.boxes[c.inbox]:
        asm, notice = asm.receive(blob)
    assert notice is not None
    start = open_from_hub(hub, c.identity.suite, notice, identity=c.id,
                          keys=c.session.resume_keys())
    assert start.resumed and start.epoch == 2
    c.session.resume(start)
    c.cursors = {}
    c.online = True
    settle(hub, [a, b, c])
    assert c.session.public_epoch_id == a.session.public_epoch_id
    hub.post(c.session.encrypt(b"resumed", hub.now))
    settle(hub, [a, b, c])
    assert a.messages()[-1] == b"resumed" and b.messages()[-1] == b"resumed"


def test_member_offline_through_20_epochs_reads_every_message_of_each() -> None:
    hub = Hub()
    nodes = [make_node(n) for n in "ABC"]
    a, _b, c = nodes
    create(hub, a, nodes[1:])
    settle(hub, nodes)
    assert a.session is not None and c.session is not None
    c.online = False
    for i in range(20):
        hub.advance(3_601_000)
        hub.post(a.session.propose(hub.now, refresh=True))
        settle(hub, nodes)
        hub.post(a.session.encrypt(b"epoch %d" % (i + 2), hub.now))
        settle(hub, nodes)
    assert a.session.epoch == 21 and c.session.epoch == 1
    c.online = True
    settle(hub, nodes)
    assert c.session.epoch == 21 and c.session.public_epoch_id == a.session.public_epoch_id
    assert c.messages() == [b"epoch %d" % (i + 2) for i in range(20)]
    assert c.id in a.session.roster and not any(isinstance(e, RemovedFromGroup)
                                                for e in c.events)
    # Epoch 20's group mailbox is read on until the grace after its commit has passed.
    hub.advance(301_000)
    settle(hub, nodes)
    assert c.session.mailboxes() == (c.session.mailbox_id, c.session.control_mailbox_id)


def test_clocks_ahead_of_the_hub_retry_announcements_and_ticks_and_the_change_completes(
        ) -> None:
    hub = Hub()
    nodes = [make_node(n) for n in "ABCD"]
    a, b, c, _d = nodes
    create(hub, a, nodes[1:])
    settle(hub, nodes)
    assert a.session is not None and b.session is not None
    hub.advance(3_601_000)
    hub.post(a.session.propose(hub.now, refresh=True))
    for _ in range(40):  # stop as soon as epoch 2 starts, so T0(2) is about now
        settle(hub, nodes, quiet_rounds=1)
        if all(n.session is not None and n.session.epoch == 2 for n in nodes):
            break
    assert a.session.epoch == 2
    # Every member's clock runs 30 s ahead of the hub: their first announcements come before
    # T0(2) + 60 s by hub time ("announcement too early") and their first TICKs before the
    # deadlines; both are sent again later and the change completes.
    for n in nodes:
        n.skew_ms = 30_000
    hub.post(b.session.propose(hub.now + 30, remove=[c.id]))
    settle(hub, nodes)
    reasons = {e.reason for n in nodes for e in n.events if isinstance(e, Ignored)}
    assert "announcement too early" in reasons
    assert "tick already sent in this phase" in reasons
    assert a.session.epoch == 3 == b.session.epoch
    assert c.id not in a.session.roster


def test_a_newcomer_shown_another_view_by_a_roster_member_reports_rejoin_needed() -> None:
    """Review F1: announcements carry `view_hash(e)`. D, in its first epoch (from a notice),
    reads an identity-signed announcement of a roster member for another view of the epoch: its
    notice was wrong, so it reports `RejoinNeeded` and stops; B, whose view is its own, only
    ignores the announcement, and the change completes."""
    from triple_ratchet.group.committee import RunSeed, make_announcement
    from triple_ratchet.group.control import TYPE_ANNOUNCEMENT, seal_entry, sign_identity_entry
    from triple_ratchet.group.events import RejoinNeeded
    from triple_ratchet.group.session import Outgoing

    hub = Hub()
    a, b, c, d, e = (make_node(n) for n in "ABCDE")
    create(hub, a, [b, c])
    settle(hub, [a, b, c])
    hub.advance(61_000)
    assert b.session is not None
    hub.post(b.session.propose(hub.now, add=[d.take_join_key()]))
    settle(hub, [a, b, c, d])
    assert a.session and d.session and d.session.epoch == 2
    assert not any(isinstance(x, RejoinNeeded) for x in d.events)
    hub.advance(61_000)
    hub.post(a.session.propose(hub.now, add=[e.take_join_key()]))
    a.pump(hub)  # A reads its proposal: the attempt begins
    log = a.session._log()  # the test forges an entry of A's mailbox
    view, attempt = log.view, log.attempt
    assert attempt is not None
    suite = a.identity.suite
    body = make_announcement(RunSeed.generate(suite, a.rng), group_id=view.group_id,
                             epoch=view.epoch, run=1, identity=a.id,
                             applied_hash=attempt.applied_hash,
                             roster_hash=attempt.roster_hash,
                             view_hash=suite.hash(b"another view"))
    ce = sign_identity_entry(a.identity, TYPE_ANNOUNCEMENT, group_id=view.group_id,
                             epoch=view.epoch, author=a.session.own_index, body=body.to_bytes())
    hub.post([Outgoing(view.mailbox_id,
                       seal_entry(suite, view.traffic_key, view.mailbox_id, ce, a.rng))])
    settle(hub, [a, b, c, d, e])
    assert any(isinstance(x, RejoinNeeded) and x.epoch == 2 for x in d.events)
    assert d.session.status == "rejoin needed"
    assert any(isinstance(x, Ignored) and x.reason == "announcement for another view of the epoch"
               for x in b.events)
    assert not any(isinstance(x, RejoinNeeded) for x in b.events)
    assert b.session.epoch == 3 and e.session is not None and e.session.epoch == 3


def test_a_rejoin_request_is_answered_once_per_epoch_and_takes_no_proposal_slot() -> None:
    """Review F8: a member answers a requester at most once per epoch (and not while anyone's
    resume of it is pending), and its resume proposal does not take its own pending slot."""
    hub = Hub()
    a, b, c, d = (make_node(n) for n in "ABCD")
    create(hub, a, [b, c])
    settle(hub, [a, b, c])
    assert a.session and b.session and c.session
    request = c.session.rejoin_request(c.inbox)
    hub.advance(61_000)
    events, out = a.session.on_rejoin_request(request, c.identity.public, hub.now)
    assert events == [] and out
    hub.post(out)
    again, out2 = a.session.on_rejoin_request(request, c.identity.public, hub.now)
    assert out2 == [] and [e.reason for e in again if isinstance(e, Ignored)] == [
        "rejoin request: answered in this epoch"]
    # A's own slot is free: it still proposes an add in the same epoch.
    hub.post(a.session.propose(hub.now, add=[d.take_join_key()]))
    b.pump(hub)
    # B has read A's resume of C: it does not answer C's request too.
    events, out3 = b.session.on_rejoin_request(request, c.identity.public, hub.now)
    assert out3 == [] and [e.reason for e in events if isinstance(e, Ignored)] == [
        "rejoin request: a resume of this member is pending"]


def test_a_joiners_first_epoch_view_holds_the_notices_dormant_members() -> None:
    """Review F2: the members dormant at the previous snapshot come from the notice into the
    joiner's first-epoch view (whom it seals member_base to on a committee)."""
    import dataclasses

    hub = Hub()
    a, b = make_node("A"), make_node("B")
    create(hub, a, [b])
    asm = NoticeAssembler(b.identity.suite)
    notice = None
    for blob, _ in hub.boxes[b.inbox]:
        asm, notice = asm.receive(blob)
    assert notice is not None
    start = open_from_hub(hub, b.identity.suite, notice, identity=b.id, keys=b.keyring.keys())
    assert start.dormant_before == frozenset()  # a created group has nobody dormant
    start = dataclasses.replace(start, dormant_before=frozenset({a.id}))
    session, _ = GroupSession.join(b.identity, start, b.keyring, rng=b.rng)
    assert session._log().view.dormant_before == frozenset({a.id})
    again = GroupSession.from_bytes(session.to_bytes(), b.identity, rng=b.rng)
    assert again._log().view.dormant_before == frozenset({a.id})
