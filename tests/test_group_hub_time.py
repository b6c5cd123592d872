"""Version 1's phase timeouts judged on the hub's acceptance times (issue 8's premature-timeout
attack, and the "unresponsive" label that only a timeout may justify)."""

from __future__ import annotations

from test_group_equivocation import B, world
from test_group_support import Net, make_identities

from triple_ratchet.group.attempt_mailbox import ABORT_TIMEOUT
from triple_ratchet.group.epoch_change import PHASE_TIMEOUT_MS, PREMATURE_TIMEOUT
from triple_ratchet.group.events import AttemptAborted, Ignored, MembershipChanged
from triple_ratchet.group.message import CONTENT_PROPOSAL
from triple_ratchet.group.proposal import REASON_UNRESPONSIVE, make_proposal
from triple_ratchet.group.session import GroupSession, encrypt_in_epoch
from triple_ratchet.random import DeterministicRandom


def _create(n: int = 3) -> Net:
    ids = make_identities(n, seed=b"hub time")
    net = Net()
    for name, ident in zip("abcd", ids, strict=False):
        net.identities[name] = ident
    session, sends = GroupSession.create(ids[0], [i.public for i in ids[1:]], net.now,
                                         rng=DeterministicRandom(b"creator"))
    net.members["a"] = session
    net.send("a", sends)
    net.run()
    return net


def test_a_timeout_abort_posted_at_once_does_nothing_and_removes_no_one() -> None:
    """Issue 8: c posts a timeout naming b the moment round 1 starts, before b could answer.
    Judged on hub time it is premature: ignored by every reader, nobody removed, the change
    completes with b still a member (the old code removed b as "unresponsive")."""
    w = world("round1")  # every announcement read; the round-1 replies not yet relayed
    w.post(w.abort(b"", reason=ABORT_TIMEOUT, named=(B,)))  # hub time: the phase's start
    w.finish()
    b_id = w.identity("b")
    for name in "abc":
        assert not [e for e in w.net.events[name] if isinstance(e, AttemptAborted)]
        assert any(isinstance(e, Ignored) and e.reason == PREMATURE_TIMEOUT
                   and e.member == w.identity("c") for e in w.net.events[name])
        assert not [e for e in w.net.events[name]
                    if isinstance(e, MembershipChanged) and e.removed]
        assert w.net.members[name].epoch == 2
        assert b_id in w.net.members[name].roster


def test_a_timeout_abort_one_millisecond_early_is_ignored_and_on_time_it_counts() -> None:
    """The boundary: at `start + PHASE_TIMEOUT_MS - 1` ignored (and it does not spend the
    aborter's one abort); at `start + PHASE_TIMEOUT_MS` it ends the attempt."""
    w = world("announcing")  # b never announced
    start = w.attempt("a").phase_started_ms
    w.net.hub.now_ms = start + PHASE_TIMEOUT_MS - 1
    w.post(w.abort(b"", reason=ABORT_TIMEOUT, named=(B,)))
    w.net.run()
    assert {w.net.members[x].attempt_phase for x in "abc"} == {"announcing"}
    w.net.hub.now_ms = start + PHASE_TIMEOUT_MS
    w.post(w.abort(b"x", reason=ABORT_TIMEOUT, named=(B,)))  # another signature, same body
    w.net.run()
    for name in "abc":
        (aborted,) = [e for e in w.net.events[name] if isinstance(e, AttemptAborted)]
        assert aborted.reason == "timeout" and aborted.named == (w.identity("b"),)


def test_our_own_early_timeout_is_ignored_and_we_may_time_out_again() -> None:
    """A member whose clock runs ahead of the hub's aborts too early: everyone (itself too)
    ignores it, and once the hub's time has passed the timeout its next abort counts."""
    net = _create()
    c = net.members.pop("c")  # c goes offline
    net.send("a", net.members["a"].propose(net.now))
    net.run()
    a = net.members["a"]
    assert a.attempt_phase == "announcing"
    a_events, sends = a.tick(net.now + PHASE_TIMEOUT_MS / 1000 + 1)  # a's clock is ahead
    assert sends and a._s.attempt is not None and a._s.attempt.abort_sent
    net.send("a", sends)  # the hub stamps it with its own time: still the phase's start
    net.run()
    assert a.attempt_phase == "announcing" and not a._s.attempt.abort_sent
    assert not any(isinstance(e, AttemptAborted) for x in "ab" for e in net.events[x])
    net.tick(PHASE_TIMEOUT_MS / 1000 + 1)  # the hub's time passes the timeout too
    net.run()
    c_id = net.identities["c"].public.to_bytes()
    assert net.members["a"].epoch == net.members["b"].epoch == 2
    assert c_id not in net.members["a"].roster
    del c, a_events


def test_a_removal_labelled_unresponsive_without_a_timeout_is_ignored() -> None:
    """Issue 8: any member could label its removal of another "unresponsive". Only members a
    valid timeout abort named in this epoch may be removed under that label."""
    net = _create()
    c = net.members["c"]
    b_id = net.identities["b"].public.to_bytes()
    e = c._s.epoch
    assert e is not None
    signed = make_proposal(net.identities["c"], group_id=e.group_id, epoch=e.epoch,
                           public_epoch_id=e.public_epoch_id, old_roster=c.roster, added=[],
                           removed=[b_id], reason=REASON_UNRESPONSIVE,
                           rng=DeterministicRandom(b"label"))
    blob, state = encrypt_in_epoch(e, CONTENT_PROPOSAL, signed.to_bytes(),
                                   DeterministicRandom(b"r"))
    net.hub.append(state.mailbox_id, blob)
    net.strict = False
    net.run()
    c_id = net.identities["c"].public.to_bytes()
    for name in "ab":
        assert net.members[name].attempt_phase is None
        assert any(isinstance(ev, Ignored) and "unresponsive" in ev.reason and ev.member == c_id
                   for ev in net.events[name])
        assert b_id in net.members[name].roster and net.members[name].epoch == 1
