"""Causal order: deliver each sender's messages in generation order, report gaps, never block.

A receiver decrypts (and deletes the key of) every authentic message at once, for forward
secrecy, but hands it to the application in the sender's order: a message after a gap is held
until the gap fills, until more than `MAX_HELD` messages wait behind it, or until the caller's
clock passes `GAP_TIMEOUT_MS` after the gap was noticed; then the missing generations are reported
lost and the held messages delivered. A message from before a gap that was declared lost is still
delivered, marked late. Digests of predecessors are only reported (known or not), never waited on.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

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
    lost: tuple[int, int] | None = None  # generations given up on [first, last]


@dataclass(frozen=True)
class SenderOrder:
    """Delivery position of one sender: `next_deliver` is the next generation to hand over."""

    next_deliver: int = 0
    held: tuple[Held, ...] = field(default=(), repr=False)
    gap_since: int | None = None  # caller time in ms

    def accept(self, message: Held, now: int) -> tuple[OrderResult, SenderOrder]:
        g = message.generation
        if g < self.next_deliver:
            # A generation already declared lost arrived after all (its key was still kept).
            return OrderResult(delivered=(_deliver(message, late=True),)), self
        if g > self.next_deliver:
            held = tuple(sorted((*self.held, message), key=lambda h: h.generation))
            gap = None
            since = self.gap_since
            if since is None:
                gap, since = (self.next_deliver, g - 1), now
            elif g > max(h.generation for h in self.held) + 1:
                gap = (max(h.generation for h in self.held) + 1, g - 1)
            state = replace(self, held=held, gap_since=since)
            if len(held) > MAX_HELD:
                result, state = state._give_up(now)
                return OrderResult(result.delivered, gap, result.lost), state
            return OrderResult(gap=gap), state
        delivered = [_deliver(message, late=False)]
        state = replace(self, next_deliver=g + 1)
        more, state = state._drain()
        return OrderResult(delivered=tuple(delivered) + more), state

    def expire(self, now: int) -> tuple[OrderResult, SenderOrder]:
        """Give up on a gap older than `GAP_TIMEOUT_MS` (the caller supplies the time)."""
        if self.gap_since is not None and now - self.gap_since >= GAP_TIMEOUT_MS:
            return self._give_up(now)
        return OrderResult(), self

    def _drain(self) -> tuple[tuple[Delivery, ...], SenderOrder]:
        out = []
        held = list(self.held)
        nxt = self.next_deliver
        while held and held[0].generation == nxt:
            out.append(_deliver(held.pop(0), late=False))
            nxt += 1
        since = self.gap_since if held else None
        return tuple(out), SenderOrder(nxt, tuple(held), since)

    def _give_up(self, now: int) -> tuple[OrderResult, SenderOrder]:
        first_held = self.held[0].generation
        lost = (self.next_deliver, first_held - 1)
        delivered, state = replace(self, next_deliver=first_held)._drain()
        if state.held:
            # Another gap behind the released run: it starts its own timer now.
            state = replace(state, gap_since=now)
        return OrderResult(delivered=delivered, lost=lost), state


def _deliver(h: Held, *, late: bool) -> Delivery:
    return Delivery(h.generation, h.content_type, h.last_seen, h.digest, h.predecessor_known, late,
                    h.body)
