"""Causal order: deliver each sender's messages in generation order, report gaps, never block.

A receiver decrypts (and deletes the key of) every authentic message at once, for forward
secrecy, but hands it to the application in the sender's order: a message after a gap is held
until the gap fills, until more than `MAX_HELD` messages wait behind it, or until the caller's
clock passes `GAP_TIMEOUT_MS` after the gap was noticed; then the missing generations are reported
lost and the held messages delivered. A message from before a gap that was declared lost is still
delivered, marked late. Digests of predecessors are only reported (known or not), never waited on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Messages one sender may have waiting behind a gap before the gap is declared lost.
MAX_HELD = 64
# Milliseconds a gap may stay open before the missing messages are declared lost: long enough
# for a slow relay to catch up, short enough that the user learns about a withheld message.
GAP_TIMEOUT_MS = 120_000


@dataclass(frozen=True)
class Held:
    generation: int
    content_type: int
    last_seen: bytes
    digest: bytes
    predecessor_known: bool
    received_ms: int  # caller time when it arrived: a gap before it was open from then on
    body: bytes = field(repr=False)


@dataclass(frozen=True)
class Delivery:
    """A message released to the application."""

    generation: int
    content_type: int
    last_seen: bytes
    digest: bytes
    predecessor_known: bool
    late: bool
    body: bytes = field(repr=False)


@dataclass(frozen=True)
class OrderResult:
    delivered: tuple[Delivery, ...] = ()
    gap: tuple[int, int] | None = None  # newly noticed missing generations [first, last]
    lost: tuple[tuple[int, int], ...] = ()  # generations given up on, [first, last] each


@dataclass(frozen=True)
class SenderOrder:
    """Delivery position of one sender: `next_deliver` is the next generation to hand over;
    `held` are later messages waiting behind a gap, in generation order."""

    next_deliver: int = 0
    held: tuple[Held, ...] = field(default=(), repr=False)

    def accept(self, message: Held, now: int) -> tuple[OrderResult, SenderOrder]:
        g = message.generation
        if g < self.next_deliver:
            # A generation already declared lost arrived after all (its key was still kept).
            return OrderResult(delivered=(_deliver(message, late=True),)), self
        if g > self.next_deliver:
            top = self.held[-1].generation if self.held else self.next_deliver - 1
            gap = (top + 1, g - 1) if g > top + 1 else None
            held = tuple(sorted((*self.held, message), key=lambda h: h.generation))
            state = SenderOrder(self.next_deliver, held)
            if len(held) > MAX_HELD:
                result, state = state._give_up()
                return OrderResult(result.delivered, gap, result.lost), state
            return OrderResult(gap=gap), state
        if not self.held:  # the common case: in order, nothing waiting
            return OrderResult(delivered=(_deliver(message, late=False),)), SenderOrder(g + 1)
        more, state = SenderOrder(g + 1, self.held)._drain()
        return OrderResult(delivered=(_deliver(message, late=False), *more)), state

    def expire(self, now: int) -> tuple[OrderResult, SenderOrder]:
        """Give up on every gap open for `GAP_TIMEOUT_MS` (the caller supplies the time). A gap
        was noticed when the first message behind it arrived."""
        if not self.held:  # nothing waits: nothing to give up on (called on every receive)
            return _NOTHING, self
        delivered: tuple[Delivery, ...] = ()
        lost: tuple[tuple[int, int], ...] = ()
        state = self
        while state.held:
            since = min(h.received_ms for h in state.held)
            if now - since < GAP_TIMEOUT_MS:
                break
            result, state = state._give_up()
            delivered += result.delivered
            lost += result.lost
        return OrderResult(delivered=delivered, lost=lost), state

    def _drain(self) -> tuple[tuple[Delivery, ...], SenderOrder]:
        out = []
        held = list(self.held)
        nxt = self.next_deliver
        while held and held[0].generation == nxt:
            out.append(_deliver(held.pop(0), late=False))
            nxt += 1
        return tuple(out), SenderOrder(nxt, tuple(held))

    def _give_up(self) -> tuple[OrderResult, SenderOrder]:
        """Declare the gap before the first held message lost and release what follows it."""
        first_held = self.held[0].generation
        lost = ((self.next_deliver, first_held - 1),)
        delivered, state = SenderOrder(first_held, self.held)._drain()
        return OrderResult(delivered=delivered, lost=lost), state


_NOTHING = OrderResult()


def _deliver(h: Held, *, late: bool) -> Delivery:
    return Delivery(h.generation, h.content_type, h.last_seen, h.digest, h.predecessor_known, late,
                    h.body)
