"""The application-message path of one epoch: seal, open, order and expire (spec 09).

Pure functions over an immutable `EpochState` (each returns the new state, committed by the
caller only if nothing raised).
"""

from __future__ import annotations

import hmac

from triple_ratchet.errors import (
    AuthenticationError,
    DecodeError,
    LimitExceeded,
    ProtocolError,
    RemoteError,
    StaleStateError,
    UnsupportedError,
    UsageError,
)
from triple_ratchet.group.epoch import (
    MAX_ECHO_CHECK,
    MAX_HELD_TOTAL,
    MAX_SKIPPED_TOTAL,
    EpochState,
    evolve,
)
from triple_ratchet.group.events import (
    Event,
    ForkDetected,
    GapDetected,
    MessageReceived,
    MessagesLost,
    Outgoing,
)
from triple_ratchet.group.message import (
    CONTENT_APPLICATION,
    MAX_BODY,
    VERSION,
    Content,
    GroupMessage,
    SenderData,
    open_content,
    open_sender_data,
    seal,
)
from triple_ratchet.group.ordering import Delivery, Held, OrderResult, SenderOrder
from triple_ratchet.group.sender_chain import MAX_FORWARD, new_reuse_guard
from triple_ratchet.random import RandomSource

# Grace (spec 09 §9.11, 11.v2.29): an epoch-e message from a member of e+1 is still
# delivered up to this long (hub time) after the entry time of the commit that decided e.
GRACE_MS = 300_000


class AlteredEcho(AuthenticationError):
    """A group-mailbox entry under our index and a generation we sent, not byte-identical to
    what we sent (`receive_v2` reports it as a `ForkDetected` event)."""


def encrypt_in_epoch(state: EpochState, content_type: int, body: bytes,
                     rng: RandomSource) -> tuple[bytes, EpochState]:
    """Seal one message under our sending chain; returns the blob and the advanced state."""
    suite = state.suite
    keys, chain = state.sending.step(suite)
    content = Content(suite.suite_id, state.group_id, state.epoch, state.own_index,
                      keys.generation, content_type, state.last_seen, body, state.version)
    blob = seal(suite, content, state.own_signing_key(), keys, new_reuse_guard(rng),
                state.sender_data_secret, state.mailbox_id,
                sender_data_hmac=state.sender_data_hmac())
    digest = content.digest(suite)
    window = MAX_ECHO_CHECK
    sent = (*state.sent_blobs[len(state.sent_blobs) + 1 - window:], suite.hash(blob))
    return blob, evolve(state, sending=chain, last_sent=digest, last_seen=digest,
                        known_digests=state.known_digests.add(digest), sent_blobs=sent)


def open_in_epoch(state: EpochState, message: GroupMessage, max_count: int | None = None
                  ) -> tuple[Content | None, int, EpochState]:
    """Authenticate and decrypt one message of this epoch; commit nothing on failure.

    Returns (content or None for an echo of our own message, the generation, new state).
    `max_count` is the grace period's bound: the sender's announced message count.
    """
    suite = state.suite
    if message.version != state.version:
        raise DecodeError("group message of another wire version than its epoch")
    sender_data = open_sender_data(suite, message, state.sender_data_secret,
                                   sender_data_hmac=state.sender_data_hmac())
    if not 0 <= sender_data.sender < len(state.roster):
        raise ProtocolError("sender index is not in the roster")
    if sender_data.sender == state.own_index:
        if sender_data.generation < state.sending.generation:
            # The hub echoes our messages back: checked against what we sent, when recent.
            age = state.sending.generation - sender_data.generation
            if age <= len(state.sent_blobs) and not hmac.compare_digest(
                    suite.hash(message.to_bytes()), state.sent_blobs[-age]):
                raise AlteredEcho("echo of our own message differs from what we sent")
            return None, sender_data.generation, state
        if _sent_by_a_later_copy(state, message, sender_data):
            raise StaleStateError("a message we sent from a later copy of this state: this "
                                  "state is an old copy (restored backup); do not send from it")
        raise ProtocolError("message claims our own index for a generation we never sent")
    if max_count is not None and sender_data.generation >= max_count:
        raise ProtocolError("old-epoch message past the sender's announced generation")
    chain = state.receiving_chain(sender_data.sender)
    keys, new_chain = chain.keys_for(suite, sender_data.generation)
    if len(new_chain.skipped) > len(chain.skipped):
        # Group-wide cap (R13): the sender whose gap overflowed it loses its oldest keys
        # (those messages are then lost, as with the per-sender bound).
        excess = state.skipped_total() - len(chain.skipped) + len(new_chain.skipped) \
            - MAX_SKIPPED_TOTAL
        if excess > 0:
            new_chain = type(new_chain)(new_chain.chain_key, new_chain.next_generation,
                                        new_chain.skipped[excess:])
    content = open_content(suite, message, sender_data, keys, state.group_id, state.epoch,
                           state.verifying_key(sender_data.sender))
    # Only now, with the signature verified, is the sender's generation consumed.
    return content, sender_data.generation, state.with_receiving(sender_data.sender, new_chain)


