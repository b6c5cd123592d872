"""What a `GroupSession` holds, and how it is saved and loaded (spec 09 §9.8, 11 §11.9).

The session's whole state is one immutable `SessionState`; every call computes a new one and
swaps it in only at its end. The constants every part of the session shares live here too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from triple_ratchet import cbor
from triple_ratchet.errors import (
    DecodeError,
    RemoteError,
    StateError,
    UsageError,
)
from triple_ratchet.group.attempt_mailbox import (
    ABORT_BLAME,
    ABORT_EQUIVOCATION,
    ABORT_TIMEOUT,
)
from triple_ratchet.group.epoch import MAX_GROUP_SIZE, EpochState, evolve
from triple_ratchet.group.epoch_change import Attempt
from triple_ratchet.group.events import (
    Event,
    Outgoing,
    WelcomeOut,
)
from triple_ratchet.group.message import (
    CONTENT_APPLICATION,
    MAX_BLOB_LEN,
    MAX_BODY,
)
from triple_ratchet.group.message_path import encrypt_in_epoch
from triple_ratchet.group.proposal import (
    MAX_IDENTITY_LEN,
    MAX_PROPOSAL_LEN,
    REASON_CHANGE,
    REASON_REFRESH,
    REASON_UNRESPONSIVE,
    Proposal,
)
from triple_ratchet.identity import Identity, IdentityKeyPair
from triple_ratchet.random import RandomSource
from triple_ratchet.suites import suite_by_id

STATE_FORMAT = "triple-ratchet group session"
STATE_VERSION = 1
# Bound on a serialized session (roster, chains, held messages); checked before decoding.
MAX_STATE_LEN = 16 * 1024 * 1024
# After activation, epoch e's keys are kept this long for its late messages (then deleted).
GRACE_MS = 300_000
# A member proposes a refresh after this many messages or this long in one epoch (0: never).
DEFAULT_REFRESH_MESSAGES = 10_000
DEFAULT_REFRESH_MS = 7 * 24 * 3600 * 1000
# Plaintexts a member may hold while an epoch change runs, and their bytes together (so a
# saved state with a full hold stays far below MAX_STATE_LEN).
MAX_HELD_OUTGOING = 256
MAX_HELD_BYTES = 4 * 1024 * 1024
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


def hub_ms(entry_time: int) -> int:
    """A hub acceptance time as given: integer Unix milliseconds."""
    if not isinstance(entry_time, int) or isinstance(entry_time, bool) or not (
            0 <= entry_time < 2**63):
        raise UsageError("entry_time must be the hub's integer Unix milliseconds")
    return entry_time


def decode_state(data: bytes, identity: IdentityKeyPair) -> SessionState:
    """Decode a saved session and check it holds together (see `GroupSession.from_bytes`)."""
    items = cbor.as_list(cbor.decode(data, max_size=MAX_STATE_LEN, max_items=MAX_STATE_ITEMS,
                                     max_depth=5), "group session", length=3)
    if cbor.as_str(items[0], "format", max_length=64) != STATE_FORMAT:
        raise DecodeError("not a serialized group session")
    if cbor.as_int(items[1], "state version") != STATE_VERSION:
        raise DecodeError("unsupported group session state version")
    state = SessionState.from_cbor(items[2])
    me = identity.public.to_bytes()
    if state.epoch is not None:
        # Our roster entry must be an identity; a valid one other than ours means the caller
        # passed another identity (a usage error, raised by the constructor). The decode error
        # is raised outside the handler, so nothing of the input rides on its context.
        ours = state.epoch.roster[state.epoch.own_index].identity_key
        try:
            Identity.from_bytes(ours, suite_by_id(state.suite_id))
        except RemoteError:
            ours = b""
        if not ours:
            raise DecodeError("our roster entry is not a valid identity")
    # In the attempt's (signed) roster, our slot is known exactly. (Not in it, yet with an own
    # index: another identity was passed, which the constructor refuses.)
    roster = () if state.attempt is None else state.attempt.proposal.proposal.new_roster
    if state.attempt is not None and me in roster and (
            state.attempt.own_index != roster.index(me) + 1):
        raise DecodeError("the attempt's own index is not our slot in its roster")
    return state


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
class SessionState:
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
    def from_cbor(cls, value: cbor.CborValue) -> SessionState:
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
        held = blist(f[9], "held", MAX_HELD_OUTGOING, MAX_BODY)
        if sum(map(len, held)) > MAX_HELD_BYTES:
            raise DecodeError("held plaintexts over their byte bound")
        return cls(
            suite_id, status, epoch, tuple(grace), attempt,
            blist(f[5], "queue", MAX_GROUP_SIZE, MAX_PROPOSAL_LEN + 512),
            blist(f[6], "proposers", MAX_GROUP_SIZE, MAX_IDENTITY_LEN),
            blist(f[7], "aborters", MAX_GROUP_SIZE, MAX_IDENTITY_LEN), own,
            held,
            cbor.as_int(f[10], "epoch start"),
            cbor.as_int(f[11], "messages"), cbor.as_int(f[12], "refresh messages"),
            cbor.as_int(f[13], "refresh ms"), cbor.as_bool(f[14], "restored"),
            blist(f[15], "unresponsive", MAX_GROUP_SIZE, MAX_IDENTITY_LEN))


@dataclass
class Out:
    """What one call accumulates before it commits."""

    events: list[Event] = field(default_factory=list)
    sends: list[Send] = field(default_factory=list)


def send_application(s: SessionState, plaintext: bytes, rng: RandomSource, out: Out
                     ) -> SessionState:
    """Seal `plaintext` in the current epoch; the blob goes to `out` (version 1; it lives here,
    not in message_path, so the shared message path imports nothing of version 1)."""
    if s.epoch is None:
        raise StateError("no epoch to send in")
    blob, state = encrypt_in_epoch(s.epoch, CONTENT_APPLICATION, plaintext, rng)
    out.sends.append(Outgoing(state.mailbox_id, blob))
    return evolve(s, epoch=state, messages_in_epoch=s.messages_in_epoch + 1)
