"""GroupSession on version 2 of the epoch change (spec 11 "Version 2", 09 §9.11): sans-IO.

The caller moves blobs: everything `receive`, `tick`, `propose` and `encrypt` return as
`Outgoing(mailbox_id, blob)` goes to that hub mailbox (group, control or a joiner's inbox; a
`CommonOut`, a notice's common part, to a CONTROL mailbox it names with its access key), a
`PairwiseOut(peer, payload)` goes over the pairwise session with `peer`, and every entry of every
mailbox in `mailboxes()` comes back through `receive(blob, now, entry_time=t)` in hub order,
our own entries included (we judge our control entries when the hub echoes them, in their place,
as every other reader does).

**Catch-up and `caught_up`.** The session judges a control mailbox entry by entry as any reader
does, but it *acts* on it (announces, posts round items, TICKs, commits) only once the caller has
said that it has read that mailbox to its current end: `caught_up(mailbox_id, now)`. A member back
after many epochs therefore reads each control mailbox up to its deciding commit without posting
anything into history, moves to the next epoch, and reads on; each old epoch's group mailbox
stays in `mailboxes()` until an entry past its grace is read (in it or a later mailbox), or
`caught_up` is called for it once the grace has passed (11.v2.29); then its reading state is
deleted. An online caller calls `caught_up` after
each fetch that returned everything (a new epoch's mailboxes start "not caught up"). An entry
read as backlog (`hub_time − t > SKEW_MAX`, 11.v2.32) takes the mark away until the next
`caught_up`; what only the clock makes due (announcing after the jitter, a later committee
member's commit, a TICK) is posted only from `caught_up`, never from `tick` alone (a clock
that jumped after a week offline says nothing of what the mailbox holds now).

Times: `now` is the caller's clock in seconds; `entry_time` the hub's acceptance time in ms.
Deadlines and grace are judged on hub time only; the caller's clock only says when to TICK,
when the announcement jitter is over and when a later committee member posts the commit.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from triple_ratchet import cbor
from triple_ratchet.dkg.attempt import SignedRound1
from triple_ratchet.errors import (
    DecodeError,
    LimitExceeded,
    ProtocolError,
    RemoteError,
    StateError,
    TripleRatchetError,
    UnsupportedError,
    UsageError,
)
from triple_ratchet.group.change_proposal import (
    KIND_ADD,
    KIND_REFRESH,
    KIND_REMOVE,
    KIND_RESUME,
    ChangeProposal,
)
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
    TYPE_CONVICTION,
    TYPE_EVIDENCE,
    TYPE_PROPOSAL,
    TYPE_RECORD,
    TYPE_ROUND1,
    TYPE_ROUND3,
    TYPE_TICK,
    seal_entry,
    sign_identity_entry,
    sign_member_entry,
)
from triple_ratchet.group.control_log import (
    ANNOUNCE,
    ANOTHER_EPOCH_VIEW,
    COMMIT,
    COMMITTEE_SIZE,
    EPOCH_MIN_AGE,
    ROUND1,
    ROUND3,
    WAITING,
    ControlLog,
    Entry,
    EpochView,
    resume_subject,
)
from triple_ratchet.group.conviction import SealingInputs, open_repaired_sealing
from triple_ratchet.group.epoch import EpochState, Member
from triple_ratchet.group.epoch_claim import (
    NOT_A_MEMBER,
    EpochClaim,
    HeldEpoch,
    judge_claim,
)
from triple_ratchet.group.events import (
    CommonOut,
    EpochChanged,
    Event,
    ForkDetected,
    Ignored,
    MembershipChanged,
    MembershipConfirmed,
    MembershipUnconfirmed,
    MessageReceived,
    Outgoing,
    PairwiseOut,
    RejoinNeeded,
    RemovedFromGroup,
)
from triple_ratchet.group.join_keys import JoinKeyring
from triple_ratchet.group.key_schedule import EpochSecretsV2
from triple_ratchet.group.message import WIRE_GROUP_MESSAGE
from triple_ratchet.group.message_path import (
    GRACE_MS,
    encrypt_v2,
    expire_in_epoch,
    parse_v2,
    receive_v2,
)
from triple_ratchet.group.notice import (
    CreatorStart,
    DecidedChange,
    JoinStart,
    MembershipHint,
    OutgoingCommon,
    PendingRejoin,
    Repair,
    build_common,
    build_notices,
    check_rejoin_request,
    create_group,
    make_rejoin_request,
    rejoin_from_hint,
)
from triple_ratchet.group.records import (
    PURPOSE_RESUME,
    PURPOSE_ROTATE,
    RECORD_SEED_LEN,
    JoinKey,
    MemberKeyRecord,
    RecordKeys,
    RejoinRequest,
    decode_keys,
    max_record_len,
)
from triple_ratchet.group.roster import Roster
from triple_ratchet.group.run import Round3Item
from triple_ratchet.group.run_secrets import RunInputs, RunOutcome
from triple_ratchet.group.sealing import Sealing
from triple_ratchet.group.session_features import (
    HUB_TIME_LIMIT,
    SKEW_MAX,
    Features,
    after_commit,
    clock_skew,
    own_rotation_counter,
    rotation_due,
)
from triple_ratchet.identity import Identity, IdentityKeyPair
from triple_ratchet.mailbox import MAILBOX_ID_LEN
from triple_ratchet.random import RandomSource, system_random
from triple_ratchet.suites import SigningKey, Suite, suite_by_id

STATE_WIRE = "triple-ratchet group session"
STATE_VERSION = 2
V1_UNSUPPORTED = "protocol version 1 is no longer supported"
MAX_STATE_LEN = 64 * 1024 * 1024
# Old epochs whose group mailbox is still read (grace, or catch-up not yet told done).
MAX_OLD_EPOCHS = 64
# Own records whose private keys are kept (R10: until a commit applied a newer one).
MAX_OWN_RECORDS = 16
MAX_ANSWERED = 16  # rejoin requests one member answers per epoch (review F8)
ACTIVE, REMOVED, REJOIN = "active", "removed", "rejoin needed"
_WIRE_CONTROL = 0x22
_WIRE_ATTEMPT_V1 = 0x21  # version 1's attempt-mailbox blob: refused by name
# Our clock's wait before announcing again when our announcement of a run did not count.
ANNOUNCE_RETRY = 5_000
TICK_RETRY = 5_000
MAX_TICKS = 8


@dataclass(frozen=True)
class OwnRecord:
    """One of our records (or the join key we joined with) and the seed of its private keys."""

    keys_bytes: bytes  # SignedRecord or SignedJoinKey
    seed: bytes = field(repr=False)


@dataclass(frozen=True)
class OldEpoch:
    """An epoch whose change was decided; its group mailbox is still read (11.v2.29)."""

    state: EpochState
    decided_t: int
    next_roster: frozenset[bytes]


@dataclass(frozen=True)
class _Run:
    """What we did in the current run of the current epoch (a member acts once per step)."""

    run: int = 0
    seed: bytes = field(default=b"", repr=False)  # stored before the announcement (R6, R14)
    announce_at_ms: int | None = None  # caller's clock: jitter over
    announced: bool = False
    round1: bool = False
    round3: bool = False
    commit: bool = False
    commit_phase_seen_ms: int | None = None
    ticked: tuple[int, str] = (0, "")  # (run, phase) of our last TICK


@dataclass(frozen=True)
class _State:
    suite_id: int
    group_id: bytes
    status: str
    epoch: EpochState | None
    log: ControlLog | None
    control_access_key: bytes = field(repr=False)
    records: tuple[OwnRecord, ...] = field(repr=False)
    old: tuple[OldEpoch, ...] = ()
    run: _Run = _Run()
    control_cursor: int = -1  # our count of entries read in the current control mailbox
    caught_up: frozenset[bytes] = frozenset()
    proposed: bool = False  # our proposal of this epoch is pending
    # (identity, inbox id) of members whose rejoin request we turned into a resume proposal:
    # we send each its notice once the proposal is applied (11.v2.28).
    resume_inboxes: tuple[tuple[bytes, bytes], ...] = ()
    # Our epoch came from a notice (review F1): an announcement of a roster member for another
    # view of the epoch means our notice was wrong.
    first_epoch: bool = False
    # Members whose rejoin request we answered in this epoch (review F8: once per epoch each).
    answered: frozenset[bytes] = frozenset()
    # What recomputes the sealings of the commit that started our epoch (11.v2.25: repair and
    # judge convictions); replaced at the next commit, so it never outlives the epoch.
    sealing_inputs: SealingInputs | None = None  # its repr and fields hide the secret
    # Rotation by age, re-sends, confirmation, hub clock, past epoch ids (session_features).
    features: Features = field(default_factory=Features)


def _members(roster: Roster) -> list[Member]:
    return [Member(e.identity, e.signing_key) for e in roster.entries]


def _view(suite: Suite, group_id: bytes, epoch: int, secrets: EpochSecretsV2, roster: Roster,
          t0: int | None, carried: tuple[bytes, ...],
          dormant_before: frozenset[bytes] = frozenset()) -> EpochView:
    return EpochView(suite, group_id, epoch, secrets.epoch_id, roster, t0, carried,
                     secrets.init_secret_next, secrets.control_traffic_key,
                     secrets.control_mailbox.mailbox_id, dormant_before)


class GroupSession:
    """One member's view of one group (version 2), sans-IO. The caller's duties (the module
    docstring says why; README "Using a group session" runs them):

    - Start with `create`, `join` (from a notice: `NoticeAssembler`, then
      `open_notice_sealing(...).complete(common)`), `from_rejoin` or `from_bytes`.
    - Follow every mailbox of `mailboxes()` (opened with `mailbox_access_key`); ask again after
      each call, an epoch change changes them. Hand each entry, in hub order and ours included,
      to `receive(blob, now, entry_time=t, hub_time=h)`.
    - Call `caught_up(mailbox, now)` whenever a mailbox is read to its end: what the clock makes
      due waits for it, and `encrypt` raises `StateError` while the control mailbox was last
      read to its end more than GRACE (5 min of hub time) ago. Call `tick(now)` every few seconds.
    - Store `to_bytes()` before sending anything a call returned. Send `Outgoing` to its hub
      mailbox (its PUT_OK time to `put_accepted`); a `CommonOut` to a CONTROL-kind mailbox the
      caller creates with its `access_key` first; a `PairwiseOut` over the pairwise session with
      its `peer`. `now` is the caller's clock in seconds, hub times are ms."""

    def __init__(self, identity: IdentityKeyPair, state: _State, *,
                 rng: RandomSource = system_random) -> None:
        self._identity = identity
        self._s = state
        self._rng = rng
        # Our outcome of the current run, in memory only (see `_round3`).
        self._outcome: tuple[bytes, Round3Item, RunOutcome] | None = None

    # --- starting -------------------------------------------------------------------------

    @classmethod
    def create(cls, identity: IdentityKeyPair, join_keys: Sequence[JoinKey], now: float, *,
               group_id: bytes | None = None, rng: RandomSource = system_random
               ) -> tuple[GroupSession, list[Outgoing]]:
        """Create a group with the members whose join keys the caller fetched from the hub
        directory (`take_join_key`); returns the session and the notices (the common part's
        chunks as `CommonOut`, then the chunks to each joiner's inbox)."""
        suite = identity.suite
        gid = group_id if group_id is not None else rng(32)
        seed = rng(RECORD_SEED_LEN)
        keys = RecordKeys.from_seed(suite, seed)
        start, notices = create_group(identity, keys, group_id=gid, join_keys=join_keys,
                                      now=int(now * 1000), rng=rng)
        session = cls._from_start(identity, start, OwnRecord(start.record.to_bytes(), seed),
                                  rng)
        # The creator starts read to the end (there is nothing yet): GRACE runs from now.
        f = session._s.features
        session._s = replace(session._s, features=replace(f, synced_at=int(now * 1000)))
        out = _common_out(start.common)
        out += [Outgoing(n.inbox_id, c) for n in notices for c in n.chunks]
        return session, out

    @classmethod
    def _from_start(cls, identity: IdentityKeyPair, start: CreatorStart, own: OwnRecord,
                    rng: RandomSource) -> GroupSession:
        suite = start.suite
        epoch = EpochState.from_secrets_v2(
            start.secrets, group_id=start.group_id, epoch=1, roster=_members(start.roster),
            own_index=0, signing_key=RecordKeys.from_seed(suite, own.seed).signing_key)
        log = ControlLog.start(_view(suite, start.group_id, 1, start.secrets, start.roster,
                                     None, ()))
        state = _State(suite.suite_id, start.group_id, ACTIVE, epoch, log,
                       start.secrets.control_mailbox.access_key.to_bytes(), (own,),
                       features=Features(held=(HeldEpoch(1, start.secrets.epoch_id, None),)))
        return cls(identity, state, rng=rng)

    @classmethod
    def join(cls, identity: IdentityKeyPair, start: JoinStart, keyring: JoinKeyring, *,
             rng: RandomSource = system_random) -> tuple[GroupSession, JoinKeyring]:
        """Start our first epoch from a verified notice (`notice.open_notice(..., keys=
        keyring.keys())`). Returns the session and the keyring without the one-time key used.
        The session posts its rotation record itself once it has read the control mailbox to
        its end (R10; calling `rotate` at once does it sooner), and reports
        `MembershipUnconfirmed` at its first `tick` (11.v2.28)."""
        suite = start.suite
        held = next((h for h in keyring.held
                     if hmac.compare_digest(h.join_key.receive_key, start.opened_with)), None)
        if held is None:
            raise UsageError("no join key of this keyring opened the notice")
        if not hmac.compare_digest(start.own_entry.identity, identity.public.to_bytes()):
            raise UsageError("the notice is for another identity")
        epoch = EpochState.from_secrets_v2(
            start.secrets, group_id=start.group_id, epoch=start.epoch,
            roster=_members(start.roster), own_index=start.own_index,
            signing_key=held.keys().signing_key)
        log = ControlLog.start(_view(suite, start.group_id, start.epoch, start.secrets,
                                     start.roster, start.t0, start.carried,
                                     start.dormant_before))
        state = _State(suite.suite_id, start.group_id, ACTIVE, epoch, log,
                       start.secrets.control_mailbox.access_key.to_bytes(),
                       (OwnRecord(held.join_key.to_bytes(), held.seed),), first_epoch=True,
                       features=_first_epoch_features(start))
        return cls(identity, state, rng=rng), keyring.used(start.opened_with)

    def resume(self, start: JoinStart) -> list[Event]:
        """Continue from a notice for our resume record (11.v2.31): the notice was opened with
        `open_notice(..., keys=session.resume_keys())`. Our old epochs are dropped."""
        if not start.resumed:
            raise UsageError("not a notice for a resume")
        own = next((r for r in self._s.records
                    if RecordKeys.from_seed(self.suite, r.seed).receive_public
                    == start.opened_with), None)
        if own is None:
            raise UsageError("no resume record of ours opened the notice")
        state = _resumed_state(self._identity, start, own)
        self._s = replace(state, features=replace(state.features, unconfirmed_reported=True))
        return [EpochChanged(start.epoch, start.secrets.epoch_id,
                             tuple(e.identity for e in start.roster.entries)),
                MembershipUnconfirmed()]

    def membership_hint(self, member: Identity | bytes) -> bytes:
        """A `MembershipHint` for a member of our current roster that may hold no session of
        the group (a joiner whose one-time join key was used before our notice came, say), to
        send over the pairwise session with it (11.v2.31): the group id and its entry's anchor
        and counter, for `request_rejoin`."""
        self._check_active()
        who = member.to_bytes() if isinstance(member, Identity) else member
        roster = self._log().view.roster
        index = roster.index_of(who)
        if index is None:
            raise UsageError("not a member of our current roster")
        entry = roster.entries[index]
        return MembershipHint(self.suite, self._s.group_id, entry.anchor,
                              entry.counter).to_bytes()

    @staticmethod
    def request_rejoin(identity: IdentityKeyPair, hint: bytes, inbox_id: bytes, *,
                       rng: RandomSource = system_random) -> tuple[bytes, PendingRejoin]:
        """A rejoin request made without a session, from a member's `MembershipHint`
        (11.v2.31): the `RejoinRequest` to send to a member over a pairwise session, and the
        `PendingRejoin` to keep (saved before the request leaves) until the resume notice,
        opened with `pending.keys()`, goes to `from_rejoin`."""
        request, pending = rejoin_from_hint(identity, hint, inbox_id=inbox_id, rng=rng)
        return request.to_bytes(), pending

    @classmethod
    def from_rejoin(cls, identity: IdentityKeyPair, start: JoinStart, pending: PendingRejoin,
                    *, rng: RandomSource = system_random) -> GroupSession:
        """Start our first epoch from the resume notice our `request_rejoin` brought
        (`open_notice(..., keys=[pending.keys()], common=...)`, the common part read from the
        change's common mailbox the notice names): the notice's certificate and roster bind
        everything; it must resume the pending record itself (`UsageError` otherwise). Like
        `join`, the session posts its rotation record once it has read the control mailbox to
        its end, and reports `MembershipUnconfirmed` at its first `tick`."""
        if not start.resumed:
            raise UsageError("not a notice for a resume")
        if start.suite.suite_id != pending.record.suite.suite_id or not hmac.compare_digest(
                start.group_id, pending.group_id):
            raise UsageError("the notice is for another group than the pending rejoin's")
        if not (pending.record.same_body(start.own_entry.keys) and hmac.compare_digest(
                pending.record.receive_key, start.opened_with)):
            raise UsageError("the notice resumes another record than the pending one")
        own = OwnRecord(pending.record.to_bytes(), pending.seed)
        return cls(identity, _resumed_state(identity, start, own), rng=rng)

    def resume_keys(self) -> tuple[RecordKeys, ...]:
        """The private keys of our records, to open a resume notice with."""
        return tuple(RecordKeys.from_seed(self.suite, r.seed) for r in self._s.records)

    def rejoin_request(self, inbox_id: bytes) -> bytes:
        """A `RejoinRequest` to send to a member over a pairwise session (11.v2.31), when
        `RejoinNeeded` was reported (or our keys were lost): a resume record with fresh keys,
        stored before the request leaves; the notice will come to `inbox_id`."""
        if self._s.log is None:
            raise StateError("no roster entry to resume (removed members come back by an add)")
        view = self._s.log.view
        me = self._identity.public.to_bytes()
        index = view.roster.index_of(me)
        if index is None:
            raise StateError("not in the roster we know")
        entry = view.roster.entries[index]
        if len(self._s.records) >= MAX_OWN_RECORDS:
            raise LimitExceeded("too many of our records wait for a commit")
        seed = self._rng(RECORD_SEED_LEN)
        keys = RecordKeys.from_seed(self.suite, seed)
        request = make_rejoin_request(
            self._identity, keys, group_id=self._s.group_id,
            own_counters=[entry.counter] + [self._own_keys(r).counter for r in self._s.records],
            anchor=entry.anchor, inbox_id=inbox_id)
        self._s = replace(self._s, records=(*self._s.records,
                                            OwnRecord(request.record.to_bytes(), seed)))
        return request.to_bytes()

    def on_rejoin_request(self, data: bytes, peer: Identity, now: float
                          ) -> tuple[list[Event], list[Outgoing | PairwiseOut]]:
        """A member's rejoin request received over the pairwise session with `peer`: checked
        (11.v2.31; a bad one is `Ignored`). When we hold the sealing inputs of the commit that
        started our epoch and the requester's certified sealing is not the one they make
        (11.v2.25), we return a `PairwiseOut` to `peer` with the correct `RepairedSealing` and
        a conviction for the control mailbox; otherwise (a right sealing, a requester that was
        no recipient or was sealed member_base) our resume proposal, and we send the notice
        once it is applied."""
        self._check_active()
        log = self._log()
        try:
            request = check_rejoin_request(self.suite, data, group_id=self._s.group_id,
                                           peer=peer, roster=log.view.roster)
        except RemoteError as exc:
            return [Ignored(f"rejoin request: {exc}", peer.to_bytes())], []
        # One answer per requester per epoch, and none while anyone's resume of it is pending
        # (review F8); a resume does not take our own pending-proposal slot (11.v2.17).
        requester = request.record.identity
        if requester in self._s.answered:
            return [Ignored("rejoin request: answered in this epoch", peer.to_bytes())], []
        if len(self._s.answered) >= MAX_ANSWERED:  # bounds the saved state (spec 11 limits)
            return [Ignored("rejoin request: enough answered in this epoch",
                            peer.to_bytes())], []
        if any(resume_subject(self.suite, p) == requester for p in log.pending):
            return [Ignored("rejoin request: a resume of this member is pending",
                            peer.to_bytes())], []
        repaired = self._repair(request, peer)
        if repaired is not None:
            return [], repaired
        view = log.view
        proposal = ChangeProposal.make(self.suite, KIND_RESUME, group_id=view.group_id,
                                       epoch=view.epoch, epoch_id=view.epoch_id,
                                       author=self._identity.public.to_bytes(),
                                       change=request.record)
        ce = sign_identity_entry(self._identity, TYPE_PROPOSAL, group_id=view.group_id,
                                 epoch=view.epoch, author=self.own_index,
                                 body=proposal.to_bytes())
        inboxes = (*self._s.resume_inboxes[-15:], (request.record.identity, request.inbox_id))
        self._s = replace(self._s, resume_inboxes=inboxes,
                          answered=self._s.answered | {requester})
        return [], [self._control_out(ce)]

    def _repair(self, request: RejoinRequest, peer: Identity
                ) -> list[Outgoing | PairwiseOut] | None:
        """11.v2.25: the correct pair for the requester and our conviction, when its certified
        sealing is wrong; None when it is right or we cannot recompute it (then resume it)."""
        kept, signing = self._s.sealing_inputs, self._signing_key()
        if kept is None or signing is None:
            return None
        answer = kept.answer(request, author=self._identity.public.to_bytes(),
                             current_epoch_id=self._log().view.epoch_id)
        if not isinstance(answer, Repair):
            return None
        conviction = self._member_out(signing, TYPE_CONVICTION, answer.conviction.to_bytes())
        self._s = replace(self._s, answered=self._s.answered | {request.record.identity})
        return [PairwiseOut(peer.to_bytes(), answer.repaired.to_bytes()), conviction]

    def on_repaired_sealing(self, data: bytes, peer: Identity, now: float
                            ) -> tuple[list[Event], list[Outgoing]]:
        """A `RepairedSealing` received over the pairwise session with `peer` (a member of the
        epoch we could not enter) while our status is REJOIN because our sealing of the
        deciding commit did not open or its tag did not match (11.v2.25): opened with our
        receive key of that commit and accepted only if it leads to the certified confirmation
        tag; then we enter the epoch as if our own sealing had opened (`EpochChanged`, status
        active). Anything wrong is a typed error and the state is unchanged."""
        s = self._s
        log = s.log
        if s.status != REJOIN or log is None or log.decided is None or log.attempt is None:
            raise StateError("not waiting for a repaired sealing of a deciding commit")
        inputs = log.run_inputs()
        first3 = log.run.round3[0] if log.run.round3 else None
        me = self._identity.public.to_bytes()
        index = log.attempt.roster.index_of(me)
        if inputs is None or first3 is None or index is None:
            raise StateError("no deciding run whose sealing we lack")
        if log.attempt.roster.index_of(peer.to_bytes()) is None:
            raise ProtocolError("repaired sealing from a peer not in that epoch's roster")
        own_keys = self._keys_for(log.attempt.roster.entries[index].keys)
        if own_keys is None:
            raise StateError("we hold no receive key of that commit (ask for a resume)")
        outcome = open_repaired_sealing(
            data, inputs, [r[2] for r in log.run.round1 if r is not None],
            bundle_root=first3[2].bundle_root, confirmation_tag=first3[2].confirmation_tag,
            roster_index=index, receive_private_key=own_keys.receive_key.to_bytes(),
            init_secret=log.view.init_secret)
        self._s = replace(s, status=ACTIVE)
        try:
            events, out = self._process_commit(int(now * 1000), repaired=outcome)
        except Exception:
            self._s = s
            raise
        more, out2 = self.tick(now)
        return events + more, out + out2

    # --- reading --------------------------------------------------------------------------

    @property
    def suite(self) -> Suite:
        return suite_by_id(self._s.suite_id)

    @property
    def status(self) -> str:
        return self._s.status

    @property
    def group_id(self) -> bytes:
        return self._s.group_id

    def _current(self) -> EpochState:
        if self._s.epoch is None:
            raise StateError(f"no current epoch (session {self._s.status})")
        return self._s.epoch

    def _log(self) -> ControlLog:
        if self._s.log is None:
            raise StateError(f"no current epoch (session {self._s.status})")
        return self._s.log

    @property
    def epoch(self) -> int:
        return self._current().epoch

    @property
    def public_epoch_id(self) -> bytes:
        return self._current().public_epoch_id

    @property
    def roster(self) -> tuple[bytes, ...]:
        return tuple(m.identity_key for m in self._current().roster)

    @property
    def own_index(self) -> int:
        return self._current().own_index

    @property
    def mailbox_id(self) -> bytes:
        return self._current().mailbox_id

    @property
    def control_mailbox_id(self) -> bytes:
        return self._log().view.mailbox_id

    @property
    def control_log(self) -> ControlLog:
        return self._log()

    def mailboxes(self) -> tuple[bytes, ...]:
        """Every mailbox to read now: the current group and control mailboxes, then the group
        mailboxes of old epochs still read (grace or catch-up)."""
        s = self._s
        boxes: list[bytes] = []
        if s.epoch is not None and s.log is not None:
            boxes += [s.epoch.mailbox_id, s.log.view.mailbox_id]
        boxes += [o.state.mailbox_id for o in s.old]
        return tuple(boxes)

    def mailbox_access_key(self, mailbox_id: bytes) -> SigningKey:
        """The key that opens one of `mailboxes()` at the hub (`UsageError` for another)."""
        s = self._s
        if s.log is not None and s.log.view.mailbox_id == mailbox_id:
            return self.suite.signing_from_bytes(s.control_access_key)
        for e in ([s.epoch] if s.epoch else []) + [o.state for o in s.old]:
            if e.mailbox_id == mailbox_id:
                return self.suite.signing_from_bytes(e.mailbox_access_key)
        raise UsageError("not a mailbox of this session")

    # --- verbs ----------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes, now: float) -> list[Outgoing]:
        """Seal one application message now (R11: nothing is held; `LimitExceeded` at once
        for an oversized plaintext). `StateError` while the control mailbox was last read to
        its end (`caught_up`) more than GRACE of hub time ago (11.v2.29)."""
        self._check_active()
        f = self._s.features
        # synced_at is 0 only for a joiner of a created group (its notice has no T0(1)) that
        # has not read its control mailbox to the end yet.
        if f.synced_at and f.hub_now(int(now * 1000)) - f.synced_at > GRACE_MS:
            # Back from an absence: the epoch may have ended (a removed member still holds its
            # keys), so read the control mailbox to its end first (11.v2.29).
            raise StateError("read the control mailbox to its end (caught_up) before sending: "
                             "it was last read more than GRACE ago")
        out, epoch = encrypt_v2(self._current(), plaintext, self._rng)
        self._s = replace(self._s, epoch=epoch)
        return [out]

    def propose(self, now: float, *, add: Sequence[JoinKey] = (),
                remove: Sequence[Identity | bytes] = (), refresh: bool = False
                ) -> list[Outgoing]:
        """Post proposals into the current control mailbox: each add carries the joiner's
        join key the caller fetched from the directory (sans-IO), each remove an identity.
        The rules allow one pending proposal per author (11.v2.17): a second one is refused
        here with `UsageError`."""
        self._check_active()
        changes: list[tuple[int, object]] = [(KIND_ADD, jk) for jk in add]
        for r in remove:
            changes.append((KIND_REMOVE, r.to_bytes() if isinstance(r, Identity) else r))
        if refresh:
            changes.append((KIND_REFRESH, None))
        if len(changes) != 1:
            raise UsageError("one proposal at a time: the rules keep one pending per author")
        me = self._identity.public.to_bytes()
        if self._s.proposed or any(p.identity == me and resume_subject(self.suite, p) is None
                                   for p in self._log().pending):
            raise UsageError("our proposal of this epoch is still pending")
        kind, change = changes[0]
        if kind == KIND_ADD and not isinstance(change, JoinKey):
            raise UsageError("add= takes the joiner's JoinKey (fetched with take_join_key)")
        view = self._log().view
        proposal = ChangeProposal.make(self.suite, kind, group_id=view.group_id,
                                       epoch=view.epoch, epoch_id=view.epoch_id,
                                       author=self._identity.public.to_bytes(),
                                       change=change)  # type: ignore[arg-type]
        ce = sign_identity_entry(self._identity, TYPE_PROPOSAL, group_id=view.group_id,
                                 epoch=view.epoch, author=self.own_index,
                                 body=proposal.to_bytes())
        self._s = replace(self._s, proposed=True,
                          features=replace(self._s.features, own_proposal=proposal.to_bytes(),
                                           remakes=0, resend_proposal=b""))
        return [self._control_out(ce)]

    def rotate(self, now: float) -> list[Outgoing]:
        """Post a rotation record (R10): fresh receive and signing keys, applied by the next
        commit; the older private keys are deleted only after that commit."""
        self._check_active()
        view = self._log().view
        own_entry = view.roster.entries[self.own_index]
        counters = [own_entry.counter] + [self._own_keys(r).counter for r in self._s.records]
        seed = self._rng(RECORD_SEED_LEN)
        keys = RecordKeys.from_seed(self.suite, seed)
        record = MemberKeyRecord.sign(self._identity, keys, group_id=view.group_id,
                                      counter=max(counters) + 1, purpose=PURPOSE_ROTATE,
                                      anchor=own_entry.anchor)
        if len(self._s.records) >= MAX_OWN_RECORDS:
            raise LimitExceeded("too many of our records wait for a commit")
        ce = sign_identity_entry(self._identity, TYPE_RECORD, group_id=view.group_id,
                                 epoch=view.epoch, author=self.own_index,
                                 body=record.to_bytes())
        # Stored before it is posted: the caller saves the state before sending (R10).
        self._s = replace(self._s, records=(*self._s.records,
                                            OwnRecord(record.to_bytes(), seed)))
        return [self._control_out(ce)]

    def caught_up(self, mailbox_id: bytes, now: float) -> tuple[list[Event], list[Outgoing]]:
        """The caller has read `mailbox_id` to its current end. For the control mailbox: the
        session may act in it from now on. For an old epoch's group mailbox: its reading state
        is deleted once the grace after its commit has passed (11.v2.29)."""
        s = self._s
        if any(o.state.mailbox_id == mailbox_id for o in s.old):
            # A member of the next epoch still takes its senders' messages within GRACE of the
            # commit (11.v2.29): the state goes once that has passed, or at once if we were
            # removed (nothing after the commit is ours).
            hub_now = s.features.hub_now(int(now * 1000))
            me = self._identity.public.to_bytes()
            self._s = replace(s, old=tuple(
                o for o in s.old if o.state.mailbox_id != mailbox_id or (
                    me in o.next_roster and hub_now <= o.decided_t + GRACE_MS)))
            return [], []
        if mailbox_id not in self.mailboxes():
            raise UsageError("not a mailbox of this session")
        self._s = replace(s, caught_up=s.caught_up | {mailbox_id})
        if mailbox_id == self.control_mailbox_id:
            f = self._s.features
            self._s = replace(self._s, features=replace(
                f, synced_at=max(f.synced_at, f.hub_now(int(now * 1000)))))
        return self._tick(now, read_to_end=mailbox_id == self.control_mailbox_id)

    def _forget_old_epochs(self, t: int) -> None:
        """An entry read at hub time t past an old epoch's commit + GRACE, in any mailbox:
        nothing more of that epoch can be delivered, so its chains go (11.v2.29)."""
        old = self._s.old
        kept = tuple(o for o in old if t <= o.decided_t + GRACE_MS)
        if len(kept) != len(old):
            self._s = replace(self._s, old=kept)

    def receive(self, blob: bytes, now: float, *, entry_time: int, hub_time: int | None = None
                ) -> tuple[list[Event], list[Outgoing]]:
        """One entry of one of `mailboxes()`, with its hub time (and the hub's clock when the
        frame that delivered it was sent, `hub_time`, to tell a live entry from backlog for
        `HubClockSkew`). Forged, replayed or malformed group messages raise (state unchanged);
        control entries never raise (bad ones are reported and ignored)."""
        if not isinstance(blob, bytes | bytearray):
            raise UsageError("expected bytes")
        if type(entry_time) is not int or entry_time < 0:
            raise UsageError("entry_time is the hub's acceptance time in ms")
        if hub_time is not None and (type(hub_time) is not int or hub_time < 0):
            raise UsageError("hub_time is the hub's clock in ms")
        _check_hub_time(entry_time, hub_time)
        removed = self._s.status == REMOVED and bool(self._s.old)
        if self._s.status != ACTIVE and not removed:
            return [Ignored(f"session {self._s.status}")], []
        blob = bytes(blob)
        kind, mailbox = _peek(blob)
        now_ms = int(now * 1000)
        if removed and kind != WIRE_GROUP_MESSAGE:  # only old epochs' group mailboxes remain
            return [Ignored(f"session {self._s.status}")], []
        if kind == WIRE_GROUP_MESSAGE:
            events = self._on_group(blob, mailbox, entry_time, now_ms)
            self._forget_old_epochs(entry_time)
            self._note_backlog(mailbox, entry_time, hub_time, now_ms)
            events = self._observe(mailbox, entry_time, hub_time, now_ms, events)
            more, out = self.tick(now)
            return events + more, out
        if kind == _WIRE_CONTROL:
            log = self._log()
            if mailbox != log.view.mailbox_id:
                return [Ignored("control entry of another epoch")], []
            events, out = self._on_control(blob, entry_time, now_ms)
            self._forget_old_epochs(entry_time)
            self._note_backlog(mailbox, entry_time, hub_time, now_ms)
            events = self._observe(mailbox, entry_time, hub_time, now_ms, events)
            more, out2 = self.tick(now)
            return events + more, out + out2
        raise DecodeError("neither a group message nor a control entry")

    def tick(self, now: float) -> tuple[list[Event], list[Outgoing]]:
        """Expire gaps and act in the current run on what was read. What only our clock
        makes due (an announcement after its jitter, a later committee member's commit, a
        TICK) waits for `caught_up` of the control mailbox (11.v2.29)."""
        return self._tick(now, read_to_end=False)

    def _tick(self, now: float, *, read_to_end: bool) -> tuple[list[Event], list[Outgoing]]:
        if self._s.status != ACTIVE or self._s.epoch is None:
            return [], []
        now_ms = int(now * 1000)
        events, epoch = expire_in_epoch(self._s.epoch, now_ms)
        self._s = replace(self._s, epoch=epoch)
        events += self._another_copy_announced()
        out = self._act(now_ms, read_to_end=read_to_end)
        more, out2 = self._member_steps(now)
        return events + more, out + out2

    def _another_copy_announced(self) -> list[Event]:
        """R6: an announcement in our name in the current run whose DKG key our seed does not
        make (an older copy of us restored from a backup, say): we send nothing more in that
        run (its items would not be ours) and report it once."""
        s = self._s
        log = s.log
        if log is None or log.decided is not None or log.attempt is None:
            return []
        run = log.run
        mine = s.run if s.run.run == run.run else _Run(run=run.run)
        if mine.commit and not mine.seed:  # reported already, or nothing left to send
            return []
        ours = [a.dkg_key for a in run.announcements if a.author == self.own_index]
        if not ours or (mine.seed and all(
                k == RunSeed.from_bytes(self.suite, mine.seed).dkg_key().to_bytes()
                for k in ours)):
            return []
        self._s = replace(s, run=replace(mine, seed=b"", announced=True, round1=True,
                                         round3=True, commit=True))
        return [ForkDetected("another copy of us", self._identity.public.to_bytes(),
                             f"an announcement in our name in run {run.run} we did not make")]

    # --- group messages -------------------------------------------------------------------

    def _on_group(self, blob: bytes, mailbox: bytes, t: int, now_ms: int) -> list[Event]:
        s = self._s
        epoch = s.epoch
        if epoch is not None and mailbox == epoch.mailbox_id:
            message = parse_v2(epoch, blob)
            events, new = receive_v2(epoch, message, t, now_ms)
            self._s = replace(s, epoch=new)
            return events
        for i, o in enumerate(s.old):
            if o.state.mailbox_id == mailbox:
                if t > o.decided_t and self._identity.public.to_bytes() not in o.next_roster:
                    # Removed by C(e): nothing sent after it is ours, even within the grace
                    # (11.v2.29); not opened, so nothing of it is judged.
                    if t > o.decided_t + GRACE_MS:
                        self._s = replace(s, old=s.old[:i] + s.old[i + 1:])
                    return [Ignored("group message sent after our removal")]
                message = parse_v2(o.state, blob)
                events, new = receive_v2(o.state, message, t, now_ms, decided_t=o.decided_t,
                                         next_roster=o.next_roster)
                old = list(s.old)
                if t > o.decided_t + GRACE_MS:
                    del old[i]  # nothing later of this mailbox can be delivered (11.v2.29)
                else:
                    old[i] = replace(o, state=new)
                self._s = replace(s, old=tuple(old))
                return events
        raise ProtocolError("group message for a mailbox this session does not read")

    # --- control entries ------------------------------------------------------------------

    def _control_out(self, ce: object) -> Outgoing:
        log = self._log()
        if log.decided is not None:
            # Nothing of ours may follow the deciding commit (11.v2.29): defence in depth.
            raise StateError("the epoch of this control mailbox is decided")
        return Outgoing(log.view.mailbox_id,
                        seal_entry(self.suite, log.view.traffic_key, log.view.mailbox_id,
                                   ce, self._rng))  # type: ignore[arg-type]

    def _on_control(self, blob: bytes, t: int, now_ms: int
                    ) -> tuple[list[Event], list[Outgoing]]:
        s = self._s
        cursor = s.control_cursor + 1
        kept = s.sealing_inputs  # convictions are checked with it (11.v2.25), else Ignored
        log, events = self._log().judge(Entry(cursor, t, blob),
                                        convictions=None if kept is None else kept.judge)
        self._s = replace(s, log=log, control_cursor=cursor)
        if s.first_epoch and any(isinstance(e, Ignored) and e.reason == ANOTHER_EPOCH_VIEW
                                 for e in events):
            # A roster member's identity-signed announcement disagrees with the view our
            # notice gave us (T0, carried set, dormant members): we cannot follow this epoch.
            self._s = replace(self._s, status=REJOIN)
            return [*events, RejoinNeeded(log.view.epoch)], []
        if log.decided is None:
            return list(events), []
        more, out = self._process_commit(now_ms)
        self._outcome = None  # R14: nothing of the run stays once the epoch is decided
        return list(events) + more, out

    def _round3(self, seed: RunSeed, inputs: RunInputs, round1: Sequence[SignedRound1],
                payloads: Sequence[bytes], init_secret: bytes) -> tuple[Round3Item, RunOutcome]:
        """`make_round3` once per run: our item, our commit and our processing of the commit
        share one outcome, whose bundle is n sealings (0.3 s at n = 1,000, measured)."""
        key = self.suite.hash(cbor.encode([seed.to_bytes(), inputs.session_id(),
                                           [r.to_bytes() for r in round1], list(payloads),
                                           init_secret]))
        if self._outcome is None or not hmac.compare_digest(self._outcome[0], key):
            item, outcome = make_round3(seed, inputs, round1, payloads, init_secret)
            self._outcome = (key, item, outcome)
        return self._outcome[1], self._outcome[2]

    def _own_keys(self, own: OwnRecord) -> MemberKeyRecord | JoinKey:
        return decode_keys(self.suite, own.keys_bytes)

    def _keys_for(self, keys: MemberKeyRecord | JoinKey) -> RecordKeys | None:
        for own in self._s.records:
            rk = RecordKeys.from_seed(self.suite, own.seed)
            if rk.holds(keys):
                return rk
        return None

    def _act(self, now_ms: int, *, read_to_end: bool) -> list[Outgoing]:
        """Honest member's steps in the current run (11.v2.18, 11.v2.19, 11.v2.22). Steps
        that only our clock makes due are taken only `read_to_end`: right after the caller
        said it read the control mailbox to its end, never on a clock that jumped or during
        a backlog (11.v2.29)."""
        s = self._s
        log = s.log
        if log is None or s.epoch is None or log.decided is not None:
            return []
        if log.view.mailbox_id not in s.caught_up or log.attempt is None:
            return []
        run = log.run
        me = self._identity.public.to_bytes()
        mine = s.run if s.run.run == run.run else _Run(run=run.run)
        out: list[Outgoing] = []
        view = log.view
        index = self.own_index
        # Announce (after jitter, while < k eligible announcements are visible).
        if (mine.announced and run.phase == WAITING and mine.announce_at_ms is not None
                and now_ms > mine.announce_at_ms + ANNOUNCE_RETRY
                and all(a.author != index for a in run.announcements)):
            # Our announcement was judged invalid (posted too early by the hub's clock, say)
            # and nobody else's started the run: announce again with a fresh seed.
            mine = _Run(run=run.run)
        if run.phase in (WAITING, ANNOUNCE) and not mine.announced and log.eligible(me):
            eligible = sum(1 for a in run.announcements if a.eligible)
            t0 = log.t0
            age_ok = view.epoch == 1 or (t0 is not None and now_ms >= t0 + EPOCH_MIN_AGE)
            if eligible < COMMITTEE_SIZE and age_ok:
                if mine.announce_at_ms is None:
                    jitter = int.from_bytes(self._rng(2), "big") % 2000
                    mine = replace(mine, announce_at_ms=now_ms + jitter)
                if read_to_end and now_ms >= (mine.announce_at_ms or 0):
                    seed = RunSeed.generate(self.suite, self._rng)
                    attempt = log.attempt
                    body = make_announcement(seed, group_id=view.group_id, epoch=view.epoch,
                                             run=run.run, identity=me,
                                             applied_hash=attempt.applied_hash,
                                             roster_hash=attempt.roster_hash,
                                             view_hash=view.view_hash).to_bytes()
                    ce = sign_identity_entry(self._identity, TYPE_ANNOUNCEMENT,
                                             group_id=view.group_id, epoch=view.epoch,
                                             author=index, body=body)
                    # The seed is in the state before the announcement leaves (R6, R14).
                    mine = replace(mine, seed=seed.to_bytes(), announced=True)
                    out.append(self._control_out(ce))
        on_committee = index in run.committee and mine.seed != b""
        signing = self._signing_key()
        if on_committee and signing is not None:
            seed = RunSeed.from_bytes(self.suite, mine.seed)
            inputs = log.run_inputs()
            if inputs is not None and run.phase == ROUND1 and not mine.round1:
                item = make_round1(seed, inputs)
                out.append(self._member_out(signing, TYPE_ROUND1, item.to_bytes()))
                mine = replace(mine, round1=True)
            if inputs is not None and run.phase == ROUND3 and not mine.round3:
                round1 = [r[2] for r in run.round1 if r is not None]
                local = local_round2(seed, inputs, round1)
                if local.payloads is not None:
                    item3, _ = self._round3(seed, inputs, round1, local.payloads,
                                           view.init_secret)
                    out.append(self._member_out(signing, TYPE_ROUND3, item3.to_bytes()))
                elif local.blame is not None:
                    out.append(self._member_out(signing, TYPE_EVIDENCE,
                                                local.blame.to_bytes()))
                mine = replace(mine, round3=True)
            if inputs is not None and run.phase == COMMIT and not mine.commit:
                seen = mine.commit_phase_seen_ms
                if seen is None:
                    seen = now_ms
                    mine = replace(mine, commit_phase_seen_ms=seen)
                position = run.committee.index(index)
                if (position == 0 or read_to_end) and now_ms >= seen + position * 2000:
                    round1 = [r[2] for r in run.round1 if r is not None]
                    local = local_round2(seed, inputs, round1)
                    if local.payloads is not None:
                        _, outcome = self._round3(seed, inputs, round1, local.payloads,
                                                 view.init_secret)
                        out.append(self._member_out(signing, TYPE_COMMIT,
                                                    make_commit(inputs, outcome).to_bytes()))
                    mine = replace(mine, commit=True)
        # TICK when a deadline passed by our clock and nothing ended the phase (11.v2.19).
        # A TICK posted early by the hub's clock ends nothing (our clock may run ahead): we
        # post another after TICK_RETRY of our clock, at most MAX_TICKS per phase (each is
        # still a time marker when the log refuses it as a second TICK).
        deadline = log.deadline()
        phase = f"{run.phase}{run.start}"
        last_run, last_phase = mine.ticked
        same = last_run == run.run and last_phase.split("@")[0] == phase
        count, at = (int(x) for x in last_phase.split("@")[1:3]) if same else (0, 0)
        silent = mine.commit and not mine.seed  # another copy of us announced in this run
        if (read_to_end and deadline is not None and now_ms >= deadline and signing is not None
                and not silent
                and count < MAX_TICKS and (count == 0 or now_ms >= at + TICK_RETRY)):
            out.append(self._member_out(signing, TYPE_TICK, b""))
            mine = replace(mine, ticked=(run.run, f"{phase}@{count + 1}@{now_ms}"))
        self._s = replace(self._s, run=mine)
        return out

    def _signing_key(self) -> SigningKey | None:
        """The private signing key of our current roster entry (signs our member entries)."""
        log = self._log()
        own = log.view.roster.entries[self.own_index]
        rk = self._keys_for(own.keys)
        return None if rk is None else rk.signing_key

    def _member_out(self, signing: SigningKey, entry_type: int, body: bytes) -> Outgoing:
        view = self._log().view
        ce = sign_member_entry(self.suite, signing, entry_type, group_id=view.group_id,
                               epoch=view.epoch, author=self.own_index, body=body)
        return self._control_out(ce)

    # --- the deciding commit (11.v2.26) ---------------------------------------------------

    def _process_commit(self, now_ms: int, *, repaired: RunOutcome | None = None
                        ) -> tuple[list[Event], list[Outgoing]]:
        s = self._s
        log = self._log()
        decided, attempt = log.decided, log.attempt
        if decided is None or attempt is None:  # pragma: no cover - judged by the caller
            return [], []
        view = log.view
        suite = self.suite
        me = self._identity.public.to_bytes()
        epoch = self._current()
        events: list[Event] = []
        proposers = tuple(p.identity for p in attempt.applied)
        if me in attempt.removed:
            by = next((p.identity for p in attempt.applied
                       if _removes(suite, p.entry.body, me)), b"")
            # 11.v2.26: the session ends, but epoch e's messages sent before C(e) are ours to
            # read (catch-up reads the control mailbox first); the grace rule deletes them.
            gone = OldEpoch(epoch, decided.t,
                            frozenset(e.identity for e in attempt.roster.entries))
            self._s = replace(s, status=REMOVED, epoch=None, log=None,
                              old=(*s.old, gone)[-MAX_OLD_EPOCHS:], sealing_inputs=None,
                              run=_Run(), caught_up=frozenset(), proposed=False,
                              resume_inboxes=(), answered=frozenset())
            self._outcome = None
            return [RemovedFromGroup(view.epoch, by, "removed")], []
        if me in attempt.dormant:
            self._s = replace(s, status=REJOIN)
            return [RejoinNeeded(view.epoch)], []
        inputs = log.run_inputs()
        if inputs is None:  # pragma: no cover - a decided run has its inputs
            raise StateError("decided run without inputs")
        round1 = [r[2] for r in log.run.round1 if r is not None]
        first3 = log.run.round3[0]
        if first3 is None:  # pragma: no cover
            raise StateError("decided run without round-3 items")
        new_roster = attempt.roster
        new_index = new_roster.index_of(me)
        if new_index is None:  # pragma: no cover - not removed means in the roster
            raise StateError("not in the new roster")
        own_entry = new_roster.entries[new_index]
        own_keys = self._keys_for(own_entry.keys)
        if own_keys is None:
            self._s = replace(s, status=REJOIN)
            return [RejoinNeeded(view.epoch)], []
        position = log.run.committee.index(epoch.own_index) if (
            epoch.own_index in log.run.committee) else None
        outcome = repaired  # a repaired sealing we opened (11.v2.25)
        if position is not None and s.run.run == log.run.run and s.run.seed:
            seed = RunSeed.from_bytes(suite, s.run.seed)
            local = local_round2(seed, inputs, round1)
            if local.payloads is not None:
                _, outcome = self._round3(seed, inputs, round1, local.payloads,
                                         view.init_secret)
        if outcome is None:
            try:
                outcome = open_commit(inputs, round1, decided.commit,
                                      bundle_root=first3[2].bundle_root,
                                      confirmation_tag=first3[2].confirmation_tag,
                                      roster_index=new_index,
                                      receive_private_key=own_keys.receive_key.to_bytes(),
                                      init_secret=view.init_secret)
            except (RemoteError, UsageError):
                self._s = replace(s, status=REJOIN)
                return [RejoinNeeded(view.epoch)], []
        secrets = outcome.secrets(suite)
        new_epoch = EpochState.from_secrets_v2(
            secrets, group_id=view.group_id, epoch=view.epoch + 1,
            roster=_members(new_roster), own_index=new_index,
            signing_key=own_keys.signing_key)
        new_log = ControlLog.start(_view(suite, view.group_id, view.epoch + 1, secrets,
                                         new_roster, decided.t, log.carried_out(),
                                         attempt.dormant))
        # R10: delete the private keys of our records older than the one now applied.
        applied_counter = own_entry.counter
        records = tuple(r for r in s.records
                        if self._own_keys(r).counter >= applied_counter)
        old = (*s.old, OldEpoch(epoch, decided.t,
                                frozenset(e.identity for e in new_roster.entries)))
        old = old[-MAX_OLD_EPOCHS:]
        out: list[Outgoing] = []
        # Notices (11.v2.28): committee position 1 to every joiner; the author of an applied
        # resume proposal to the member it resumed (at the inbox its request named).
        ours = {i: box for i, box in s.resume_inboxes
                if any(p.identity == me and _resumes(suite, p.entry.body, i)
                       for p in attempt.applied)}
        if (position == 0 and attempt.added) or ours:
            change = DecidedChange(
                suite, view.group_id, view.epoch, view.epoch_id, log.run.run,
                inputs.session_id(),
                tuple(next(a.entry for a in log.run.announcements if a.author == i).to_bytes()
                      for i in log.run.committee),
                tuple(r[1].to_bytes() for r in log.run.round1 if r is not None),
                tuple(r[1].to_bytes() for r in log.run.round3 if r is not None),
                tuple(p.signed() for p in attempt.applied), log.carried_out(), decided.t,
                new_roster, tuple(Sealing(enc, ct) for enc, ct in decided.commit.bundle),
                inputs.recipients)
            # The body once, in the change's common mailbox; each notice names it (11.v2.13).
            common = build_common(change, outcome.member_base, rng=self._rng)
            notices = [n for n in build_notices(change, outcome.member_base, common=common,
                                                resumed_inboxes=ours, rng=self._rng)
                       if position == 0 or n.identity in ours]
            if notices:
                out += _common_out(common)
            out += [Outgoing(n.inbox_id, c) for n in notices for c in n.chunks]
        self._s = replace(s, epoch=new_epoch, log=new_log,
                          control_access_key=secrets.control_mailbox.access_key.to_bytes(),
                          records=records, old=old, run=_Run(), control_cursor=-1,
                          caught_up=frozenset(), proposed=False, first_epoch=False,
                          answered=frozenset(),
                          # 11.v2.25; the previous commit's inputs go (forward secrecy).
                          sealing_inputs=SealingInputs.keep(inputs, decided.commit, outcome),
                          resume_inboxes=tuple((i, b) for i, b in s.resume_inboxes
                                               if i not in ours))
        old_ids = {m.identity_key for m in epoch.roster}
        new_ids = [e.identity for e in new_roster.entries]
        added = tuple(i for i in new_ids if i not in old_ids)
        removed = tuple(i for i in old_ids if i not in set(new_ids))
        events.append(EpochChanged(view.epoch + 1, secrets.epoch_id, tuple(new_ids)))
        if added or removed:
            events.append(MembershipChanged(view.epoch + 1, added, removed,
                                            proposers[0] if proposers else b"",
                                            "added" if added else "removed"))
        events += self._after_commit(log, own_entry.counter, own_entry.posted_at, decided.t,
                                     secrets.epoch_id)
        return events, out

    # --- member-side rules: rotation, re-sends, confirmation, hub clock, epoch claims ---------

    def epoch_claim(self) -> bytes:
        """The claim of our current epoch (11.v2.37) for the transport to send to peers over
        pairwise sessions; a peer passes it to `compare_epoch_claim`."""
        log = self._log()
        view = log.view
        return EpochClaim(self.suite, view.group_id, view.epoch, view.epoch_id,
                          view.t0).to_bytes()

    def compare_epoch_claim(self, claim: bytes, peer: Identity, now: float) -> list[Event]:
        """A peer's epoch claim, received over the pairwise session with `peer`: for an epoch
        we hold (the last MAX_REMEMBERED_EPOCHS), another epoch id is
        `ForkDetected("two deciding commits")`, the same id begun at another hub time
        `ForkDetected("hub times differ")`; a match from a member outside the committee our
        first epoch rests on confirms our membership. A malformed claim, or one of another
        group, raises (typed, state unchanged)."""
        self._check_active()
        decoded = EpochClaim.from_bytes(self.suite, claim, group_id=self._s.group_id)
        who = peer.to_bytes()
        if who not in self.roster and not any(
                who in (m.identity_key for m in o.state.roster) for o in self._s.old):
            return [Ignored(NOT_A_MEMBER, who)]
        matches, events = judge_claim(self._s.features.held, decoded, who)
        if matches:
            events += self._confirm(who)
        return events

    def compare_epoch_id(self, epoch: int, public_epoch_id: bytes) -> list[Event]:
        """The users compared epoch `epoch`'s id out of band (11.v2.28, 11.v2.23): equal confirms
        our membership, different is `ForkDetected("two deciding commits")`."""
        self._check_active()
        held = next((h for h in self._s.features.held if h.epoch == epoch), None)
        if held is None:
            return [Ignored("epoch id of an epoch we do not hold")]
        if not hmac.compare_digest(held.epoch_id, public_epoch_id):
            return [ForkDetected("two deciding commits", b"",
                                 f"epoch {epoch}: the id compared out of band differs")]
        return self._confirm(None)

    @property
    def membership_confirmed(self) -> bool:
        """False while our membership rests on the word of our first epoch's committee."""
        return not self._s.features.unconfirmed_by

    def put_accepted(self, mailbox_id: bytes, t: int, now: float) -> list[Event]:
        """The hub accepted our entry into `mailbox_id` at `t` (its PUT_OK): `HubClockSkew`
        when our clock is more than SKEW_MAX away (11.v2.32); the hub's time is followed."""
        if type(t) is not int or t < 0:
            raise UsageError("t is the hub's acceptance time in ms")
        _check_hub_time(t, None)
        now_ms = int(now * 1000)
        self._s = replace(self._s, features=self._s.features.saw_hub_time(t, now_ms))
        return clock_skew(mailbox_id, t, t, now_ms)

    def _confirm(self, by: bytes | None) -> list[Event]:
        f = self._s.features
        if not f.unconfirmed_by or (by is not None and (
                by in f.unconfirmed_by or by == self._identity.public.to_bytes())):
            return []
        self._s = replace(self._s, features=replace(f, unconfirmed_by=(),
                                                    unconfirmed_reported=False))
        return [MembershipConfirmed()]

    def _note_backlog(self, mailbox: bytes, t: int, hub_time: int | None, now_ms: int) -> None:
        """An entry read as backlog (11.v2.32: accepted more than SKEW_MAX before the frame's
        hub_time, or without one before our estimate of hub time) means the caller has not
        read that mailbox to its end: we act in it again only after `caught_up` (11.v2.29)."""
        hub_now = hub_time if hub_time is not None else self._s.features.hub_now(now_ms)
        if hub_now - t > SKEW_MAX and mailbox in self._s.caught_up:
            self._s = replace(self._s, caught_up=self._s.caught_up - {mailbox})

    def _observe(self, mailbox: bytes, t: int, hub_time: int | None, now_ms: int,
                 events: list[Event]) -> list[Event]:
        """After an entry was read: the hub's clock (11.v2.32), and whether a member outside
        the committee wrote in the group (11.v2.28)."""
        f = self._s.features.saw_hub_time(max(t, hub_time or 0), now_ms)
        self._s = replace(self._s, features=f)
        out = clock_skew(mailbox, t, hub_time, now_ms) + list(events)
        for e in events:
            if isinstance(e, MessageReceived):
                out += self._confirm(e.sender_identity)
        return out

    def _after_commit(self, log: ControlLog, applied_counter: int, posted_at: int,
                      decided_t: int, epoch_id: bytes) -> list[Event]:
        """After C(e): `session_features.after_commit` (epoch e+1's id remembered, our entries
        C(e) did not take queued for e+1, rotation noted as due)."""
        s = self._s
        features, stale, events = after_commit(
            s.features, log, [r.keys_bytes for r in s.records], applied_counter=applied_counter,
            posted_at=posted_at, decided_t=decided_t, epoch_id=epoch_id)
        records = tuple(r for r in s.records if r.keys_bytes not in stale) or s.records
        self._s = replace(s, proposed=s.proposed or bool(features.resend_proposal),
                          records=records, features=replace(features, synced_at=decided_t))
        return events

    def _member_steps(self, now: float) -> tuple[list[Event], list[Outgoing]]:
        """What a member posts by itself once it has read the control mailbox to its end:
        queued re-sends, then a rotation record when one is due (R10). Reports our membership
        as unconfirmed once, in our first epoch."""
        s = self._s
        events: list[Event] = []
        if s.features.unconfirmed_by and not s.features.unconfirmed_reported:
            events.append(MembershipUnconfirmed())
            s = replace(s, features=replace(s.features, unconfirmed_reported=True))
            self._s = s
        log = s.log
        if (s.status != ACTIVE or log is None or log.decided is not None
                or log.view.mailbox_id not in s.caught_up):
            return events, []
        f = s.features
        view = log.view
        out: list[Outgoing] = []
        for raw in f.resend_records:
            ce = sign_identity_entry(self._identity, TYPE_RECORD, group_id=view.group_id,
                                     epoch=view.epoch, author=self.own_index, body=raw)
            out.append(self._control_out(ce))
        own = f.own_proposal
        if f.resend_proposal:
            old = ChangeProposal.from_bytes(self.suite, f.resend_proposal)
            remade = ChangeProposal.make(self.suite, old.kind, group_id=view.group_id,
                                         epoch=view.epoch, epoch_id=view.epoch_id,
                                         author=old.author, change=old.change)
            ce = sign_identity_entry(self._identity, TYPE_PROPOSAL, group_id=view.group_id,
                                     epoch=view.epoch, author=self.own_index,
                                     body=remade.to_bytes())
            out.append(self._control_out(ce))
            own = remade.to_bytes()
        self._s = replace(s, features=replace(f, resend_records=(), resend_proposal=b"",
                                              own_proposal=own))
        entry = view.roster.entries[self.own_index]
        first_keys = not isinstance(entry.keys, MemberKeyRecord) or (
            entry.keys.purpose == PURPOSE_RESUME)
        now_ms = int(now * 1000)
        f = self._s.features
        hub_now = f.hub_now(now_ms)
        # posted_at 0 reads as T0(e) (11.v2.8); before epoch 1's first entry, as now.
        posted_at = entry.posted_at or log.t0 or hub_now
        if rotation_due(f, first_keys=first_keys, posted_at=posted_at, hub_now=hub_now) and (
                len(self._s.records) < MAX_OWN_RECORDS) and not any(
                (own_rotation_counter(r.keys_bytes) or 0) > entry.counter
                for r in self._s.records):
            out += self.rotate(now)
            self._s = replace(self._s, features=replace(self._s.features,
                                                        rotate_after_commit=False))
        return events, out

    # --- saving ---------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The state to store durably before sending anything a call returned (R10); it holds
        secrets. A loaded session acts in a mailbox only after its next `caught_up`."""
        s = self._s
        return cbor.encode([
            STATE_WIRE, STATE_VERSION, s.suite_id, s.group_id, s.status,
            None if s.epoch is None else s.epoch.to_bytes(),
            None if s.log is None else s.log.to_bytes(),
            s.control_access_key,
            [[r.keys_bytes, r.seed] for r in s.records],
            [[o.state.to_bytes(), o.decided_t, sorted(o.next_roster)] for o in s.old],
            [s.run.run, s.run.seed, s.run.announce_at_ms, s.run.announced, s.run.round1,
             s.run.round3, s.run.commit, s.run.commit_phase_seen_ms, s.run.ticked[0],
             s.run.ticked[1]],
            # Saved as caught up nowhere: a loaded state reads each mailbox to its end before it
            # acts (R10), so a restored backup sees what its newer self sent (R6).
            s.control_cursor + 1, [], s.proposed,
            [[i, b] for i, b in s.resume_inboxes], s.first_epoch, sorted(s.answered),
            None if s.sealing_inputs is None else s.sealing_inputs.to_bytes(),
            s.features.to_cbor(),
        ])

    @classmethod
    def from_bytes(cls, data: bytes, identity: IdentityKeyPair, *,
                   rng: RandomSource = system_random) -> GroupSession:
        """Strict, bounded: version 1 is `UnsupportedError`, anything that does not hold
        together `DecodeError`, another member's state `UsageError`."""
        if not isinstance(data, bytes | bytearray):
            raise UsageError("expected bytes")
        if len(data) > MAX_STATE_LEN:
            raise LimitExceeded("saved session too large")
        f = cbor.as_list(cbor.decode(bytes(data), max_size=MAX_STATE_LEN,
                                     max_items=64 + 16 * MAX_OLD_EPOCHS * 4
                                     + 4 * MAX_OWN_RECORDS + 4 * 1000 * MAX_OLD_EPOCHS
                                     + 8 * 64,
                                     max_depth=4), "saved session")
        if len(f) < 2 or f[0] != STATE_WIRE:
            raise DecodeError("not a saved group session")
        version = cbor.as_int(f[1], "session version")
        if version == 1:
            raise UnsupportedError(V1_UNSUPPORTED)
        if version != STATE_VERSION or len(f) != 19:
            raise DecodeError("saved group session of an unknown version")
        try:
            suite = suite_by_id(cbor.as_int(f[2], "suite", maximum=0xFFFF))
            if suite.suite_id != identity.suite.suite_id:
                raise DecodeError("saved session of another suite")
            status = cbor.as_str(f[4], "status", max_length=32)
            if status not in (ACTIVE, REMOVED, REJOIN):
                raise DecodeError("unknown session status")
            epoch = None if f[5] is None else EpochState.from_bytes(
                cbor.as_bytes(f[5], "epoch"), max_size=MAX_STATE_LEN)
            log = None if f[6] is None else ControlLog.from_bytes(cbor.as_bytes(f[6], "log"))
            if (epoch is None) != (log is None) or (status == ACTIVE and epoch is None) or (
                    status == REMOVED and epoch is not None):
                raise DecodeError("status disagrees with the epoch held")
            records = []
            for r in cbor.as_list(f[8], "own records"):
                x = cbor.as_list(r, "own record", 2)
                records.append(OwnRecord(cbor.as_bytes(x[0], "record",
                                                       max_length=max_record_len(suite)),
                                         cbor.as_bytes(x[1], "seed", length=RECORD_SEED_LEN)))
            if not 1 <= len(records) <= MAX_OWN_RECORDS:
                raise DecodeError("own records out of range")
            old = []
            for o in cbor.as_list(f[9], "old epochs"):
                x = cbor.as_list(o, "old epoch", 3)
                old.append(OldEpoch(
                    EpochState.from_bytes(cbor.as_bytes(x[0], "old epoch state"),
                                          max_size=MAX_STATE_LEN),
                    cbor.as_int(x[1], "decided at"),
                    frozenset(cbor.as_bytes(i, "identity", max_length=512)
                              for i in cbor.as_list(x[2], "next roster"))))
            if len(old) > MAX_OLD_EPOCHS:
                raise DecodeError("too many old epochs")
            me = identity.public.to_bytes()
            if any(me not in o.next_roster for o in old[:-1]) or (
                    old and me not in old[-1].next_roster and status != REMOVED):
                # Only the epoch we were removed at, kept last by a removed session (11.v2.26).
                raise DecodeError("an old epoch we are not a member after")
            rr = cbor.as_list(f[10], "run", 10)
            run = _Run(cbor.as_int(rr[0], "run"), cbor.as_bytes(rr[1], "seed", max_length=32),
                       None if rr[2] is None else cbor.as_int(rr[2], "announce at"),
                       cbor.as_bool(rr[3], "announced"), cbor.as_bool(rr[4], "round1"),
                       cbor.as_bool(rr[5], "round3"), cbor.as_bool(rr[6], "commit"),
                       None if rr[7] is None else cbor.as_int(rr[7], "commit seen"),
                       (cbor.as_int(rr[8], "ticked run"),
                        cbor.as_str(rr[9], "ticked phase", max_length=64)))
            if run.seed:
                RunSeed.from_bytes(suite, run.seed)
            if cbor.as_list(f[12], "caught up"):  # always saved empty (R10): one encoding
                raise DecodeError("a saved state is caught up in no mailbox")
            state = _State(
                suite.suite_id, cbor.as_bytes(f[3], "group id", max_length=64), status, epoch,
                log, cbor.as_bytes(f[7], "control access key", max_length=64), tuple(records),
                tuple(old), run, cbor.as_int(f[11], "control cursor") - 1, frozenset(),
                cbor.as_bool(f[13], "proposed"),
                _resume_inboxes(f[14]), cbor.as_bool(f[15], "first epoch"),
                _answered(f[16]), features=Features.from_cbor(f[18]))
            if f[17] is not None:
                if log is None:
                    raise DecodeError("sealing inputs without an epoch")
                state = replace(state, sealing_inputs=SealingInputs.from_bytes(
                    suite, cbor.as_bytes(f[17], "sealing inputs"), group_id=state.group_id,
                    roster=log.view.roster, epoch=log.view.epoch))
            session = cls(identity, state, rng=rng)
            for own_record in records:
                keys = session._own_keys(own_record)
                if not RecordKeys.from_seed(suite, own_record.seed).holds(keys):
                    raise DecodeError("an own record's seed does not make its keys")
                if not hmac.compare_digest(keys.identity, identity.public.to_bytes()):
                    raise UsageError("saved session of another member")
            if epoch is not None and log is not None:
                if epoch.version != 2 or epoch.group_id != state.group_id:
                    raise DecodeError("epoch state does not belong to this session")
                own = log.view.roster.entries[epoch.own_index] if (
                    epoch.own_index < len(log.view.roster)) else None
                if own is None or not hmac.compare_digest(own.identity,
                                                          identity.public.to_bytes()):
                    raise UsageError("saved session of another member")
        except (UsageError, UnsupportedError):
            raise
        except TripleRatchetError as exc:
            raise DecodeError(f"saved session does not hold together: {exc}") from None
        return session

    def _check_active(self) -> None:
        if self._s.status != ACTIVE:
            raise StateError(f"session {self._s.status}")

    def __repr__(self) -> str:
        s = self._s
        epoch = "-" if s.epoch is None else str(s.epoch.epoch)
        return f"GroupSession(status={s.status}, epoch={epoch}, <secrets>)"


