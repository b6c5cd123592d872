"""GroupSession: the sans-IO API of one member of one group (spec 09 and 11).

    session, sends = GroupSession.create(identity, members, now)      # or .join(...)
    events, sends = session.receive(blob, now)
    sends = session.encrypt(plaintext, now)
    data = session.to_bytes(); session = GroupSession.from_bytes(data, identity)

The caller moves blobs: each `Outgoing` names the hub mailbox it must be appended to, each
`WelcomeOut` a joiner to reach over a pairwise session; it reads every mailbox in `mailboxes()`
and feeds the blobs in the hub's order, passes the current time in seconds, and stores
`to_bytes()` durably before sending what a call returned. A rejected blob raises a `RemoteError`
subclass and leaves the session exactly as it was: every call computes a new immutable `_State`
and swaps it in only at its end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from triple_ratchet import cbor
from triple_ratchet.errors import (
    DecodeError,
    LimitExceeded,
    ProtocolError,
    RemoteError,
    StateError,
    UsageError,
)
from triple_ratchet.group import epoch_change
from triple_ratchet.group.attempt_mailbox import (
    ABORT_BLAME,
    ABORT_EQUIVOCATION,
    ABORT_TIMEOUT,
    open_item,
    peek_mailbox,
)
from triple_ratchet.group.epoch import MAX_GROUP_SIZE, EpochState, evolve
from triple_ratchet.group.epoch_change import Attempt, Phase, Step
from triple_ratchet.group.events import (
    AttemptAborted,
    EpochChanged,
    EpochChangeStarted,
    Event,
    ForkDetected,
    GapDetected,
    Ignored,
    MembershipChanged,
    MessageReceived,
    MessagesLost,
    Outgoing,
    RejoinNeeded,
    RemovedFromGroup,
    WelcomeOut,
)
from triple_ratchet.group.key_schedule import initial_init_secret
from triple_ratchet.group.message import (
    CONTENT_APPLICATION,
    CONTENT_PROPOSAL,
    MAX_BLOB_LEN,
    MAX_BODY,
    MAX_GROUP_ID_LEN,
    Content,
    GroupMessage,
    open_content,
    open_sender_data,
    seal,
)
from triple_ratchet.group.ordering import Delivery, Held, OrderResult, SenderOrder
from triple_ratchet.group.proposal import (
    MAX_IDENTITY_LEN,
    MAX_PROPOSAL_LEN,
    REASON_CHANGE,
    REASON_REFRESH,
    REASON_UNRESPONSIVE,
    Proposal,
    SignedProposal,
    make_proposal,
)
from triple_ratchet.group.sender_chain import new_reuse_guard
from triple_ratchet.group.welcome import Welcome
from triple_ratchet.identity import Identity, IdentityKeyPair, PrekeyBundle
from triple_ratchet.random import RandomSource, system_random
from triple_ratchet.suites import SigningKey, Suite, suite_by_id

STATE_FORMAT = "triple-ratchet group session"
STATE_VERSION = 1
# Bound on a serialized session (roster, chains, held messages); checked before decoding.
MAX_STATE_LEN = 16 * 1024 * 1024
# After activation, epoch e's keys are kept this long for its late messages (then deleted).
GRACE_MS = 300_000
# A member proposes a refresh after this many messages or this long in one epoch (0: never).
DEFAULT_REFRESH_MESSAGES = 10_000
DEFAULT_REFRESH_MS = 7 * 24 * 3600 * 1000
# Plaintexts a member may hold while an epoch change runs.
MAX_HELD_OUTGOING = 256
GROUP_ID_LEN = 16
# Previous epochs readable at once (each change starts a grace period; changes can follow fast).
MAX_GRACE_EPOCHS = 8
# CBOR items of the session level of a saved state (epoch states and the attempt are byte
# strings there, each decoded later within its own budget): the fields, the grace epochs with
# their limits, the per-epoch lists of identities and proposals, the held plaintexts.
MAX_STATE_ITEMS = (
    64 + MAX_GRACE_EPOCHS * (4 + MAX_GROUP_SIZE) + 4 * MAX_GROUP_SIZE + MAX_HELD_OUTGOING)

REASON_NAMES = {REASON_CHANGE: "change", REASON_REFRESH: "refresh",
                REASON_UNRESPONSIVE: "removed: unresponsive"}
ABORT_NAMES = {ABORT_TIMEOUT: "timeout", ABORT_EQUIVOCATION: "equivocation",
               ABORT_BLAME: "blame"}

ACTIVE = "active"  # we hold an epoch
JOINING = "joining"  # welcomed, waiting for the first certificate
ENDED = "ended"  # removed, or a join that failed: every call says so

Send = Outgoing | WelcomeOut
Policy = Callable[[Proposal], bool]


def to_ms(now: float) -> int:
    """Caller time (seconds) to the millisecond integers kept in state (exact round trip)."""
    if not isinstance(now, int | float) or isinstance(now, bool) or not 0 <= now < 2**53:
        raise UsageError("time must be a non-negative number of seconds")
    return int(now * 1000)


def _identity_of(member: object, what: str, suite: Suite) -> Identity:
    """The `Identity` a caller passed (a bundle stands for its identity where `what` allows)."""
    if isinstance(member, PrekeyBundle) and what == "add":
        member = member.identity
    if not isinstance(member, Identity):
        kinds = "Identity or PrekeyBundle" if what == "add" else "Identity"
        raise UsageError(f"{what}= takes {kinds} values, not {type(member).__name__}")
    if member.suite.suite_id != suite.suite_id:
        raise UsageError("every member must use the group's suite")
    return member


def hub_ms(entry_time: int) -> int:
    """A hub acceptance time as given: integer Unix milliseconds."""
    if not isinstance(entry_time, int) or isinstance(entry_time, bool) or not (
            0 <= entry_time < 2**63):
        raise UsageError("entry_time must be the hub's integer Unix milliseconds")
    return entry_time


def _decode_state(data: bytes, identity: IdentityKeyPair) -> _State:
    """Decode a saved session and check it holds together (see `GroupSession.from_bytes`)."""
    items = cbor.as_list(cbor.decode(data, max_size=MAX_STATE_LEN, max_items=MAX_STATE_ITEMS,
                                     max_depth=5), "group session", length=3)
    if cbor.as_str(items[0], "format", max_length=64) != STATE_FORMAT:
        raise DecodeError("not a serialized group session")
    if cbor.as_int(items[1], "state version") != STATE_VERSION:
        raise DecodeError("unsupported group session state version")
    state = _State.from_cbor(items[2])
    me = identity.public.to_bytes()
    if state.epoch is not None:
        # Our roster entry must be an identity; a valid one other than ours means the caller
        # passed another identity (a usage error, raised by the constructor).
        ours = state.epoch.roster[state.epoch.own_index].identity_key
        try:
            Identity.from_bytes(ours, suite_by_id(state.suite_id))
        except RemoteError:
            ours = b""
        if not ours:
            raise DecodeError("our roster entry is not a valid identity")
    if state.attempt is not None and (state.epoch is not None or me in
                                      state.attempt.proposal.proposal.new_roster):
        roster = state.attempt.proposal.proposal.new_roster
        expected = roster.index(me) + 1 if me in roster else None
        mine = state.epoch is None or state.epoch.roster[state.epoch.own_index].identity_key == me
        if mine and state.attempt.own_index != expected:
            raise DecodeError("the attempt's own index is not our slot in its roster")
    return state


# --- one epoch's message path (pure) --------------------------------------------------------


def encrypt_in_epoch(state: EpochState, content_type: int, body: bytes,
                     rng: RandomSource) -> tuple[bytes, EpochState]:
    """Seal one message under our sending chain; returns the blob and the advanced state."""
    suite = state.suite
    keys, chain = state.sending.step(suite)
    content = Content(suite.suite_id, state.group_id, state.epoch, state.own_index,
                      keys.generation, content_type, state.last_seen, body)
    blob = seal(suite, content, state.own_signing_key(), keys, new_reuse_guard(rng),
                state.sender_data_secret, state.mailbox_id,
                sender_data_hmac=state.sender_data_hmac())
    digest = content.digest(suite)
    return blob, evolve(state, sending=chain, last_sent=digest, last_seen=digest,
                        known_digests=state.known_digests.add(digest))


def open_in_epoch(state: EpochState, message: GroupMessage, max_count: int | None = None
                  ) -> tuple[Content | None, int, EpochState]:
    """Authenticate and decrypt one message of this epoch; commit nothing on failure.

    Returns (content or None for an echo of our own message, the generation, new state).
    `max_count` is the grace period's bound: the sender's announced message count.
    """
    suite = state.suite
    sender_data = open_sender_data(suite, message, state.sender_data_secret,
                                   sender_data_hmac=state.sender_data_hmac())
    if not 0 <= sender_data.sender < len(state.roster):
        raise ProtocolError("sender index is not in the roster")
    if sender_data.sender == state.own_index:
        if sender_data.generation < state.sending.generation:
            return None, sender_data.generation, state  # the hub echoes our messages back
        raise ProtocolError("message claims our own index for a generation we never sent")
    if max_count is not None and sender_data.generation >= max_count:
        raise ProtocolError("old-epoch message past the sender's announced generation")
    chain = state.receiving_chain(sender_data.sender)
    keys, new_chain = chain.keys_for(suite, sender_data.generation)
    content = open_content(suite, message, sender_data, keys, state.group_id, state.epoch,
                           state.verifying_key(sender_data.sender))
    # Only now, with the signature verified, is the sender's generation consumed.
    return content, sender_data.generation, state.with_receiving(sender_data.sender, new_chain)


def order_in_epoch(state: EpochState, content: Content, now_ms: int
                   ) -> tuple[list[Event], EpochState]:
    """Hand an authentic message to its sender's delivery order (proposals hold a place)."""
    suite = state.suite
    sender = content.sender
    current = state.order[sender]
    if content.generation == current.next_deliver and not current.held:
        # The common case, in order with nothing waiting: what `SenderOrder.accept` and
        # `_events_for` would give, without the intermediate Held/Delivery/OrderResult.
        digest = content.digest(suite)
        events: list[Event] = []
        if content.content_type == CONTENT_APPLICATION:
            events.append(MessageReceived(
                sender, state.roster[sender].identity_key, state.epoch, content.generation,
                digest, content.last_seen,
                not content.last_seen or state.knows(content.last_seen), False, content.body))
        state = evolve(state, order=(*state.order[:sender], SenderOrder(content.generation + 1),
                                     *state.order[sender + 1:]),
                       last_seen=digest, known_digests=state.known_digests.add(digest))
        return events, state
    body = content.body if content.content_type == CONTENT_APPLICATION else b""
    held = Held(content.generation, content.content_type, content.last_seen,
                content.digest(suite),
                not content.last_seen or state.knows(content.last_seen), now_ms, body)
    result, order = current.accept(held, now_ms)
    # One new state for the new position and the delivered digests (this runs per message).
    last_seen, known = state.last_seen, state.known_digests
    for d in result.delivered:
        last_seen, known = d.digest, known.add(d.digest)
    state = evolve(state, order=(*state.order[:sender], order, *state.order[sender + 1:]),
                   last_seen=last_seen, known_digests=known)
    return _events_for(state, sender, result), state


