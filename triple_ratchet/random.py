"""Randomness source.

Production code uses the OS CSPRNG. Tests and the vector generator inject a deterministic
source; nothing else may construct one.
"""

from __future__ import annotations

import hashlib
import os
from typing import Protocol


class RandomSource(Protocol):
    def __call__(self, n: int) -> bytes: ...


def system_random(n: int) -> bytes:
    return os.urandom(n)


class DeterministicRandom:
    """SHA-256 counter-mode stream from a seed. For tests and vector generation only."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0
        self._buffer = b""

    def __call__(self, n: int) -> bytes:
        while len(self._buffer) < n:
            block = hashlib.sha256(
                b"triple-ratchet test rng" + self._seed + self._counter.to_bytes(8, "big")
            ).digest()
            self._buffer += block
            self._counter += 1
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def __repr__(self) -> str:
        return "DeterministicRandom(<seed redacted>)"