def _resumed_state(identity: IdentityKeyPair, start: JoinStart, own: OwnRecord) -> _State:
    """A resumed member's first epoch from its notice, with `own` the resume record it opened
    (11.v2.31)."""
    if not hmac.compare_digest(start.own_entry.identity, identity.public.to_bytes()):
        raise UsageError("the notice is for another identity")
    suite = start.suite
    epoch = EpochState.from_secrets_v2(
        start.secrets, group_id=start.group_id, epoch=start.epoch,
        roster=_members(start.roster), own_index=start.own_index,
        signing_key=RecordKeys.from_seed(suite, own.seed).signing_key)
    log = ControlLog.start(_view(suite, start.group_id, start.epoch, start.secrets,
                                 start.roster, start.t0, start.carried, start.dormant_before))
    return _State(suite.suite_id, start.group_id, ACTIVE, epoch, log,
                  start.secrets.control_mailbox.access_key.to_bytes(), (own,),
                  first_epoch=True, features=_first_epoch_features(start))


def _first_epoch_features(start: JoinStart) -> Features:
    """A joiner's or resumed member's first epoch: its id remembered, its membership resting on
    the committee that certified it (11.v2.28)."""
    return Features(held=(HeldEpoch(start.epoch, start.epoch_id, start.t0),),
                    unconfirmed_by=start.committee, synced_at=start.t0 or 0)


