"""Member-side promises of version 2 (spec 11.v2.15-16, 11.v2.28-29, 11.v2.32, 11.v2.37) through
the in-memory hub of tests/group_v2_sim.py: rotation by age, re-sending own entries a commit did
not take, confirmed membership, HubClockSkew, and epoch claims that report a split in band."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest
from group_v2_sim import Hub, Node, create, make_node, open_from_hub, settle

from triple_ratchet import cbor
from triple_ratchet.errors import DecodeError, LimitExceeded, ProtocolError, UnsupportedError
from triple_ratchet.group.control import TYPE_RECORD, open_entry
from triple_ratchet.group.control_log import ControlLog
from triple_ratchet.group.epoch_claim import (
    EPOCH_NOT_HELD,
    FORK_HUB_TIMES,
    FORK_TWO_COMMITS,
    LATER_EPOCH,
    MAX_REMEMBERED_EPOCHS,
    NOT_A_MEMBER,
    EpochClaim,
    HeldEpoch,
    remember,
)
from triple_ratchet.group.events import (
    Event,
    ForkDetected,
    HubClockSkew,
    Ignored,
    MembershipConfirmed,
    MembershipUnconfirmed,
    Outgoing,
    UpdateNotApplied,
)
from triple_ratchet.group.records import PURPOSE_ROTATE, MemberKeyRecord
from triple_ratchet.group.session import GroupSession
from triple_ratchet.group.session_features import ROTATE_MAX_AGE, SKEW_MAX
from triple_ratchet.random import DeterministicRandom

DAY = 24 * 3_600_000


def _group(names: str = "ABC") -> tuple[Hub, list[Node]]:
    hub = Hub()
    nodes = [make_node(n) for n in names]
    create(hub, nodes[0], nodes[1:])
    settle(hub, nodes)
    assert all(n.session is not None and n.session.epoch == 1 for n in nodes)
    return hub, nodes


def _records_applied(hub: Hub, nodes: list[Node]) -> None:
    """A refresh: the joiners' first rotation records (pending in epoch 1) become their entries."""
    hub.advance(3_601_000)
    hub.post(_s(nodes[0]).propose(hub.now, refresh=True))
    settle(hub, nodes)
    assert all(_s(n).epoch == 2 for n in nodes)


def _s(node: Node) -> GroupSession:
    assert node.session is not None
    return node.session


def _entry_types(session: GroupSession, out: list[Outgoing]) -> list[int]:
    """The control entry types of what `session` posts into its current control mailbox."""
    view = session.control_log.view
    return [open_entry(view.suite, view.traffic_key, view.mailbox_id, o.blob,
                       group_id=view.group_id, epoch=view.epoch,
                       roster_size=len(view.roster)).entry_type
            for o in out if o.mailbox_id == view.mailbox_id]


def _entry_of(session: GroupSession, identity: bytes) -> MemberKeyRecord:
    view = session.control_log.view
    index = view.roster.index_of(identity)
    assert index is not None
    keys = view.roster.entries[index].keys
    assert isinstance(keys, MemberKeyRecord)
    return keys


def _records_by(session: GroupSession, identity: bytes) -> list[MemberKeyRecord]:
    return [p.keys() for p in session.control_log.records
            if p.identity == identity and p.cursor is not None]


def _clone(node: Node, name: str) -> Node:
    """Another copy of `node` (same identity and state, its own randomness and cursors)."""
    assert node.session is not None
    rng = DeterministicRandom(b"clone " + name.encode())
    session = GroupSession.from_bytes(node.session.to_bytes(), node.identity, rng=rng)
    return Node(name, node.identity, rng, node.keyring, node.inbox, session,
                dict(node.cursors), online=node.online)


def _hub_copy(hub: Hub) -> Hub:
    other = Hub()
    other.t = hub.t
    other.boxes = copy.deepcopy(hub.boxes)
    return other


