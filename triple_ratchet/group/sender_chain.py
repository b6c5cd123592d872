"""Symmetric-key ratchet: one chain per sender per epoch (spec: Group messages, Sender chains).

Chains are immutable values. A step returns the keys together with the chain *after* it; the
session commits the new chain only once the message authenticated, so a failed decrypt leaves
the old chain (and every not-yet-used key) exactly as it was.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from triple_ratchet.errors import DecodeError, LimitExceeded, ReplayError, UsageError
from triple_ratchet.random import RandomSource, system_random
from triple_ratchet.suites import Suite

LABEL_GROUP_CHAIN_NEXT = b"group chain next"
LABEL_GROUP_MESSAGE_KEY = b"group message key"
LABEL_GROUP_MESSAGE_NONCE = b"group message nonce"

# Bytes of the random reuse guard XORed into the front of every nonce. 8 bytes: two
# encryptions under one (key, generation) — possible only after restoring an older state —
# repeat a nonce with probability 2^-64.
REUSE_GUARD_LEN = 8
# How far ahead of the next expected generation a message may be (hash steps per message
# before authentication are bounded by this).
MAX_FORWARD = 1024
# Skipped generations whose keys a receiver keeps for late arrivals, per sender.
MAX_SKIPPED = 256
# A chain never passes this generation; the epoch must change first (4-byte field on the wire).
MAX_GENERATION = 2**32 - 1


@dataclass(frozen=True)
class MessageKeys:
    """The AEAD key and nonce base of one generation."""

    generation: int
    key: bytes = field(repr=False)
    nonce_base: bytes = field(repr=False)

    def nonce(self, reuse_guard: bytes) -> bytes:
        if len(reuse_guard) != REUSE_GUARD_LEN:
            raise DecodeError("reuse guard has the wrong length")
        base = self.nonce_base
        head = int.from_bytes(base[:REUSE_GUARD_LEN], "big") ^ int.from_bytes(reuse_guard, "big")
        return head.to_bytes(REUSE_GUARD_LEN, "big") + base[REUSE_GUARD_LEN:]

    def __repr__(self) -> str:
        return f"MessageKeys(generation={self.generation}, <secret>)"


@functools.cache
def _blocks(suite: Suite) -> tuple[bytes, bytes, bytes]:
    """HKDF-Expand's only input block, `info ‖ 0x01`, of the three chain derivations.

    Their contexts are empty, so the `expand_label` info strings are constants of the suite:
    built once instead of three times per message. Every output fits in one hash block, so
    `expand_label(ck, label, b"", n)` is exactly `HMAC(ck, info ‖ 0x01)[:n]` (RFC 5869 2.3).
    """
    lengths = (suite.aead_key_len, suite.aead_nonce_len, suite.hash_len)
    assert max(lengths) <= suite.hash_len
    key, nonce, nxt = (suite.label_info(label, b"", n) + b"\x01" for label, n in zip(
        (LABEL_GROUP_MESSAGE_KEY, LABEL_GROUP_MESSAGE_NONCE, LABEL_GROUP_CHAIN_NEXT), lengths,
        strict=True))
    return key, nonce, nxt


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class KeyedHmac:
    """HMAC (RFC 2104) over the suite's hash, with the key's inner and outer hash states
    computed once and copied for each message.

    `hmac.digest` has OpenSSL look its HMAC implementation up on every call: between the
    signatures and AEADs of the message path that costs ~5 µs per call, twice this (measured).
    A chain step makes three HMACs under one chain key, and the sender-data derivations two
    per message under one key per epoch. Equality with `hmac.digest` is tested.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, suite: Suite, key: bytes) -> None:
        empty = _empty_hash(suite)
        block = empty.block_size
        if len(key) > block:
            key = hash_of(suite, key)
        key = bytes(key).ljust(block, b"\x00")
        self._inner = empty.copy()
        self._inner.update(key.translate(_IPAD))
        self._outer = empty.copy()
        self._outer.update(key.translate(_OPAD))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        out: bytes = outer.digest()
        return out

    def __copy__(self) -> KeyedHmac:
        return self  # never updated in place, so a copy may share it

    def __deepcopy__(self, memo: dict[int, object]) -> KeyedHmac:
        return self

    def __repr__(self) -> str:
        return "KeyedHmac(<secret>)"


