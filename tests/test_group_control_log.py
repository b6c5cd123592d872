"""The judge of an epoch's control mailbox (spec 11.v2.15-11.v2.24): every attack of issue 8 and
ASYNC-EPOCHS.md as a sequence of entries, ending as the rules say; determinism across readers,
orders of feeding and saved states."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from v2_support import DAY, GROUP, T0, World, feed

from triple_ratchet import cbor
from triple_ratchet.dkg.attempt import SignedRound1, sign_round1
from triple_ratchet.errors import DecodeError, LimitExceeded, ProtocolError, UsageError
from triple_ratchet.group import control_log as cl
from triple_ratchet.group.change_proposal import KIND_ADD, KIND_REMOVE, KIND_RESUME
from triple_ratchet.group.control import (
    TYPE_PROPOSAL,
    TYPE_RECORD,
    TYPE_ROUND1,
    ControlEntry,
    sign_identity_entry,
)
from triple_ratchet.group.control_log import (
    ANNOUNCE,
    CLOSE_WINDOW,
    COMMIT,
    EPOCH_MIN_AGE,
    PHASE_TIMEOUT,
    REFRESH_MIN_AGE,
    RETENTION,
    ROUND1,
    ROUND3,
    WAITING,
    ControlLog,
    Entry,
    EpochView,
)
from triple_ratchet.group.events import (
    Ignored,
    MemberDormant,
    MemberExcluded,
    MisbehaviourReported,
    ProposalVoid,
)
from triple_ratchet.group.records import PURPOSE_ROTATE
from triple_ratchet.group.run import EVIDENCE_ROUND1_EQUIVOCATION, Evidence, Round1Item
from triple_ratchet.suites import CLASSICAL_SUITES

S = T0 + 30_000  # where the first proposal lands
R = T0 + EPOCH_MIN_AGE + 400  # first hub time an announcement is valid, with room


def reasons(events: list[object]) -> list[str]:
    return [e.reason for e in events if isinstance(e, Ignored)]


def excluded(events: list[object]) -> list[tuple[bytes, str]]:
    return [(e.member, e.reason) for e in events if isinstance(e, MemberExcluded)]


def with_add(w: World, log: ControlLog | None = None) -> ControlLog:
    log = log or w.start()
    _, jk = w.join_key("D")
    log, events = log.judge(w.entry(S, w.add(w["A"], jk)))
    assert log.attempt is not None and not events
    return log


def post(w: World, log: ControlLog, t: int, ce: object) -> tuple[ControlLog, list[object]]:
    new, events = log.judge(w.entry(t, ce))  # type: ignore[arg-type]
    return new, list(events)


# --- The example of 11.v2.36 and the committee ----------------------------------------------


def test_add_with_one_member_offline_decides_with_a_committee_of_two() -> None:
    w = World(3)
    A, B, C = w["A"], w["B"], w["C"]
    log = with_add(w)
    assert log.attempt is not None and len(log.attempt.roster) == 4
    log, _ = w.honest_run(log, [B, A], T0 + 60_400)
    assert log.decided is not None
    assert log.committee() == (B.id, A.id)
    inputs = log.run_inputs()
    assert inputs is not None
    # Recipients: C (holds init_secret, sealed commit_secret) and D (joiner, member_base).
    assert next(inputs.roster.entries[i].identity for i in inputs.recipients) == C.id
    assert len(inputs.member_base_to) == 1 and C.id not in inputs.member_base_to
    assert log.deadline() is None
    announcements, round1, round3 = log.certificate()
    assert len(announcements) == len(round1) == len(round3) == 2
    agreed = log.agreed()
    items = log.round1_items()
    assert agreed is not None and items is not None and [r.sender for r in items] == [1, 2]
    # What a recipient does with it: C opens its sealing (commit_secret) and checks the tag.
    from triple_ratchet.group.committee import open_commit
    decided = log.decided
    assert decided is not None
    c_index = inputs.roster.index_of(C.id)
    assert c_index is not None
    outcome = open_commit(inputs, items, decided.commit, bundle_root=agreed[0],
                          confirmation_tag=agreed[1], roster_index=c_index,
                          receive_private_key=C.keys.receive_key.to_bytes(),
                          init_secret=w.view.init_secret)
    assert outcome.confirmation_tag == agreed[1]


def test_all_suites_decide() -> None:
    for suite in CLASSICAL_SUITES:
        w = World(2, suite=suite)
        log = with_add(w)
        log, _ = w.honest_run(log, [w["A"], w["B"]], R)
        assert log.decided is not None, suite.name


def test_announcements_stop_at_k_and_read_only_2k() -> None:
    w = World(18)
    log = with_add(w)
    for i, m in enumerate(w.members[:8]):
        log, _ = post(w, log, R + i, w.announcement(log, m))
    # The 8th eligible announcement ends ANNOUNCE at once: ROUND1 with a committee of 8.
    assert log.run.phase == ROUND1 and len(log.committee()) == 8
    log, events = post(w, log, R + 9, w.announcement(log, w.members[8]))
    assert reasons(events) == ["announcement after the ANNOUNCE phase"]


def test_excluded_announcers_count_towards_2k_but_not_the_committee() -> None:
    w = World(18)
    log = with_add(w)
    log = replace(log, _s=replace(log._s, excluded=frozenset(range(17))))
    for i, m in enumerate(w.members[:17]):
        log, events = post(w, log, R + i, w.announcement(log, m))
    assert reasons(events) == ["announcement beyond 2k"]
    assert log.run.phase == ANNOUNCE and len(log.run.announcements) == 16


# --- Time: EPOCH_MIN_AGE, premature TICKs, deadlines -----------------------------------------


def test_announcement_one_ms_before_epoch_min_age_is_ignored() -> None:
    w = World(3)
    log = with_add(w)
    early, events = post(w, log, T0 + EPOCH_MIN_AGE - 1, w.announcement(log, w["A"]))
    assert reasons(events) == ["announcement too early"]
    assert early.run.phase == WAITING and early.run.announcements == ()
    on_time, events = post(w, log, T0 + EPOCH_MIN_AGE, w.announcement(log, w["A"]))
    assert not reasons(events) and on_time.run.phase == ANNOUNCE


def test_epoch_one_has_no_minimum_age_and_t0_is_its_first_entry() -> None:
    w = World(3, epoch=1, t0=None)
    log = with_add(w)
    assert log.t0 == S
    log, events = post(w, log, S + 1, w.announcement(log, w["A"]))
    assert not events and log.run.phase == ANNOUNCE


def test_premature_tick_does_nothing() -> None:
    w = World(3)
    A, B = w["A"], w["B"]
    log = with_add(w)
    log, _ = post(w, log, R, w.announcement(log, A))
    log, _ = post(w, log, R + 1, w.announcement(log, B))
    assert log.deadline() == R + CLOSE_WINDOW
    # Ticks before the deadline: nothing ends, no one is excluded.
    log, events = post(w, log, R + CLOSE_WINDOW - 1, w.tick(B))
    assert log.run.phase == ANNOUNCE and not excluded(events)
    log, events = post(w, log, R + CLOSE_WINDOW - 1, w.tick(B))
    assert reasons(events) == ["tick already sent in this phase"]
    log, _ = post(w, log, R + CLOSE_WINDOW, w.tick(A))
    assert log.run.phase == ROUND1 and log.deadline() == R + CLOSE_WINDOW + PHASE_TIMEOUT
    # A round-1 item from A, then a premature TICK by A: B (no round-1 yet) is not excluded.
    log, _ = post(w, log, R + CLOSE_WINDOW + 5, w.round1(log, A))
    log, events = post(w, log, R + CLOSE_WINDOW + PHASE_TIMEOUT - 1, w.tick(A))
    assert log.run.phase == ROUND1 and not excluded(events) and log.excluded == frozenset()
    log, events = post(w, log, R + CLOSE_WINDOW + PHASE_TIMEOUT - 1, w.round1(log, B))
    assert log.run.phase == ROUND3 and not excluded(events)


def test_any_entry_at_the_deadline_ends_the_phase_even_unreadable() -> None:
    w = World(3)
    A, B = w["A"], w["B"]
    log = with_add(w)
    log, _ = post(w, log, R, w.announcement(log, A))
    log, _ = post(w, log, R + 1, w.announcement(log, B))
    log, _ = post(w, log, R + CLOSE_WINDOW, b"not a control blob")
    assert log.run.phase == ROUND1 and log.committee() == (A.id, B.id)
    log, events = post(w, log, R + CLOSE_WINDOW + PHASE_TIMEOUT, b"\x00")
    assert sorted(excluded(events)) == sorted([(A.id, "missing round 1"),
                                              (B.id, "missing round 1")])
    assert log.run.run == 2 and log.run.phase == WAITING
    assert log.deadline() is None


def test_two_members_excluded_by_transient_failures_are_eligible_again() -> None:
    w = World(3)
    A, B = w["A"], w["B"]
    log = with_add(w)
    log, _ = post(w, log, R, w.announcement(log, A))
    log, _ = post(w, log, R + 1, w.announcement(log, B))
    log, _ = post(w, log, R + CLOSE_WINDOW, w.tick(A))
    t = R + CLOSE_WINDOW + PHASE_TIMEOUT
    log, _events = post(w, log, t, w.tick(A))  # nobody sent round 1 (a network failure)
    assert log.excluded == {A.id, B.id} and log.run.run == 2
    assert not log.eligible(A.id) and not log.eligible(B.id)
    # Run 2: only excluded members announce; ANNOUNCE ends with no eligible announcer.
    log, _ = post(w, log, t + 1, w.announcement(log, A))
    assert log.run.phase == ANNOUNCE and log.committee() == ()
    log, _ = post(w, log, t + 1 + CLOSE_WINDOW, w.tick(B))
    assert log.excluded == frozenset() and log.run.run == 3
    assert log.eligible(A.id) and log.eligible(B.id)
    log, _ = w.honest_run(log, [A, B], t + 2 + CLOSE_WINDOW)
    assert log.decided is not None and log.committee() == (A.id, B.id)


# --- R4: the deciding commit -----------------------------------------------------------------


def test_solo_commit_racing_an_honest_run_is_invalid_for_every_reader() -> None:
    w = World(3)
    A, B = w["A"], w["B"]
    log = with_add(w)
    # A plays a whole run alone in a private copy of the log (a committee of one) ...
    solo = log
    solo, _ = post(w, solo, R, w.announcement(solo, A))
    solo, _ = post(w, solo, R + CLOSE_WINDOW, w.tick(A))
    solo, _ = post(w, solo, R + CLOSE_WINDOW + 1, w.round1(solo, A))
    r3, _, outcome = w.round3(solo, A)
    solo, _ = post(w, solo, R + CLOSE_WINDOW + 2, r3)
    solo_commit = w.commit(solo, A, outcome)
    # ... while the real mailbox has B and A announcing: A's solo commit lands in ANNOUNCE.
    entries = [w.entry(R, w.announcement(log, B)), w.entry(R + 5, w.announcement(log, A)),
               w.entry(R + 6, solo_commit)]
    online, events = feed(log, entries)
    assert online.decided is None and "commit outside the COMMIT phase" in reasons(events)
    # The honest run finishes and decides; a reader catching up later agrees.
    online, _ = post(w, online, R + CLOSE_WINDOW, w.tick(B))
    for m in [w._by_index(i) for i in online.run.committee]:
        online, _ = post(w, online, R + CLOSE_WINDOW + 1, w.round1(online, m))
    outcome2 = None
    for m in [w._by_index(i) for i in online.run.committee]:
        ce, _, outcome2 = w.round3(online, m)
        online, _ = post(w, online, R + CLOSE_WINDOW + 2, ce)
    assert online.run.phase == COMMIT and outcome2 is not None
    # The solo commit again, now in COMMIT: its root is not the certified one.
    online, events = post(w, online, R + CLOSE_WINDOW + 3, solo_commit)
    assert online.decided is None and events
    online, _ = post(w, online, R + CLOSE_WINDOW + 4, w.commit(online, B, outcome2))
    assert online.decided is not None
    late = ControlLog.from_bytes(online.to_bytes())
    assert late.decided == online.decided


def test_commit_by_a_non_committee_member_is_ignored() -> None:
    w = World(3)
    A, B, C = w["A"], w["B"], w["C"]
    log = with_add(w)
    log, _ = post(w, log, R, w.announcement(log, A))
    log, _ = post(w, log, R + CLOSE_WINDOW, w.tick(A))
    log, _ = post(w, log, R + CLOSE_WINDOW + 1, w.round1(log, A))
    ce, _, outcome = w.round3(log, A)
    log, _ = post(w, log, R + CLOSE_WINDOW + 2, ce)
    assert log.run.phase == COMMIT
    inputs = log.run_inputs()
    assert inputs is not None
    from triple_ratchet.group.committee import make_commit
    from triple_ratchet.group.control import TYPE_COMMIT
    body = make_commit(inputs, outcome).to_bytes()
    log2, events = post(w, log, R + CLOSE_WINDOW + 3, w.member_entry(C, TYPE_COMMIT, body))
    assert log2.decided is None and reasons(events) == ["commit from outside the committee"]
    log3, _ = post(w, log, R + CLOSE_WINDOW + 3, w.member_entry(A, TYPE_COMMIT, body))
    assert log3.decided is not None
    after, events = post(w, log3, R + CLOSE_WINDOW + 4, w.tick(B))
    assert reasons(events) == ["after the deciding commit"] and after == log3


def test_commit_phase_deadline_excludes_the_whole_committee() -> None:
    w = World(3)
    A, B = w["A"], w["B"]
    log = with_add(w)
    log, _ = post(w, log, R, w.announcement(log, A))
    log, _ = post(w, log, R + 1, w.announcement(log, B))
    log, _ = post(w, log, R + CLOSE_WINDOW, w.tick(A))
    for m in (A, B):
        log, _ = post(w, log, R + CLOSE_WINDOW + 1, w.round1(log, m))
    for m in (A, B):
        ce, _, _ = w.round3(log, m)
        log, _ = post(w, log, R + CLOSE_WINDOW + 2, ce)
    assert log.run.phase == COMMIT
    log, events = post(w, log, R + CLOSE_WINDOW + 2 + PHASE_TIMEOUT, w.tick(w["C"]))
    assert sorted(excluded(events)) == sorted([(A.id, "no commit"), (B.id, "no commit")])


# --- Freeze attempts --------------------------------------------------------------------------


def test_freeze_by_one_insider_ends_with_the_change_decided() -> None:
    """M equivocates its announcements, ticks early, has evidence posted again and again: it
    is excluded once, and the honest run after it decides."""
    w = World(4)
    A, B, M = w["A"], w["B"], w["D"]
    log = with_add(w)
    first = w.announcement(log, M)
    second = w.announcement(log, M, variant=1)
    log, _ = post(w, log, R, first)
    log, _ = post(w, log, R + 1, w.tick(M))  # premature: nothing
    log, events = post(w, log, R + 2, second)
    assert MisbehaviourReported(M.id, "announcement equivocation") in events
    log, _ = post(w, log, R + 3, w.announcement(log, A))
    evidence = w.evidence(B, w.announcement_evidence(1, first, second))
    log, events = post(w, log, R + 4, evidence)
    assert excluded(events) == [(M.id, "equivocation")] and log.run.run == 2
    # Run 2: M announces first again (allowed while excluded) and equivocates; the repeated
    # evidence excludes nothing new and ends no run.
    first2 = w.announcement(log, M, variant=2)
    second2 = w.announcement(log, M, variant=3)
    log, _ = post(w, log, R + 10, first2)
    log, _ = post(w, log, R + 11, second2)
    log, _ = post(w, log, R + 12, w.announcement(log, A))
    log, _ = post(w, log, R + 13, w.announcement(log, B))
    log, events = post(w, log, R + 14, w.evidence(B, w.announcement_evidence(2, first2,
                                                                             second2)))
    assert reasons(events) == ["evidence against an excluded member"]
    assert log.run.run == 2 and log.run.phase == ANNOUNCE
    log, _ = post(w, log, R + 10 + CLOSE_WINDOW, w.tick(M))
    assert log.committee() == (A.id, B.id)
    for m in (A, B):
        log, _ = post(w, log, R + 10 + CLOSE_WINDOW + 1, w.round1(log, m))
    outcome = None
    for m in (A, B):
        ce, _, outcome = w.round3(log, m)
        log, _ = post(w, log, R + 10 + CLOSE_WINDOW + 2, ce)
    assert outcome is not None
    log, _ = post(w, log, R + 10 + CLOSE_WINDOW + 3, w.commit(log, A, outcome))
    assert log.decided is not None and M.id in log.excluded


def test_freeze_by_two_insiders_ends_with_the_change_decided() -> None:
    """Two insiders propose first (mutual removals), equivocate, tick early, repeat evidence;
    the first removal applies, the other is void, and the change completes."""
    w = World(5)
    A, B, M1, M2 = w["A"], w["B"], w["D"], w["E"]
    log = w.start()
    log, _ = post(w, log, S, w.remove(M1, M2))  # always-first proposal: S(e) is here
    log, events = post(w, log, S + 1, w.remove(M2, M1))  # pending, carried into e+1
    assert not events and log.attempt is not None
    assert log.attempt.removed == {M2.id}
    assert len(log.carried_out()) == 1
    log, events = post(w, log, S + 2, w.remove(M2, A))
    assert reasons(events) == ["author has a pending proposal"]
    # M2 is removed by the attempt: not eligible, its announcements are ignored.
    log, events = post(w, log, R, w.announcement(log, M2))
    assert reasons(events) == ["announcer not eligible"]
    f1, s1 = w.announcement(log, M1), w.announcement(log, M1, variant=1)
    log, _ = post(w, log, R + 1, f1)
    log, _ = post(w, log, R + 2, w.tick(M1))
    log, _ = post(w, log, R + 3, s1)
    ev = w.announcement_evidence(1, f1, s1)
    log, events = post(w, log, R + 4, w.evidence(A, ev))
    assert excluded(events) == [(M1.id, "equivocation")] and log.run.run == 2
    log, events = post(w, log, R + 5, w.evidence(B, ev))  # repeated: another run now
    assert reasons(events) == ["evidence for another run"]
    log, _ = w.honest_run(log, [A, B], R + 6)
    assert log.decided is not None
    assert log.attempt.roster.index_of(M2.id) is None
    assert log.attempt.roster.index_of(M1.id) is not None
    # In e+1 the carried removal by M2 is void: its author is gone.
    view = log.next_view(epoch_id=w.rng(32), init_secret=w.rng(w.suite.hash_len),
                         traffic_key=w.rng(w.suite.aead_key_len), mailbox_id=w.rng(32))
    assert (view.epoch, view.t0, view.roster) == (6, log.decided.t, log.attempt.roster)
    assert view.carried == log.carried_out() and len(view.carried) == 1
    nxt = ControlLog.start(view)
    _, events = nxt.judge(Entry(1, log.decided.t + 1, b"x"))
    assert any(isinstance(e, ProposalVoid) and e.reason == "author removed" for e in events)


def test_round1_equivocation_is_reported_and_its_evidence_ends_only_one_run() -> None:
    w = World(3)
    A, B, C = w["A"], w["B"], w["C"]
    log = with_add(w)
    log, _ = post(w, log, R, w.announcement(log, A))
    log, _ = post(w, log, R + 1, w.announcement(log, B))
    log, _ = post(w, log, R + CLOSE_WINDOW, w.tick(A))
    inputs = log.run_inputs()
    assert inputs is not None
    r1 = w.round1(log, A)
    first = SignedRound1.from_bytes(Round1Item.from_bytes(r1.body).signed_round1)
    # A signs the same msg1 under its DKG key with another payload: another signed content.
    second = sign_round1(inputs.params(), w.seed(A, 1).dkg_secret(), first.message,
                         b"\x07" * 32, rng=w.rng)
    log, _ = post(w, log, R + CLOSE_WINDOW + 1, r1)
    log, _ = post(w, log, R + CLOSE_WINDOW + 2, w.round1(log, B))
    assert log.run.phase == ROUND3
    # The second item is compared with the first whatever the phase (R8).
    log, events = post(w, log, R + CLOSE_WINDOW + 3, w.member_entry(
        A, TYPE_ROUND1, Round1Item(1, second.to_bytes()).to_bytes()))
    assert MisbehaviourReported(A.id, "round-1 equivocation") in events
    same = Evidence.make(1, EVIDENCE_ROUND1_EQUIVOCATION,
                         cbor.encode([first.to_bytes(), first.to_bytes()])).to_bytes()
    log2, events = post(w, log, R + CLOSE_WINDOW + 4, w.evidence(C, same))
    assert log2.run.run == 1 and not excluded(events) and events
    ev = Evidence.make(1, EVIDENCE_ROUND1_EQUIVOCATION,
                       cbor.encode([first.to_bytes(), second.to_bytes()])).to_bytes()
    log, events = post(w, log, R + CLOSE_WINDOW + 4, w.evidence(C, ev))
    assert excluded(events) == [(A.id, "equivocation")] and log.run.run == 2
    # The same evidence again: another run now, nothing happens.
    log2, events = post(w, log, R + CLOSE_WINDOW + 5, w.evidence(C, ev))
    assert log2.run == log.run and log2.excluded == log.excluded
    assert reasons(events) == ["evidence for another run"]
    log, _ = w.honest_run(log, [B], R + CLOSE_WINDOW + 6)
    assert log.decided is not None and log.committee() == (B.id,)


# --- R5: proposals -----------------------------------------------------------------------------


def test_two_adds_that_overflow_the_roster_apply_the_first_and_void_the_second(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cl, "MAX_GROUP_SIZE", 4)  # the rule, at a size a test can build
    prev = World(3, epoch=4, seed=b"overflow")
    A, B = prev["A"], prev["B"]
    _, jk1 = prev.join_key("X")
    _, jk2 = prev.join_key("Y")
    carried = (prev.add(A, jk1).to_bytes(), prev.add(B, jk2).to_bytes())
    view = replace(prev.view, epoch=5, carried=carried)
    log, events = ControlLog.start(view).judge(Entry(1, T0 + 5, b"marker"))
    assert log.attempt is not None
    assert log.attempt.added == (jk1.identity,) and len(log.attempt.roster) == 4
    assert [(e.author, e.kind, e.reason) for e in events if isinstance(e, ProposalVoid)] == [
        (B.id, KIND_ADD, "group full")]
    assert cl.MAX_GROUP_SIZE == 4


def test_protocol_constants() -> None:
    assert cl.MAX_GROUP_SIZE == 1000 and cl.COMMITTEE_SIZE == 8
    assert (CLOSE_WINDOW, PHASE_TIMEOUT, EPOCH_MIN_AGE) == (10_000, 60_000, 60_000)
    assert (cl.CONTROL_ENTRY_BUDGET, cl.CONTROL_BYTE_BUDGET) == (64, 512 * 1024)


def test_mutual_removals_carried_resolve_by_order() -> None:
    prev = World(4, epoch=4, seed=b"mutual")
    A, B = prev["A"], prev["B"]
    carried = (prev.remove(A, B).to_bytes(), prev.remove(B, A).to_bytes())
    view = replace(prev.view, epoch=5, carried=carried)
    log, events = ControlLog.start(view).judge(Entry(1, T0 + 5, b"marker"))
    assert log.attempt is not None
    assert log.attempt.removed == {B.id}
    assert [(e.author, e.kind, e.subject, e.reason) for e in events
            if isinstance(e, ProposalVoid)] == [(B.id, KIND_REMOVE, A.id, "author removed")]
    # The other order gives the other result: order decides, nothing else.
    view = replace(prev.view, epoch=5, carried=carried[::-1])
    log, _ = ControlLog.start(view).judge(Entry(1, T0 + 5, b"marker"))
    assert log.attempt is not None and log.attempt.removed == {A.id}


def test_replayed_removal_from_an_earlier_epoch_is_ignored() -> None:
    w = World(3)
    A, B = w["A"], w["B"]
    old = w.remove(A, B, epoch=4)
    log, events = post(w, w.start(), S, old)
    assert log.attempt is None and events and log.pending == ()
    # The same body re-wrapped in an epoch-5 entry still names epoch 4 inside.
    rewrapped = sign_identity_entry(A.identity, TYPE_PROPOSAL, group_id=GROUP, epoch=5,
                                    author=0, body=old.body)
    log, events = post(w, w.start(), S, rewrapped)
    assert log.attempt is None and events


def test_wrapped_rotation_record_is_refused_as_a_resume() -> None:
    w = World(3)
    A, C = w["A"], w["C"]
    rotation = w.resume_record(C, purpose=PURPOSE_ROTATE)
    from triple_ratchet.group.change_proposal import ChangeProposal
    body = ChangeProposal(w.suite, KIND_RESUME, GROUP, 5, w.view.epoch_id, A.id,
                          rotation).to_bytes()
    ce = sign_identity_entry(A.identity, TYPE_PROPOSAL, group_id=GROUP, epoch=5, author=0,
                             body=body)
    log, events = post(w, w.start(), S, ce)
    assert log.attempt is None and any("never a resume" in r for r in reasons(events))
    # A proper resume record is valid.
    log, events = post(w, w.start(), S, w.resume(A, w.resume_record(C)))
    assert not events and log.attempt is not None and log.attempt.resumed == (C.id,)


def test_resume_of_a_removed_member_is_invalid() -> None:
    prev = World(3, epoch=4, seed=b"resume removed")
    A, B, C = prev["A"], prev["B"], prev["C"]
    carried = (prev.remove(A, C).to_bytes(), prev.resume(B, prev.resume_record(C)).to_bytes())
    view = replace(prev.view, epoch=5, carried=carried)
    log, events = ControlLog.start(view).judge(Entry(1, T0 + 5, b"marker"))
    assert log.attempt is not None and log.attempt.removed == {C.id}
    assert [(e.kind, e.reason) for e in events if isinstance(e, ProposalVoid)] == [
        (KIND_RESUME, "not a member")]


def test_join_key_expiry_at_the_proposal_and_at_t_s() -> None:
    w = World(3)
    _, jk = w.join_key("D", expiry=S)
    log, events = post(w, w.start(), S, w.add(w["A"], jk))
    assert reasons(events) == ["join key expired"] and log.attempt is None
    prev = World(3, epoch=4, seed=b"expiry")
    _, jk = prev.join_key("D", expiry=T0 + 10)
    view = replace(prev.view, epoch=5, carried=(prev.add(prev["A"], jk).to_bytes(),))
    log, events = ControlLog.start(view).judge(Entry(1, T0 + 10, b"marker"))
    assert [e.reason for e in events if isinstance(e, ProposalVoid)] == ["join key expired"]
    assert log.attempt is not None and log.attempt.applied == ()


def test_one_pending_proposal_per_author_and_refresh_rules() -> None:
    w = World(3)
    A, B = w["A"], w["B"]
    log, events = post(w, w.start(), T0 + REFRESH_MIN_AGE - 1, w.refresh(A))
    assert reasons(events) == ["refresh too early"]
    log, events = post(w, log, T0 + REFRESH_MIN_AGE, w.refresh(A))
    assert not events and log.attempt is not None and log.attempt.applied_hash
    log, events = post(w, log, T0 + REFRESH_MIN_AGE + 1, w.refresh(B))
    assert reasons(events) == ["refresh while a proposal is pending"]
    log, events = post(w, log, T0 + REFRESH_MIN_AGE + 2, w.remove(A, B))
    assert reasons(events) == ["author has a pending proposal"]


def test_policy_refuses_at_application() -> None:
    w = World(3)
    A, B = w["A"], w["B"]

    def no_removals(roster: object, proposal: object, place: int) -> bool:
        return getattr(proposal, "kind", None) != KIND_REMOVE

    log = ControlLog.start(w.view, no_removals)
    log, events = post(w, log, S, w.remove(A, B))
    assert log.attempt is not None and log.attempt.removed == frozenset()
    assert [e.reason for e in events if isinstance(e, ProposalVoid)] == [
        "refused by the group policy"]
    assert log.pending == ()  # void: A may propose again


# --- R1: records -------------------------------------------------------------------------------


def test_planted_signing_key_is_refused_a_copied_receive_key_is_not() -> None:
    """A record's signing key must be new (it names its signer); a receive key proves nothing,
    and a copy of another's only keeps the copier from opening its own sealing, so it is not
    refused (review F4: refusing it let a member void a joiner's add)."""
    w = World(3)
    B, C = w["B"], w["C"]
    log = w.start()
    planted = w.new_member("planted").keys
    from triple_ratchet.group.records import MemberKeyRecord, RecordKeys, replace_signatures
    honest = MemberKeyRecord.sign(B.identity, planted, group_id=GROUP, counter=2,
                                  purpose=PURPOSE_ROTATE, anchor=B.record.anchor)
    from triple_ratchet.group.records import LABEL_MEMBER_POSSESSION, member_sign
    from triple_ratchet.identity import LABEL_IDENTITY_MEMBER_KEYS

    def resigned(record: MemberKeyRecord, signing_key: object) -> MemberKeyRecord:
        body = record.body()
        return replace_signatures(record, B.identity.sign(LABEL_IDENTITY_MEMBER_KEYS, body),
                                  member_sign(w.suite, signing_key,  # type: ignore[arg-type]
                                              LABEL_MEMBER_POSSESSION, body))

    copied = resigned(replace(honest, receive_key=C.record.receive_key), planted.signing_key)
    log2, events = post(w, log, S - 10, w.identity_entry(B, TYPE_RECORD, copied.to_bytes()))
    assert reasons(events) == [] and len(log2.records) == 1
    stolen = resigned(replace(honest, signing_key=C.record.signing_key), C.keys.signing_key)
    log3, events = post(w, log, S - 10, w.identity_entry(B, TYPE_RECORD, stolen.to_bytes()))
    assert reasons(events) == ["key already in the roster"] and log3.records == ()
    # The signing key of another member's valid record is refused the same way.
    c_keys = RecordKeys.from_seed(w.suite, w.rng(32))
    rec, ce = w.rotation(C, keys=c_keys)
    log4, _ = post(w, log, S - 9, ce)
    assert len(log4.records) == 1
    _, events = post(w, log4, S - 8, w.identity_entry(B, TYPE_RECORD, resigned(
        replace(honest, signing_key=rec.signing_key), c_keys.signing_key).to_bytes()))
    assert reasons(events) == ["key already in the roster"]


def test_records_supersede_equivocate_and_apply_before_s() -> None:
    w = World(3)
    A, B, C = w["A"], w["B"], w["C"]
    log = w.start()
    rec_b, ce = w.rotation(B)
    log, events = post(w, log, S - 10, ce)
    assert not events
    _, ce2 = w.rotation(B)  # same counter, another body
    log, events = post(w, log, S - 9, ce2)
    assert MisbehaviourReported(B.id, "record equivocation") in events
    log, events = post(w, log, S - 8, ce)  # the same record again
    assert events and len(log.records) == 1
    _, ce3 = w.rotation(C, anchor=w.suite.hash(b"another membership"))
    log, events = post(w, log, S - 7, ce3)
    assert reasons(events) == ["record of another membership"]
    _, ce4 = w.rotation(C, purpose=2)
    log, events = post(w, log, S - 6, ce4)
    assert events and len(log.records) == 1
    # A record by another author than its owner.
    rec_a, _ = w.rotation(A)
    log, events = post(w, log, S - 5, w.identity_entry(B, TYPE_RECORD, rec_a.to_bytes()))
    assert events and len(log.records) == 1
    log = with_add(w, log)
    _rec_c, ce5 = w.rotation(C)  # after S(e): waits for the next commit
    log, _ = post(w, log, S + 1, ce5)
    assert log.attempt is not None
    new = log.attempt.roster
    assert new.entries[1].keys == rec_b and new.entries[1].posted_at == S - 10
    assert new.entries[2].keys == C.record
    carried = log.carried_out()
    assert carried == (ce5.to_bytes(),)


def test_dormant_members_are_neither_eligible_nor_recipients() -> None:
    w = World(3, posted_at=T0 - RETENTION - 1)
    A, B, C = w["A"], w["B"], w["C"]
    log = w.start()
    _, ce = w.rotation(A)
    log, _ = post(w, log, S - 100, ce)
    _, ce = w.rotation(B)
    log, _ = post(w, log, S - 99, ce)
    _, jk = w.join_key("D")
    log, events = post(w, log, S, w.add(A, jk))
    assert [e.member for e in events if isinstance(e, MemberDormant)] == [C.id]
    log, events = post(w, log, R, w.announcement(log, C))
    assert reasons(events) == ["announcer not eligible"]
    log, _ = w.honest_run(log, [A, B], R + 1)
    assert log.decided is not None
    inputs = log.run_inputs()
    assert inputs is not None
    assert C.id not in [inputs.roster.entries[i].identity for i in inputs.recipients]


def test_budget_is_enforced_and_reported_once() -> None:
    w = World(3)
    A = w["A"]
    log = w.start()
    events: list[object] = []
    for i in range(cl.CONTROL_ENTRY_BUDGET + 3):
        log, more = post(w, log, S + i, w.tick(A))
        events += more
    assert events.count(MisbehaviourReported(A.id, "control budget exceeded")) == 1
    assert reasons(events).count("control budget exceeded") == 3


# --- REVEAL ------------------------------------------------------------------------------------


def test_reveal_outside_a_disagreement_is_a_reported_leak() -> None:
    w = World(3)
    A, B = w["A"], w["B"]
    log = with_add(w)
    log, _ = post(w, log, R, w.announcement(log, A))
    log, _ = post(w, log, R + 1, w.announcement(log, B))
    log, _ = post(w, log, R + CLOSE_WINDOW, w.tick(A))
    for m in (A, B):
        log, _ = post(w, log, R + CLOSE_WINDOW + 1, w.round1(log, m))
    ce, _, _ = w.round3(log, A)
    log, _ = post(w, log, R + CLOSE_WINDOW + 2, ce)
    log2, events = post(w, log, R + CLOSE_WINDOW + 3, w.reveal(log, A))
    assert MisbehaviourReported(A.id, "payloads revealed") in events
    assert log2.run.phase == ROUND3 and log2.run.run == 1


def test_reveal_convicts_a_committee_member_signing_another_root() -> None:
    w = World(3)
    A, B = w["A"], w["B"]
    log = with_add(w)
    log, _ = post(w, log, R, w.announcement(log, A))
    log, _ = post(w, log, R + 1, w.announcement(log, B))
    log, _ = post(w, log, R + CLOSE_WINDOW, w.tick(A))
    for m in (A, B):
        log, _ = post(w, log, R + CLOSE_WINDOW + 1, w.round1(log, m))
    ce, _, _ = w.round3(log, A)
    log, _ = post(w, log, R + CLOSE_WINDOW + 2, ce)
    # B certifies another root: sign a round-3 item over a bogus root with B's DKG key.
    from triple_ratchet.dkg.cocktail import schnorr_sign
    from triple_ratchet.group.control import TYPE_ROUND3
    from triple_ratchet.group.run import Round3Item
    from triple_ratchet.group.run_secrets import round1_transcript
    inputs = log.run_inputs()
    assert inputs is not None
    round1 = [r[2] for r in log.run.round1 if r is not None]
    bogus = w.suite.hash(b"bogus root")
    d = w.seed(B, 1).dkg_secret()
    item = Round3Item.sign(w.suite, d, run=1, context=inputs.params().context,
                           run_session_id=inputs.session_id(),
                           certeq_signature=schnorr_sign(d, round1_transcript(inputs, round1,
                                                                               bogus)),
                           bundle_root=bogus, confirmation_tag=bogus, rng=w.rng)
    log, events = post(w, log, R + CLOSE_WINDOW + 3,
                       w.member_entry(B, TYPE_ROUND3, item.to_bytes()))
    assert not events and log.run.phase == ROUND3
    log, events = post(w, log, R + CLOSE_WINDOW + 4, w.reveal(log, A))
    assert excluded(events) == [(B.id, "round 3 disagreement")]
    assert log.run.run == 2
    # The change completes with A and C... C never announces: A alone is a valid committee.
    log, _ = w.honest_run(log, [A], R + CLOSE_WINDOW + 5)
    assert log.decided is not None and log.committee() == (A.id,)


# --- Determinism, saving, hostile input -----------------------------------------------------


def _scenario() -> tuple[World, list[Entry]]:
    w = World(4, seed=b"scenario")
    A, B, M = w["A"], w["B"], w["D"]
    log = w.start()
    entries: list[Entry] = []

    def post_(t: int, ce: object) -> None:
        nonlocal log
        e = w.entry(t, ce)  # type: ignore[arg-type]
        entries.append(e)
        log, _ = log.judge(e)

    _, ce = w.rotation(B)
    post_(S - 5, ce)
    _, jk = w.join_key("X")
    post_(S, w.add(A, jk))
    post_(S + 1, w.remove(M, A))
    first, second = w.announcement(log, M), w.announcement(log, M, variant=1)
    post_(R, first)
    post_(R + 1, second)
    post_(R + 2, w.tick(M))
    post_(R + 3, w.evidence(A, w.announcement_evidence(1, first, second)))
    post_(R + 4, b"garbage")
    log, _ = w.honest_run(log, [A, B], R + 5, feed=entries)
    assert log.decided is not None
    return w, entries


SCENARIO = _scenario()


def test_one_by_one_in_one_go_two_readers_and_saved_states_agree() -> None:
    w, entries = SCENARIO
    one, _ = w.start().judge_all(entries)
    two = w.start()
    for i, e in enumerate(entries):
        two, _ = two.judge(e)
        if i % 3 == 0:
            two = ControlLog.from_bytes(two.to_bytes())
    assert one._s == two._s and one.decided is not None
    assert one.to_bytes() == two.to_bytes()
    assert one.carried_out() == two.carried_out()
    # Re-delivered entries change nothing.
    again, events = one.judge(entries[3])
    assert again == one and reasons(events) == ["entry already judged"]


@settings(max_examples=40)
@given(st.data())
def test_random_interleavings_are_deterministic_and_never_raise(data: st.DataObject) -> None:
    w, entries = SCENARIO
    pool = [*list(entries), Entry(0, 0, b""), Entry(0, 0, b"\xa0"), Entry(0, 0, b"\x85" * 9)]
    picks = data.draw(st.lists(st.sampled_from(range(len(pool))), max_size=30))
    flips = data.draw(st.lists(st.integers(0, 255), max_size=30))
    seq = []
    t = T0
    for n, i in enumerate(picks):
        blob = pool[i].blob
        if n < len(flips) and flips[n] and blob:
            pos = flips[n] % len(blob)
            blob = blob[:pos] + bytes([blob[pos] ^ 1]) + blob[pos + 1:]
        t = max(t, pool[i].t)
        seq.append(Entry(n + 1, t, blob))
    a, ev_a = w.start().judge_all(seq)
    b, ev_b = w.start().judge_all(seq)
    assert a._s == b._s and ev_a == ev_b
    assert ControlLog.from_bytes(a.to_bytes())._s == a._s


def test_saved_log_decoding_is_strict() -> None:
    w, entries = SCENARIO
    log, _ = w.start().judge_all(entries[:5])
    data = log.to_bytes()
    for bad in (data[:-1], data + b"\x00", b"", b"\x80"):
        with pytest.raises((DecodeError, LimitExceeded)):
            ControlLog.from_bytes(bad)
    with pytest.raises(UsageError):
        ControlLog.from_bytes("text")  # type: ignore[arg-type]


def test_epoch_view_checks_its_inputs() -> None:
    w = World(2)
    with pytest.raises(UsageError):
        replace(w.view, t0=None)
    with pytest.raises(UsageError):
        replace(w.view, traffic_key=b"short")
    with pytest.raises(UsageError):
        EpochView(w.suite, GROUP, 1, w.view.epoch_id, w.view.roster, None, (b"x",),
                  w.view.init_secret, w.view.traffic_key, w.view.mailbox_id)
    for secret in (w.view.init_secret, w.view.traffic_key):  # secrets never in a repr
        assert repr(secret) not in repr(w.view) and secret.hex() not in repr(w.view)
        assert repr(secret) not in repr(w.start())


def test_entries_out_of_hub_order_are_ignored() -> None:
    w = World(2)
    log, _ = post(w, w.start(), S, w.tick(w["A"]))
    log2, events = log.judge(Entry(w.cursor + 1, S - 1, b"x"))
    assert log2 == log and reasons(events) == ["hub time went backwards"]
    assert DAY > 0


def test_evidence_against_a_member_off_the_committee_excludes_it_and_ends_no_run() -> None:
    w = World(3)
    A, B, C = w["A"], w["B"], w["C"]
    log = with_add(w)
    log, _ = post(w, log, R, w.announcement(log, A))
    log, _ = post(w, log, R + 1, w.announcement(log, B))
    log, _ = post(w, log, R + CLOSE_WINDOW, w.tick(A))
    assert log.run.phase == ROUND1
    # C equivocates too late to be on the committee: both announcements are ignored ...
    first, second = w.announcement(log, C), w.announcement(log, C, variant=1)
    log, events = post(w, log, R + CLOSE_WINDOW + 1, first)
    assert reasons(events) == ["announcement after the ANNOUNCE phase"]
    log, _ = post(w, log, R + CLOSE_WINDOW + 2, second)
    # ... but the evidence is authentic: C is excluded, run 1 goes on.
    log, events = post(w, log, R + CLOSE_WINDOW + 3,
                       w.evidence(A, w.announcement_evidence(1, first, second)))
    assert excluded(events) == [(C.id, "equivocation")]
    assert log.run.run == 1 and log.run.phase == ROUND1 and log.committee() == (A.id, B.id)


def test_false_blame_excludes_the_accuser() -> None:
    from triple_ratchet.dkg.abort import Blame
    from triple_ratchet.group.committee import blame_evidence_bytes
    from triple_ratchet.group.run import EVIDENCE_BLAME
    w = World(3)
    A, B = w["A"], w["B"]
    log = with_add(w)
    log, _ = post(w, log, R, w.announcement(log, A))
    log, _ = post(w, log, R + 1, w.announcement(log, B))
    log, _ = post(w, log, R + CLOSE_WINDOW, w.tick(A))
    r1 = w.round1(log, A)
    log, _ = post(w, log, R + CLOSE_WINDOW + 1, r1)
    log, _ = post(w, log, R + CLOSE_WINDOW + 2, w.round1(log, B))
    # B blames A's honest share without ECDH evidence: a false accusation.
    blame = Blame(1, Round1Item.from_bytes(r1.body).signed_round1, None)
    body = Evidence.make(1, EVIDENCE_BLAME, blame_evidence_bytes(blame)).to_bytes()
    outsider, events = post(w, log, R + CLOSE_WINDOW + 3, w.evidence(w["C"], body))
    assert outsider.run == log.run and not excluded(events)  # only the committee may blame
    log, events = post(w, log, R + CLOSE_WINDOW + 3, w.evidence(B, body))
    assert excluded(events) == [(B.id, "false accusation")] and log.run.run == 2


def test_deadline_tells_when_a_tick_is_useful() -> None:
    w = World(3)
    log = w.start()
    assert log.deadline() is None  # no attempt
    log = with_add(w, log)
    assert log.deadline() is None  # waiting without a deadline
    log, _ = post(w, log, R, w.announcement(log, w["A"]))
    assert log.deadline() == R + CLOSE_WINDOW
    log, _ = post(w, log, R + CLOSE_WINDOW, w.tick(w["B"]))
    assert log.run.phase == ROUND1 and log.deadline() == R + CLOSE_WINDOW + PHASE_TIMEOUT


def _bogus_round3(w: World, log: ControlLog, m: object) -> object:
    from triple_ratchet.dkg.cocktail import schnorr_sign
    from triple_ratchet.group.control import TYPE_ROUND3
    from triple_ratchet.group.run import Round3Item
    from triple_ratchet.group.run_secrets import round1_transcript
    inputs = log.run_inputs()
    assert inputs is not None
    round1 = [r[2] for r in log.run.round1 if r is not None]
    bogus = w.suite.hash(b"bogus root")
    d = w.seed(m, inputs.run).dkg_secret()  # type: ignore[arg-type]
    item = Round3Item.sign(w.suite, d, run=inputs.run, context=inputs.params().context,
                           run_session_id=inputs.session_id(),
                           certeq_signature=schnorr_sign(d, round1_transcript(inputs, round1,
                                                                               bogus)),
                           bundle_root=bogus, confirmation_tag=bogus, rng=w.rng)
    return w.member_entry(m, TYPE_ROUND3, item.to_bytes())  # type: ignore[arg-type]


def test_round3_disagreement_at_the_deadline_excludes_the_whole_committee() -> None:
    w = World(3)
    A, B = w["A"], w["B"]
    log = with_add(w)
    log, _ = post(w, log, R, w.announcement(log, A))
    log, _ = post(w, log, R + 1, w.announcement(log, B))
    log, _ = post(w, log, R + CLOSE_WINDOW, w.tick(A))
    for m in (A, B):
        log, _ = post(w, log, R + CLOSE_WINDOW + 1, w.round1(log, m))
    ce, _, _ = w.round3(log, A)
    log, _ = post(w, log, R + CLOSE_WINDOW + 2, ce)
    log, _ = post(w, log, R + CLOSE_WINDOW + 3, _bogus_round3(w, log, B))
    assert log.run.phase == ROUND3
    log, events = post(w, log, R + CLOSE_WINDOW + 2 + PHASE_TIMEOUT, w.tick(w["C"]))
    assert sorted(excluded(events)) == sorted([(A.id, "round 3 disagreement"),
                                              (B.id, "round 3 disagreement")])


def test_copied_dkg_key_and_announcements_for_another_view_are_ignored() -> None:
    w = World(3)
    A, B, C = w["A"], w["B"], w["C"]
    log = with_add(w)
    log, events = post(w, log, R, w.announcement(log, A, roster_hash=w.suite.hash(b"other")))
    assert reasons(events) == ["announcement for another view"] and log.run.phase == WAITING
    # Review F1: another view of the epoch (T0, carried set, dormant members) is refused too.
    log, events = post(w, log, R, w.announcement(log, A, view_hash=w.suite.hash(b"other")))
    assert reasons(events) == ["announcement for another view of the epoch"]
    assert log.run.phase == WAITING
    # B copies A's DKG key before A announces: A is just not on this run's committee.
    w.seeds[("B", 1)] = w.seed(A, 1)
    copied = w.announcement(log, B)
    log, _ = post(w, log, R + 1, copied)
    log, events = post(w, log, R + 2, w.announcement(log, A))
    assert reasons(events) == ["copied DKG key"]
    log, _ = post(w, log, R + 3, w.announcement(log, C))
    log, _ = post(w, log, R + CLOSE_WINDOW + 1, w.tick(A))
    assert log.committee() == (B.id, C.id) and A.id not in log.excluded
    # The copier holds no secret for the key: no valid round 1, excluded when ROUND1 ends.
    log, _ = post(w, log, R + CLOSE_WINDOW + 2, w.round1(log, C))
    log, events = post(w, log, R + CLOSE_WINDOW + 1 + PHASE_TIMEOUT, w.tick(A))
    assert excluded(events) == [(B.id, "missing round 1")]


def test_a_void_proposal_copied_again_is_a_duplicate() -> None:
    w = World(3)
    A, B = w["A"], w["B"]

    def no_removals(roster: object, proposal: object, place: int) -> bool:
        return getattr(proposal, "kind", None) != KIND_REMOVE

    log = ControlLog.start(w.view, no_removals)
    ce = w.remove(A, B)
    log, _ = post(w, log, S, ce)
    assert log.pending == ()
    log, events = post(w, log, S + 1, ce)
    assert reasons(events) == ["duplicate"] and log.pending == ()


def test_a_saved_log_keeps_only_the_place_of_time_markers() -> None:
    w = World(3)
    A, B = w["A"], w["B"]
    log = with_add(w)
    log, _ = post(w, log, R, w.announcement(log, A))
    log, _ = post(w, log, R + 1, w.announcement(log, B))
    size = len(log.to_bytes())
    ended, _ = post(w, log, R + CLOSE_WINDOW, b"\xff" * 10_000)  # unreadable, ends ANNOUNCE
    assert ended.run.phase == ROUND1
    assert len(ended.to_bytes()) < size + 32
    nothing, _ = post(w, ended, R + CLOSE_WINDOW + 1, b"\xff" * 10_000)  # changes nothing
    assert nothing._s.kept == ended._s.kept
    restored = ControlLog.from_bytes(nothing.to_bytes())
    assert restored._s == nothing._s and restored.cursor == nothing.cursor


def test_a_newer_record_reusing_an_earlier_records_key_is_refused() -> None:
    w = World(3)
    B = w["B"]
    keys = w.new_member("k").keys
    log, _ = post(w, w.start(), S, w.rotation(B, counter=2, keys=keys)[1])
    log, events = post(w, log, S + 1, w.rotation(B, counter=3, keys=keys)[1])
    assert reasons(events) == ["key already in the roster"] and len(log.records) == 1
    log, events = log.judge(Entry(2**64, S + 2, b""))
    assert reasons(events) == ["malformed entry"]


@settings(max_examples=60)
@given(st.lists(st.tuples(st.integers(0, 2**40), st.binary(max_size=300)), max_size=12))
def test_arbitrary_blobs_never_raise(items: list[tuple[int, bytes]]) -> None:
    w, entries = SCENARIO
    log, _ = w.start().judge_all(entries[:6])
    t = entries[5].t
    for n, (dt, blob) in enumerate(items):
        log, events = log.judge(Entry(10_000 + n, t + dt, blob))
        assert events
        t += dt


def test_a_resent_announcement_is_no_equivocation() -> None:
    w = World(3)
    A = w["A"]
    log = with_add(w)
    ce = w.announcement(log, A)
    log, _ = post(w, log, R, ce)
    log, events = post(w, log, R + 1, ce)
    assert reasons(events) == ["copied DKG key"]
    assert not any(isinstance(e, MisbehaviourReported) for e in events)
    assert len(log.run.announcements) == 1


HOSTILE = st.lists(st.sampled_from(["none", "tick", "announce", "equivocate", "garbage",
                                    "remove", "old evidence"]), min_size=40, max_size=40)


@settings(max_examples=15)
@given(HOSTILE, st.lists(st.integers(0, 4_000), min_size=40, max_size=40))
@example(["announce"] * 40, [0] * 40)  # first announcer of every run, never answers
@example(["equivocate"] * 40, [0] * 40)
@example(["remove"] + ["tick"] * 39, [0] * 40)
def test_an_insider_cannot_freeze_the_change(hostile: list[str], delays: list[int]) -> None:
    """Honest A and B follow the rules (announce when eligible, answer every phase, tick at
    deadlines, post evidence of equivocation); insider M does anything between their steps and
    never sends a round item. The change is decided within a bounded number of steps."""
    w = World(4, seed=b"insider")
    A, B, M = w["A"], w["B"], w["D"]
    log = w.start()
    t = R
    old_evidence: list[ControlEntry] = []
    announced: dict[tuple[str, int], ControlEntry] = {}
    variant = 10

    def put(ce: object) -> list[object]:
        nonlocal log
        log, events = post(w, log, t, ce)
        return events

    for action, delay in zip(hostile, delays, strict=True):
        if log.decided is not None:
            break
        t += delay
        # The insider's move.
        if action == "tick":
            put(w.tick(M))
        elif action == "garbage":
            put(b"\x00garbage")
        elif action == "remove" and log.attempt is None:
            put(w.remove(M, A))
        elif action in ("announce", "equivocate") and log.attempt is not None:
            for _ in range(1 if action == "announce" else 2):
                variant += 1
                ce = w.announcement(log, M, variant=variant)
                events = put(ce)
                first = announced.setdefault((M.name, log.run.run), ce)
                if MisbehaviourReported(M.id, "announcement equivocation") in events:
                    ev = w.evidence(A, w.announcement_evidence(log.run.run, first, ce))
                    old_evidence.append(ev)
                    put(ev)
        elif action == "old evidence" and old_evidence:
            put(old_evidence[0])
        if log.decided is not None:
            break
        # The honest members' move.
        run = log.run
        honest = [m for m in (A, B) if log.eligible(m.id)]
        committee = [w._by_index(i) for i in run.committee]
        if log.attempt is None:
            _, jk = w.join_key("X")
            put(w.add(A, jk))
        elif run.phase in (WAITING, ANNOUNCE):
            mine = {a.author for a in run.announcements}
            for m in honest:
                if w.index(m) not in mine:
                    put(w.announcement(log, m))
            if log.run.phase == ANNOUNCE and log.deadline() is not None:
                t = max(t, log.deadline() or t)
                put(w.tick(A))
        elif run.phase == ROUND1:
            for j, m in enumerate(committee):
                if m in (A, B) and log.run.round1[j] is None:
                    put(w.round1(log, m))
            if log.run.phase == ROUND1:
                t = max(t, log.deadline() or t)
                put(w.tick(B))
        elif run.phase == ROUND3:
            for j, m in enumerate(committee):
                if m in (A, B) and log.run.round3[j] is None:
                    put(w.round3(log, m)[0])
            if log.run.phase == ROUND3:
                t = max(t, log.deadline() or t)
                put(w.tick(A))
        elif run.phase == COMMIT:
            poster = next(m for m in committee if m in (A, B))
            _, _, outcome = w.round3(log, poster)
            put(w.commit(log, poster, outcome))
    assert log.decided is not None
    assert M.id not in log.committee()


def test_a_posted_at_of_zero_reads_as_t0_of_the_epoch_for_every_reader() -> None:
    """Initial roster entries of a created group carry `posted_at = 0`. Members that joined
    later never learn T0(1), so every reader reads 0 as T0(e), which all of them hold; a rule
    that used T0(1) where known would make old and new members judge dormancy (and so the
    recipients of the commit) differently and split the group."""
    w = World(3, posted_at=0)
    A = w["A"]
    log = w.start()
    _, jk = w.join_key("D")
    log, events = post(w, log, S, w.add(A, jk))
    assert not [e for e in events if isinstance(e, MemberDormant)]  # T0(e) is recent
    saved = ControlLog.from_bytes(log.to_bytes())
    assert saved.to_bytes() == log.to_bytes()
    # The same roster in an epoch that began more than RETENTION before its snapshot: the
    # initial members that never posted a record are dormant, for every reader alike.
    w = World(3, posted_at=0)
    A = w["A"]
    log = w.start()
    _, ce = w.rotation(A)
    log, _ = post(w, log, T0 + RETENTION, ce)
    log, events = post(w, log, T0 + RETENTION + 10, w.refresh(A))
    assert sorted(e.member for e in events if isinstance(e, MemberDormant)) == sorted(
        [w["B"].id, w["C"].id])


def test_a_readd_with_the_same_join_key_begins_a_membership_with_a_new_anchor() -> None:
    """Review F3: Dave, an initial member (anchor of his join key at creation), was removed
    and is added again with the same join key. The new membership's anchor is the epoch's, not
    the earlier one's, so a resume record of the earlier membership is refused."""
    from triple_ratchet.group.records import PURPOSE_RESUME, MemberKeyRecord, RecordKeys

    w = World(3)
    A, C = w["A"], w["C"]
    dave, jk = w.join_key("D")
    earlier = jk.anchor(b"")  # his first membership, begun at creation
    old_keys = RecordKeys.from_seed(w.suite, w.rng(32))
    rr_old = MemberKeyRecord.sign(dave, old_keys, group_id=GROUP, counter=3,
                                  purpose=PURPOSE_RESUME, anchor=earlier)
    log, events = post(w, w.start(), S, w.add(A, jk))
    assert log.attempt is not None and log.attempt.added == (dave.public.to_bytes(),)
    entry = log.attempt.roster.entries[-1]
    assert entry.anchor == jk.anchor(w.view.epoch_id) != earlier
    # In the next epoch, the old membership's resume record is of another membership.
    w.epoch += 1
    w.view = replace(w.view, roster=log.attempt.roster, epoch=w.epoch, epoch_id=w.rng(32),
                     t0=T0, carried=())
    log, events = post(w, w.start(), S, w.resume(C, rr_old))
    assert reasons(events) == ["resume record of another membership"]
    assert log.attempt is None


def test_a_resume_takes_no_author_slot_and_one_resume_per_member_is_pending() -> None:
    """Review F8: a resume proposal answers another member's request: it does not count as
    its author's one pending proposal, and one resume per resumed member may be pending."""
    w = World(3)
    A, B, C = w["A"], w["B"], w["C"]
    _, jk = w.join_key("D")
    log, events = post(w, w.start(), S, w.add(A, jk))
    assert not events
    record = w.resume_record(C)
    log, events = post(w, log, S + 1, w.resume(A, record))  # A's add is pending: still fine
    assert not reasons(events) and len(log.pending) == 2
    log, events = post(w, log, S + 2, w.resume(B, w.resume_record(C)))
    assert reasons(events) == ["a resume of this member is pending"]
    log, events = post(w, log, S + 3, w.remove(A, B))  # the add still holds A's slot
    assert reasons(events) == ["author has a pending proposal"]


def test_a_copied_receive_key_does_not_void_the_owners_add() -> None:
    """Review F4: C copies the receive key of Dave's published join key into its rotation
    record (a receive key proves no possession). The record applies, and in the next epoch the
    add of Dave with that join key still applies; only signing keys must be unique."""
    from triple_ratchet.group.records import MemberKeyRecord, RecordKeys

    w = World(3)
    A, B, C = w["A"], w["B"], w["C"]
    dave_keys = RecordKeys.from_seed(w.suite, w.rng(32))
    _, dave_jk = w.join_key("D", keys=dave_keys)  # the join key as published
    fresh = RecordKeys.from_seed(w.suite, w.rng(32))
    squat = RecordKeys(w.suite, dave_keys.receive_key, fresh.signing_key)  # only C's record
    record = MemberKeyRecord.sign(C.identity, squat, group_id=GROUP, counter=2,
                                  purpose=PURPOSE_ROTATE, anchor=C.record.anchor)
    log, events = post(w, w.start(), T0 + 1000,
                       w.identity_entry(C, TYPE_RECORD, record.to_bytes()))
    assert not reasons(events) and len(log.records) == 1
    log, _ = post(w, log, S, w.remove(B, A))
    assert log.attempt is not None
    roster = log.attempt.roster
    assert roster.entries[roster.index_of(C.id)].receive_key == dave_jk.receive_key
    w.epoch += 1
    w.view = replace(w.view, epoch=w.epoch, roster=roster, epoch_id=w.rng(32), t0=T0)
    log, events = post(w, w.start(), S, w.add(B, dave_jk))
    assert not reasons(events) and log.attempt is not None
    assert log.attempt.added == (dave_jk.identity,) and not log.attempt.void
    # A signing key of the roster stays refused: it names its signer.
    other = RecordKeys.from_seed(w.suite, w.rng(32))
    stolen = MemberKeyRecord.sign(B.identity, RecordKeys(w.suite, other.receive_key,
                                                         fresh.signing_key),  # C's now
                                  group_id=GROUP, counter=2, purpose=PURPOSE_ROTATE,
                                  anchor=B.record.anchor)
    log, events = post(w, log, S + 1, w.identity_entry(B, TYPE_RECORD, stolen.to_bytes()))
    assert reasons(events) == ["key already in the roster"]


def _p256_twin(kp: object) -> bytes:
    """Another valid (low-s) encoding of the same P-256 identity: its owner signs its DH key
    again with a random nonce, as a client that does not use RFC 6979 would."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    from triple_ratchet.identity import (
        LABEL_IDENTITY_DH_KEY,
        P256_ORDER,
        Identity,
        IdentityKeyPair,
        signature_input,
    )
    assert isinstance(kp, IdentityKeyPair)
    me = kp.public
    private = ec.derive_private_key(int.from_bytes(kp._signing_key.to_bytes(), "big"),
                                    ec.SECP256R1())
    content = cbor.encode([me.signing_key.to_bytes(), me.dh_key.to_bytes()])
    r, s = decode_dss_signature(private.sign(
        signature_input(me.suite, LABEL_IDENTITY_DH_KEY, content), ec.ECDSA(hashes.SHA256())))
    s = min(s, P256_ORDER - s)
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    twin = Identity(me.suite, me.signing_key, me.dh_key, signature)
    assert twin == me and twin.to_bytes() != me.to_bytes()
    return twin.to_bytes()


def test_a_twin_encoding_of_a_member_is_the_same_member() -> None:
    """A member adding a twin encoding of its own P-256 identity (another valid DH-key
    signature) would stay in the group through its removal: the add is void ("already a
    member") and a roster never holds one identity twice, whatever the encoding."""
    from triple_ratchet.group.records import JoinKey, RecordKeys
    from triple_ratchet.group.roster import Roster, RosterEntry
    from triple_ratchet.identity import IdentityKeyPair
    from triple_ratchet.suites import P256_SHA256_AES256GCM

    w = World(3, suite=P256_SHA256_AES256GCM)
    A = w["A"]
    twin = _p256_twin(A.identity)
    twin_pair = IdentityKeyPair(w.suite, A.identity._signing_key, A.identity._dh_key,
                                twin[-64:])
    assert twin_pair.public.to_bytes() == twin
    jk = JoinKey.sign(twin_pair, RecordKeys.from_seed(w.suite, bytes(32)), expiry=T0 + 30 * DAY,
                      inbox_id=bytes(32))
    assert jk.identity == twin != A.id
    log = w.start()
    log, events = post(w, log, S, w.add(A, jk))
    assert [e.reason for e in events if isinstance(e, ProposalVoid)] == ["already a member"]
    roster = w.view.roster
    with pytest.raises(ProtocolError, match="twice"):
        Roster(w.suite, (*roster.entries, RosterEntry.of(jk, T0)))


def test_a_hub_showing_two_orders_splits_the_group_into_two_visible_branches() -> None:
    """The hub is trusted for one order per mailbox (spec 11.v2.32, 13). A hub that shows half
    the group an add first and the other half a removal first gives two attempts; each half
    decides its own commit, and the other half's run is ignored by it ("another view"). The
    library cannot prevent this: the branches differ in roster hash and confirmation tag, so
    the public epoch ids differ, which is what users compare out of band (spec 13 lists the
    in-band detection as open)."""
    w = World(4)
    A, B, C = w["A"], w["B"], w["C"]
    _, jk = w.join_key("E")
    add, remove = w.entry(S, w.add(A, jk)), w.entry(S + 1, w.remove(B, w["D"]))
    # The same two entries, in two orders (the cursors each half is given).
    x, _ = feed(w.start(), [add, replace(remove, cursor=add.cursor + 1)])
    y, _ = feed(w.start(), [replace(remove, cursor=add.cursor),
                            replace(add, cursor=add.cursor + 1)])
    assert x.attempt is not None and y.attempt is not None
    assert x.attempt.roster.hash() != y.attempt.roster.hash()
    x_before = x
    x, _ = w.honest_run(x, [A, C], R)
    y, y_run = w.honest_run(y, [B, C], R)
    assert x.decided is not None and y.decided is not None
    assert x.decided.commit != y.decided.commit
    # Each half, read the other's run, ignores every entry of it: no cross-over, no false exclusion.
    x2, events = feed(x_before, [replace(e, cursor=e.cursor + 10_000) for e in y_run])
    assert x2.decided is None and not x2.excluded
    assert "announcement for another view" in reasons(events)