# --- 1. rotation by age (11.v2.29, R10) --------------------------------------------------------


def test_a_member_whose_record_is_older_than_rotate_max_age_rotates_once_and_the_commit_applies_it(
        ) -> None:
    hub, (a, b, c) = _group()
    _records_applied(hub, [a, b, c])
    # A fresh record: nothing to rotate.
    assert _s(b).tick(b.now(hub)) == ([], [])
    before = _entry_of(_s(a), b.id)
    hub.advance(ROTATE_MAX_AGE + DAY)
    _events, out = _s(b).tick(b.now(hub))
    assert _entry_types(_s(b), out) == [TYPE_RECORD] and len(out) == 1
    hub.post(out)
    # One own rotation pending at a time: ticking again before a commit posts nothing more.
    assert _s(b).tick(b.now(hub) + 60) == ([], [])
    settle(hub, [a, b, c])
    hub.post(_s(a).propose(hub.now, refresh=True))
    settle(hub, [a, b, c])
    assert _s(a).epoch == 3 == _s(b).epoch
    after = _entry_of(_s(a), b.id)
    assert after.counter == before.counter + 1 and after.purpose == PURPOSE_ROTATE
    assert after.signing_key != before.signing_key and after.receive_key != before.receive_key
    assert _entry_of(_s(b), b.id) == after


def test_a_member_rotates_after_a_commit_when_its_record_is_older_than_a_day() -> None:
    hub, (a, b, c) = _group()
    # The joiners' first records (posted in epoch 1) are two days old when C(1) applies them.
    hub.advance(2 * DAY)  # older than ROTATE_MIN_INTERVAL, younger than ROTATE_MAX_AGE
    hub.post(_s(a).propose(hub.now, refresh=True))
    settle(hub, [a, b, c])
    assert _s(a).epoch == 2
    # Each posted one rotation record into epoch 2's control mailbox after the commit (the
    # creator's record, from creation, has posted_at 0: old as a sender rule).
    for n in (a, b, c):
        records = _records_by(_s(a), n.id)
        assert len(records) == 1, n.name
        assert records[0].counter == _entry_of(_s(a), n.id).counter + 1


def test_a_resumed_member_posts_its_rotation_record_at_once() -> None:
    from triple_ratchet.group.notice import NoticeAssembler

    hub, (a, b, c) = _group()
    c.online = False
    request = _s(c).rejoin_request(c.inbox)
    hub.advance(61_000)
    _, out = _s(a).on_rejoin_request(request, c.identity.public, hub.now)
    hub.post(out)
    settle(hub, [a, b, c])
    asm = NoticeAssembler(c.identity.suite)
    notice = None
    for blob, _ in hub.boxes[c.inbox]:
        asm, notice = asm.receive(blob)
    assert notice is not None
    start = open_from_hub(hub, c.identity.suite, notice, identity=c.id, keys=_s(c).resume_keys())
    events = _s(c).resume(start)
    assert MembershipUnconfirmed() in events
    c.cursors = {}
    c.online = True
    settle(hub, [a, b, c])
    # Nobody called rotate(): the session posted it, since its entry is a resume record.
    records = _records_by(_s(a), c.id)
    assert [r.purpose for r in records] == [PURPOSE_ROTATE]
    assert records[0].counter == _entry_of(_s(a), c.id).counter + 1


# --- 2. re-sending own entries a commit did not take (11.v2.15, 11.v2.16) --------------------


def _change_while_offline(hub: Hub, nodes: list[Node], late: Node) -> None:
    """A refresh decided while `late` is offline (so its entries land after the commit)."""
    a = nodes[0]
    late.online = False
    epoch = _s(a).epoch
    hub.advance(3_601_000)
    hub.post(_s(a).propose(hub.now, refresh=True))
    settle(hub, nodes)
    assert _s(a).epoch == epoch + 1 and _s(late).epoch == epoch