@functools.cache
def _empty_hash(suite: Suite) -> Any:
    """A fresh hash object of the suite's hash, to copy: copying skips the implementation
    lookup OpenSSL makes for every new hash object (the same cost as in `hmac.digest`)."""
    constructor: Callable[[], Any] = getattr(hashlib, suite.hash_name)
    return constructor()


def hash_of(suite: Suite, data: bytes) -> bytes:
    """`suite.hash(data)`, through a copied hash object."""
    h = _empty_hash(suite).copy()
    h.update(data)
    out: bytes = h.digest()
    return out


def _step(suite: Suite, chain_key: bytes, generation: int) -> tuple[MessageKeys, bytes]:
    """The keys of `generation` and the next chain key: three HMACs under `chain_key`."""
    key_block, nonce_block, next_block = _blocks(suite)
    mac = KeyedHmac(suite, chain_key)
    return (MessageKeys(generation, mac.digest(key_block)[:suite.aead_key_len],
                        mac.digest(nonce_block)[:suite.aead_nonce_len]),
            mac.digest(next_block))


def _keys(suite: Suite, chain_key: bytes, generation: int) -> MessageKeys:
    return _step(suite, chain_key, generation)[0]


def _next(suite: Suite, chain_key: bytes) -> bytes:
    return hmac.digest(chain_key, _blocks(suite)[2], suite.hash_name)


def new_reuse_guard(rng: RandomSource = system_random) -> bytes:
    return rng(REUSE_GUARD_LEN)


@dataclass(frozen=True)
class SendingChain:
    """Our own chain: `chain_key` is the key of generation `generation`, the next to send."""

    chain_key: bytes = field(repr=False)
    generation: int = 0

    def step(self, suite: Suite) -> tuple[MessageKeys, SendingChain]:
        if self.generation > MAX_GENERATION:
            raise UsageError("sending chain exhausted; the epoch must change")
        keys, next_key = _step(suite, self.chain_key, self.generation)
        return keys, SendingChain(next_key, self.generation + 1)

    def __repr__(self) -> str:
        return f"SendingChain(generation={self.generation}, <secret>)"


@dataclass(frozen=True)
class ReceivingChain:
    """A sender's chain as seen by a receiver.

    `chain_key` is the key of generation `next_generation`; `skipped` holds the message keys of
    earlier generations not received yet (bounded). Keys of received generations are gone.
    """

    chain_key: bytes = field(repr=False)
    next_generation: int = 0
    skipped: tuple[tuple[int, bytes, bytes], ...] = field(default=(), repr=False)

    def keys_for(self, suite: Suite, generation: int) -> tuple[MessageKeys, ReceivingChain]:
        """The keys of `generation` and the chain with them consumed. Does not mutate."""
        if not 0 <= generation <= MAX_GENERATION:
            raise DecodeError("generation out of range")
        if generation < self.next_generation:
            for i, (g, key, nonce) in enumerate(self.skipped):
                if g == generation:
                    rest = self.skipped[:i] + self.skipped[i + 1:]
                    return MessageKeys(g, key, nonce), ReceivingChain(
                        self.chain_key, self.next_generation, rest)
            raise ReplayError("generation already received or its key expired")
        if generation - self.next_generation > MAX_FORWARD:
            raise LimitExceeded("generation too far ahead of the sender's chain")
        chain_key = self.chain_key
        skipped = self.skipped  # in order, the common case: shared, not copied
        if generation > self.next_generation:
            more = list(skipped)
            for g in range(self.next_generation, generation):
                k, chain_key = _step(suite, chain_key, g)
                more.append((g, k.key, k.nonce_base))
            # Oldest skipped keys go first when the bound is hit: those messages are then lost.
            skipped = tuple(more[-MAX_SKIPPED:])
        keys, next_key = _step(suite, chain_key, generation)
        return keys, ReceivingChain(next_key, generation + 1, skipped)

    def has_seen(self, generation: int) -> bool:
        """True when `generation` was received (or its key expired)."""
        return generation < self.next_generation and all(
            g != generation for g, _, _ in self.skipped)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ReceivingChain)
                and hmac.compare_digest(self.chain_key, other.chain_key)
                and self.next_generation == other.next_generation
                and self.skipped == other.skipped)

    def __hash__(self) -> int:
        return hash((self.next_generation, len(self.skipped)))

    def __repr__(self) -> str:
        return (f"ReceivingChain(next_generation={self.next_generation}, "
                f"skipped={len(self.skipped)}, <secret>)")
