"""An account's group join keys (spec 11.v2.4, R7): the keyring that makes them and keeps their
private halves until used or expired.

An account publishes one-time join keys (the hub's directory hands each out once) and one
last-resort join key (handed out when no one-time key is left). The keyring keeps each key's
32-byte seed (the private keys derive from it, `RecordKeys.from_seed`), so it can open the
sealing of a notice made for any of them. A one-time key is deleted once a notice opened with it
started a session (`used`); every key is deleted once expired (`expire`). Sans-IO: the caller
publishes `publishable()` with `MailboxClient.publish_join_keys`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field, replace

from triple_ratchet import cbor
from triple_ratchet.errors import DecodeError, LimitExceeded, UsageError
from triple_ratchet.group.records import (
    MAX_JOIN_KEY_LEN_PQ,
    RECORD_SEED_LEN,
    JoinKey,
    RecordKeys,
    max_join_key_len,
)
from triple_ratchet.identity import IdentityKeyPair
from triple_ratchet.random import RandomSource, system_random
from triple_ratchet.suites import Suite, suite_by_id

MAX_JOIN_KEYS = 256  # one-time keys kept at once (each is ~1 KiB published, 32 B kept here)
_WIRE = "triple-ratchet join keyring"
_VERSION = 1
# Each held key: its SignedJoinKey (<= 2048 bytes for a hybrid suite), seed and flag, framed.
MAX_KEYRING_LEN = 16 + MAX_JOIN_KEYS * (MAX_JOIN_KEY_LEN_PQ + 64)


@dataclass(frozen=True)
class HeldJoinKey:
    join_key: JoinKey
    seed: bytes = field(repr=False)
    one_time: bool

    def keys(self) -> RecordKeys:
        return RecordKeys.from_seed(self.join_key.suite, self.seed)


@dataclass(frozen=True)
class JoinKeyring:
    suite: Suite
    held: tuple[HeldJoinKey, ...] = ()

    @classmethod
    def empty(cls, suite: Suite) -> JoinKeyring:
        return cls(suite)

    def generate(self, identity: IdentityKeyPair, *, one_time: int, last_resort: bool,
                 inbox_id: bytes, expiry: int, rng: RandomSource = system_random
                 ) -> JoinKeyring:
        """Add `one_time` one-time keys and, if `last_resort`, a new last-resort key (which
        replaces the previous one at the hub; the old one's private key is kept until it
        expires, since an add may already carry it)."""
        if identity.suite.suite_id != self.suite.suite_id:
            raise UsageError("identity of another suite")
        if type(one_time) is not int or one_time < 0:
            raise UsageError("one_time must be a count")
        if len(self.held) + one_time + int(last_resort) > MAX_JOIN_KEYS:
            raise LimitExceeded(f"a keyring keeps at most {MAX_JOIN_KEYS} join keys")
        new = []
        for i in range(one_time + int(last_resort)):
            seed = rng(RECORD_SEED_LEN)
            jk = JoinKey.sign(identity, RecordKeys.from_seed(self.suite, seed), expiry=expiry,
                              inbox_id=inbox_id)
            new.append(HeldJoinKey(jk, seed, i < one_time))
        return replace(self, held=self.held + tuple(new))

    def publishable(self) -> tuple[bytes | None, tuple[bytes, ...]]:
        """(last-resort key or None, one-time keys) as `SignedJoinKey` bytes, for
        `publish_join_keys(directory, owner, last_resort, join_keys)`."""
        last = [h for h in self.held if not h.one_time]
        return (last[-1].join_key.to_bytes() if last else None,
                tuple(h.join_key.to_bytes() for h in self.held if h.one_time))

    def keys(self) -> tuple[RecordKeys, ...]:
        """Every private key pair held, to open a notice's sealing (`open_notice(keys=...)`)."""
        return tuple(h.keys() for h in self.held)

    def used(self, receive_key: bytes) -> JoinKeyring:
        """A notice opened with the key whose receive public key is `receive_key` started a
        session: a one-time key is deleted (a last-resort key is kept until it expires)."""
        return replace(self, held=tuple(
            h for h in self.held
            if not (h.one_time and hmac.compare_digest(h.join_key.receive_key, receive_key))))

    def expire(self, hub_time: int) -> JoinKeyring:
        """Delete every key no add can use any more (`expiry <= hub_time`)."""
        return replace(self, held=tuple(h for h in self.held if h.join_key.usable_at(hub_time)))

    def to_bytes(self) -> bytes:
        return cbor.encode([_WIRE, _VERSION, self.suite.suite_id,
                            [[h.join_key.to_bytes(), h.seed, h.one_time] for h in self.held]])

    @classmethod
    def from_bytes(cls, data: bytes) -> JoinKeyring:
        if not isinstance(data, bytes | bytearray):
            raise UsageError("expected bytes")
        if len(data) > MAX_KEYRING_LEN:
            raise LimitExceeded("saved keyring too large")
        f = cbor.as_list(cbor.decode(bytes(data), max_size=MAX_KEYRING_LEN,
                                     max_items=8 + 4 * MAX_JOIN_KEYS, max_depth=3),
                         "join keyring", 4)
        if cbor.as_str(f[0], "keyring", max_length=64) != _WIRE:
            raise DecodeError("not a join keyring")
        if cbor.as_int(f[1], "keyring version") != _VERSION:
            raise DecodeError("join keyring of another version")
        suite = suite_by_id(cbor.as_int(f[2], "suite", maximum=0xFFFF))
        items = cbor.as_list(f[3], "held join keys")
        if len(items) > MAX_JOIN_KEYS:
            raise LimitExceeded("too many join keys")
        held = []
        for item in items:
            x = cbor.as_list(item, "held join key", 3)
            jk = JoinKey.from_bytes(suite, cbor.as_bytes(x[0], "join key",
                                                         max_length=max_join_key_len(suite)))
            seed = cbor.as_bytes(x[1], "join key seed", length=RECORD_SEED_LEN)
            if not RecordKeys.from_seed(suite, seed).holds(jk):
                raise DecodeError("a join key seed does not make its join key")
            held.append(HeldJoinKey(jk, seed, cbor.as_bool(x[2], "one-time")))
        return cls(suite, tuple(held))

    def __repr__(self) -> str:
        return f"JoinKeyring({self.suite.name}, {len(self.held)} keys, <secret>)"


__all__ = ["MAX_JOIN_KEYS", "HeldJoinKey", "JoinKeyring"]