def test_an_own_proposal_after_the_deciding_commit_is_remade_for_the_next_epoch_and_applied(
        ) -> None:
    hub, nodes = _group("ABCD")
    a, b, _c, d = nodes
    _change_while_offline(hub, nodes, b)
    # B, not having read the commit, proposes to remove D: its entry lands after C(1).
    hub.post(_s(b).propose(hub.now, remove=[d.id]))
    epoch1_control = _s(b).control_mailbox_id
    b.online = True
    settle(hub, nodes)
    assert any(isinstance(e, Ignored) and e.reason.startswith(
        "our proposal came after the deciding commit") for e in b.events)
    # The proposal was remade for epoch 2 (epoch 2's id) and applied by the next change.
    assert _s(a).epoch == 3 == _s(b).epoch
    assert d.id not in _s(a).roster and d.id not in _s(b).roster
    assert _s(d).status == "removed"
    # B's late original stays in epoch 1's mailbox, ignored there; nothing else re-posted.
    assert hub.boxes[epoch1_control]


def test_the_remade_proposal_is_in_epoch_2s_control_mailbox_with_epoch_2s_id() -> None:
    from triple_ratchet.group.change_proposal import ChangeProposal

    hub, nodes = _group("ABCD")
    a, b, _c, d = nodes
    _change_while_offline(hub, nodes, b)
    hub.post(_s(b).propose(hub.now, remove=[d.id]))
    b.online = True
    for _ in range(5):  # B reads the commit, moves to epoch 2, reads epoch 2 to its end
        b.pump(hub)
    assert _s(b).epoch == 2
    a.pump(hub)
    pending = [p for p in _s(a).control_log.pending if p.identity == b.id]
    assert len(pending) == 1 and pending[0].cursor is not None
    proposal = ChangeProposal.from_bytes(_s(a).suite, pending[0].entry.body)
    assert proposal.epoch == 2 and proposal.epoch_id == _s(a).public_epoch_id
    assert proposal.change == d.id
    # B cannot propose again while it is pending.
    with pytest.raises(Exception, match="still pending"):
        _s(b).propose(hub.now, refresh=True)


def test_an_own_record_after_the_deciding_commit_is_update_not_applied_and_reposted() -> None:
    hub, nodes = _group()
    a, b, _c = nodes
    _records_applied(hub, nodes)
    _change_while_offline(hub, nodes, b)
    out = _s(b).rotate(hub.now)  # lands after C(2)
    counter = _entry_of(_s(b), b.id).counter + 1
    hub.post(out)
    b.online = True
    settle(hub, nodes)
    assert UpdateNotApplied(counter) in b.events
    records = _records_by(_s(a), b.id)
    assert [r.counter for r in records] == [counter]
    # The next change applies it.
    hub.advance(3_601_000)
    hub.post(_s(a).propose(hub.now, refresh=True))
    settle(hub, nodes)
    assert _s(a).epoch == 4 and _entry_of(_s(a), b.id).counter == counter