def expire_in_epoch(state: EpochState, now_ms: int) -> tuple[list[Event], EpochState]:
    events: list[Event] = []
    for sender, order in enumerate(state.order):
        if not order.held:  # runs for every member on every receive: skip the call
            continue
        result, new_order = order.expire(now_ms)
        if result.delivered or result.lost:
            state = _deliveries_seen(state.with_order(sender, new_order), result)
            events.extend(_events_for(state, sender, result))
    return events, state


def _events_for(state: EpochState, sender: int, result: OrderResult) -> list[Event]:
    identity = state.roster[sender].identity_key
    events: list[Event] = []
    if result.gap is not None:
        events.append(GapDetected(sender, identity, state.epoch, *result.gap))
    events.extend(MessagesLost(sender, identity, state.epoch, *lost) for lost in result.lost)
    events.extend(_received(state, sender, d) for d in result.delivered
                  if d.content_type == CONTENT_APPLICATION)
    return events


def _received(state: EpochState, sender: int, d: Delivery) -> MessageReceived:
    return MessageReceived(sender, state.roster[sender].identity_key, state.epoch, d.generation,
                           d.digest, d.last_seen, d.predecessor_known, d.late, d.body)


def _deliveries_seen(state: EpochState, result: OrderResult) -> EpochState:
    for d in result.delivered:
        state = state.with_seen(d.digest)
    return state


