"""The judge of one epoch's control mailbox (spec 11.v2.15-11.v2.24, 11.v2.30-11.v2.33).

A `ControlLog` is an immutable, deterministic reader: every member that feeds it the same entries
(cursor, hub time, blob) of epoch e's control mailbox computes the same state — the pending
proposals, the snapshot point S(e) and the attempt it fixes (ordered application, void reasons,
new roster and hashes), the valid records, the current run with its phase on hub time, its
committee, round items, exclusions, and finally the deciding commit. `judge` never raises on what
the hub delivers: an entry that breaks a rule is reported (`Ignored(reason)` or a version-2
event) and leaves the state as it was, except that any entry, readable or not, is a time marker
that may end a phase at its deadline (11.v2.21).

Saving: `to_bytes` keeps the view and every entry that changed the state; `from_bytes` judges
them again from `start(view)`. Replaying is the only way to get the state, so a saved log can never
hold a state the rules would not reach.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

from triple_ratchet import cbor
from triple_ratchet.dkg.abort import REASON_FALSE_ACCUSATION
from triple_ratchet.dkg.attempt import SignedRound1
from triple_ratchet.dkg.ed25519 import Point
from triple_ratchet.errors import (
    DecodeError,
    LimitExceeded,
    ProtocolError,
    ReplayError,
    TripleRatchetError,
    UsageError,
)
from triple_ratchet.group.change_proposal import (
    KIND_ADD,
    KIND_REFRESH,
    KIND_REMOVE,
    KIND_RESUME,
    MAX_APPLIED,
    ChangeProposal,
    applied_proposals_hash,
)
from triple_ratchet.group.control import (
    MAX_CONTROL_BLOB_LEN,
    TYPE_ANNOUNCEMENT,
    TYPE_COMMIT,
    TYPE_CONVICTION,
    TYPE_EVIDENCE,
    TYPE_PROPOSAL,
    TYPE_RECORD,
    TYPE_REVEAL,
    TYPE_ROUND1,
    TYPE_ROUND3,
    TYPE_TICK,
    ControlEntry,
    open_entry,
)
from triple_ratchet.group.events import (
    Event,
    Ignored,
    MemberDormant,
    MemberExcluded,
    MisbehaviourReported,
    ProposalVoid,
)
from triple_ratchet.group.key_schedule import (
    EPOCH_ID_LEN,
    MAX_EPOCH,
    MAX_GROUP_SIZE_V2,
    MAX_RUN,
    max_group_size,
)
from triple_ratchet.group.records import (
    MAX_GROUP_ID_LEN,
    PURPOSE_ROTATE,
    JoinKey,
    MemberKeyRecord,
    RecordVerdict,
    anchor_of,
    judge_record,
)
from triple_ratchet.group.roster import Roster, RosterEntry
from triple_ratchet.group.run import (
    EVIDENCE_ANNOUNCEMENT_EQUIVOCATION,
    EVIDENCE_BLAME,
    EVIDENCE_ROUND1_EQUIVOCATION,
    Commit,
    Conviction,
    Evidence,
    Reveal,
    Round1Item,
    Round3Item,
    RunAnnouncement,
    check_tick_body,
    view_hash,
)
from triple_ratchet.group.run_secrets import (
    RunInputs,
    check_round1,
    disagreeing,
    judge_blame_evidence,
    outcome_from_reveal,
    recipients_of,
    verify_commit,
    verify_round3,
)
from triple_ratchet.identity import Identity, identity_keys
from triple_ratchet.mailbox import MAILBOX_ID_LEN
from triple_ratchet.suites import Suite, suite_by_id

# --- Protocol constants (spec 11.v2.30; the same for every reader, never configuration) --------

COMMITTEE_SIZE = 8  # k
ANNOUNCE_JITTER = 2_000
CLOSE_WINDOW = 10_000
PHASE_TIMEOUT = 60_000
EPOCH_MIN_AGE = 60_000
REFRESH_MIN_AGE = 3_600_000
RETENTION = 30 * 24 * 3_600_000
CONTROL_ENTRY_BUDGET = 64
CONTROL_BYTE_BUDGET = 512 * 1024
ANOTHER_EPOCH_VIEW = "announcement for another view of the epoch"
"""The `Ignored` reason of an announcement whose view hash is not ours: a member in its first
epoch that sees it from a roster member holds a wrong notice (review F1)."""
MAX_GROUP_SIZE = MAX_GROUP_SIZE_V2
MAX_HUB_TIME = 2**64 - 1
MAX_CURSOR = 2**64 - 1

# Phases of a run (11.v2.21).
WAITING = "waiting"
ANNOUNCE = "announce"
ROUND1 = "round1"
ROUND3 = "round3"
COMMIT = "commit"

# Exclusion reasons (11.v2.21).
EXCLUDED_MISSING_ROUND1 = "missing round 1"
EXCLUDED_MISSING_ROUND3 = "missing round 3"
EXCLUDED_DISAGREEMENT = "round 3 disagreement"
EXCLUDED_NO_COMMIT = "no commit"
EXCLUDED_EQUIVOCATION = "equivocation"
EXCLUDED_BLAME = "blame"
EXCLUDED_FALSE_ACCUSATION = "false accusation"
EXCLUDED_REVEALED = "revealed"

_LOG_WIRE = "triple-ratchet v2 control log"
_LOG_VERSION = 2  # 2: the number of kept entries is saved beside them

Policy = Callable[[Roster, ChangeProposal, int], bool]
"""The group policy (11.v2.17): a pure function of certified state — the roster as changed so
far, the proposal, and its place (0-based) in the attempt — returning whether it is allowed.
Every member must use the same one."""

ConvictionJudge = Callable[[bytes, Conviction], list[Event] | None]
"""A reader's check of a conviction entry (11.v2.25) by its author (identity): the events to
report, or None when the reader cannot check it. It needs an earlier commit's secrets, so it is
the session's (`group/conviction.py`); a conviction is advisory and never changes the log."""


def accept_all(roster: Roster, proposal: ChangeProposal, place: int) -> bool:
    """The default policy: every proposal the rules allow."""
    return True