def test_a_record_reposted_once_and_again_not_applied_gives_way_to_a_fresh_rotation(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """11.v2.16: a record is re-posted as is once; not applied again, it is forgotten and a new
    rotation record (fresh keys, a higher counter) is posted instead. And 11.v2.15: a proposal
    that keeps missing the commit is re-made at most MAX_REMAKES times; a refresh never."""
    from triple_ratchet.group import session
    from triple_ratchet.group.change_proposal import KIND_REFRESH, KIND_REMOVE, ChangeProposal
    from triple_ratchet.group.session_features import (
        MAX_REMAKES,
        PROPOSAL_DROPPED,
        REFRESH_NOT_REMADE,
        Features,
        after_commit,
    )

    calls: list[tuple[Features, ControlLog, list[bytes], dict[str, Any]]] = []

    def spy(f: Features, log: ControlLog, records: list[bytes], **kw: Any
            ) -> tuple[Features, frozenset[bytes], list[Event]]:
        calls.append((f, log, records, kw))
        return after_commit(f, log, records, **kw)

    monkeypatch.setattr(session, "after_commit", spy)
    hub, nodes = _group()
    a, b, _c = nodes
    _records_applied(hub, nodes)
    _change_while_offline(hub, nodes, b)
    out = _s(b).rotate(hub.now)
    counter = _entry_of(_s(b), b.id).counter + 1
    hub.post(out)
    calls.clear()
    b.online = True
    b.pump(hub)
    f, log, records, kw = calls[0]
    features, stale, events = after_commit(f, log, records, **kw)
    assert events == [UpdateNotApplied(counter)] and stale == frozenset()
    assert len(features.resend_records) == 1 and counter in features.reposted
    # Had it been re-posted once already: forgotten, and a fresh rotation is due.
    again = replace(f, reposted=frozenset({counter}))
    features, stale, events = after_commit(again, log, records, **kw)
    assert events == [UpdateNotApplied(counter)] and len(stale) == 1
    assert features.resend_records == () and features.rotate_after_commit
    # Proposals that missed the commit: a remove is re-made until MAX_REMAKES, a refresh never.
    suite, view = _s(a).suite, log.view
    for kind, change in ((KIND_REMOVE, a.id), (KIND_REFRESH, None)):
        body = ChangeProposal.make(suite, kind, group_id=view.group_id, epoch=view.epoch,
                                   epoch_id=view.epoch_id, author=b.id,
                                   change=change).to_bytes()
        mine = replace(f, own_proposal=body)
        features, _, events = after_commit(mine, log, records, **kw)
        if kind == KIND_REFRESH:
            assert Ignored(REFRESH_NOT_REMADE) in events and features.resend_proposal == b""
        else:
            assert features.resend_proposal == body and features.remakes == 1
            tired = replace(mine, remakes=MAX_REMAKES)
            features, _, events = after_commit(tired, log, records, **kw)
            assert Ignored(PROPOSAL_DROPPED) in events and features.resend_proposal == b""
        assert features.own_proposal == b""
    # The session applies what after_commit said: B re-posts its record in epoch 3.
    settle(hub, nodes)
    assert [r.counter for r in _records_by(_s(a), b.id)] == [counter]


# --- 3. MembershipUnconfirmed / MembershipConfirmed (11.v2.28) ---------------------------------


def test_membership_rests_on_the_committee_until_a_member_outside_it_writes() -> None:
    hub, (a, b, c) = _group()
    assert MembershipUnconfirmed() in b.events and not _s(b).membership_confirmed
    assert _s(a).membership_confirmed  # the creator certified its own group
    # The creator was the committee: its message confirms nothing.
    hub.post(_s(a).encrypt(b"from the committee", hub.now))
    settle(hub, [a, b, c])
    assert MembershipConfirmed() not in b.events and not _s(b).membership_confirmed
    # C is outside the committee: its message shows B the same group.
    hub.post(_s(c).encrypt(b"from outside", hub.now))
    settle(hub, [a, b, c])
    assert b.events.count(MembershipConfirmed()) == 1 and _s(b).membership_confirmed
    assert b.events.count(MembershipUnconfirmed()) == 1
    again = GroupSession.from_bytes(_s(b).to_bytes(), b.identity)
    assert again.membership_confirmed


def test_membership_is_confirmed_by_an_epoch_id_compared_out_of_band() -> None:
    _hub, (a, b, _c) = _group()
    state = _s(b).to_bytes()
    wrong = bytes(32)
    events = _s(b).compare_epoch_id(1, wrong)
    assert [type(e) for e in events] == [ForkDetected]
    assert isinstance(events[0], ForkDetected) and events[0].kind == FORK_TWO_COMMITS
    assert not _s(b).membership_confirmed
    assert _s(b).compare_epoch_id(1, _s(a).public_epoch_id) == [MembershipConfirmed()]
    assert _s(b).membership_confirmed and _s(b).to_bytes() != state
    assert _s(b).compare_epoch_id(1, _s(a).public_epoch_id) == []


# --- 4. HubClockSkew (11.v2.32) ----------------------------------------------------------------


def test_a_live_entry_far_from_our_clock_is_hub_clock_skew_a_backlog_entry_is_not() -> None:
    hub, (a, b, _c) = _group()
    (msg,) = _s(a).encrypt(b"x", hub.now)
    hub.post([msg])
    _, t = hub.boxes[msg.mailbox_id][-1]
    ahead = (t + SKEW_MAX + 60_000) / 1000
    live = GroupSession.from_bytes(_s(b).to_bytes(), b.identity)
    events, _ = live.receive(msg.blob, ahead, entry_time=t, hub_time=t + 500)
    assert HubClockSkew(msg.mailbox_id, t, int(ahead * 1000)) in events
    # The same entry as backlog (the frame's hub_time far past it) says nothing of the clocks.
    backlog = GroupSession.from_bytes(_s(b).to_bytes(), b.identity)
    events, _ = backlog.receive(msg.blob, ahead, entry_time=t, hub_time=t + SKEW_MAX + 1)
    assert not any(isinstance(e, HubClockSkew) for e in events)
    # Without the frame's hub_time, nothing either; and a close clock says nothing.
    quiet = GroupSession.from_bytes(_s(b).to_bytes(), b.identity)
    events, _ = quiet.receive(msg.blob, ahead, entry_time=t)
    assert not any(isinstance(e, HubClockSkew) for e in events)
    close = GroupSession.from_bytes(_s(b).to_bytes(), b.identity)
    events, _ = close.receive(msg.blob, (t + SKEW_MAX) / 1000, entry_time=t, hub_time=t)
    assert not any(isinstance(e, HubClockSkew) for e in events)


def test_put_ok_time_far_from_our_clock_is_hub_clock_skew() -> None:
    hub, (a, _b, _c) = _group()
    box = _s(a).control_mailbox_id
    assert _s(a).put_accepted(box, hub.t, hub.now + 1) == []
    behind = hub.now - (SKEW_MAX + 1_000) / 1000
    assert _s(a).put_accepted(box, hub.t, behind) == [
        HubClockSkew(box, hub.t, int(behind * 1000))]


def test_a_skewed_clock_judges_the_epoch_change_exactly_as_hub_time_says() -> None:
    """A member whose clock is 10 minutes off reads the same control mailbox: it reports the skew
    for live entries and decides the same epoch (deadlines are the hub's)."""
    hub, nodes = _group()
    a, _b, c = nodes
    c.online = False
    twin = _clone(c, "C twin")
    hub.advance(3_601_000)
    hub.post(_s(a).propose(hub.now, remove=[nodes[1].id]))
    settle(hub, nodes)
    assert _s(a).epoch == 2
    control = _s(c).control_mailbox_id
    outcomes = []
    for node, skew in ((c, 0), (twin, -600_000)):
        session = _s(node)
        events: list[Event] = []
        for blob, t in hub.boxes[control]:
            if session.epoch != 1:
                break
            more, _ = session.receive(blob, (t + skew) / 1000, entry_time=t, hub_time=t)
            events += more
        outcomes.append((session.epoch, session.public_epoch_id, events))
    (e1, id1, ev1), (e2, id2, ev2) = outcomes
    assert e1 == e2 == 2 and id1 == id2 == _s(a).public_epoch_id
    assert not any(isinstance(e, HubClockSkew) for e in ev1)
    skews = [e for e in ev2 if isinstance(e, HubClockSkew)]
    assert skews and all(s.mailbox == control for s in skews)
    assert [e for e in ev2 if not isinstance(e, HubClockSkew)] == ev1


# --- 5. epoch claims: a split reported in band (11.v2.37, 11.v2.23, 11.v2.32) ------------------


def _two_branches() -> tuple[list[Node], list[Node], Hub, Hub]:
    """A hub that shows two histories: after epoch 1, half the group is given one refresh, the
    other half (copies of the same members) another. Each half decides its own epoch 2."""
    hub1, nodes1 = _group()
    hub1.advance(3_601_000)
    hub2 = _hub_copy(hub1)
    nodes2 = [_clone(n, n.name + "'") for n in nodes1]
    for hub, nodes in ((hub1, nodes1), (hub2, nodes2)):
        hub.post(_s(nodes[0]).propose(hub.now, refresh=True))
        settle(hub, nodes)
        assert all(_s(n).epoch == 2 for n in nodes)
    return nodes1, nodes2, hub1, hub2


def test_epoch_claims_of_two_branches_report_two_deciding_commits_both_ways() -> None:
    (a, b, _c), (a2, b2, _c2), hub1, _hub2 = _two_branches()
    assert _s(a).public_epoch_id != _s(a2).public_epoch_id
    # Within a branch, claims match and say nothing (a creator's membership is confirmed).
    assert _s(a).compare_epoch_claim(_s(b).epoch_claim(), b.identity.public, hub1.now) == []
    for mine, theirs in ((a, b2), (a2, b), (b, a2)):
        before = _s(mine).to_bytes()
        events = _s(mine).compare_epoch_claim(_s(theirs).epoch_claim(), theirs.identity.public,
                                              hub1.now)
        assert [(type(e), getattr(e, "kind", None), getattr(e, "member", None))
                for e in events] == [(ForkDetected, FORK_TWO_COMMITS, theirs.id)]
        assert _s(mine).to_bytes() == before
    # An epoch-1 claim still matches (the branches share epoch 1): nothing to report.
    one = EpochClaim(_s(a).suite, _s(a).group_id, 1, _s(a)._s.features.held[0].epoch_id, None)
    assert _s(a2).compare_epoch_claim(one.to_bytes(), a.identity.public, hub1.now) == []


def test_epoch_claims_of_one_commit_at_two_hub_times_report_hub_times_differ() -> None:
    hub1, nodes = _group()
    a, _b, c = nodes
    c.online = False
    hub1.advance(3_601_000)
    hub1.post(_s(a).propose(hub1.now, refresh=True))
    settle(hub1, nodes)
    control = _s(c).control_mailbox_id
    t0 = _s(a).control_log.view.t0
    assert t0 is not None
    # A hub that shows C's twin the same entries, the commit and everything after it later.
    hub2 = _hub_copy(hub1)
    hub2.boxes[control] = [(blob, t + 5_000 if t >= t0 else t) for blob, t in hub1.boxes[control]]
    twin = _clone(c, "C twin")
    c.online = twin.online = True
    settle(hub1, nodes)
    settle(hub2, [twin])
    assert _s(c).epoch == 2 == _s(twin).epoch
    assert _s(c).public_epoch_id == _s(twin).public_epoch_id
    events = _s(c).compare_epoch_claim(_s(twin).epoch_claim(), twin.identity.public, hub1.now)
    assert [(type(e), getattr(e, "kind", None)) for e in events] == [
        (ForkDetected, FORK_HUB_TIMES)]
    events = _s(twin).compare_epoch_claim(_s(a).epoch_claim(), a.identity.public, hub1.now)
    assert [(type(e), getattr(e, "kind", None)) for e in events] == [
        (ForkDetected, FORK_HUB_TIMES)]
    assert _s(c).compare_epoch_claim(_s(a).epoch_claim(), a.identity.public, hub1.now) == []


def test_a_matching_claim_from_outside_the_committee_confirms_membership() -> None:
    hub, (a, b, c) = _group()
    # A (the committee of B's first epoch) vouches for nothing.
    assert _s(b).compare_epoch_claim(_s(a).epoch_claim(), a.identity.public, hub.now) == []
    assert not _s(b).membership_confirmed
    assert _s(b).compare_epoch_claim(_s(c).epoch_claim(), c.identity.public, hub.now) == [
        MembershipConfirmed()]
    assert _s(b).membership_confirmed


def test_claims_of_epochs_not_held_and_from_non_members_are_ignored() -> None:
    hub, (a, b, _c) = _group()
    outsider = make_node("Z")
    s = _s(b)
    later = EpochClaim(s.suite, s.group_id, 5, bytes(32), 123)
    assert s.compare_epoch_claim(later.to_bytes(), a.identity.public, hub.now) == [
        Ignored(LATER_EPOCH, a.id)]
    assert s.compare_epoch_claim(s.epoch_claim(), outsider.identity.public, hub.now) == [
        Ignored(NOT_A_MEMBER, outsider.id)]
    held: tuple[HeldEpoch, ...] = ()
    for e in range(1, MAX_REMEMBERED_EPOCHS + 11):
        held = remember(held, HeldEpoch(e, bytes([e % 256]) * 32, None if e == 1 else e))
    assert len(held) == MAX_REMEMBERED_EPOCHS and held[0].epoch == 11
    from triple_ratchet.group.epoch_claim import judge_claim
    old = EpochClaim(s.suite, s.group_id, 3, bytes([3]) * 32, 3)
    assert judge_claim(held, old, a.id) == (False, [Ignored(EPOCH_NOT_HELD, a.id)])


def test_bad_epoch_claims_are_typed_errors_and_leave_the_state_unchanged() -> None:
    hub, (a, b, _c) = _group()
    s = _s(b)
    good = _s(a).epoch_claim()
    items = cbor.decode(good)
    assert isinstance(items, list) and len(items) == 7

    def edit(index: int, value: cbor.CborValue) -> bytes:
        changed = list(items)
        changed[index] = value
        return cbor.encode(changed)

    cases: list[tuple[bytes, type[Exception]]] = [
        (good[:-1], DecodeError),  # truncated
        (good + b"\x00", DecodeError),  # trailing byte
        (edit(5, bytes(31)), DecodeError),  # short epoch id
        (edit(5, bytes(33)), DecodeError),  # long epoch id
        (edit(4, 0), DecodeError),  # epoch 0
        (edit(6, 5), DecodeError),  # epoch 1 with a T0
        (edit(0, 0x55), DecodeError),  # another type
        (edit(1, 1), UnsupportedError),  # version 1
        (edit(3, b"another group"), ProtocolError),
        (edit(2, 0x7777), ProtocolError),  # another suite
        (cbor.encode(list(items)[:6]), DecodeError),
        (bytes(200), LimitExceeded),
    ]
    before = s.to_bytes()
    for data, error in cases:
        with pytest.raises(error):
            s.compare_epoch_claim(data, a.identity.public, hub.now)
        assert s.to_bytes() == before
    later = EpochClaim(s.suite, s.group_id, 2, bytes(32), 7).to_bytes()
    bad_t0 = cbor.decode(later)
    assert isinstance(bad_t0, list)
    bad_t0[6] = None
    with pytest.raises(DecodeError):
        s.compare_epoch_claim(cbor.encode(bad_t0), a.identity.public, hub.now)
    assert s.to_bytes() == before


def test_remembered_epoch_ids_are_in_the_saved_state() -> None:
    (a, _b, _c), (a2, _b2, _c2), hub1, _ = _two_branches()
    again = GroupSession.from_bytes(_s(a).to_bytes(), a.identity)
    events = again.compare_epoch_claim(_s(a2).epoch_claim(), a2.identity.public, hub1.now)
    assert [getattr(e, "kind", None) for e in events] == [FORK_TWO_COMMITS]
    assert [h.epoch for h in again._s.features.held] == [1, 2]