# --- the session's whole state ----------------------------------------------------------------


def _bounded(value: cbor.CborValue, what: str, bound: int) -> list[cbor.CborValue]:
    items = cbor.as_list(value, what)
    if len(items) > bound:
        raise DecodeError(f"{what}: more than {bound} entries")
    return items


@dataclass(frozen=True)
class Grace:
    """A previous epoch kept for its late messages until `until_ms`."""

    state: EpochState
    limits: tuple[int | None, ...]  # per member: announced message count, None: not accepted
    until_ms: int


@dataclass(frozen=True)
class _State:
    suite_id: int
    status: str
    epoch: EpochState | None = None
    grace: tuple[Grace, ...] = ()
    attempt: Attempt | None = None
    queue: tuple[bytes, ...] = ()  # signed proposals waiting, in group-mailbox order
    proposers: tuple[bytes, ...] = ()  # who proposed in this epoch
    aborters: tuple[bytes, ...] = ()  # who aborted in this epoch
    # Our proposal not read back yet: (the blob we sent, the signed proposal). Recognized by the
    # exact blob, since any member could forge sender data naming our index and generation.
    own_proposal: tuple[bytes, bytes] | None = None
    held: tuple[bytes, ...] = field(default=(), repr=False)  # plaintexts held during a change
    epoch_started_ms: int = 0
    messages_in_epoch: int = 0
    refresh_messages: int = DEFAULT_REFRESH_MESSAGES
    refresh_ms: int = DEFAULT_REFRESH_MS
    restored: bool = False
    # Current members named by a valid timeout abort in this epoch: the only members a
    # proposal labelled "unresponsive" may remove.
    unresponsive: tuple[bytes, ...] = ()

    def to_cbor(self) -> list[cbor.CborEncodable]:
        # The epoch states and the attempt travel as byte strings, each decoded later within its
        # own item budget: no single decode can be made to build millions of items.
        return [
            self.suite_id, self.status, None if self.epoch is None else self.epoch.to_bytes(),
            [[g.state.to_bytes(), list(g.limits), g.until_ms] for g in self.grace],
            None if self.attempt is None else self.attempt.to_bytes(),
            list(self.queue), list(self.proposers), list(self.aborters),
            None if self.own_proposal is None else list(self.own_proposal),
            list(self.held), self.epoch_started_ms, self.messages_in_epoch,
            self.refresh_messages, self.refresh_ms, self.restored, list(self.unresponsive),
        ]

    @classmethod
    def from_cbor(cls, value: cbor.CborValue) -> _State:
        f = cbor.as_list(value, "group session state", length=16)
        suite_id = cbor.as_int(f[0], "suite id", maximum=0xFFFF)
        status = cbor.as_str(f[1], "status", max_length=16)
        if status not in (ACTIVE, JOINING, ENDED):
            raise DecodeError("unknown session status")

        def epoch_state(v: cbor.CborValue, what: str) -> EpochState:
            e = EpochState.from_bytes(cbor.as_bytes(v, what, max_length=MAX_STATE_LEN),
                                      max_size=MAX_STATE_LEN)
            if e.suite_id != suite_id:
                raise DecodeError(f"{what} of another suite than the session")
            return e

        grace = []
        for g in _bounded(f[3], "grace epochs", MAX_GRACE_EPOCHS):
            gi = cbor.as_list(g, "grace epoch", length=3)
            limit_items = _bounded(gi[1], "limits", MAX_GROUP_SIZE)
            gs = epoch_state(gi[0], "grace epoch")
            limits = tuple(None if x is None else cbor.as_int(x, "limit") for x in limit_items)
            if len(limits) != len(gs.roster):
                raise DecodeError("one grace limit per member expected")
            grace.append(Grace(gs, limits, cbor.as_int(gi[2], "grace end")))

        def blist(v: cbor.CborValue, what: str, bound: int, max_length: int
                  ) -> tuple[bytes, ...]:
            return tuple(cbor.as_bytes(x, what, max_length=max_length)
                         for x in _bounded(v, what, bound))

        own = None
        if f[8] is not None:
            oi = cbor.as_list(f[8], "own proposal", length=2)
            own = (cbor.as_bytes(oi[0], "own proposal blob", max_length=MAX_BLOB_LEN),
                   cbor.as_bytes(oi[1], "own proposal", max_length=MAX_PROPOSAL_LEN + 512))
        epoch = None if f[2] is None else epoch_state(f[2], "epoch")
        attempt = None
        if f[4] is not None:
            attempt = Attempt.from_bytes(
                cbor.as_bytes(f[4], "attempt", max_length=MAX_STATE_LEN), max_size=MAX_STATE_LEN)
            if attempt.suite.suite_id != suite_id:
                raise DecodeError("attempt of another suite than the session")
        # The status must agree with what is held: every later call relies on it.
        if status == ACTIVE and epoch is None:
            raise DecodeError("an active session without an epoch")
        if status == JOINING and (epoch is not None or attempt is None):
            raise DecodeError("a joining session holds its first attempt and no epoch")
        if own is not None and epoch is None:
            raise DecodeError("an own proposal without an epoch")
        return cls(
            suite_id, status, epoch, tuple(grace), attempt,
            blist(f[5], "queue", MAX_GROUP_SIZE, MAX_PROPOSAL_LEN + 512),
            blist(f[6], "proposers", MAX_GROUP_SIZE, MAX_IDENTITY_LEN),
            blist(f[7], "aborters", MAX_GROUP_SIZE, MAX_IDENTITY_LEN), own,
            blist(f[9], "held", MAX_HELD_OUTGOING, MAX_BODY),
            cbor.as_int(f[10], "epoch start"),
            cbor.as_int(f[11], "messages"), cbor.as_int(f[12], "refresh messages"),
            cbor.as_int(f[13], "refresh ms"), cbor.as_bool(f[14], "restored"),
            blist(f[15], "unresponsive", MAX_GROUP_SIZE, MAX_IDENTITY_LEN))


