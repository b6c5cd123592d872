"""GroupSession: the sans-IO API of a member of one group (spec: Group messages, Epoch change).

    events, outgoing = session.receive(blob, now)
    outgoing = session.encrypt(plaintext, now)
    data = session.to_bytes(); session = GroupSession.from_bytes(data, identity)

The caller moves blobs between the session and the hub (each `Outgoing` names its mailbox), passes
the current time in seconds, and stores `to_bytes()` durably before sending what a call returned.
A rejected blob raises a `RemoteError` subclass and leaves the session exactly as it was: every
step computes new immutable epoch values and commits them only at its end.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from triple_ratchet import cbor
from triple_ratchet.errors import DecodeError, ProtocolError, StateError, UsageError
from triple_ratchet.group.epoch import EpochState
from triple_ratchet.group.events import (
    Event,
    GapDetected,
    MessageReceived,
    MessagesLost,
    Outgoing,
)
from triple_ratchet.group.message import (
    CONTENT_APPLICATION,
    Content,
    GroupMessage,
    open_content,
    open_sender_data,
    seal,
)
from triple_ratchet.group.ordering import Delivery, Held, OrderResult
from triple_ratchet.group.sender_chain import new_reuse_guard
from triple_ratchet.random import RandomSource, system_random
from triple_ratchet.suites import SigningKey, Suite, suite_by_id

STATE_FORMAT = "triple-ratchet group session"
STATE_VERSION = 1
# Bound on a serialized session (roster, chains, held messages); checked before decoding.
MAX_STATE_LEN = 16 * 1024 * 1024


def to_ms(now: float) -> int:
    """Caller time (seconds) to the millisecond integers kept in state (exact round trip)."""
    if now < 0:
        raise UsageError("time must not be negative")
    return int(now * 1000)


@dataclass(frozen=True)
class Delivered:
    """What one group message step produced, before it is committed."""

    state: EpochState
    events: tuple[Event, ...]


def _events_for(state: EpochState, sender: int, result: OrderResult) -> list[Event]:
    identity = state.roster[sender].identity_key
    events: list[Event] = []
    if result.gap is not None:
        events.append(GapDetected(sender, identity, state.epoch, *result.gap))
    if result.lost is not None:
        events.append(MessagesLost(sender, identity, state.epoch, *result.lost))
    events.extend(_received(state, sender, d) for d in result.delivered)
    return events


def _received(state: EpochState, sender: int, d: Delivery) -> MessageReceived:
    return MessageReceived(sender, state.roster[sender].identity_key, state.epoch, d.generation,
                           d.digest, d.last_seen, d.predecessor_known, d.late, d.body)


def _deliveries_seen(state: EpochState, result: OrderResult) -> EpochState:
    for d in result.delivered:
        state = state.with_seen(d.digest)
    return state


def encrypt_in_epoch(state: EpochState, content_type: int, body: bytes,
                     rng: RandomSource) -> tuple[bytes, EpochState]:
    """Seal one message under our sending chain; returns the blob and the advanced state."""
    suite = state.suite
    keys, chain = state.sending.step(suite)
    content = Content(suite.suite_id, state.group_id, state.epoch, state.own_index,
                      keys.generation, content_type, state.last_seen, body)
    blob = seal(suite, content, state.own_signing_key(), keys, new_reuse_guard(rng),
                state.sender_data_secret, state.mailbox_id)
    return blob, replace(state, sending=chain).with_seen(content.digest(suite))


def open_in_epoch(state: EpochState, message: GroupMessage, now_ms: int,
                  max_generation: int | None = None) -> tuple[Content | None, EpochState]:
    """Authenticate and decrypt one message of this epoch; commit nothing on failure.

    Returns (None, state) for an echo of our own message. `max_generation` is the grace
    period's bound: the last generation the sender announced for this epoch.
    """
    suite = state.suite
    sender_data = open_sender_data(suite, message, state.sender_data_secret)
    if not 0 <= sender_data.sender < len(state.roster):
        raise ProtocolError("sender index is not in the roster")
    if sender_data.sender == state.own_index:
        if sender_data.generation < state.sending.generation:
            return None, state  # the hub echoes our own messages back; nothing to do
        raise ProtocolError("message claims our own index for a generation we never sent")
    if max_generation is not None and sender_data.generation > max_generation:
        raise ProtocolError("message of a previous epoch past the sender's announced generation")
    chain = state.receiving_chain(sender_data.sender)
    keys, new_chain = chain.keys_for(suite, sender_data.generation)
    content = open_content(suite, message, sender_data, keys, state.group_id, state.epoch,
                           state.verifying_key(sender_data.sender))
    # Only now, with the signature verified, is the sender's generation consumed.
    return content, state.with_receiving(sender_data.sender, new_chain)


def order_in_epoch(state: EpochState, content: Content, now_ms: int
                   ) -> tuple[list[Event], EpochState]:
    """Hand an authentic message to its sender's delivery order."""
    suite = state.suite
    held = Held(content.generation, content.content_type, content.last_seen,
                content.digest(suite),
                not content.last_seen or state.knows(content.last_seen), content.body)
    result, order = state.order[content.sender].accept(held, now_ms)
    state = _deliveries_seen(state.with_order(content.sender, order), result)
    return _events_for(state, content.sender, result), state


