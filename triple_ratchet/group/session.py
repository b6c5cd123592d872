"""GroupSession: the sans-IO API of one member of one group (spec 09 and 11).

    session, sends = GroupSession.create(identity, members, now)      # or .join(...)
    events, sends = session.receive(blob, now, entry_time=hub_time_ms)
    sends = session.encrypt(plaintext, now)
    data = session.to_bytes(); session = GroupSession.from_bytes(data, identity)

The caller moves blobs: each `Outgoing` names the hub mailbox it must be appended to, each
`WelcomeOut` a joiner to reach over a pairwise session; it reads every mailbox in `mailboxes()`
and feeds the blobs in the hub's order, passes the current time in seconds, and stores
`to_bytes()` durably before sending what a call returned. A rejected blob raises a `RemoteError`
subclass and leaves the session exactly as it was: every call computes a new immutable
`SessionState` and swaps it in only at its end.

This module is the public surface and the group-mailbox dispatch; the application-message path
is `message_path`, the epoch-change drive `attempt_driver`, the state and its saved form
`session_state`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from triple_ratchet import cbor
from triple_ratchet.errors import (
    DecodeError,
    LimitExceeded,
    ProtocolError,
    RemoteError,
    StateError,
    UsageError,
)
from triple_ratchet.group.attempt_driver import AttemptDriver
from triple_ratchet.group.attempt_mailbox import (
    peek_mailbox,
)
from triple_ratchet.group.epoch import EpochState, evolve
from triple_ratchet.group.epoch_change import Phase
from triple_ratchet.group.events import (
    Event,
    ForkDetected,
    Ignored,
)
from triple_ratchet.group.key_schedule import initial_init_secret
from triple_ratchet.group.message import (
    CONTENT_PROPOSAL,
    MAX_BLOB_LEN,
    MAX_BODY,
    MAX_GROUP_ID_LEN,
    GroupMessage,
    open_sender_data,
)
from triple_ratchet.group.message_path import (
    encrypt_in_epoch,
    expire_in_epoch,
    open_in_epoch,
    order_in_epoch,
)
from triple_ratchet.group.proposal import (
    REASON_CHANGE,
    REASON_REFRESH,
    make_proposal,
)
from triple_ratchet.group.session_state import (
    ACTIVE,
    DEFAULT_REFRESH_MESSAGES,
    DEFAULT_REFRESH_MS,
    ENDED,
    GRACE_MS,
    GROUP_ID_LEN,
    JOINING,
    MAX_GRACE_EPOCHS,
    MAX_HELD_BYTES,
    MAX_HELD_OUTGOING,
    MAX_STATE_ITEMS,
    MAX_STATE_LEN,
    STATE_FORMAT,
    STATE_VERSION,
    Out,
    Policy,
    Send,
    SessionState,
    decode_state,
    hub_ms,
    send_application,
    to_ms,
)
from triple_ratchet.group.welcome import Welcome
from triple_ratchet.identity import Identity, IdentityKeyPair, PrekeyBundle
from triple_ratchet.random import RandomSource, system_random
from triple_ratchet.suites import SigningKey, Suite, suite_by_id

# The session's saved state under its former private name (tests build states with it).
_State = SessionState


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


class GroupSession:
    """One member's view of one group. Not thread-safe; one instance per group per device.

    `policy`, if given, decides which proposals this member accepts. Every member of a group
    must use the same policy, or their views of which attempt runs would differ.
    """

    def __init__(self, identity: IdentityKeyPair, state: SessionState, *,
                 rng: RandomSource = system_random, policy: Policy | None = None) -> None:
        if state.suite_id != identity.suite.suite_id:
            raise UsageError("identity and session use different suites")
        if state.epoch is not None and (state.epoch.roster[state.epoch.own_index].identity_key
                                        != identity.public.to_bytes()):
            raise UsageError("identity does not match our roster entry")
        attempt = state.attempt
        if attempt is not None and attempt.own_index is not None and (
                attempt.proposal.proposal.new_roster[attempt.own_index - 1]
                != identity.public.to_bytes()):
            raise UsageError("identity does not match our slot in the running epoch change")
        self._identity = identity
        self._s = state
        self._rng = rng
        self._driver = AttemptDriver(identity, rng, policy)

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
        state = SessionState(suite.suite_id, JOINING, epoch_started_ms=now_ms,
                       refresh_messages=refresh_messages, refresh_ms=int(refresh_seconds * 1000))
        session = cls(identity, state, rng=rng, policy=policy)
        out = Out()
        init = initial_init_secret(suite)
        session._s = session._driver.begin(state, proposal, (me,), init, now_ms, out)
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
        state = SessionState(p.suite_id, JOINING, epoch_started_ms=now_ms)
        session = cls(identity, state, rng=rng, policy=policy)
        out = Out()
        session._s = session._driver.begin(state, w.proposal, w.previous_roster, w.init_secret,
                                           now_ms, out)
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
        if len(plaintext) > MAX_BODY:
            # Checked here, not when a held plaintext is sent: one that could never be sealed
            # would fail every later call that flushes it.
            raise UsageError(f"plaintext larger than {MAX_BODY} bytes")
        now_ms = to_ms(now)
        s = self._s
        out = Out()
        if s.status == JOINING or (s.attempt is not None and s.attempt.is_participant):
            if len(s.held) >= MAX_HELD_OUTGOING:
                raise StateError("too many messages held during the epoch change")
            if sum(map(len, s.held)) + len(plaintext) > MAX_HELD_BYTES:
                raise StateError(f"more than {MAX_HELD_BYTES} bytes held during the epoch "
                                 "change")
            self._s = replace(s, held=(*s.held, plaintext))
            return []
        s = send_application(s, plaintext, self._rng, out)
        s = self._driver.maybe_refresh(s, now_ms, out)
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
        out = Out()
        self._s = self._driver.propose(self._s, added, removed, reason, now_ms, out)
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
        out = Out()
        # A well-formed group message (the common case) is parsed once: `peek_mailbox` decodes
        # such a blob to a flat array whose type is not an attempt's, so it would say None.
        message = (GroupMessage._parse_canonical(self.suite, blob)
                   if len(blob) <= MAX_BLOB_LEN else None)
        attempt_box = None if message is not None else peek_mailbox(blob)
        if attempt_box is not None:
            if s.attempt is None or attempt_box != s.attempt.mailbox()[0]:
                raise ProtocolError("blob for an attempt mailbox we do not follow")
            s = self._driver.on_attempt_blob(s, blob, entry_ms, now_ms, out)
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
        out = Out()
        self._s = self._tick(self._s, to_ms(now), out)
        return out.events, out.sends

    # --- group mailbox ---------------------------------------------------------------------

    def _on_group_blob(self, s: SessionState, blob: bytes, now_ms: int, out: Out,
                       message: GroupMessage | None = None) -> SessionState:
        if message is None:
            message = GroupMessage.from_bytes(self.suite, blob)
        if s.epoch is not None and message.mailbox_id == s.epoch.mailbox_id:
            content, _, state = open_in_epoch(s.epoch, message)
            if content is None:
                return self._driver.on_own_echo(evolve(s, epoch=state), blob, now_ms, out)
            if content.content_type == CONTENT_PROPOSAL:
                s = self._driver.on_proposal(evolve(s, epoch=state), content, now_ms, out)
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
                if content is not None and content.content_type == CONTENT_PROPOSAL:
                    # Checked before the announced count: a proposal is the one epoch-e message
                    # an honest participant sends after announcing (its application messages
                    # are held), so past the count it is late, not a sign of a fork.
                    out.events.append(Ignored("proposal for an epoch already changed",
                                              g.state.roster[content.sender].identity_key))
                    events, state = order_in_epoch(state, content, now_ms)
                    out.events.extend(events)
                elif content is not None and limit is not None and content.generation >= limit:
                    # Authentic, but sent after its author announced for the new epoch: that
                    # member is on another branch (or a restored state) — its traffic no
                    # longer reaches our epoch. Reported, never delivered.
                    member = g.state.roster[content.sender].identity_key
                    out.events.append(ForkDetected(
                        "member still in previous epoch", member,
                        f"epoch {g.state.epoch} message past the announced generation"))
                elif content is not None:
                    events, state = order_in_epoch(state, content, now_ms)
                    out.events.extend(events)
                grace = (*s.grace[:k], replace(g, state=state), *s.grace[k + 1:])
                return replace(s, grace=grace)
        raise ProtocolError("blob is not for a mailbox of this group's current epochs")

    # --- time -------------------------------------------------------------------------------

    def _tick(self, s: SessionState, now_ms: int, out: Out, *, attempt_timeouts: bool = True
              ) -> SessionState:
        if s.epoch is not None:
            events, state = expire_in_epoch(s.epoch, now_ms)
            out.events.extend(events)
            if state is not s.epoch:
                s = evolve(s, epoch=state)
        if s.grace and any(g.until_ms <= now_ms for g in s.grace):
            s = evolve(s, grace=tuple(g for g in s.grace if g.until_ms > now_ms))
        if attempt_timeouts:
            s = self._driver.expire(s, now_ms, out)
        return self._driver.maybe_refresh(s, now_ms, out)

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
        if not isinstance(data, bytes | bytearray | memoryview):
            raise UsageError("a saved group session is bytes")
        size = data.nbytes if isinstance(data, memoryview) else len(data)
        if size > MAX_STATE_LEN:
            raise LimitExceeded(f"saved group session larger than {MAX_STATE_LEN} bytes")
        data = bytes(data)
        failure = ""
        try:
            state = decode_state(data, identity)
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


__all__ = [
    "ACTIVE",
    "ENDED",
    "GRACE_MS",
    "JOINING",
    "MAX_GRACE_EPOCHS",
    "MAX_HELD_BYTES",
    "MAX_HELD_OUTGOING",
    "MAX_STATE_ITEMS",
    "MAX_STATE_LEN",
    "STATE_FORMAT",
    "STATE_VERSION",
    "GroupSession",
    "Phase",
    "Send",
    "encrypt_in_epoch",
    "expire_in_epoch",
    "open_in_epoch",
    "order_in_epoch",
]