@dataclass
class _Out:
    """What one call accumulates before it commits."""

    events: list[Event] = field(default_factory=list)
    sends: list[Send] = field(default_factory=list)


class GroupSession:
    """One member's view of one group. Not thread-safe; one instance per group per device.

    `policy`, if given, decides which proposals this member accepts. Every member of a group
    must use the same policy, or their views of which attempt runs would differ.
    """

    def __init__(self, identity: IdentityKeyPair, state: _State, *,
                 rng: RandomSource = system_random, policy: Policy | None = None) -> None:
        if state.suite_id != identity.suite.suite_id:
            raise UsageError("identity and session use different suites")
        if state.epoch is not None and (state.epoch.roster[state.epoch.own_index].identity_key
                                        != identity.public.to_bytes()):
            raise UsageError("identity does not match our roster entry")
        self._identity = identity
        self._s = state
        self._rng = rng
        self._policy = policy

    # --- starting ---------------------------------------------------------------------------

    @classmethod
    def create(cls, identity: IdentityKeyPair, members: Sequence[Identity | PrekeyBundle],
               now: float, *, group_id: bytes | None = None, rng: RandomSource = system_random,
               policy: Policy | None = None, refresh_messages: int = DEFAULT_REFRESH_MESSAGES,
               refresh_seconds: float = DEFAULT_REFRESH_MS / 1000,
               ) -> tuple[GroupSession, list[Send]]:
        """A new group of us and `members`: the first epoch change (from epoch 0) begins.

        Returns our announcement for the attempt's mailbox and one `WelcomeOut` per member.
        """
        now_ms = to_ms(now)
        suite = identity.suite
        gid = rng(GROUP_ID_LEN) if group_id is None else group_id
        if not 1 <= len(gid) <= MAX_GROUP_ID_LEN:
            raise UsageError(f"group id must be 1..{MAX_GROUP_ID_LEN} bytes")
        others = [m.identity if isinstance(m, PrekeyBundle) else m for m in members]
        if any(o.suite.suite_id != suite.suite_id for o in others):
            raise UsageError("every member must use the group's suite")
        me = identity.public.to_bytes()
        proposal = make_proposal(identity, group_id=gid, epoch=0, public_epoch_id=b"",
                                 old_roster=[me], added=[o.to_bytes() for o in others],
                                 removed=[], rng=rng)
        state = _State(suite.suite_id, JOINING, epoch_started_ms=now_ms,
                       refresh_messages=refresh_messages, refresh_ms=int(refresh_seconds * 1000))
        session = cls(identity, state, rng=rng, policy=policy)
        out = _Out()
        init = initial_init_secret(suite)
        session._s = session._begin(state, proposal, (me,), init, now_ms, out)
        return session, out.sends

    @classmethod
    def join(cls, identity: IdentityKeyPair, welcome: bytes, welcomer: Identity, now: float, *,
             rng: RandomSource = system_random, policy: Policy | None = None
             ) -> tuple[GroupSession, list[Event], list[Send]]:
        """Accept a welcome received from `welcomer` over a pairwise session."""
        now_ms = to_ms(now)
        w = Welcome.from_bytes(welcome)
        p = w.proposal.proposal
        if p.suite_id != identity.suite.suite_id:
            raise ProtocolError("welcome for another suite")
        if w.proposal.proposal.proposer != welcomer.to_bytes():
            raise ProtocolError("the welcome does not come from the proposer")
        me = identity.public.to_bytes()
        if me not in p.added:
            raise ProtocolError("the welcome's proposal does not add us")
        w.proposal.proposal.check_roster(w.previous_roster)
        if policy is not None and not policy(p):
            raise ProtocolError("proposal refused by policy")
        state = _State(p.suite_id, JOINING, epoch_started_ms=now_ms)
        session = cls(identity, state, rng=rng, policy=policy)
        out = _Out()
        session._s = session._begin(state, w.proposal, w.previous_roster, w.init_secret, now_ms,
                                    out)
        return session, out.events, out.sends

    # --- properties ---------------------------------------------------------------------------

    @property
    def status(self) -> str:
        return self._s.status

    @property
    def suite(self) -> Suite:
        return suite_by_id(self._s.suite_id)

    def _current(self) -> EpochState:
        if self._s.epoch is None:
            raise StateError("no epoch yet: the group's first epoch change is still running")
        return self._s.epoch

    @property
    def group_id(self) -> bytes:
        if self._s.epoch is None and self._s.attempt is not None:
            return self._s.attempt.proposal.proposal.group_id
        return self._current().group_id

    @property
    def epoch(self) -> int:
        return 0 if self._s.epoch is None else self._s.epoch.epoch

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
        """The group mailbox of the current epoch (rotates with every epoch)."""
        return self._current().mailbox_id

    @property
    def attempt_phase(self) -> str | None:
        return None if self._s.attempt is None else self._s.attempt.phase.value

    def mailboxes(self) -> tuple[bytes, ...]:
        """Every mailbox to read now, in no particular order (each in its own hub order)."""
        boxes = []
        if self._s.epoch is not None:
            boxes.append(self._s.epoch.mailbox_id)
        boxes += [g.state.mailbox_id for g in self._s.grace]
        if self._s.attempt is not None:
            boxes.append(self._s.attempt.mailbox()[0])
        return tuple(boxes)

    def mailbox_access_key(self, mailbox_id: bytes) -> SigningKey:
        """The key that opens `mailbox_id` (one of `mailboxes()`) at the hub."""
        s = self._s
        for e in ([s.epoch] if s.epoch else []) + [g.state for g in s.grace]:
            if e.mailbox_id == mailbox_id:
                return self.suite.signing_from_bytes(e.mailbox_access_key)
        if s.attempt is not None and s.attempt.mailbox()[0] == mailbox_id:
            return s.attempt.mailbox_access_key()
        raise UsageError("not a mailbox of this session")

    # --- verbs ----------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes, now: float) -> list[Send]:
        """Encrypt an application message to the whole group (held during an epoch change)."""
        self._check_usable()
        if not isinstance(plaintext, bytes):
            raise UsageError("plaintext must be bytes")
        now_ms = to_ms(now)
        s = self._s
        out = _Out()
        if s.status == JOINING or (s.attempt is not None and s.attempt.is_participant):
            if len(s.held) >= MAX_HELD_OUTGOING:
                raise StateError("too many messages held during the epoch change")
            self._s = replace(s, held=(*s.held, plaintext))
            return []
        s = self._send_application(s, plaintext, out)
        s = self._maybe_refresh(s, now_ms, out)
        self._s = s
        return out.sends

    def propose(self, now: float, *, add: Sequence[Identity | PrekeyBundle] = (),
                remove: Sequence[Identity] = ()) -> list[Send]:
        """Propose adding and/or removing members (nothing given: a refresh).

        Both take `Identity` values. `add` also accepts a joiner's `PrekeyBundle`, since the app
        usually holds one: the welcome (a `WelcomeOut`) travels over a pairwise session the app
        starts from it; only the bundle's identity enters the proposal."""
        self._check_usable()
        now_ms = to_ms(now)
        added = [_identity_of(m, "add", self.suite).to_bytes() for m in add]
        removed = [_identity_of(m, "remove", self.suite).to_bytes() for m in remove]
        reason = REASON_CHANGE if added or removed else REASON_REFRESH
        out = _Out()
        self._s = self._propose(self._s, added, removed, reason, now_ms, out)
        return out.sends

    def receive(self, blob: bytes, now: float, *, entry_time: int
                ) -> tuple[list[Event], list[Send]]:
        """Process one blob read from one of `mailboxes()`, in that mailbox's hub order.

        `now` is the local clock (seconds), for what is judged locally (gaps, grace, refresh);
        `entry_time` is the hub's acceptance time of this entry (integer Unix milliseconds, as
        the hub delivers it, the same for every reader): an epoch change's phase timeouts are
        judged on it, so every member judges an abort the same way."""
        self._check_usable()
        if not isinstance(blob, bytes):
            raise UsageError("blob must be bytes")
        now_ms = to_ms(now)
        entry_ms = hub_ms(entry_time)
        s = self._s
        out = _Out()
        # A well-formed group message (the common case) is parsed once: `peek_mailbox` decodes
        # such a blob to a flat array whose type is not an attempt's, so it would say None.
        message = (GroupMessage._parse_canonical(self.suite, blob)
                   if len(blob) <= MAX_BLOB_LEN else None)
        attempt_box = None if message is not None else peek_mailbox(blob)
        if attempt_box is not None:
            if s.attempt is None or attempt_box != s.attempt.mailbox()[0]:
                raise ProtocolError("blob for an attempt mailbox we do not follow")
            s = self._on_attempt_blob(s, blob, entry_ms, now_ms, out)
        else:
            s = self._on_group_blob(s, blob, now_ms, out, message)
        # Attempt timeouts only in `tick`: a member catching up on a backlog must not abort an
        # attempt whose answers are still unread in the mailbox.
        s = self._tick(s, now_ms, out, attempt_timeouts=False)
        self._s = s
        return out.events, out.sends

    def tick(self, now: float) -> tuple[list[Event], list[Send]]:
        """Let time pass: give up on old gaps, end grace periods, time out epoch changes.

        Call it periodically, after reading what the mailboxes hold (a phase times out only
        here, so unread answers are never mistaken for silence)."""
        self._check_usable()
        out = _Out()
        self._s = self._tick(self._s, to_ms(now), out)
        return out.events, out.sends

    # --- group mailbox ---------------------------------------------------------------------

    def _on_group_blob(self, s: _State, blob: bytes, now_ms: int, out: _Out,
                       message: GroupMessage | None = None) -> _State:
        if message is None:
            message = GroupMessage.from_bytes(self.suite, blob)
        if s.epoch is not None and message.mailbox_id == s.epoch.mailbox_id:
            content, _, state = open_in_epoch(s.epoch, message)
            if content is None:
                return self._on_own_echo(evolve(s, epoch=state), blob, now_ms, out)
            if content.content_type == CONTENT_PROPOSAL:
                s = self._on_proposal(evolve(s, epoch=state), content, now_ms, out)
                if s.epoch is None:
                    raise StateError("no epoch for this step")
                events, state = order_in_epoch(s.epoch, content, now_ms)
                out.events.extend(events)
                return evolve(s, epoch=state)
            events, state = order_in_epoch(state, content, now_ms)
            out.events.extend(events)
            return evolve(s, epoch=state, messages_in_epoch=s.messages_in_epoch + 1)
        for k, g in enumerate(s.grace):
            if message.mailbox_id == g.state.mailbox_id:
                sd = open_sender_data(g.state.suite, message, g.state.sender_data_secret,
                                      sender_data_hmac=g.state.sender_data_hmac())
                limit = g.limits[sd.sender] if 0 <= sd.sender < len(g.limits) else None
                if limit is None and sd.sender != g.state.own_index:
                    raise ProtocolError("old-epoch message from a member not in the new roster")
                content, _, state = open_in_epoch(g.state, message)
                if content is not None and limit is not None and content.generation >= limit:
                    # Authentic, but sent after its author announced for the new epoch: that
                    # member is on another branch (or a restored state) — its traffic no
                    # longer reaches our epoch. Reported, never delivered.
                    member = g.state.roster[content.sender].identity_key
                    out.events.append(ForkDetected(
                        "member still in previous epoch", member,
                        f"epoch {g.state.epoch} message past the announced generation"))
                elif content is not None and content.content_type == CONTENT_PROPOSAL:
                    out.events.append(Ignored("proposal for an epoch already changed",
                                              g.state.roster[content.sender].identity_key))
                    events, state = order_in_epoch(state, content, now_ms)
                    out.events.extend(events)
                elif content is not None:
                    events, state = order_in_epoch(state, content, now_ms)
                    out.events.extend(events)
                grace = (*s.grace[:k], replace(g, state=state), *s.grace[k + 1:])
                return replace(s, grace=grace)
        raise ProtocolError("blob is not for a mailbox of this group's current epochs")

    def _on_own_echo(self, s: _State, blob: bytes, now_ms: int, out: _Out) -> _State:
        if s.own_proposal is not None and s.own_proposal[0] == blob:
            signed = SignedProposal.from_bytes(s.own_proposal[1])
            s = replace(s, own_proposal=None)
            return self._consider(s, signed, now_ms, out)
        return s

    def _on_proposal(self, s: _State, content: Content, now_ms: int, out: _Out) -> _State:
        if s.epoch is None:
            raise StateError("no epoch for this step")
        sender_identity = s.epoch.roster[content.sender].identity_key
        try:
            signed = SignedProposal.from_bytes(content.body)
        except RemoteError as exc:
            out.events.append(Ignored(f"invalid proposal: {exc}", sender_identity))
            return s
        if signed.proposal.proposer != sender_identity:
            out.events.append(Ignored("proposal signed by someone other than its sender",
                                      sender_identity))
            return s
        return self._consider(s, signed, now_ms, out)

    def _consider(self, s: _State, signed: SignedProposal, now_ms: int, out: _Out) -> _State:
        """A proposal read from the group mailbox, in order: start it, queue it or ignore it."""
        if s.epoch is None:
            raise StateError("no epoch for this step")
        p = signed.proposal
        who = p.proposer
        try:
            self._check_proposal(s.epoch, p)
        except ProtocolError as exc:
            out.events.append(Ignored(f"proposal refused: {exc}", who))
            return s
        if who in s.proposers:
            out.events.append(Ignored("second proposal from one member in one epoch", who))
            return s
        s = replace(s, proposers=(*s.proposers, who))
        if s.attempt is not None:
            return replace(s, queue=(*s.queue, signed.to_bytes()))
        return self._begin_in_epoch(s, signed, now_ms, out)

    def _begin_in_epoch(self, s: _State, signed: SignedProposal, now_ms: int,
                        out: _Out) -> _State:
        """Start `signed` as the attempt of our epoch, if its reason is justified now.

        An "unresponsive" label is checked here, when the proposal's turn comes, never when it
        is read: the timeout that justifies it may be read after the proposal (another mailbox),
        and every member must reach the same verdict."""
        e = s.epoch
        if e is None:
            raise StateError("no epoch to change")
        p = signed.proposal
        if p.reason == REASON_UNRESPONSIVE and (
                p.added or not p.removed or any(m not in s.unresponsive for m in p.removed)):
            out.events.append(Ignored("removal labelled unresponsive that no timeout justifies",
                                      p.proposer))
            return s
        return self._begin(s, signed, self.roster_of(e), e.init_secret, now_ms, out)

    def _check_proposal(self, e: EpochState, p: Proposal) -> None:
        if p.group_id != e.group_id or p.suite_id != e.suite_id:
            raise ProtocolError("proposal for another group or suite")
        if p.epoch != e.epoch or p.public_epoch_id != e.public_epoch_id:
            raise ProtocolError("proposal for another epoch")
        p.check_roster(self.roster_of(e))
        if self._policy is not None and not self._policy(p):
            raise ProtocolError("refused by policy")

    @staticmethod
    def roster_of(e: EpochState) -> tuple[bytes, ...]:
        return tuple(m.identity_key for m in e.roster)

    # --- epoch change -------------------------------------------------------------------

    def _begin(self, s: _State, signed: SignedProposal, previous: tuple[bytes, ...],
               init_secret: bytes, now_ms: int, out: _Out) -> _State:
        """`signed` is now the attempt: announce (if in its roster) and welcome its joiners."""
        p = signed.proposal
        sent = s.epoch.sending.generation if s.epoch is not None else 0
        last = s.epoch.last_sent if s.epoch is not None else b""
        if s.restored and s.epoch is not None and self._identity.public.to_bytes() in p.new_roster:
            # A restored state cannot know whether its newer self already announced here.
            out.events.append(RejoinNeeded(p.epoch))
        step = epoch_change.start(signed, previous, init_secret, self._identity, self._rng,
                                  sent_count=sent, last_sent=last)
        attempt = step.attempt
        if s.restored and s.epoch is not None:
            attempt = replace(attempt, silent=True)
            step = replace(step, outgoing=())
        out.sends.extend(step.outgoing)
        out.events.append(EpochChangeStarted(p.epoch, p.proposer, p.added, p.removed,
                                             REASON_NAMES[p.reason], attempt.mailbox()[0]))
        if p.proposer == self._identity.public.to_bytes():
            welcome = Welcome(signed, previous, init_secret).to_bytes()
            out.sends.extend(WelcomeOut(a, welcome) for a in p.added)
        return replace(s, attempt=attempt)

    def _on_attempt_blob(self, s: _State, blob: bytes, entry_ms: int, now_ms: int,
                         out: _Out) -> _State:
        attempt = s.attempt
        if attempt is None:
            raise StateError("no attempt for this blob")
        mailbox, key = attempt.mailbox()
        kind, payload = open_item(attempt.suite, key, mailbox, blob)
        step = epoch_change.receive_item(attempt, kind, payload, self._identity, entry_ms,
                                         self._rng)
        return self._apply(s, step, now_ms, out)

    def _apply(self, s: _State, step: Step, now_ms: int, out: _Out) -> _State:
        p = step.attempt.proposal.proposal
        if step.aborted is not None:
            by = p.new_roster[step.aborted.sender - 1]
            if by in s.aborters:
                out.events.append(Ignored("second abort from one member in one epoch", by))
                return s
            out.events.extend(step.events)
            named = tuple(p.new_roster[i - 1] for i in step.named)
            reason = ABORT_NAMES[step.aborted.reason]
            out.events.append(AttemptAborted(p.epoch, by, reason, named, step.detail))
            s = replace(s, attempt=None, aborters=(*s.aborters, by))
            if s.epoch is None:
                # Our first epoch never came: only a new welcome can bring us in.
                return replace(s, status=ENDED, held=())
            s = self._flush(s, out)
            if s.epoch is None:
                raise StateError("no epoch for this step")
            # Only an old member's timeout can get old members removed (a joiner given a wrong
            # welcome sees everyone fail and must not get them removed).
            if step.aborted.reason == ABORT_TIMEOUT and by in self.roster_of(s.epoch):
                members = self.roster_of(s.epoch)
                s = replace(s, unresponsive=(*s.unresponsive, *(
                    m for m in named if m in members and m not in s.unresponsive)))
                s = self._propose_removal(s, named, now_ms, out)
            return self._next_from_queue(s, now_ms, out)
        out.events.extend(step.events)
        out.sends.extend(step.outgoing)
        if step.removed:
            out.events.append(RemovedFromGroup(p.epoch + 1, p.proposer, REASON_NAMES[p.reason]))
            return replace(s, status=ENDED, attempt=None, held=(), queue=())
        if step.lost:
            out.events.append(RejoinNeeded(p.epoch + 1))
            return replace(s, status=ENDED, attempt=None, held=(), queue=())
        if step.activation is None:
            return replace(s, attempt=step.attempt)
        new = step.activation.state
        grace = tuple(g for g in s.grace if g.until_ms > now_ms)[-(MAX_GRACE_EPOCHS - 1):]
        if s.epoch is not None:
            # Epoch e is kept only to read its late messages: what could start another change
            # from it (init_secret) or send in it (our signing key) goes now.
            old = replace(s.epoch, init_secret=b"", signing_key=b"", signer=None)
            grace = (*grace, Grace(old, step.activation.grace_limits, now_ms + GRACE_MS))
        old_roster = step.attempt.previous_roster
        out.events.append(EpochChanged(new.epoch, new.public_epoch_id, self.roster_of(new)))
        if p.added or p.removed:
            out.events.append(MembershipChanged(new.epoch, p.added, p.removed, p.proposer,
                                                REASON_NAMES[p.reason]))
        del old_roster
        s = replace(s, status=ACTIVE, epoch=new, grace=grace, attempt=None, queue=(),
                    proposers=(), aborters=(), unresponsive=(), own_proposal=None,
                    epoch_started_ms=now_ms,
                    messages_in_epoch=0, restored=False)
        return self._flush(s, out)

    def _flush(self, s: _State, out: _Out) -> _State:
        held, s = s.held, replace(s, held=())
        for plaintext in held:
            s = self._send_application(s, plaintext, out)
        return s

    def _next_from_queue(self, s: _State, now_ms: int, out: _Out) -> _State:
        e = s.epoch
        if e is None:
            raise StateError("no epoch for this step")
        while s.queue and s.attempt is None:
            signed = SignedProposal.from_bytes(s.queue[0])
            s = replace(s, queue=s.queue[1:])
            try:
                self._check_proposal(e, signed.proposal)
            except ProtocolError as exc:
                out.events.append(Ignored(f"queued proposal refused: {exc}",
                                          signed.proposal.proposer))
                continue
            s = self._begin_in_epoch(s, signed, now_ms, out)
        return s

    def _propose_removal(self, s: _State, named: tuple[bytes, ...], now_ms: int,
                         out: _Out) -> _State:
        """After a timeout abort, the first old member (in roster order) that may still propose
        and was not named proposes removing the unresponsive old members. Everyone computes
        the same choice from what the mailboxes showed. Joiners of the failed attempt are
        dropped (a new proposal with a new welcome can add them)."""
        e = s.epoch
        if e is None:
            raise StateError("no epoch for this step")
        old = self.roster_of(e)
        remove = [m for m in named if m in old]
        candidates = [m for m in old if m not in s.proposers and m not in named]
        me = self._identity.public.to_bytes()
        if not remove or not candidates or candidates[0] != me or s.own_proposal is not None:
            return s
        return self._propose(s, [], remove, REASON_UNRESPONSIVE, now_ms, out)

    def _propose(self, s: _State, added: list[bytes], removed: list[bytes], reason: int,
                 now_ms: int, out: _Out) -> _State:
        e = s.epoch
        if e is None or s.status != ACTIVE:
            raise StateError("no epoch to propose a change of")
        me = self._identity.public.to_bytes()
        if me in s.proposers or s.own_proposal is not None:
            raise StateError("we already proposed in this epoch")
        signed = make_proposal(self._identity, group_id=e.group_id, epoch=e.epoch,
                               public_epoch_id=e.public_epoch_id, old_roster=self.roster_of(e),
                               added=added, removed=removed, reason=reason, rng=self._rng)
        blob, state = encrypt_in_epoch(e, CONTENT_PROPOSAL, signed.to_bytes(), self._rng)
        out.sends.append(Outgoing(state.mailbox_id, blob))
        return replace(s, epoch=state, own_proposal=(blob, signed.to_bytes()))

    def _send_application(self, s: _State, plaintext: bytes, out: _Out) -> _State:
        if s.epoch is None:
            raise StateError("no epoch for this step")
        blob, state = encrypt_in_epoch(s.epoch, CONTENT_APPLICATION, plaintext, self._rng)
        out.sends.append(Outgoing(state.mailbox_id, blob))
        return evolve(s, epoch=state, messages_in_epoch=s.messages_in_epoch + 1)

    def _maybe_refresh(self, s: _State, now_ms: int, out: _Out) -> _State:
        if s.status != ACTIVE or s.attempt is not None or s.own_proposal is not None:
            return s
        if self._identity.public.to_bytes() in s.proposers:
            return s
        due = ((s.refresh_messages and s.messages_in_epoch >= s.refresh_messages)
               or (s.refresh_ms and now_ms - s.epoch_started_ms >= s.refresh_ms))
        if not due:
            return s
        return self._propose(s, [], [], REASON_REFRESH, now_ms, out)

    def _tick(self, s: _State, now_ms: int, out: _Out, *, attempt_timeouts: bool = True
              ) -> _State:
        if s.epoch is not None:
            events, state = expire_in_epoch(s.epoch, now_ms)
            out.events.extend(events)
            if state is not s.epoch:
                s = evolve(s, epoch=state)
        if s.grace and any(g.until_ms <= now_ms for g in s.grace):
            s = evolve(s, grace=tuple(g for g in s.grace if g.until_ms > now_ms))
        if s.attempt is not None and attempt_timeouts:
            step = epoch_change.expire(s.attempt, now_ms, self._rng)
            out.sends.extend(step.outgoing)
            s = replace(s, attempt=step.attempt)
        return self._maybe_refresh(s, now_ms, out)

    # --- state ------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return cbor.encode([STATE_FORMAT, STATE_VERSION, self._s.to_cbor()])

    @classmethod
    def from_bytes(cls, data: bytes, identity: IdentityKeyPair, *,
                   rng: RandomSource = system_random, policy: Policy | None = None,
                   restored_from_backup: bool = False) -> GroupSession:
        """Load a saved session. Pass `restored_from_backup=True` when `data` may be older than
        what this member already sent (a backup): the session then sends nothing for epoch
        changes it cannot account for and reports `RejoinNeeded`."""
        if not isinstance(data, bytes):
            raise UsageError("a saved group session is bytes")
        if len(data) > MAX_STATE_LEN:
            raise LimitExceeded(f"saved group session larger than {MAX_STATE_LEN} bytes")
        failure = ""
        try:
            state = _decode_state(data, identity)
        except DecodeError:
            raise
        except RemoteError as exc:
            # Corrupted saved state is a decode error whatever check caught it (a proposal's
            # signature, a bound). Raised outside the handler, so no inner error (and none of
            # the input it may hold) stays attached as its context.
            failure = f"{type(exc).__name__}: {exc}"
        if failure:
            raise DecodeError(f"corrupted group session state ({failure})")
        if restored_from_backup:
            state = replace(state, restored=True)
        return cls(identity, state, rng=rng, policy=policy)

    def _check_usable(self) -> None:
        if self._s.status == ENDED:
            raise StateError("this group session has ended (removed, or the join failed)")

    def __repr__(self) -> str:
        return (f"GroupSession(status={self._s.status}, epoch={self.epoch}, "
                f"attempt={self.attempt_phase}, <secrets>)")


__all__ = ["ACTIVE", "ENDED", "JOINING", "GroupSession", "Phase", "Send"]