def _check_hub_time(t: int, hub_time: int | None) -> None:
    if t > HUB_TIME_LIMIT or (hub_time is not None and hub_time > HUB_TIME_LIMIT):
        raise ProtocolError("hub time beyond any real clock")


def _removes(suite: Suite, body: bytes, identity: bytes) -> bool:
    try:
        p = ChangeProposal.from_bytes(suite, body)
    except TripleRatchetError:
        return False
    return p.kind == KIND_REMOVE and p.change == identity


def _resume_inboxes(value: cbor.CborValue) -> tuple[tuple[bytes, bytes], ...]:
    items = cbor.as_list(value, "resume inboxes")
    if len(items) > 16:
        raise DecodeError("too many resume inboxes")
    out = []
    for item in items:
        x = cbor.as_list(item, "resume inbox", 2)
        out.append((cbor.as_bytes(x[0], "identity", max_length=512),
                    cbor.as_bytes(x[1], "inbox id", length=MAILBOX_ID_LEN)))
    return tuple(out)


def _answered(value: cbor.CborValue) -> frozenset[bytes]:
    items = cbor.as_list(value, "answered members")
    if len(items) > MAX_ANSWERED:
        raise DecodeError("too many answered members")
    return frozenset(cbor.as_bytes(i, "answered member", max_length=512) for i in items)