def _sent_by_a_later_copy(state: EpochState, message: GroupMessage,
                          sender_data: SenderData) -> bool:
    """Whether a message under our index at a generation we have not reached opens with our own
    chain and verifies with our own key: only a copy of us holding this state could have made
    it (any member can write our index in the sender data, none can sign for us). Bounded like
    a receiver's step (MAX_FORWARD); works on a copy of the chain, nothing is committed."""
    chain = state.sending
    if sender_data.generation - chain.generation > MAX_FORWARD:
        return False
    try:
        for _ in range(sender_data.generation - chain.generation):
            _, chain = chain.step(state.suite)
        keys, _ = chain.step(state.suite)
        open_content(state.suite, message, sender_data, keys, state.group_id, state.epoch,
                     state.verifying_key(state.own_index))
    except (RemoteError, UsageError):
        return False
    return True


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


# --- hub time, sending and receiving (spec 09 §9.11) ------------------------------------------


def deliverable_by_hub_time(t: int, decided_t: int | None, sender_in_next_roster: bool,
                            grace_ms: int = GRACE_MS) -> bool:
    """Whether an epoch-e message with hub time `t` is delivered (11.v2.29): always while e is
    undecided; else iff `t <= t(C(e))`, or its sender is in e+1's roster and
    `t <= t(C(e)) + GRACE`."""
    if decided_t is None or t <= decided_t:
        return True
    return sender_in_next_roster and t <= decided_t + grace_ms


def encrypt_v2(state: EpochState, plaintext: bytes, rng: RandomSource
               ) -> tuple[Outgoing, EpochState]:
    """R11: the plaintext is checked at once and sealed now, never held for later."""
    if state.version != VERSION:  # pragma: no cover - EpochState.activate refuses others
        raise UsageError("not an epoch of this wire version")
    if not isinstance(plaintext, bytes | bytearray):
        raise UsageError("plaintext must be bytes")
    if len(plaintext) > MAX_BODY:
        raise LimitExceeded(f"message body larger than {MAX_BODY} bytes")
    blob, new_state = encrypt_in_epoch(state, CONTENT_APPLICATION, bytes(plaintext), rng)
    return Outgoing(state.mailbox_id, blob), new_state


def parse_v2(state: EpochState, blob: bytes) -> GroupMessage:
    """Parse a group-mailbox entry for a version-2 epoch: version 1 is `UnsupportedError`."""
    message = GroupMessage.from_bytes(state.suite, blob, version=VERSION)
    if message.version != VERSION:  # pragma: no cover - from_bytes guarantees it
        raise UnsupportedError("protocol version 1 is no longer supported")
    return message


def receive_v2(state: EpochState, message: GroupMessage, t: int, now_ms: int, *,
               decided_t: int | None = None,
               next_roster: frozenset[bytes] | None = None) -> tuple[list[Event], EpochState]:
    """One authentic-or-refused group-mailbox entry of a version-2 epoch, by hub time `t`.

    `decided_t` is t(C(e)) once e's deciding commit is known, `next_roster` the identities of
    e+1's roster. Raises (state unchanged) on forged, replayed or malformed input; reports an
    altered echo of ours and a message past the grace as `ForkDetected` (state unchanged)."""
    try:
        content, _, opened = open_in_epoch(state, message)
    except AlteredEcho:
        return [ForkDetected("altered echo of our message",
                             state.roster[state.own_index].identity_key,
                             "a group-mailbox entry under our index differs from what we sent")
                ], state
    if content is None:
        return [], state  # the hub's echo of our own message
    identity = state.roster[content.sender].identity_key
    if not deliverable_by_hub_time(t, decided_t,
                                   next_roster is not None and identity in next_roster):
        return [ForkDetected("member still in previous epoch", identity,
                             f"epoch {state.epoch} message after its epoch was decided")], state
    events, opened = order_in_epoch(opened, content, now_ms)
    if opened.held_total() > MAX_HELD_TOTAL:
        # Group-wide cap (R13): give up the gap of the sender whose held message is oldest;
        # its run behind the gap is delivered and the gap reported MessagesLost.
        oldest = min((o.held[0].received_ms, i) for i, o in enumerate(opened.order) if o.held)[1]
        result, order = opened.order[oldest].expire(2**62)
        opened = _deliveries_seen(opened.with_order(oldest, order), result)
        events.extend(_events_for(opened, oldest, result))
    return events, opened