# --- Values ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EpochView:
    """The public context of epoch e, fixed when the epoch starts (plus `init_secret(e)` and the
    control mailbox's traffic key, which every member of e holds).

    `t0` is T0(e) (None only in epoch 1, whose T0 is its mailbox's first entry). `carried` is the
    carried set into e (`SignedEntry` bytes of epoch e−1, mailbox order: proposals and records).
    `dormant_before` are the members of e dormant at S(e−1) (they lack `init_secret(e)` and are
    sealed `member_base`). A `posted_at` of 0 (the initial entries of a created group) reads as
    T0(e): T0(1) is unknown to members that joined later, and every reader must judge dormancy
    alike."""

    suite: Suite
    group_id: bytes
    epoch: int
    epoch_id: bytes
    roster: Roster
    t0: int | None
    carried: tuple[bytes, ...]
    init_secret: bytes = field(repr=False)
    traffic_key: bytes = field(repr=False)
    mailbox_id: bytes
    dormant_before: frozenset[bytes] = frozenset()

    @cached_property
    def view_hash(self) -> bytes:
        """`view_hash(e)` (11.v2.9): T0(e), the carried set, the members dormant at S(e−1)."""
        return view_hash(self.suite, self.t0, self.carried, self.dormant_before)

    def __post_init__(self) -> None:
        if not isinstance(self.group_id, bytes) or not 1 <= len(self.group_id) <= (
                MAX_GROUP_ID_LEN):
            raise UsageError(f"group id must be 1..{MAX_GROUP_ID_LEN} bytes")
        if type(self.epoch) is not int or not 1 <= self.epoch <= MAX_EPOCH:
            raise UsageError("a control mailbox belongs to an epoch in 1..2^64-2")
        if not isinstance(self.epoch_id, bytes) or len(self.epoch_id) != EPOCH_ID_LEN:
            raise UsageError(f"epoch id must be {EPOCH_ID_LEN} bytes")
        if not isinstance(self.roster, Roster) or self.roster.suite.suite_id != (
                self.suite.suite_id):
            raise UsageError("the roster must be a Roster of the group's suite")
        if self.t0 is None and self.epoch != 1:
            raise UsageError("T0(e) is known in every epoch but the first")
        if self.t0 is not None and (type(self.t0) is not int or not 0 <= self.t0 <= MAX_HUB_TIME):
            raise UsageError("hub times are Unix ms in 0..2^64-1")
        if self.epoch == 1 and self.carried:
            raise UsageError("nothing is carried into epoch 1")
        if len(self.carried) > MAX_APPLIED + MAX_GROUP_SIZE * CONTROL_ENTRY_BUDGET or any(
                not isinstance(c, bytes) for c in self.carried):
            raise UsageError("carried set: SignedEntry bytes, bounded")
        nh = self.suite.hash_len
        if not isinstance(self.init_secret, bytes) or len(self.init_secret) != nh:
            raise UsageError(f"init_secret must be {nh} bytes")
        if not isinstance(self.traffic_key, bytes) or len(self.traffic_key) != (
                self.suite.aead_key_len):
            raise UsageError("traffic key of the wrong length")
        if not isinstance(self.mailbox_id, bytes) or len(self.mailbox_id) != MAILBOX_ID_LEN:
            raise UsageError(f"mailbox id must be {MAILBOX_ID_LEN} bytes")


@dataclass(frozen=True)
class Entry:
    """One entry of the control mailbox as the hub delivered it."""

    cursor: int
    t: int
    blob: bytes = field(repr=False)


@dataclass(frozen=True)
class Posted:
    """A valid proposal or record with its place: `cursor` None for a carried one (its hub time
    then reads as T0(e), the only time every reader, joiners included, knows for it)."""

    entry: ControlEntry
    t: int
    cursor: int | None
    identity: bytes  # the author's (proposal) or owner's (record) identity
    record: MemberKeyRecord | None = field(default=None, compare=False, repr=False)

    def keys(self) -> MemberKeyRecord:
        """The record of a record entry (decoded once, when it was judged valid)."""
        if self.record is None:
            raise UsageError("not a record entry")
        return self.record

    def signed(self) -> bytes:
        return self.entry.to_bytes()


@dataclass(frozen=True)
class Void:
    proposal: Posted
    reason: str


@dataclass(frozen=True)
class Attempt:
    """What S(e) fixes (11.v2.17): the proposals applied in order, the void ones, the new
    roster and its hashes, and who is dormant at S(e)."""

    snapshot: int | None  # cursor of S(e); None = the start of the mailbox
    t_s: int
    proposals: tuple[Posted, ...]
    applied: tuple[Posted, ...]
    void: tuple[Void, ...]
    roster: Roster
    applied_hash: bytes
    roster_hash: bytes
    removed: frozenset[bytes]
    added: tuple[bytes, ...]
    resumed: tuple[bytes, ...]
    dormant: frozenset[bytes]


@dataclass(frozen=True)
class Announced:
    author: int
    identity: bytes
    entry: ControlEntry
    dkg_key: bytes
    eligible: bool


@dataclass(frozen=True)
class RunState:
    """The current run (11.v2.21). `committee` holds author indices in committee order."""

    run: int = 1
    phase: str = WAITING
    start: int | None = None
    deadline: int | None = None
    announcements: tuple[Announced, ...] = ()
    committee: tuple[int, ...] = ()
    round1: tuple[tuple[int, ControlEntry, SignedRound1] | None, ...] = ()
    round3: tuple[tuple[int, ControlEntry, Round3Item] | None, ...] = ()
    ticks: frozenset[int] = frozenset()
    # The run's public inputs, built once when the committee is fixed (a function of the
    # fields above, so not compared).
    inputs: RunInputs | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Decided:
    cursor: int
    t: int
    entry: ControlEntry
    commit: Commit


@dataclass(frozen=True)
class _State:
    first_t: int | None = None
    last_cursor: int = -1
    last_t: int = 0
    kept: tuple[Entry, ...] = ()
    budgets: tuple[tuple[int, int, int], ...] = ()  # (author, entries, bytes)
    over_budget: frozenset[int] = frozenset()
    pending: tuple[Posted, ...] = ()
    seen_proposals: frozenset[bytes] = frozenset()
    records: tuple[Posted, ...] = ()
    attempt: Attempt | None = None
    run: RunState = RunState()
    excluded: frozenset[int] = frozenset()
    decided: Decided | None = None


class _Refused(Exception):
    """A rule refused the entry: report these events, keep the state."""

    def __init__(self, *events: Event) -> None:
        super().__init__()
        self.events = events


def resume_subject(suite: Suite, posted: Posted) -> bytes | None:
    """The identity a pending resume proposal resumes (None for any other kind)."""
    p = ChangeProposal.from_bytes(suite, posted.entry.body)
    if p.kind == KIND_RESUME and isinstance(p.change, MemberKeyRecord):
        return p.change.identity
    return None


def _takes_slot(suite: Suite, pending: Sequence[Posted], proposal: ChangeProposal) -> bool:
    """11.v2.17 step 2 (review F8): an author has one pending proposal besides resume
    proposals, which answer other members' rejoin requests and are limited to one pending per
    resumed member instead, so requests cannot take every member's slot."""
    if proposal.kind == KIND_RESUME and isinstance(proposal.change, MemberKeyRecord):
        subject = proposal.change.identity
        return any(resume_subject(suite, p) == subject for p in pending)
    return any(p.identity == proposal.author and resume_subject(suite, p) is None
               for p in pending)


def _ignored(reason: str, member: bytes | None = None) -> _Refused:
    return _Refused(Ignored(reason, member))