def _resumes(suite: Suite, body: bytes, identity: bytes) -> bool:
    try:
        p = ChangeProposal.from_bytes(suite, body)
    except TripleRatchetError:
        return False
    return p.kind == KIND_RESUME and isinstance(p.change, MemberKeyRecord) and (
        p.change.identity == identity)


def _common_out(common: OutgoingCommon | None) -> list[Outgoing]:
    if common is None:
        return []
    return [CommonOut(common.mailbox.mailbox_id, c, common.mailbox.access_key)
            for c in common.chunks]


def _peek(blob: bytes) -> tuple[int, bytes]:
    """The wire type and mailbox id of a group message or control blob (both are
    `[type, version, mailbox_id, …]`); version 1 group messages are refused."""
    items = cbor.decode_flat(blob, 5)
    if items is None:
        decoded = cbor.as_list(cbor.decode(blob, max_size=len(blob), max_items=8, max_depth=2),
                               "blob", length=5)
        items = [decoded[0], decoded[1], decoded[2]]  # type: ignore[list-item]
    kind, version, mailbox = items[0], items[1], items[2]
    if type(kind) is not int or type(mailbox) is not bytes or len(mailbox) != MAILBOX_ID_LEN:
        raise DecodeError("not a group message or control blob")
    if kind in (WIRE_GROUP_MESSAGE, _WIRE_ATTEMPT_V1) and version == 1:
        raise UnsupportedError(V1_UNSUPPORTED)
    return kind, mailbox


__all__ = ["GroupSession", "OldEpoch", "OwnRecord"]
