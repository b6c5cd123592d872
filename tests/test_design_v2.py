"""Properties ASYNC-EPOCHS.md "Tests the design needs" lists that no other test proved end to end,
each driven through GroupSession sessions and the in-memory hub of tests/group_v2_sim.py (hub
time on every entry, members reading in hub order). The audit that found them is in the report
closing issue 8; the properties other files prove are named there with their tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from group_v2_sim import Hub, Node, create, make_node, open_from_hub, settle

from triple_ratchet import cbor
from triple_ratchet.errors import (
    AuthenticationError,
    DecodeError,
    StateError,
    TripleRatchetError,
)
from triple_ratchet.group import control_log as cl
from triple_ratchet.group.change_proposal import KIND_ADD, KIND_REMOVE, ChangeProposal
from triple_ratchet.group.control import (
    TYPE_PROPOSAL,
    TYPE_RECORD,
    ControlEntry,
    open_entry,
    seal_entry,
    sign_identity_entry,
)
from triple_ratchet.group.control_log import ControlLog, Entry
from triple_ratchet.group.events import (
    ForkDetected,
    Ignored,
    MemberDormant,
    MemberExcluded,
    Outgoing,
    ProposalVoid,
    RejoinNeeded,
    RemovedFromGroup,
)
from triple_ratchet.group.message_path import GRACE_MS
from triple_ratchet.group.notice import NoticeAssembler, PendingRejoin
from triple_ratchet.group.records import PURPOSE_ROTATE, MemberKeyRecord, RecordKeys
from triple_ratchet.group.session import GroupSession

HOUR = 3_600_000
DAY = 24 * HOUR


def _group(names: str) -> tuple[Hub, list[Node]]:
    hub = Hub()
    nodes = [make_node(n) for n in names]
    create(hub, nodes[0], nodes[1:])
    settle(hub, nodes)
    assert all(n.session is not None and n.session.epoch == 1 for n in nodes)
    return hub, nodes


def _s(node: Node) -> GroupSession:
    assert node.session is not None
    return node.session


def _observe(log: ControlLog, hub: Hub) -> ControlLog:
    """An observer's copy of one epoch's control log: its mailbox judged in hub order."""
    for cursor, (blob, t) in enumerate(hub.boxes.get(log.view.mailbox_id, [])):
        log, _ = log.judge(Entry(cursor, t, blob))
    return log


def _post_as_insider(hub: Hub, insider: Node, ce: ControlEntry) -> None:
    """An insider (it holds the epoch's traffic key) posts a control entry of its making."""
    view = _s(insider).control_log.view
    hub.post([Outgoing(view.mailbox_id, seal_entry(view.suite, view.traffic_key,
                                                   view.mailbox_id, ce, insider.rng))])


def _ignored(node: Node) -> list[str]:
    return [e.reason for e in node.events if isinstance(e, Ignored)]


def _entries(hub: Hub, view: cl.EpochView) -> list[tuple[int, ControlEntry]]:
    """Every readable entry of one control mailbox, with its place."""
    out = []
    for cursor, (blob, _) in enumerate(hub.boxes.get(view.mailbox_id, [])):
        try:
            out.append((cursor, open_entry(view.suite, view.traffic_key, view.mailbox_id, blob,
                                           group_id=view.group_id, epoch=view.epoch,
                                           roster_size=len(view.roster))))
        except TripleRatchetError:
            continue
    return out


def _by(hub: Hub, view: cl.EpochView, node: Node, entry_type: int) -> list[tuple[int, bytes]]:
    index = view.roster.index_of(node.id)
    return [(cursor, ce.body) for cursor, ce in _entries(hub, view)
            if ce.author == index and ce.entry_type == entry_type]


def _step_until(hub: Hub, nodes: list[Node], done: Callable[[], bool]) -> None:
    """settle(), one member's read at a time, stopping as soon as `done()` holds."""
    for _ in range(400):
        for n in nodes:
            n.pump(hub)
            if done():
                return
        hub.advance(500)
        for n in nodes:
            if n.online and n.session is not None and n.session.status == "active":
                events, out = n.session.tick(n.now(hub))
                n.events += events
                hub.post(out)
                if done():
                    return
    raise AssertionError("never happened")


def _saved(node: Node) -> tuple[bytes, dict[bytes, int]]:
    return _s(node).to_bytes(), dict(node.cursors)


def _restore(node: Node, saved: tuple[bytes, dict[bytes, int]]) -> None:
    """The member's device is restored from an earlier backup: its state and its place in each
    mailbox go back; everything it sent since stays at the hub."""
    node.session = GroupSession.from_bytes(saved[0], node.identity, rng=node.rng)
    node.cursors = dict(saved[1])


# --- Any subset offline ------------------------------------------------------------------------


@pytest.mark.parametrize("online_names", ["A", "D", "BD", "ABC"],
                         ids=["all but the creator offline", "all but one joiner offline",
                              "creator and two offline", "two offline"])
def test_any_subset_offline_adds_removes_refreshes_complete_and_the_offline_catch_up(
        online_names: str) -> None:
    """Whoever is online — down to one member, the creator or not — completes an add, a remove
    and a refresh; the offline members are never removed, and each, back later, catches up
    through the three epochs and reads every message it was a member for. E, removed while
    offline, reads up to its removal and ends removed."""
    hub, nodes = _group("ABCDE")
    f = make_node("F")
    online = [n for n in nodes if n.name in online_names]
    for n in nodes:
        n.online = n in online
    driver, last = online[0], online[-1]
    e = nodes[4]
    sent: list[bytes] = []

    def say(node: Node, body: bytes) -> None:
        sent.append(body)
        hub.post(_s(node).encrypt(body, hub.now))
        settle(hub, [*online, f])

    hub.advance(61_000)
    hub.post(_s(driver).propose(hub.now, add=[f.take_join_key()]))
    settle(hub, [*online, f])
    assert _s(f).epoch == 2 and all(_s(n).epoch == 2 for n in online)
    say(f, b"after the add")
    hub.advance(61_000)
    hub.post(_s(last).propose(hub.now, remove=[e.id]))
    settle(hub, [*online, f])
    assert all(_s(n).epoch == 3 for n in [*online, f]) and e.id not in _s(driver).roster
    say(driver, b"after the remove")
    hub.advance(HOUR + 1_000)
    hub.post(_s(driver).propose(hub.now, refresh=True))
    settle(hub, [*online, f])
    assert all(_s(n).epoch == 4 for n in [*online, f])
    say(last, b"after the refresh")
    offline = [n for n in nodes if n not in online and n is not e]
    assert {n.id for n in offline} <= set(_s(driver).roster), "nobody removed for being offline"
    ids = {_s(n).public_epoch_id for n in [*online, f]}
    assert len(ids) == 1
    # Everyone comes back.
    for n in nodes:
        n.online = True
    settle(hub, [*nodes, f])
    for n in offline:
        assert _s(n).epoch == 4 and _s(n).public_epoch_id in ids, n.name
        assert not any(isinstance(x, RemovedFromGroup) for x in n.events)
        assert n.messages() == sent, n.name
    if e not in online:
        assert _s(e).status == "removed"
        assert not {b"after the remove", b"after the refresh"} & set(e.messages())
    hub.post(_s(offline[0]).encrypt(b"back", hub.now))
    settle(hub, [*nodes, f])
    assert f.messages()[-1] == b"back"


def test_creator_offline_right_after_creating_two_other_members_complete_an_add() -> None:
    hub = Hub()
    a, b, c, d = (make_node(n) for n in "ABCD")
    create(hub, a, [b, c])
    a.online = False  # it sent the notices and left
    settle(hub, [a, b, c])
    assert a.session is not None and _s(b).epoch == _s(c).epoch == 1
    hub.post(_s(b).propose(hub.now, add=[d.take_join_key()]))
    settle(hub, [a, b, c, d])
    assert _s(b).epoch == _s(c).epoch == _s(d).epoch == 2
    assert _s(b).public_epoch_id == _s(c).public_epoch_id == _s(d).public_epoch_id
    assert _s(a).epoch == 1 and a.id in _s(b).roster
    hub.post(_s(d).encrypt(b"hello from D", hub.now))
    settle(hub, [a, b, c, d])
    a.online = True
    settle(hub, [a, b, c, d])
    assert _s(a).epoch == 2 and _s(a).public_epoch_id == _s(b).public_epoch_id
    assert a.messages() == [b"hello from D"]


# --- R5: ordered application -------------------------------------------------------------------


def test_two_adds_that_overflow_the_roster_apply_the_first_and_void_the_second(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """At MAX_GROUP_SIZE (4 here, the rule at a size a test can build), B's add and C's add
    posted together: the first decides epoch 2, the second is carried into epoch 2 and void
    there ("group full") for every member; its joiner gets no notice; the attempt still runs
    (as a refresh) and C may propose again."""
    monkeypatch.setattr(cl, "MAX_GROUP_SIZE", 4)
    hub, (a, b, c) = _group("ABC")
    x, y = make_node("X"), make_node("Y")
    hub.post(_s(b).propose(hub.now, add=[x.take_join_key()]))
    hub.post(_s(c).propose(hub.now, add=[y.take_join_key()]))
    settle(hub, [a, b, c, x, y], rounds=400)  # two changes, each waiting EPOCH_MIN_AGE
    assert y.session is None and hub.boxes.get(y.inbox) is None
    assert _s(x).epoch == _s(a).epoch == 3 == _s(c).epoch
    assert set(_s(a).roster) == {a.id, b.id, c.id, x.id}
    for n in (a, b, c, x):
        voids = [(v.author, v.kind, v.subject, v.reason) for v in n.events
                 if isinstance(v, ProposalVoid)]
        assert voids == [(c.id, KIND_ADD, y.id, "group full")], n.name
    # C's slot is free again: its remove of X is applied.
    hub.advance(61_000)
    hub.post(_s(c).propose(hub.now, remove=[x.id]))
    settle(hub, [a, b, c, x])
    assert _s(a).epoch == 4 and x.id not in _s(a).roster


def test_a_proposal_during_an_attempt_is_carried_and_applied_next_with_no_fork_report() -> None:
    """Issue 8's "an honest proposal sent during an attempt triggers a false fork report", on
    version 2: C proposes a remove while A's add is being decided. Nobody reports a fork; the
    remove is pending, carried into epoch 2 and applied by its first change."""
    hub, (a, b, c, d) = _group("ABCD")
    x = make_node("X")
    hub.post(_s(a).propose(hub.now, add=[x.take_join_key()]))
    _step_until(hub, [a, b, c, d], lambda: _s(c).control_log.run.phase != cl.WAITING)
    assert _s(c).epoch == 1 and _s(c).control_log.attempt is not None
    hub.post(_s(c).propose(hub.now, remove=[d.id]))
    settle(hub, [a, b, c, d, x], rounds=400)  # two changes, each waiting EPOCH_MIN_AGE
    assert _s(a).epoch == 3 == _s(x).epoch and d.id not in _s(a).roster
    assert x.id in _s(a).roster and _s(d).status == "removed"
    assert not any(isinstance(e, ForkDetected) for n in (a, b, c, x) for e in n.events)


def test_removing_the_last_member_is_void_and_nothing_raises() -> None:
    """Issue 8's empty-roster proposal, on version 2: the only member removes itself; the
    proposal is void ("would leave the group empty") for it, nothing raises, and the attempt
    runs as a refresh."""
    hub = Hub()
    a = make_node("A")
    create(hub, a, [])
    settle(hub, [a])
    hub.post(_s(a).propose(hub.now, remove=[a.id]))
    settle(hub, [a])
    assert [(v.kind, v.reason) for v in a.events if isinstance(v, ProposalVoid)] == [
        (KIND_REMOVE, "would leave the group empty")]
    assert _s(a).status == "active" and _s(a).epoch == 2 and _s(a).roster == (a.id,)


def test_a_replayed_removal_from_an_earlier_epoch_is_ignored() -> None:
    """A removes C in epoch 1; B adds C back in epoch 2. In epoch 3 the hub copies the old
    removal blob into the new control mailbox, and insider A re-posts the old removal's body in
    an epoch-3 entry: neither starts an attempt, C stays a member."""
    hub, (a, b, c) = _group("ABC")
    view1 = _s(a).control_log.view
    removal = ChangeProposal.make(view1.suite, KIND_REMOVE, group_id=view1.group_id, epoch=1,
                                  epoch_id=view1.epoch_id, author=a.id, change=c.id)
    hub.post(_s(a).propose(hub.now, remove=[c.id]))
    old_blob = hub.boxes[view1.mailbox_id][-1][0]
    settle(hub, [a, b, c])
    assert _s(a).epoch == 2 and c.id not in _s(a).roster and _s(c).status == "removed"
    c2 = c  # C again, with its other one-time join key, reading its inbox on
    c2.session, c2.cursors = None, {c.inbox: c.cursors[c.inbox]}
    hub.advance(61_000)
    hub.post(_s(b).propose(hub.now, add=[c2.take_join_key()]))
    settle(hub, [a, b, c2])
    assert _s(a).epoch == 3 and c2.id in _s(a).roster and _s(c2).epoch == 3
    hub.advance(61_000)
    view3 = _s(a).control_log.view
    hub.post([Outgoing(view3.mailbox_id, old_blob)])
    _post_as_insider(hub, a, sign_identity_entry(
        a.identity, TYPE_PROPOSAL, group_id=view3.group_id, epoch=3, author=_s(a).own_index,
        body=removal.to_bytes()))
    settle(hub, [a, b, c2])
    for n in (a, b, c2):
        assert _s(n).epoch == 3 and _s(n).control_log.attempt is None, n.name
        assert _s(n).control_log.pending == ()
    assert c2.id in _s(b).roster and _s(c2).status == "active"
    assert "control entry of another epoch" in _ignored(b)


# --- R1: a planted receive key -----------------------------------------------------------------


def test_a_planted_receive_key_for_an_offline_member_is_refused() -> None:
    """While C is offline, insider B posts records naming C with keys B holds — signed by B in
    C's place, and as B's own entry — then a refresh is committed. C's entry keeps C's keys:
    the commit seals to C's key, and C, back, opens its sealing and reads the new epoch."""
    hub, (a, b, c) = _group("ABC")
    c.online = False
    suite = a.identity.suite
    view = _s(b).control_log.view
    entry_c = view.roster.entries[view.roster.index_of(c.id) or 0]
    planted_keys = RecordKeys.from_seed(suite, b.rng(32))
    planted = MemberKeyRecord.sign(b.identity, planted_keys, group_id=view.group_id,
                                   counter=entry_c.counter + 5, purpose=PURPOSE_ROTATE,
                                   anchor=entry_c.anchor)
    as_c = dataclasses.replace(planted, identity=c.id)  # B's signatures, C's name
    index_c = view.roster.index_of(c.id)
    assert index_c is not None
    for author, body in ((index_c, as_c.to_bytes()), (_s(b).own_index, as_c.to_bytes()),
                         (index_c, planted.to_bytes())):
        _post_as_insider(hub, b, sign_identity_entry(b.identity, TYPE_RECORD,
                                                     group_id=view.group_id, epoch=1,
                                                     author=author, body=body))
    hub.advance(HOUR + 1_000)
    hub.post(_s(a).propose(hub.now, refresh=True))
    settle(hub, [a, b, c])
    assert _s(a).epoch == 2
    roster = _s(a).control_log.view.roster
    kept = roster.entries[roster.index_of(c.id) or 0]
    # C's own rotation record (posted when it joined) applies; none of B's making does.
    assert kept.keys.receive_key != planted_keys.receive_public
    assert kept.keys.signing_key != planted_keys.signing_public
    assert kept.counter < planted.counter
    assert len(_ignored(a)) >= 3
    c.online = True
    settle(hub, [a, b, c])
    assert _s(c).epoch == 2 and _s(c).public_epoch_id == _s(a).public_epoch_id


# --- R12: dormancy -------------------------------------------------------------------------------


def test_a_group_with_no_commit_for_31_days_still_seals_to_its_online_members() -> None:
    """No commit for 31 days (> RETENTION): A, B and C, online, post rotation records as R10
    asks of a member online with a record older than ROTATE_MAX_AGE (done here by hand, weekly);
    D stays offline. A refresh after the 31 days: A, B and C are neither dormant nor left out of
    the committee and the bundle; D is dormant (not sealed to, not removed) and, back, is told
    to rejoin."""
    hub, (a, b, c, d) = _group("ABCD")
    d.online = False
    start = hub.t
    for _week in range(4):
        hub.advance(7 * DAY)
        for n in (a, b, c):
            hub.post(_s(n).rotate(hub.now))
        settle(hub, [a, b, c])
    hub.advance(start + 31 * DAY - hub.t)
    assert _s(a).epoch == 1 and hub.t - start >= 31 * DAY
    before = _s(a).control_log
    hub.post(_s(a).propose(hub.now, refresh=True))
    settle(hub, [a, b, c])
    assert _s(a).epoch == _s(b).epoch == _s(c).epoch == 2
    assert _s(a).public_epoch_id == _s(b).public_epoch_id == _s(c).public_epoch_id
    seen = _observe(before, hub)
    assert seen.attempt is not None and seen.decided is not None
    assert seen.attempt.dormant == {d.id}
    committee = {before.view.roster.entries[i].identity for i in seen.run.committee}
    assert committee == {a.id, b.id, c.id}  # all three online members, none dormant
    assert len(seen.decided.commit.bundle) == 0  # D, dormant, is sealed nothing
    assert [e.member for e in a.events if isinstance(e, MemberDormant)] == [d.id]
    assert d.id in _s(a).roster  # dormancy is not removal
    d.online = True
    settle(hub, [a, b, c, d])
    assert any(isinstance(e, RejoinNeeded) for e in d.events)
    assert not any(isinstance(e, RemovedFromGroup) for e in d.events)


# --- R6, R10: a restored committee member ------------------------------------------------------


def test_a_restored_committee_member_resends_byte_identical_items() -> None:
    """B is backed up just after it announced (its run seed is stored before the announcement
    leaves), sends its round-1 item, and is restored from the backup: it sends round 1 again,
    byte for byte the same item, nobody sees an equivocation, and the run B is on decides."""
    hub, (a, b, c) = _group("ABC")
    d = make_node("D")
    view = _s(a).control_log.view
    hub.post(_s(a).propose(hub.now, add=[d.take_join_key()]))
    _step_until(hub, [a, b, c], lambda: bool(_by(hub, view, b, cl.TYPE_ANNOUNCEMENT)))
    backup = _saved(b)
    _step_until(hub, [a, b, c], lambda: bool(_by(hub, view, b, cl.TYPE_ROUND1)))
    (first,) = _by(hub, view, b, cl.TYPE_ROUND1)
    _restore(b, backup)
    settle(hub, [a, b, c, d])
    items = _by(hub, view, b, cl.TYPE_ROUND1)
    assert len(items) >= 2 and {body for _, body in items} == {first[1]}
    seen = _observe(ControlLog.start(view), hub)
    assert seen.decided is not None and seen.run.run == 1 and seen.excluded == frozenset()
    assert b.id in {view.roster.entries[i].identity for i in seen.run.committee}
    assert _s(a).epoch == _s(b).epoch == _s(d).epoch == 2
    assert _s(b).public_epoch_id == _s(a).public_epoch_id


def test_a_restored_member_never_sends_in_a_run_its_newer_self_announced_in() -> None:
    """B is backed up after the attempt began and before it announced; its newer self announces;
    B is restored from the backup while the run is still in ANNOUNCE. The restored B holds no
    seed of that announcement: it sends no announcement, item or commit in run 1 (R6), and
    reports it; the change completes without it (B, silent in round 1, is excluded from run 1
    only, which is never removal)."""
    hub, (a, b, c) = _group("ABC")
    d = make_node("D")
    view = _s(a).control_log.view
    hub.post(_s(a).propose(hub.now, add=[d.take_join_key()]))
    _step_until(hub, [a, b, c], lambda: _s(b).control_log.attempt is not None)
    assert not _by(hub, view, b, cl.TYPE_ANNOUNCEMENT)
    backup = _saved(b)
    _step_until(hub, [a, b, c], lambda: bool(_by(hub, view, b, cl.TYPE_ANNOUNCEMENT)))
    restored_at = len(hub.boxes[view.mailbox_id])
    _restore(b, backup)
    assert _s(b).control_log.run.phase in (cl.WAITING, cl.ANNOUNCE)
    settle(hub, [a, b, c, d])
    seen = _observe(ControlLog.start(view), hub)
    assert seen.decided is not None
    sent = [t for t in (cl.TYPE_ANNOUNCEMENT, cl.TYPE_ROUND1, cl.TYPE_ROUND3, cl.TYPE_COMMIT)
            for cursor, _ in _by(hub, view, b, t) if cursor >= restored_at]
    assert sent == [], "the restored B sends no announcement, item or commit"
    excluded = [(e.member, e.run, e.reason) for e in a.events if isinstance(e, MemberExcluded)]
    assert excluded == [(b.id, 1, "missing round 1")] and seen.run.run == 2
    assert [(e.kind, e.member) for e in b.events if isinstance(e, ForkDetected)] == [
        ("another copy of us", b.id)]
    assert _s(a).epoch == _s(b).epoch == _s(d).epoch == 2
    assert b.id in _s(a).roster


# --- R7, R12: a reused one-time join key ---------------------------------------------------------


def test_a_joiner_whose_one_time_key_was_reused_gets_back_in_through_a_rejoin_request() -> None:
    """The directory hands J's one-time join key out twice: P adds J to group 1 (J opens its
    notice and deletes the key, R7), then X creates group 2 with the same key. J cannot open
    group 2's notice and holds no session of it. X tells J over their pairwise session which
    group added it (a membership hint, 11.v2.31); J makes a rejoin request without a session,
    keeping only the resume record's seed; X answers with a resume proposal, the next commit
    resumes J, and J starts from the resume notice and reads and writes in group 2."""
    hub = Hub()
    p, j, x, y = (make_node(n) for n in "PJXY")
    reused = j.take_join_key()
    create(hub, p, [j])
    settle(hub, [p, j])
    assert _s(j).epoch == 1 and all(h.join_key != reused for h in j.keyring.held)
    group1_chunks = len(hub.boxes[j.inbox])
    x.session, out = GroupSession.create(x.identity, [y.take_join_key(), reused], hub.now,
                                           group_id=b"group 2", rng=x.rng)
    hub.post(out)
    settle(hub, [x, y])
    suite = j.identity.suite

    def notice_at(start: int) -> bytes:
        asm, notice = NoticeAssembler(suite), None
        for blob, _ in hub.boxes[j.inbox][start:]:
            asm, notice = asm.receive(blob)
        assert notice is not None
        return notice

    with pytest.raises(AuthenticationError):
        open_from_hub(hub, suite, notice_at(group1_chunks), identity=j.id, keys=j.keyring.keys())
    # Over their pairwise session: X's hint to J, J's request to X.
    hint = _s(x).membership_hint(j.identity.public)
    request, pending = GroupSession.request_rejoin(j.identity, hint, j.inbox, rng=j.rng)
    pending = PendingRejoin.from_bytes(pending.to_bytes(), j.identity)  # kept across restarts
    resumed_from = len(hub.boxes[j.inbox])
    events, out = _s(x).on_rejoin_request(request, j.identity.public, hub.now)
    assert events == [] and out
    hub.post(out)
    settle(hub, [x, y])
    assert _s(x).epoch == 2
    start = open_from_hub(hub, suite, notice_at(resumed_from), identity=j.id, keys=[pending.keys()])
    assert start.resumed and start.epoch == 2 and start.added_by == x.id
    # J's group-2 session lives beside its group-1 one (same identity and inbox).
    j2 = Node("J in group 2", j.identity, j.rng, j.keyring, j.inbox)
    j2.session = GroupSession.from_rejoin(j.identity, start, pending, rng=j.rng)
    assert j2.session.public_epoch_id == _s(x).public_epoch_id
    settle(hub, [x, y, j2])
    hub.post(_s(x).encrypt(b"welcome back", hub.now))
    hub.post(_s(j2).encrypt(b"thanks", hub.now))
    settle(hub, [x, y, j2])
    assert b"welcome back" in j2.messages()
    assert b"thanks" in x.messages() and b"thanks" in y.messages()
    assert _s(j).group_id == b"sim group" and _s(j).status == "active"


# --- Found while auditing: a member removed while offline ---------------------------------------


def test_a_member_removed_while_offline_still_reads_its_last_epochs_messages() -> None:
    """C is offline through epoch 2 and is removed at its end. Back, it reads (control mailbox
    first, as after any absence) epoch 1's change, then epoch 2's: the message sent to it in
    epoch 2, before its removal, is one it was a member for (11.v2.26). Nothing sent after the
    commit reaches it — not B's epoch-2 message within the grace, not an entry past
    the grace, nothing of epoch 3 — and then its session has nothing left: no mailbox, no
    encrypt. C saves and loads its state after every step (the kept epoch survives, strictly)."""
    hub, (a, b, c) = _group("ABC")
    c.online = False
    c.reload = True
    hub.advance(HOUR + 1_000)
    hub.post(_s(a).propose(hub.now, refresh=True))
    settle(hub, [a, b])
    assert _s(a).epoch == 2
    epoch2_box = _s(a).mailbox_id
    hub.post(_s(b).encrypt(b"epoch 2, C still a member", hub.now))
    settle(hub, [a, b])
    hub.advance(61_000)
    b.online = False  # B processes the removal late: it still sends in epoch 2
    hub.post(_s(a).propose(hub.now, remove=[c.id]))
    settle(hub, [a, b])
    assert _s(a).epoch == 3 and c.id not in _s(a).roster and _s(b).epoch == 2
    hub.post(_s(b).encrypt(b"epoch 2, after C's removal", hub.now))
    b.online = True
    settle(hub, [a, b])
    assert _s(b).epoch == 3
    hub.post(_s(a).encrypt(b"epoch 3", hub.now))
    hub.advance(GRACE_MS + 1_000)
    first = hub.boxes[epoch2_box][0][0]
    hub.boxes[epoch2_box].append((first, hub.t))  # an epoch-2 entry past the grace
    c.online = True
    settle(hub, [a, b, c])
    assert _s(c).status == "removed"
    assert [e.proposer for e in c.events if isinstance(e, RemovedFromGroup)] == [a.id]
    assert c.messages() == [b"epoch 2, C still a member"]
    assert _ignored(c).count("group message sent after our removal") == 2
    assert _s(c).mailboxes() == ()
    with pytest.raises(StateError):
        _s(c).encrypt(b"still here?", hub.now)


def test_a_removed_members_saved_state_keeps_its_last_epoch_strictly() -> None:
    """The removed session's saved state holds the epoch it was removed at, and only a removed
    session may: the same state labelled active or "rejoin needed" is refused (DecodeError)."""
    hub, (a, b, c) = _group("ABC")
    hub.advance(61_000)
    c.online = False
    hub.post(_s(a).propose(hub.now, remove=[c.id]))
    settle(hub, [a, b])
    box = _s(c).control_mailbox_id
    for blob, t in hub.boxes[box][c.cursors.get(box, 0):]:
        c.events += _s(c).receive(blob, hub.now, entry_time=t)[0]
    assert _s(c).status == "removed" and len(_s(c).mailboxes()) == 1
    data = _s(c).to_bytes()
    loaded = GroupSession.from_bytes(data, c.identity)
    assert loaded.to_bytes() == data and loaded.mailboxes() == _s(c).mailboxes()
    fields = cbor.decode(data)
    assert isinstance(fields, list)
    for status in ("active", "rejoin needed"):
        with pytest.raises(DecodeError):
            GroupSession.from_bytes(cbor.encode([*fields[:4], status, *fields[5:]]),
                                      c.identity)
    # Read to its end, the kept epoch goes and nothing is left.
    assert loaded.caught_up(loaded.mailboxes()[0], hub.now) == ([], [])
    assert loaded.mailboxes() == ()


# --- Found while measuring: a committee member sealed the bundle up to three times ---------------


def test_a_committee_member_seals_the_bundle_once_per_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bundle is n sealings (0.3 s at n = 1,000): each committee member computes it once
    per run — for its round-3 item — and reuses it for its commit and for processing the commit
    (it did so three times); nothing of it stays in memory once the epoch is decided (R14)."""
    from triple_ratchet.group import session

    calls: list[bytes] = []
    real = session.make_round3

    def counted(seed, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(seed.to_bytes())
        return real(seed, *args, **kwargs)

    hub, nodes = _group("ABC")
    d = make_node("D")
    monkeypatch.setattr(session, "make_round3", counted)
    hub.post(_s(nodes[0]).propose(hub.now, add=[d.take_join_key()]))
    settle(hub, [*nodes, d])
    assert all(_s(n).epoch == 2 for n in [*nodes, d])
    assert len(calls) == len(set(calls)) == 3, "one bundle per committee member"
    assert all(_s(n)._outcome is None for n in nodes)