# --- The judge ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ControlLog:
    view: EpochView
    policy: Policy = field(default=accept_all, compare=False, repr=False)
    _s: _State = field(default_factory=_State, repr=False)
    # Set only while `judge` runs with a conviction check: not part of the log.
    _convictions: ConvictionJudge | None = field(default=None, compare=False, repr=False)

    @classmethod
    def start(cls, view: EpochView, policy: Policy = accept_all) -> ControlLog:
        if not isinstance(view, EpochView):
            raise UsageError("expected an EpochView")
        log = cls(view, policy, _State())
        return replace(log, _s=log._carried_in())

    # -- public reading --

    @property
    def t0(self) -> int | None:
        """T0(e): the view's, or in epoch 1 the hub time of the first entry."""
        return self.view.t0 if self.view.t0 is not None else self._s.first_t

    @property
    def pending(self) -> tuple[Posted, ...]:
        return self._s.pending

    @property
    def records(self) -> tuple[Posted, ...]:
        """Valid records (carried ones first), mailbox order."""
        return self._s.records

    @property
    def attempt(self) -> Attempt | None:
        return self._s.attempt

    @property
    def run(self) -> RunState:
        return self._s.run

    @property
    def excluded(self) -> frozenset[bytes]:
        return frozenset(self.view.roster.entries[i].identity for i in self._s.excluded)

    @property
    def decided(self) -> Decided | None:
        return self._s.decided

    @property
    def cursor(self) -> int:
        """The cursor of the last entry judged (−1 before any)."""
        return self._s.last_cursor

    def committee(self) -> tuple[bytes, ...]:
        return tuple(self.view.roster.entries[i].identity for i in self._s.run.committee)

    def eligible(self, identity: bytes) -> bool:
        index = self.view.roster.index_of(identity)
        return index is not None and self._eligible(self._s, index)

    def deadline(self) -> int | None:
        """The hub time from which any entry (a TICK, say) ends the current phase; None when
        no phase has a deadline (no attempt, a run waiting for its first announcement, or the
        epoch decided)."""
        if self._s.decided is not None:
            return None
        return self._s.run.deadline

    def carried_out(self) -> tuple[bytes, ...]:
        """The carried set into e+1 (11.v2.15): proposals pending after S(e) and records posted
        after S(e), before C(e), mailbox order (`SignedEntry` bytes)."""
        s = self._s
        attempt = s.attempt
        if attempt is None:
            return ()
        def after_s(p: Posted) -> bool:
            return p.cursor is not None and (attempt.snapshot is None
                                             or p.cursor > attempt.snapshot)

        items = [p for p in s.pending if after_s(p)] + [r for r in s.records if after_s(r)]
        items.sort(key=lambda p: p.cursor if p.cursor is not None else -1)
        return tuple(p.signed() for p in items)

    def next_view(self, *, epoch_id: bytes, init_secret: bytes, traffic_key: bytes,
                  mailbox_id: bytes) -> EpochView:
        """The view of epoch e+1 once C(e) is known, from epoch e+1's derived values: the new
        roster, T0(e+1) = t(C(e)), the carried set, the members dormant at S(e)."""
        decided, attempt = self._s.decided, self._s.attempt
        if decided is None or attempt is None:
            raise UsageError("epoch e is not decided yet")
        v = self.view
        kept = frozenset(e.identity for e in attempt.roster.entries) & attempt.dormant
        return EpochView(v.suite, v.group_id, v.epoch + 1, epoch_id, attempt.roster,
                         decided.t, self.carried_out(), init_secret, traffic_key, mailbox_id,
                         kept)

    def run_inputs(self) -> RunInputs | None:
        """The current run's public inputs once its committee is fixed."""
        return self._inputs(self._s)

    def round1_items(self) -> tuple[SignedRound1, ...] | None:
        """The current run's checked round-1 data in committee order, once all are in."""
        items = self._s.run.round1
        if not items or any(r is None for r in items):
            return None
        return tuple(r[2] for r in items if r is not None)

    def agreed(self) -> tuple[bytes, bytes] | None:
        """(bundle_root, confirmation_tag) every round-3 item of the run carries, in COMMIT."""
        run = self._s.run
        first = run.round3[0] if run.round3 else None
        if run.phase != COMMIT or first is None:
            return None
        return first[2].bundle_root, first[2].confirmation_tag

    def certificate(self) -> tuple[tuple[bytes, ...], tuple[bytes, ...], tuple[bytes, ...]]:
        """The certificate of the current run (11.v2.23), `SignedEntry` bytes in committee
        order: the committee's announcements, their round-1 items, their round-3 items."""
        run = self._s.run
        by_author = {a.author: a for a in run.announcements}
        return (tuple(by_author[i].entry.to_bytes() for i in run.committee),
                tuple(r[1].to_bytes() for r in run.round1 if r is not None),
                tuple(r[1].to_bytes() for r in run.round3 if r is not None))

    # -- judging --

    def judge(self, entry: Entry, *, convictions: ConvictionJudge | None = None
              ) -> tuple[ControlLog, list[Event]]:
        """Judge the next entry of the mailbox; never raises on what the hub delivered.
        `convictions` checks a conviction entry (only its events depend on it)."""
        if not isinstance(entry, Entry):
            raise UsageError("expected an Entry")
        s = self._s
        if type(entry.cursor) is not int or type(entry.t) is not int or not isinstance(
                entry.blob, bytes | bytearray) or not 0 <= entry.t <= MAX_HUB_TIME or not (
                0 <= entry.cursor <= MAX_CURSOR):
            return self, [Ignored("malformed entry")]
        if entry.cursor <= s.last_cursor:
            return self, [Ignored("entry already judged")]
        if entry.t < s.last_t:
            return self, [Ignored("hub time went backwards")]
        if s.decided is not None:
            return self, [Ignored("after the deciding commit")]
        events: list[Event] = []
        timed = self._time_marker(s, entry, events)
        # What a saved log keeps of the entry: all of it when it was read, only its place and
        # time when it merely marked time (an empty blob is unreadable too).
        kept: tuple[Entry, ...] = (Entry(entry.cursor, entry.t, bytes(entry.blob)),)
        reader = self if convictions is None else replace(self, _convictions=convictions)
        try:
            judged = reader._read_and_judge(timed, entry, events)
        except _Refused as refused:
            judged = timed
            kept = (Entry(entry.cursor, entry.t, b""),) if timed is not s else ()
            events.extend(refused.events)
        except TripleRatchetError as exc:
            judged = timed
            kept = (Entry(entry.cursor, entry.t, b""),) if timed is not s else ()
            events.append(Ignored(f"{type(exc).__name__}: {exc}"))
        judged = replace(judged, last_cursor=entry.cursor, last_t=entry.t,
                         kept=judged.kept + kept)
        return replace(self, _s=judged), events

    def judge_all(self, entries: Sequence[Entry]) -> tuple[ControlLog, list[Event]]:
        log, events = self, []
        for e in entries:
            log, more = log.judge(e)
            events += more
        return log, events

    # -- carried set (11.v2.15) --

    def _carried_in(self) -> _State:
        """Decode the carried set into e: its proposals are pending from the start (and fix S(e)
        at the start of the mailbox), its records count as seen. Entries that no longer fit
        e's roster are dropped — every reader drops the same ones."""
        v = self.view
        s = _State()
        t = v.t0 if v.t0 is not None else 0
        for raw in v.carried:
            try:
                entry = ControlEntry.from_bytes(v.suite, raw, group_id=v.group_id,
                                                epoch=v.epoch - 1)
                if entry.entry_type == TYPE_PROPOSAL:
                    proposal = ChangeProposal.from_bytes(v.suite, entry.body)
                    author = Identity.from_bytes(proposal.author, v.suite)
                    entry.verify(author, None)
                    if _takes_slot(v.suite, s.pending, proposal):
                        continue
                    s = replace(s, pending=(*s.pending, Posted(entry, t, None, proposal.author)))
                elif entry.entry_type == TYPE_RECORD:
                    record = MemberKeyRecord.from_bytes(v.suite, entry.body)
                    entry.verify(record.owner(), None)
                    index = v.roster.index_of(record.identity)
                    if index is None:
                        continue
                    s = self._accept_record(s, Posted(entry, t, None, record.identity, record),
                                            record, index)
            except (TripleRatchetError, _Refused):
                continue
        return s

    # -- time (11.v2.21) --

    def _time_marker(self, s: _State, entry: Entry, events: list[Event]) -> _State:
        """What every entry does, readable or not: T0(1), S(e) of a carried attempt, and the end
        of a phase whose deadline it reaches."""
        if s.first_t is None:
            s = replace(s, first_t=entry.t)
            if s.pending and s.attempt is None:  # carried proposals: S(e) = mailbox start
                try:
                    s = self._fix_attempt(s, None, entry.t, s.pending, events)
                except TripleRatchetError as exc:  # cannot happen for judged entries
                    events.append(Ignored(f"attempt not formed: {exc}"))
        run = s.run
        if run.deadline is None or entry.t < run.deadline:
            return s
        return self._end_phase_at_deadline(s, entry.t, events)

    def _end_phase_at_deadline(self, s: _State, t: int, events: list[Event]) -> _State:
        run = s.run
        if run.phase == ANNOUNCE:
            committee = self._committee_of(s)
            if not committee:
                # No eligible announcer: every exclusion is cleared for the next run.
                return self._next_run(replace(s, excluded=frozenset()))
            return self._start_round1(s, committee, t)
        if run.phase == ROUND1:
            missing = [a for a, r1 in zip(run.committee, run.round1, strict=True) if r1 is None]
            return self._next_run(self._exclude(s, missing, EXCLUDED_MISSING_ROUND1, events))
        if run.phase == ROUND3:
            present = [r3[2] for r3 in run.round3 if r3 is not None]
            if any(not present[0].agrees_with(x) for x in present[1:]):
                return self._next_run(self._exclude(s, run.committee, EXCLUDED_DISAGREEMENT,
                                                    events))
            missing = [a for a, r3 in zip(run.committee, run.round3, strict=True) if r3 is None]
            return self._next_run(self._exclude(s, missing, EXCLUDED_MISSING_ROUND3, events))
        # COMMIT
        return self._next_run(self._exclude(s, run.committee, EXCLUDED_NO_COMMIT, events))

    def _next_run(self, s: _State) -> _State:
        r = s.run.run
        # Run numbers are bounded by the wire (2^32 − 1); a last run simply never ends.
        return replace(s, run=RunState(run=min(r + 1, MAX_RUN)))

    def _exclude(self, s: _State, authors: Sequence[int], reason: str,
                 events: list[Event]) -> _State:
        excluded = set(s.excluded)
        for a in authors:
            if a not in excluded:
                excluded.add(a)
                events.append(MemberExcluded(self.view.roster.entries[a].identity, s.run.run,
                                             reason))
        return replace(s, excluded=frozenset(excluded))

    def _committee_of(self, s: _State) -> tuple[int, ...]:
        eligible = [a.author for a in s.run.announcements
                    if a.eligible and a.author not in s.excluded]
        return tuple(eligible[:COMMITTEE_SIZE])

    def _start_round1(self, s: _State, committee: tuple[int, ...], t: int) -> _State:
        k = len(committee)
        s = replace(s, run=replace(s.run, phase=ROUND1, start=t, deadline=t + PHASE_TIMEOUT,
                                   committee=committee, round1=(None,) * k,
                                   round3=(None,) * k, ticks=frozenset()))
        try:
            return replace(s, run=replace(s.run, inputs=self._build_inputs(s)))
        except TripleRatchetError:  # judged entries always fit; built again (and refused) later
            return s

    # -- reading (11.v2.5) --

    def _read_and_judge(self, s: _State, entry: Entry, events: list[Event]) -> _State:
        v = self.view
        blob = bytes(entry.blob)
        if len(blob) > MAX_CONTROL_BLOB_LEN:
            raise LimitExceeded("control blob too large")
        ce = open_entry(v.suite, v.traffic_key, v.mailbox_id, blob, group_id=v.group_id,
                        epoch=v.epoch, roster_size=len(v.roster))
        author = v.roster.entries[ce.author]
        ce.verify(author.keys.owner() if ce.identity_signed else None,
                  None if ce.identity_signed else author.keys.verifying_key())
        # Budget (11.v2.20): counted after the signature, before the body.
        budgets = dict((a, (n, b)) for a, n, b in s.budgets)
        n, b = budgets.get(ce.author, (0, 0))
        if n + 1 > CONTROL_ENTRY_BUDGET or b + len(blob) > CONTROL_BYTE_BUDGET:
            if ce.author in s.over_budget:
                raise _ignored("control budget exceeded", author.identity)
            # Reported once per author and epoch; the entry is still not counted.
            over = replace(s, over_budget=s.over_budget | {ce.author})
            events.append(Ignored("control budget exceeded", author.identity))
            events.append(MisbehaviourReported(author.identity, "control budget exceeded"))
            return over
        budgets[ce.author] = (n + 1, b + len(blob))
        counted = replace(s, budgets=tuple(sorted((a, x, y) for a, (x, y) in budgets.items())))
        handler = {
            TYPE_RECORD: self._record,
            TYPE_PROPOSAL: self._proposal,
            TYPE_ANNOUNCEMENT: self._announcement,
            TYPE_ROUND1: self._round1,
            TYPE_ROUND3: self._round3,
            TYPE_TICK: self._tick,
            TYPE_COMMIT: self._commit,
            TYPE_REVEAL: self._reveal,
            TYPE_EVIDENCE: self._evidence,
            TYPE_CONVICTION: self._conviction,
        }[ce.entry_type]
        try:
            return handler(counted, ce, entry, events)
        except _Refused as refused:
            # A readable entry the rules refuse still counts against its author's budget.
            events.extend(refused.events)
            return counted
        except TripleRatchetError as exc:
            events.append(Ignored(f"{type(exc).__name__}: {exc}", author.identity))
            return counted

    # -- records (11.v2.16) --

    def _record(self, s: _State, ce: ControlEntry, entry: Entry,
                events: list[Event]) -> _State:
        v = self.view
        record = MemberKeyRecord.from_bytes(v.suite, ce.body)
        posted = Posted(ce, entry.t, entry.cursor, record.identity, record)
        try:
            return self._accept_record(s, posted, record, ce.author)
        except _Refused as refused:
            events.extend(refused.events)
            return s

    def _accept_record(self, s: _State, posted: Posted, record: MemberKeyRecord,
                       author: int) -> _State:
        v = self.view
        owner = v.roster.entries[author]
        seen = [r.keys() for r in s.records if r.identity == owner.identity]
        taken = set(v.roster.taken_keys(owner.identity))
        for r in s.records:  # the owner's own earlier records too: keys are never reused
            taken.add(r.keys().signing_key)
            if r.identity == owner.identity:
                taken.add(r.keys().receive_key)
        try:
            verdict = judge_record(record, author_identity=owner.identity, current=owner.keys,
                                   anchor=owner.anchor, seen=seen, taken_keys=taken,
                                   group_id=v.group_id, purpose=PURPOSE_ROTATE)
        except ReplayError as exc:
            raise _ignored(str(exc), owner.identity) from None
        except ProtocolError as exc:
            raise _ignored(str(exc), owner.identity) from None
        if verdict is RecordVerdict.EQUIVOCATION:
            raise _Refused(Ignored("record equivocation", owner.identity),
                           MisbehaviourReported(owner.identity, "record equivocation"))
        # Our own records' keys are checked against e's roster and earlier records; the keys a
        # record shares with its owner's current entry are refused by judge_record too.
        return replace(s, records=(*s.records, posted))

    # -- proposals (11.v2.17) --

    def _proposal(self, s: _State, ce: ControlEntry, entry: Entry,
                  events: list[Event]) -> _State:
        v = self.view
        author = v.roster.entries[ce.author]
        proposal = ChangeProposal.from_entry(ce, author.keys.owner())
        if not hmac.compare_digest(proposal.epoch_id, v.epoch_id):
            raise ProtocolError("proposal for another epoch id")
        if _takes_slot(v.suite, s.pending, proposal):
            if proposal.kind == KIND_RESUME:
                raise _ignored("a resume of this member is pending", author.identity)
            raise _ignored("author has a pending proposal", author.identity)
        t = entry.t
        if proposal.kind == KIND_ADD:
            if not isinstance(proposal.change, JoinKey) or not proposal.change.usable_at(t):
                raise _ignored("join key expired", author.identity)
        elif proposal.kind == KIND_RESUME:
            record = proposal.change
            if not isinstance(record, MemberKeyRecord):
                raise DecodeError("a resume carries a record")
            subject = v.roster.index_of(record.identity)
            if subject is None:
                raise _ignored("resume of a non-member", author.identity)
            entry_ = v.roster.entries[subject]
            if not hmac.compare_digest(record.anchor, entry_.anchor):
                raise _ignored("resume record of another membership", author.identity)
            if record.counter <= entry_.counter:
                raise _ignored("resume record not newer", author.identity)
        elif proposal.kind == KIND_REFRESH:
            t0 = v.t0 if v.t0 is not None else s.first_t
            if s.pending:
                raise _ignored("refresh while a proposal is pending", author.identity)
            if t0 is None or t < t0 + REFRESH_MIN_AGE:
                raise _ignored("refresh too early", author.identity)
        content = ce.entry_bytes()
        if content in s.seen_proposals:
            raise _ignored("duplicate", author.identity)
        posted = Posted(ce, t, entry.cursor, author.identity)
        s = replace(s, pending=(*s.pending, posted),
                    seen_proposals=s.seen_proposals | {content})
        if s.attempt is None:
            s = self._fix_attempt(s, entry.cursor, t, (posted,), events)
        return s

    def _fix_attempt(self, s: _State, snapshot: int | None, t_s: int,
                     proposals: tuple[Posted, ...], events: list[Event]) -> _State:
        """S(e): apply the attempt's proposals in order against the roster as changed so far."""
        v = self.view
        suite = v.suite
        t0 = v.t0 if v.t0 is not None else (s.first_t if s.first_t is not None else t_s)
        entries = list(v.roster.entries)
        applied: list[Posted] = []
        void: list[Void] = []
        removed: list[bytes] = []
        added: list[bytes] = []
        resumed: list[bytes] = []

        def index(identity: bytes) -> int | None:
            for i, e in enumerate(entries):
                if e.identity == identity:
                    return i
            return None

        def keys_in(keys: MemberKeyRecord | JoinKey, skip: int | None = None) -> bool:
            # Signing keys only: a receive key proves no possession, so a copy of a joiner's
            # must not void its add (review F4).
            return any(keys.signing_key == e.signing_key
                       for i, e in enumerate(entries) if i != skip)

        for place, posted in enumerate(proposals):
            p = ChangeProposal.from_bytes(suite, posted.entry.body)
            reason = None
            if index(posted.identity) is None:
                reason = "author removed"
            elif not self._policy_allows(entries, p, place):
                reason = "refused by the group policy"
            elif p.kind == KIND_ADD:
                jk = p.change
                if not isinstance(jk, JoinKey):
                    reason = "malformed"
                elif any(identity_keys(e.identity) == identity_keys(jk.identity)
                         for e in entries):  # by keys: a twin encoding is the same member
                    reason = "already a member"
                elif len(entries) >= min(MAX_GROUP_SIZE, max_group_size(v.suite)):
                    reason = "group full"
                elif jk.expiry <= t_s:
                    reason = "join key expired"
                elif keys_in(jk):
                    reason = "key already in the roster"
                else:
                    entries.append(RosterEntry(jk.identity, jk, posted.t,
                                               jk.anchor(v.epoch_id)))
                    added.append(jk.identity)
            elif p.kind == KIND_REMOVE:
                subject = p.change
                i = index(subject) if isinstance(subject, bytes) else None
                if i is None or not isinstance(subject, bytes):
                    reason = "not a member"
                elif len(entries) == 1:
                    reason = "would leave the group empty"
                else:
                    del entries[i]
                    removed.append(subject)
            elif p.kind == KIND_RESUME:
                rec = p.change
                i = index(rec.identity) if isinstance(rec, MemberKeyRecord) else None
                if i is None or not isinstance(rec, MemberKeyRecord):
                    reason = "not a member"
                elif not hmac.compare_digest(rec.anchor, entries[i].anchor):
                    reason = "record of another membership"
                elif rec.counter <= entries[i].counter:
                    reason = "record not newer"
                elif keys_in(rec):
                    reason = "key already in the roster"
                else:
                    entries[i] = RosterEntry(rec.identity, rec, posted.t,
                                             anchor_of(suite, v.epoch_id, rec.body()))
                    resumed.append(rec.identity)
            if reason is None:
                applied.append(posted)
            else:
                void.append(Void(posted, reason))
                events.append(ProposalVoid(posted.identity, p.kind, p.subject(), reason))
        # Records posted before S(e) (carried ones included): each staying member's latest.
        changed = set(added) | set(resumed)
        before = [r for r in s.records
                  if r.cursor is None or (snapshot is not None and r.cursor < snapshot)]
        latest_t: dict[bytes, int] = {}
        for i, e in enumerate(entries):
            if e.identity in changed:
                continue
            mine = [r for r in before if r.identity == e.identity]
            if not mine:
                continue
            last = mine[-1]  # valid records of one owner have increasing counters
            rec = last.keys()
            latest_t[e.identity] = last.t
            if rec.counter <= e.counter or not hmac.compare_digest(rec.anchor, e.anchor) or (
                    keys_in(rec, skip=i)):
                continue
            entries[i] = RosterEntry(e.identity, rec, last.t, e.anchor)
        roster = Roster(suite, tuple(entries))
        # Dormancy at S(e) (11.v2.15): latest keys posted before S(e) older than RETENTION.
        dormant = set()
        for e in v.roster.entries:
            if e.identity in changed or e.identity in removed:
                continue
            posted_at = e.posted_at if e.posted_at != 0 else t0
            posted_at = max(posted_at, latest_t.get(e.identity, 0))
            if posted_at < t_s - RETENTION:
                dormant.add(e.identity)
                events.append(MemberDormant(e.identity))
        applied_t = tuple(applied)
        attempt = Attempt(snapshot, t_s, proposals, applied_t, tuple(void), roster,
                          applied_proposals_hash(suite, [p.entry for p in applied_t]),
                          roster.hash(), frozenset(removed), tuple(added), tuple(resumed),
                          frozenset(dormant))
        # Void proposals are no longer pending: their authors may propose again.
        voided = [x.proposal for x in attempt.void]
        return replace(s, attempt=attempt,
                       pending=tuple(p for p in s.pending if p not in voided))

    def _policy_allows(self, entries: list[RosterEntry], p: ChangeProposal,
                       place: int) -> bool:
        if self.policy is accept_all:  # skip building a roster per proposal
            return True
        try:
            return bool(self.policy(Roster(self.view.suite, tuple(entries)), p, place))
        except TripleRatchetError:
            return False

    # -- announcements and the committee (11.v2.18) --

    def _eligible(self, s: _State, author: int) -> bool:
        identity = self.view.roster.entries[author].identity
        a = s.attempt
        return (a is not None and identity not in a.removed and identity not in a.dormant
                and author not in s.excluded)

    def _announcement(self, s: _State, ce: ControlEntry, entry: Entry,
                      events: list[Event]) -> _State:
        v = self.view
        author = v.roster.entries[ce.author]
        a = RunAnnouncement.from_entry(ce, author.keys.owner())
        attempt = s.attempt
        if attempt is None:
            raise _ignored("announcement without an attempt", author.identity)
        # The view first: a newcomer shown a later T0 by one insider's notice would otherwise
        # call every honest announcement "too early" and drift off silently (review v3).
        if not hmac.compare_digest(a.view_hash, v.view_hash):
            raise _ignored(ANOTHER_EPOCH_VIEW, author.identity)
        if v.epoch != 1 and (v.t0 is None or entry.t < v.t0 + EPOCH_MIN_AGE):
            raise _ignored("announcement too early", author.identity)
        run = s.run
        if a.run != run.run:
            raise _ignored("announcement for another run", author.identity)
        if run.phase not in (WAITING, ANNOUNCE):
            raise _ignored("announcement after the ANNOUNCE phase", author.identity)
        identity = author.identity
        if identity in attempt.removed or identity in attempt.dormant:
            raise _ignored("announcer not eligible", identity)
        if not (hmac.compare_digest(a.applied_proposals_hash, attempt.applied_hash)
                and hmac.compare_digest(a.roster_hash, attempt.roster_hash)):
            raise _ignored("announcement for another view", identity)
        # Spec order: a repeated key (a copy, or the author's own entry again) before
        # equivocation, which needs another key.
        if any(prior.dkg_key == a.dkg_key for prior in run.announcements):
            raise _ignored("copied DKG key", identity)
        if any(prior.author == ce.author for prior in run.announcements):
            raise _Refused(Ignored("announcement equivocation", identity),
                           MisbehaviourReported(identity, "announcement equivocation"))
        if len(run.announcements) >= 2 * COMMITTEE_SIZE:
            raise _ignored("announcement beyond 2k", identity)
        eligible = ce.author not in s.excluded
        run = replace(run, announcements=(
            *run.announcements, Announced(ce.author, identity, ce, a.dkg_key, eligible)))
        if run.phase == WAITING:
            run = replace(run, phase=ANNOUNCE, start=entry.t, deadline=entry.t + CLOSE_WINDOW,
                          ticks=frozenset())
        s = replace(s, run=run)
        committee = self._committee_of(s)
        if len(committee) == COMMITTEE_SIZE:
            s = self._start_round1(s, committee, entry.t)
        return s

    # -- the run's inputs --

    def _inputs(self, s: _State) -> RunInputs | None:
        if s.run.inputs is not None:
            return s.run.inputs
        return self._build_inputs(s)

    def _build_inputs(self, s: _State) -> RunInputs | None:
        run, attempt = s.run, s.attempt
        if attempt is None or not run.committee:
            return None
        v = self.view
        by_author = {a.author: a for a in run.announcements}
        chosen = [by_author[i] for i in run.committee]
        identities = [a.identity for a in chosen]
        new = attempt.roster
        lacking = (set(v.dormant_before) | set(attempt.added) | set(attempt.resumed))
        recipients = recipients_of(new, identities, attempt.dormant)
        member_base_to = frozenset(new.entries[i].identity for i in recipients
                                   if new.entries[i].identity in lacking)
        return RunInputs(v.suite, v.group_id, v.epoch, v.epoch_id, run.run,
                         attempt.applied_hash, new,
                         tuple(a.entry.entry_bytes() for a in chosen),
                         tuple(Point.from_bytes(a.dkg_key) for a in chosen),
                         recipients, member_base_to)

    def _position(self, s: _State, author: int) -> int | None:
        try:
            return s.run.committee.index(author)
        except ValueError:
            return None

    def _require_inputs(self, s: _State) -> RunInputs:
        inputs = self._inputs(s)
        if inputs is None:
            raise _ignored("no committee yet")
        return inputs

    def _round1_list(self, s: _State) -> list[SignedRound1]:
        return [r1[2] for r1 in s.run.round1 if r1 is not None]

    # -- round items (11.v2.22) --

    def _round1(self, s: _State, ce: ControlEntry, entry: Entry,
                events: list[Event]) -> _State:
        identity = self.view.roster.entries[ce.author].identity
        item = Round1Item.from_bytes(ce.body)
        run = s.run
        if item.run != run.run:
            raise _ignored("round-1 item for another run", identity)
        position = self._position(s, ce.author)
        if position is None:
            raise _ignored("round-1 item from outside the committee", identity)
        earlier = run.round1[position]
        if earlier is not None:
            # Equivocation is judged before any phase check (R8).
            inputs = self._require_inputs(s)
            second = SignedRound1.from_bytes(item.signed_round1)
            second.check_signature(inputs.params())
            if second.sender == earlier[2].sender and (
                    second.payload_hash + second.message
                    != earlier[2].payload_hash + earlier[2].message):
                raise _Refused(Ignored("round-1 equivocation", identity),
                               MisbehaviourReported(identity, "round-1 equivocation"))
            raise _ignored("round-1 item already received", identity)
        if run.phase != ROUND1:
            raise _ignored("round-1 item outside ROUND1", identity)
        inputs = self._require_inputs(s)
        signed = check_round1(inputs, position + 1, item)
        round1 = list(run.round1)
        round1[position] = (ce.author, ce, signed)
        run = replace(run, round1=tuple(round1))
        if all(r is not None for r in round1):
            run = replace(run, phase=ROUND3, start=entry.t, deadline=entry.t + PHASE_TIMEOUT,
                          ticks=frozenset())
        return replace(s, run=run)

    def _round3(self, s: _State, ce: ControlEntry, entry: Entry,
                events: list[Event]) -> _State:
        identity = self.view.roster.entries[ce.author].identity
        item = Round3Item.from_bytes(self.view.suite, ce.body)
        run = s.run
        if item.run != run.run:
            raise _ignored("round-3 item for another run", identity)
        if run.phase != ROUND3:
            raise _ignored("round-3 item outside ROUND3", identity)
        position = self._position(s, ce.author)
        if position is None:
            raise _ignored("round-3 item from outside the committee", identity)
        if run.round3[position] is not None:
            raise _ignored("round-3 item already received", identity)
        inputs = self._require_inputs(s)
        verify_round3(inputs, self._round1_list(s), position + 1, item)
        round3 = list(run.round3)
        round3[position] = (ce.author, ce, item)
        run = replace(run, round3=tuple(round3))
        present = [r[2] for r in round3 if r is not None]
        if len(present) == len(round3) and all(present[0].agrees_with(x) for x in present[1:]):
            run = replace(run, phase=COMMIT, start=entry.t, deadline=entry.t + PHASE_TIMEOUT,
                          ticks=frozenset())
        return replace(s, run=run)

    # -- TICK (11.v2.19) --

    def _tick(self, s: _State, ce: ControlEntry, entry: Entry,
              events: list[Event]) -> _State:
        identity = self.view.roster.entries[ce.author].identity
        check_tick_body(ce.body)
        if ce.author in s.run.ticks:
            raise _ignored("tick already sent in this phase", identity)
        # A TICK does nothing but exist: its hub time was already judged as a time marker.
        return replace(s, run=replace(s.run, ticks=s.run.ticks | {ce.author}))

    # -- the deciding commit (11.v2.23) --

    def _commit(self, s: _State, ce: ControlEntry, entry: Entry,
                events: list[Event]) -> _State:
        identity = self.view.roster.entries[ce.author].identity
        commit = Commit.from_bytes(self.view.suite, ce.body)
        run = s.run
        if commit.run != run.run:
            raise _ignored("commit for another run", identity)
        if run.phase != COMMIT:
            raise _ignored("commit outside the COMMIT phase", identity)
        if self._position(s, ce.author) is None:
            raise _ignored("commit from outside the committee", identity)
        inputs = self._require_inputs(s)
        first = run.round3[0]
        if first is None:  # COMMIT starts only with every round-3 item present
            raise _ignored("commit without round-3 items", identity)
        verify_commit(inputs, commit, first[2].bundle_root)
        return replace(s, decided=Decided(entry.cursor, entry.t, ce, commit))

    # -- REVEAL and evidence (11.v2.24) --

    def _reveal(self, s: _State, ce: ControlEntry, entry: Entry,
                events: list[Event]) -> _State:
        identity = self.view.roster.entries[ce.author].identity
        reveal = Reveal.from_bytes(ce.body)
        run = s.run
        present = [r[2] for r in run.round3 if r is not None]
        disagree = any(not present[0].agrees_with(x) for x in present[1:])
        if (reveal.run != run.run or run.phase != ROUND3
                or self._position(s, ce.author) is None or not disagree):
            raise _Refused(Ignored("REVEAL without a round-3 disagreement", identity),
                           MisbehaviourReported(identity, "payloads revealed"))
        inputs = self._require_inputs(s)
        try:
            outcome = outcome_from_reveal(inputs, self._round1_list(s), reveal,
                                          self.view.init_secret)
        except ProtocolError:
            # A payload that is not its signed one, or not k of them: the REVEAL is false.
            return self._next_run(self._exclude(s, [ce.author], EXCLUDED_REVEALED, events))
        positions = disagreeing(outcome, [r[2] if r is not None else None for r in run.round3])
        if not positions:
            return self._next_run(self._exclude(s, [ce.author], EXCLUDED_REVEALED, events))
        convicted = [run.committee[j - 1] for j in positions]
        return self._next_run(self._exclude(s, convicted, EXCLUDED_DISAGREEMENT, events))

    def _evidence(self, s: _State, ce: ControlEntry, entry: Entry,
                  events: list[Event]) -> _State:
        v = self.view
        identity = v.roster.entries[ce.author].identity
        ev = Evidence.from_bytes(ce.body)
        run = s.run
        if ev.run != run.run:
            raise _ignored("evidence for another run", identity)
        if ev.kind == EVIDENCE_ANNOUNCEMENT_EQUIVOCATION:
            convicted, reason = self._announcement_equivocation(ev.evidence), (
                EXCLUDED_EQUIVOCATION)
        elif ev.kind == EVIDENCE_ROUND1_EQUIVOCATION:
            convicted, reason = self._round1_equivocation(s, ev.evidence), (
                EXCLUDED_EQUIVOCATION)
        elif ev.kind == EVIDENCE_BLAME:
            convicted, reason = self._blame(s, ce.author, ev)
        else:
            raise DecodeError("unknown evidence kind")
        if convicted in s.excluded:
            # An excluded member that keeps equivocating cannot end run after run.
            raise _ignored("evidence against an excluded member", identity)
        ends = self._position(s, convicted) is not None or (
            run.phase in (WAITING, ANNOUNCE)
            and any(a.author == convicted and a.eligible for a in run.announcements))
        s = self._exclude(s, [convicted], reason, events)
        return self._next_run(s) if ends else s

    def _announcement_equivocation(self, raw: bytes) -> int:
        v = self.view
        f = cbor.as_list(cbor.decode(raw, max_items=4, max_depth=1), "announcement evidence", 2)
        entries = []
        for x in f:
            ce = ControlEntry.from_bytes(v.suite, cbor.as_bytes(x, "announcement"),
                                         group_id=v.group_id, epoch=v.epoch)
            if ce.entry_type != TYPE_ANNOUNCEMENT or ce.author >= len(v.roster):
                raise ProtocolError("evidence: not an announcement of this epoch")
            owner = v.roster.entries[ce.author].keys.owner()
            ce.verify(owner, None)
            a = RunAnnouncement.from_entry(ce, owner)
            if a.run != self._s.run.run:
                raise ProtocolError("evidence: announcement of another run")
            entries.append(ce)
        if entries[0].author != entries[1].author:
            raise ProtocolError("evidence: announcements of two authors")
        if entries[0].same_as(entries[1]):
            raise ProtocolError("evidence: the same announcement twice")
        return entries[0].author

    def _round1_equivocation(self, s: _State, raw: bytes) -> int:
        if s.run.phase not in (ROUND1, ROUND3, COMMIT):
            raise ProtocolError("evidence: no committee yet")
        params = self._require_inputs(s).params()
        f = cbor.as_list(cbor.decode(raw, max_items=4, max_depth=1), "round-1 evidence", 2)
        first, second = (SignedRound1.from_bytes(cbor.as_bytes(x, "signed round 1")) for x in f)
        if first.sender != second.sender or not 1 <= first.sender <= params.n:
            raise ProtocolError("evidence: round-1 messages of two senders")
        first.check_signature(params)
        second.check_signature(params)
        if first.payload_hash + first.message == second.payload_hash + second.message:
            raise ProtocolError("evidence: the same round-1 content twice")
        return s.run.committee[first.sender - 1]

    def _blame(self, s: _State, author: int, ev: Evidence) -> tuple[int, str]:
        position = self._position(s, author)
        if position is None or s.run.phase not in (ROUND1, ROUND3, COMMIT):
            raise ProtocolError("blame from outside the committee")
        verdict = judge_blame_evidence(self._require_inputs(s), position + 1, ev)
        if verdict.culprit is None or not 1 <= verdict.culprit <= len(s.run.committee):
            raise ProtocolError("blame: no verdict")
        reason = (EXCLUDED_FALSE_ACCUSATION if verdict.fault == REASON_FALSE_ACCUSATION
                  else EXCLUDED_BLAME)
        return s.run.committee[verdict.culprit - 1], reason

    def _conviction(self, s: _State, ce: ControlEntry, entry: Entry,
                    events: list[Event]) -> _State:
        # Convictions name an earlier epoch's commit: checked by the caller's judge with that
        # commit's secrets (11.v2.25). Advisory: whatever the check says, they change nothing
        # but their author's budget, so every reader's log stays the same.
        identity = self.view.roster.entries[ce.author].identity
        conviction = Conviction.from_bytes(self.view.suite, ce.body)
        if conviction.decided_epoch >= self.view.epoch:
            raise ProtocolError("conviction of a commit not yet made")
        verdict = None if self._convictions is None else self._convictions(identity, conviction)
        if verdict is None:
            raise _ignored("conviction not checkable here", identity)
        raise _Refused(*verdict)

    # -- saving --

    def to_bytes(self) -> bytes:
        v = self.view
        return cbor.encode([
            _LOG_WIRE, _LOG_VERSION, v.suite.suite_id, v.group_id, v.epoch, v.epoch_id,
            v.roster.to_bytes(), [] if v.t0 is None else [v.t0], list(v.carried),
            v.init_secret, v.traffic_key, v.mailbox_id, sorted(v.dormant_before),
            [[e.cursor, e.t, bytes(e.blob)] for e in self._s.kept],
            # Where reading resumes: entries after the last kept one changed nothing.
            self._s.last_cursor + 1, self._s.last_t,
            len(self._s.kept),  # a dropped kept entry shows (the rest may still judge the same)
        ])

    @classmethod
    def from_bytes(cls, data: bytes, policy: Policy = accept_all) -> ControlLog:
        """Strict, bounded decoding; the state is rebuilt by judging the kept entries again.
        Every saved entry must be kept again exactly as saved, and their number must be the
        one saved: a tampered, dropped, repeated or reordered entry is `DecodeError`, never a
        shorter log (11.v2.35)."""
        if not isinstance(data, bytes | bytearray):
            raise UsageError("expected bytes")
        max_entries = 5 * CONTROL_ENTRY_BUDGET * MAX_GROUP_SIZE
        # Readable entries are bounded by the members' budgets; time markers are kept empty.
        max_size = CONTROL_BYTE_BUDGET * MAX_GROUP_SIZE + 2**26
        if len(data) > max_size:
            raise LimitExceeded("saved control log too large")
        f = cbor.as_list(cbor.decode(bytes(data), max_size=max_size,
                                     max_items=16 + 4 * max_entries + MAX_GROUP_SIZE * 4,
                                     max_depth=3), "saved control log", 17)
        if cbor.as_str(f[0], "saved control log", max_length=64) != _LOG_WIRE:
            raise DecodeError("not a saved control log")
        if cbor.as_int(f[1], "saved control log version") != _LOG_VERSION:
            raise DecodeError("saved control log of another version")
        suite = suite_by_id(cbor.as_int(f[2], "suite", maximum=0xFFFF))
        group_id = cbor.as_bytes(f[3], "group id", max_length=MAX_GROUP_ID_LEN)

        def optional_time(x: cbor.CborValue, what: str) -> int | None:
            items = cbor.as_list(x, what)
            if len(items) > 1:
                raise DecodeError(f"{what}: at most one value")
            return cbor.as_int(items[0], what) if items else None

        dormant = cbor.as_list(f[12], "dormant members")
        kept = cbor.as_list(f[13], "kept entries")
        if len(kept) > max_entries:
            raise LimitExceeded("too many kept entries")
        if cbor.as_int(f[16], "number of kept entries") != len(kept):
            raise DecodeError("saved control log: kept entries missing or added")
        try:
            view = EpochView(
                suite, group_id, cbor.as_int(f[4], "epoch", maximum=MAX_EPOCH),
                cbor.as_bytes(f[5], "epoch id", length=EPOCH_ID_LEN),
                Roster.from_bytes(suite, cbor.as_bytes(f[6], "roster"), group_id=group_id),
                optional_time(f[7], "T0"),
                tuple(cbor.as_bytes(c, "carried entry") for c in cbor.as_list(f[8], "carried")),
                cbor.as_bytes(f[9], "init secret", length=suite.hash_len),
                cbor.as_bytes(f[10], "traffic key", length=suite.aead_key_len),
                cbor.as_bytes(f[11], "mailbox id", length=MAILBOX_ID_LEN),
                frozenset(cbor.as_bytes(d, "dormant member", max_length=512) for d in dormant))
        except UsageError as exc:
            raise DecodeError(f"saved control log: {exc}") from None
        log = cls.start(view, policy)
        for item in kept:
            e = cbor.as_list(item, "kept entry", 3)
            entry = Entry(cbor.as_int(e[0], "cursor"), cbor.as_int(e[1], "hub time"),
                          cbor.as_bytes(e[2], "blob", max_length=MAX_CONTROL_BLOB_LEN))
            if entry.cursor <= log._s.last_cursor or entry.t < log._s.last_t:
                raise DecodeError("saved control log: entries out of order")
            log, _ = log.judge(entry)
            if log._s.kept[-1:] != (entry,):
                raise DecodeError("saved control log: a kept entry is not kept again")
        next_cursor = cbor.as_int(f[14], "next cursor")
        last_t = cbor.as_int(f[15], "last hub time")
        if next_cursor - 1 < log._s.last_cursor or last_t < log._s.last_t:
            raise DecodeError("saved control log: reading position before its entries")
        return replace(log, _s=replace(log._s, last_cursor=next_cursor - 1, last_t=last_t))


__all__ = [
    "ANNOUNCE",
    "ANNOUNCE_JITTER",
    "CLOSE_WINDOW",
    "COMMIT",
    "COMMITTEE_SIZE",
    "CONTROL_BYTE_BUDGET",
    "CONTROL_ENTRY_BUDGET",
    "EPOCH_MIN_AGE",
    "MAX_GROUP_SIZE",
    "PHASE_TIMEOUT",
    "REFRESH_MIN_AGE",
    "RETENTION",
    "ROUND1",
    "ROUND3",
    "WAITING",
    "Announced",
    "Attempt",
    "ControlLog",
    "ConvictionJudge",
    "Decided",
    "Entry",
    "EpochView",
    "Policy",
    "Posted",
    "RunState",
    "Void",
    "accept_all",
]
