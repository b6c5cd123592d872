"""Adversarial review of version 2 of the epoch change, run against a running group: what one
member, two colluding members or the hub can do to stall epoch changes, push an honest member
out, split the group silently, keep a removed member reading, wedge a session or grow its saved
state. Each test is one attack driven through GroupSession sessions and the in-memory hub of
tests/group_v2_sim.py; an attack the code withstands is a passing test that pins the property,
a flaw is a strict xfail that names the rule it breaks."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from group_v2_sim import Hub, Node, create, make_node, settle

from triple_ratchet.errors import StateError, TripleRatchetError
from triple_ratchet.group import control_log as cl
from triple_ratchet.group.committee import RunSeed, make_announcement
from triple_ratchet.group.control import (
    TYPE_ANNOUNCEMENT,
    TYPE_COMMIT,
    TYPE_PROPOSAL,
    TYPE_ROUND1,
    TYPE_ROUND3,
    ControlEntry,
    open_entry,
    seal_entry,
    sign_identity_entry,
)
from triple_ratchet.group.epoch_claim import EpochClaim
from triple_ratchet.group.events import (
    EpochChanged,
    ForkDetected,
    Ignored,
    MemberExcluded,
    MisbehaviourReported,
    Outgoing,
)
from triple_ratchet.group.session import GroupSession

HOUR = 3_600_000


def _s(node: Node) -> GroupSession:
    assert node.session is not None
    return node.session


def _group(names: str, hub: Hub | None = None) -> tuple[Hub, list[Node]]:
    hub = hub or Hub()
    nodes = [make_node(n) for n in names]
    create(hub, nodes[0], nodes[1:])
    settle(hub, nodes)
    assert all(n.session is not None and n.session.epoch == 1 for n in nodes)
    return hub, nodes


def _ignored(node: Node) -> list[str]:
    return [e.reason for e in node.events if isinstance(e, Ignored)]


class AttackHub(Hub):
    """The hub of group_v2_sim that lets a test's insiders drop their own control entries: a
    colluding member that 'forgets' to post what the protocol asks of it. Entries are recognised
    by opening them with the keys of the members registered in `readers`."""

    def __init__(self) -> None:
        super().__init__()
        self.readers: list[Node] = []
        self.drop: list[Callable[[bytes, int], bool]] = []  # (author identity, entry type)
        self.dropped: list[tuple[bytes, int]] = []

    def _open(self, o: Outgoing) -> tuple[bytes, int] | None:
        for n in self.readers:
            if n.session is None or n.session.status != "active":
                continue
            view = n.session.control_log.view
            if o.mailbox_id != view.mailbox_id:
                continue
            try:
                ce = open_entry(view.suite, view.traffic_key, view.mailbox_id, o.blob,
                                group_id=view.group_id, epoch=view.epoch,
                                roster_size=len(view.roster))
            except TripleRatchetError:
                return None
            return view.roster.entries[ce.author].identity, ce.entry_type
        return None

    def post(self, outs: list[Outgoing]) -> None:
        kept = []
        for o in outs:
            seen = self._open(o)
            if seen is not None and any(d(*seen) for d in self.drop):
                self.dropped.append(seen)
                continue
            kept.append(o)
        super().post(kept)


def _post_as_insider(hub: Hub, insider: Node, ce: ControlEntry) -> None:
    view = _s(insider).control_log.view
    hub.post([Outgoing(view.mailbox_id, seal_entry(view.suite, view.traffic_key,
                                                   view.mailbox_id, ce, insider.rng))])


# --- (1) stall: colluding committee members withhold their items, run after run ---------------


def test_three_colluders_withholding_round1_round3_and_commit_cost_a_run_each_then_excluded(
) -> None:
    """D never posts its round-1 item, E never its round-3 item, F never the commit (whether
    F's withholding bites depends on its committee position: a later member posts the commit
    when position 1 does not). D and E are each excluded by the run they spoil ("missing
    round 1", "missing round 3"), and the epoch changes by run 3. Nobody is removed; the
    colluders, merely excluded, are recipients and reach the new epoch too. The honest members
    save and load their state after every step: no attack wedges a reload."""
    hub = AttackHub()
    _, nodes = _group("ABCDEF", hub)
    a, b, c, d, e, f = nodes
    hub.readers = [a, b, c]
    hub.drop = [lambda who, kind: who == d.id and kind == TYPE_ROUND1,
                lambda who, kind: who == e.id and kind == TYPE_ROUND3,
                lambda who, kind: who == f.id and kind == TYPE_COMMIT]
    for n in (a, b, c):
        n.reload = True
    hub.advance(HOUR + 1_000)
    hub.post(_s(a).propose(hub.now, refresh=True))
    settle(hub, nodes, rounds=600)
    assert all(_s(n).epoch == 2 for n in nodes), [(n.name, _s(n).epoch) for n in nodes]
    assert len({_s(n).public_epoch_id for n in nodes}) == 1
    excluded = {(x.member, x.reason) for x in a.events if isinstance(x, MemberExcluded)}
    assert (d.id, "missing round 1") in excluded
    assert (e.id, "missing round 3") in excluded
    assert not {x for x in excluded if x[0] in (a.id, b.id, c.id)}, "no honest member excluded"
    assert set(_s(a).roster) == {n.id for n in nodes}
    assert not any(isinstance(x, ForkDetected) for n in nodes for x in n.events)
    # The colluders did withhold (what each was asked for in a run it was on).
    assert (d.id, TYPE_ROUND1) in hub.dropped and (e.id, TYPE_ROUND3) in hub.dropped
    # Each colluder spoils at most one run, then it is off every committee of the epoch.
    runs = [x.run for x in a.events if isinstance(x, MemberExcluded)]
    assert runs and max(runs) <= 3, runs


# --- (6) memory: junk, over-budget and forged entries keep saved states bounded ---------------


def test_a_flood_of_junk_and_over_budget_entries_keeps_every_saved_state_bounded() -> None:
    """Insider M posts 300 identity-signed junk proposals of ~15 KB (readable: signed, counted,
    then refused), anyone posts 300 random blobs into the control mailbox and 300 into the group
    mailbox. M's budget is exceeded and reported once per reader; nothing after its budget
    (64 entries / 512 KiB) is kept, so an honest member's saved state grows by at most the
    budget whatever the flood's length; the epoch change still completes."""
    hub, nodes = _group("ABCM")
    a, b, c, m = nodes
    for n in (a, b, c):
        n.reload = True
    view = _s(m).control_log.view
    size0 = len(_s(a).to_bytes())

    def flood(count: int) -> None:
        for i in range(count):
            ce = sign_identity_entry(m.identity, TYPE_PROPOSAL, group_id=view.group_id,
                                     epoch=view.epoch, author=_s(m).own_index,
                                     body=i.to_bytes(4, "big") + b"\x00" * 15_000)
            _post_as_insider(hub, m, ce)
            hub.post([Outgoing(view.mailbox_id, m.rng(200 + i % 50)),
                      Outgoing(_s(a).mailbox_id, m.rng(100 + i % 50))])
        for n in (a, b, c):
            n.pump(hub)

    flood(100)
    size1 = len(_s(a).to_bytes())
    flood(200)
    size2 = len(_s(a).to_bytes())
    assert size1 - size0 <= cl.CONTROL_BYTE_BUDGET + 64 * 200
    # Only the reading position grows (a few bytes of CBOR integers), no entry is kept.
    assert size2 - size1 <= 16, "entries after the budget are not kept"
    for n in (a, b, c):
        reports = [x for x in n.events if isinstance(x, MisbehaviourReported)
                   and x.member == m.id and x.what == "control budget exceeded"]
        assert len(reports) == 1, n.name
    hub.advance(HOUR + 1_000)
    hub.post(_s(b).propose(hub.now, refresh=True))
    settle(hub, [a, b, c, m])
    assert _s(a).epoch == _s(b).epoch == _s(c).epoch == 2


# --- (3) split: the hub shows one member other hub times --------------------------------------


class _ShiftedView:
    """What a lying hub shows one member: the same entries in the same order, each control
    entry of `mailbox` `shift_ms` later than everyone else sees it."""

    def __init__(self, hub: Hub, mailbox: bytes, shift_ms: int) -> None:
        self.hub, self.mailbox, self.shift = hub, mailbox, shift_ms

    @property
    def boxes(self) -> dict[bytes, list[tuple[bytes, int]]]:
        return {k: [(blob, t + self.shift) for blob, t in v] if k == self.mailbox else v
                for k, v in self.hub.boxes.items()}

    @property
    def t(self) -> int:
        return self.hub.t + self.shift

    @property
    def now(self) -> float:
        return self.hub.now

    def post(self, outs: list[Outgoing]) -> None:
        self.hub.post(outs)


def test_a_hub_showing_one_member_shifted_times_splits_nothing_silently() -> None:
    """The hub shows B every entry of epoch 2's control mailbox 5 s later than A and C see it.
    Whatever each decides, exchanging epoch claims (11.v2.37) over the pairwise sessions makes
    the split visible: all three reach epoch 3 with one epoch id, but the commit that began it
    has two hub times, and A and B each report ForkDetected("hub times differ")."""
    hub, (a, b, c) = _group("ABC")
    hub.advance(HOUR + 1_000)
    hub.post(_s(a).propose(hub.now, refresh=True))
    settle(hub, [a, b, c])
    assert _s(a).epoch == 2
    box = _s(a).control_mailbox_id
    lying = _ShiftedView(hub, box, 5_000)
    hub.advance(HOUR + 1_000)
    hub.post(_s(c).propose(hub.now, refresh=True))
    for _ in range(300):
        moved = a.pump(hub) | c.pump(hub) | b.pump(lying)  # type: ignore[arg-type]
        if not moved:
            hub.advance(1_000)
            for n, h in ((a, hub), (c, hub), (b, lying)):
                if _s(n).status == "active":
                    ev, out = _s(n).tick(n.now(h))  # type: ignore[arg-type]
                    n.events += ev
                    hub.post(out)
    # The shift changes no decision (every deadline moves with it): all reach epoch 3 with
    # one epoch id, and nothing in the control mailboxes shows the lie.
    assert _s(a).epoch == _s(b).epoch == _s(c).epoch == 3
    assert _s(a).public_epoch_id == _s(b).public_epoch_id
    assert not any(isinstance(x, ForkDetected) for n in (a, b, c) for x in n.events)
    # The claims do: the commit that began epoch 3 has two hub times.
    got_b = _s(b).compare_epoch_claim(_s(a).epoch_claim(), a.identity.public, hub.now)
    got_a = _s(a).compare_epoch_claim(_s(b).epoch_claim(), b.identity.public, hub.now)
    for got in (got_a, got_b):
        assert [x.kind for x in got if isinstance(x, ForkDetected)] == ["hub times differ"]
    # C, shown the same times as A, finds nothing wrong with A.
    assert not _s(c).compare_epoch_claim(_s(a).epoch_claim(), a.identity.public, hub.now)


# --- (7) epoch claims from outsiders, garbage and another group --------------------------------


def test_epoch_claims_from_outsiders_and_malformed_claims_change_nothing() -> None:
    """A non-member's claim of another epoch id is Ignored (no false fork report); malformed
    claims raise typed errors; none changes the receiver's saved state."""
    hub, (a, b) = _group("AB")
    outsider = make_node("X")
    before = _s(a).to_bytes()
    claim = EpochClaim.from_bytes(_s(a).suite, _s(b).epoch_claim(), group_id=_s(a).group_id)
    forged = EpochClaim(claim.suite, claim.group_id, claim.epoch, b"\x55" * 32, claim.t0)
    events = _s(a).compare_epoch_claim(forged.to_bytes(), outsider.identity.public, hub.now)
    assert not any(isinstance(x, ForkDetected) for x in events)
    assert [x.reason for x in events if isinstance(x, Ignored)] == [
        "epoch claim from a peer that is not a member"]
    for junk in (b"", b"\xff" * 10, _s(b).epoch_claim()[:-1], _s(b).epoch_claim() + b"\x00",
                 b"\x00" * 161):
        with pytest.raises(TripleRatchetError):
            _s(a).compare_epoch_claim(junk, b.identity.public, hub.now)
    assert _s(a).to_bytes() == before
    # The member's own forged claim is reported (its word, as in any message).
    events = _s(a).compare_epoch_claim(forged.to_bytes(), b.identity.public, hub.now)
    assert any(isinstance(x, ForkDetected) for x in events)


# --- (4) a removed member trying to stay: its announcement, its rejoin request -----------------


def test_a_member_being_removed_cannot_join_the_committee_of_its_removal_nor_resume() -> None:
    """C, being removed by A's proposal, races to announce first in the removal's run (with the
    right hashes and view: only its eligibility is wrong). Every reader ignores it ("announcer
    not eligible"), so C never holds the new epoch's commit secret. Afterwards its rejoin
    request (made while it was a member) is refused by a member of the new epoch: a removed
    member comes back only through an add (11.v2.31)."""
    hub, (a, b, c) = _group("ABC")
    hub.advance(61_000)
    request = _s(c).rejoin_request(c.inbox)
    hub.post(_s(a).propose(hub.now, remove=[c.id]))
    for n in (a, b, c):
        n.pump(hub)
    log = _s(c).control_log
    attempt = log.attempt
    assert attempt is not None and c.id in attempt.removed
    body = make_announcement(RunSeed.generate(_s(c).suite, c.rng), group_id=log.view.group_id,
                             epoch=log.view.epoch, run=1, identity=c.id,
                             applied_hash=attempt.applied_hash, roster_hash=attempt.roster_hash,
                             view_hash=log.view.view_hash)
    ce = sign_identity_entry(c.identity, TYPE_ANNOUNCEMENT, group_id=log.view.group_id,
                             epoch=log.view.epoch, author=_s(c).own_index, body=body.to_bytes())
    _post_as_insider(hub, c, ce)
    settle(hub, [a, b, c])
    assert _s(a).epoch == _s(b).epoch == 2 and c.id not in _s(a).roster
    assert _s(c).status == "removed"
    assert "announcer not eligible" in _ignored(a) and "announcer not eligible" in _ignored(b)
    assert not any(isinstance(x, EpochChanged) and x.epoch == 2 for x in c.events)
    events, out = _s(b).on_rejoin_request(request, c.identity.public, hub.now)
    assert out == [] and any(isinstance(x, Ignored) for x in events)


# --- (5)/(7) a replayed rejoin request after its resume ----------------------------------------


def test_a_rejoin_request_replayed_after_its_resume_is_refused() -> None:
    """C's rejoin request is answered in epoch 1 and C is resumed into epoch 2. A colluder (or
    the network) replays the same request to B in epoch 2: its record's counter is no longer
    above C's entry, so B refuses it (no second resume that would take C's keys back to the
    request's, which C has replaced by its rotation)."""
    hub, (a, b, c) = _group("ABC")
    request = _s(c).rejoin_request(c.inbox)
    hub.advance(61_000)
    events, out = _s(a).on_rejoin_request(request, c.identity.public, hub.now)
    assert events == [] and out
    hub.post([o for o in out if isinstance(o, Outgoing)])
    settle(hub, [a, b, c])
    assert _s(b).epoch >= 2
    before = _s(b).to_bytes()
    events, out = _s(b).on_rejoin_request(request, c.identity.public, hub.now)
    assert out == [] and any(isinstance(x, Ignored) for x in events)
    assert _s(b).to_bytes() == before



# --- (4) a removed member reading a returning member's messages, long after its removal ---------


def test_a_member_back_from_a_day_offline_cannot_send_in_the_epoch_a_removal_ended() -> None:
    """B is offline while A removes C (C(2) decided). A day later B's device wakes and the app
    sends at once, before reading: encrypt() seals in epoch 2, whose keys C holds. C's library
    would not deliver it (t > t(C(2))), but a modified client, or a hub that gives C an earlier
    time, reads it — a day after C's removal, not "within GRACE" as spec 13 ("A removed member
    reads its last epoch to the end") bounds it. 11.v2.29 says a member that was offline reads
    its control mailbox to the end before sending; encrypt() does not hold B to it."""
    hub, (a, b, c) = _group("ABC")
    hub.advance(HOUR + 1_000)
    hub.post(_s(a).propose(hub.now, refresh=True))
    settle(hub, [a, b, c])
    assert _s(b).epoch == 2
    b.online = c.online = False
    hub.advance(61_000)
    hub.post(_s(a).propose(hub.now, remove=[c.id]))
    settle(hub, [a, b])
    assert _s(a).epoch == 3
    decided_at = _s(a).control_log.view.t0
    assert decided_at is not None
    # C's modified client reads the removal and keeps epoch 2's keys (it never says caught_up).
    box = _s(c).control_mailbox_id
    epoch2_box = _s(c).mailbox_id
    for blob, t in hub.boxes[box][c.cursors.get(box, 0):]:
        c.events += _s(c).receive(blob, hub.now, entry_time=t)[0]
    # (epoch 1's group mailbox may still be listed too: its grace had not passed when C left)
    assert _s(c).status == "removed" and epoch2_box in _s(c).mailboxes()
    hub.advance(24 * HOUR)
    b.online = True
    before = _s(b).to_bytes()
    with pytest.raises(StateError, match="caught_up"):
        _s(b).encrypt(b"a day after C's removal", b.now(hub))
    assert _s(b).to_bytes() == before
    # Once B has read its control mailbox to the end it is in epoch 3, which C cannot read.
    settle(hub, [a, b])
    assert _s(b).epoch == 3
    out = _s(b).encrypt(b"a day after C's removal", b.now(hub))
    assert out[0].mailbox_id not in _s(c).mailboxes()  # C cannot even name its mailbox
    hub.post(out)
    settle(hub, [a, b])
    assert a.messages()[-1:] == [b"a day after C's removal"]