def expire_in_epoch(state: EpochState, now_ms: int) -> tuple[list[Event], EpochState]:
    events: list[Event] = []
    for sender, order in enumerate(state.order):
        result, new_order = order.expire(now_ms)
        if result.delivered or result.lost:
            state = _deliveries_seen(state.with_order(sender, new_order), result)
            events.extend(_events_for(state, sender, result))
    return events, state


class GroupSession:
    """One member's view of one group. Not thread-safe; one instance per group per device."""

    def __init__(self, suite: Suite, identity: SigningKey, epoch: EpochState,
                 rng: RandomSource = system_random) -> None:
        if epoch.suite_id != suite.suite_id:
            raise UsageError("epoch state belongs to another suite")
        if epoch.roster[epoch.own_index].identity_key != identity.public_key().to_bytes():
            raise UsageError("identity does not match our roster entry")
        self._suite = suite
        self._identity = identity
        self._epoch = epoch
        self._rng = rng
        self._failed: str | None = None

    # --- properties ---------------------------------------------------------------------

    @property
    def group_id(self) -> bytes:
        return self._epoch.group_id

    @property
    def epoch(self) -> int:
        return self._epoch.epoch

    @property
    def public_epoch_id(self) -> bytes:
        return self._epoch.public_epoch_id

    @property
    def roster(self) -> tuple[bytes, ...]:
        return tuple(m.identity_key for m in self._epoch.roster)

    @property
    def own_index(self) -> int:
        return self._epoch.own_index

    @property
    def mailbox_id(self) -> bytes:
        """The group mailbox of the current epoch (rotates with every epoch)."""
        return self._epoch.mailbox_id

    def mailbox_access_key(self) -> SigningKey:
        """The key that opens the current group mailbox at the hub."""
        return self._suite.signing_from_bytes(self._epoch.mailbox_access_key)

    def mailboxes(self) -> tuple[bytes, ...]:
        """Every mailbox this session reads now (the caller subscribes to these)."""
        return (self._epoch.mailbox_id,)

    # --- verbs ----------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes, now: float) -> list[Outgoing]:
        """Encrypt an application message to the whole group."""
        self._check_usable()
        if not isinstance(plaintext, bytes):
            raise UsageError("plaintext must be bytes")
        to_ms(now)
        blob, state = encrypt_in_epoch(self._epoch, CONTENT_APPLICATION, plaintext, self._rng)
        self._epoch = state
        return [Outgoing(state.mailbox_id, blob)]

    def receive(self, blob: bytes, now: float) -> tuple[list[Event], list[Outgoing]]:
        """Process one blob read from one of `mailboxes()`, in the hub's order."""
        self._check_usable()
        now_ms = to_ms(now)
        message = GroupMessage.from_bytes(self._suite, blob)
        if message.mailbox_id != self._epoch.mailbox_id:
            raise ProtocolError("blob is not for a mailbox of this group's current epochs")
        content, state = open_in_epoch(self._epoch, message, now_ms)
        events: list[Event] = []
        if content is not None:
            if content.content_type != CONTENT_APPLICATION:
                raise ProtocolError("unexpected content type")
            events, state = order_in_epoch(state, content, now_ms)
        more, state = expire_in_epoch(state, now_ms)
        self._epoch = state
        return events + more, []

    def tick(self, now: float) -> tuple[list[Event], list[Outgoing]]:
        """Let time pass: give up on old gaps, end grace periods, time out epoch changes."""
        self._check_usable()
        events, state = expire_in_epoch(self._epoch, to_ms(now))
        self._epoch = state
        return events, []

    # --- state ------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return cbor.encode([STATE_FORMAT, STATE_VERSION, self._suite.suite_id,
                            self._epoch.to_cbor()])

    @classmethod
    def from_bytes(cls, data: bytes, identity: SigningKey,
                   rng: RandomSource = system_random) -> GroupSession:
        items = cbor.as_list(cbor.decode(data, max_size=MAX_STATE_LEN), "group session", length=4)
        if cbor.as_str(items[0], "format", max_length=64) != STATE_FORMAT:
            raise DecodeError("not a serialized group session")
        if cbor.as_int(items[1], "state version") != STATE_VERSION:
            raise DecodeError("unsupported group session state version")
        suite = suite_by_id(cbor.as_int(items[2], "suite id", maximum=0xFFFF))
        return cls(suite, identity, EpochState.from_cbor(items[3]), rng)

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise StateError(f"group session unusable: {self._failed}")

    def __repr__(self) -> str:
        return (f"GroupSession(group={self.group_id.hex()}, epoch={self.epoch}, "
                f"own_index={self.own_index}, <secrets>)")
