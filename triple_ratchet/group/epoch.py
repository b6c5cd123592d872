"""One epoch as a member holds it: roster, derived secrets and every sender chain.

An `EpochState` is an immutable value; a message step computes a new one and the session swaps
it in only when the step succeeded (transactional by construction). It is built from the key
schedule's outputs at activation and holds nothing from which the epoch secret could be
recomputed.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from triple_ratchet import cbor
from triple_ratchet.errors import DecodeError, ProtocolError, UnsupportedError, UsageError
from triple_ratchet.group.key_schedule import MAX_GROUP_SIZE_V2, EpochSecretsV2
from triple_ratchet.group.message import (
    MAX_BODY,
    MAX_GROUP_ID_LEN,
    V1_UNSUPPORTED,
    VERSION,
    sender_data_mac,
)
from triple_ratchet.group.ordering import MAX_HELD, Held, SenderOrder
from triple_ratchet.group.sender_chain import (
    MAX_SKIPPED,
    KeyedHmac,
    ReceivingChain,
    SendingChain,
)
from triple_ratchet.mailbox import MAILBOX_ID_LEN
from triple_ratchet.suites import SigningKey, Suite, VerifyingKey, suite_by_id

# Recent message digests kept to tell a receiver whether a message's predecessor is known.
MAX_KNOWN_DIGESTS = 1024
# Largest roster this library accepts (R13: the committee's cost does not grow with n²).
MAX_GROUP_SIZE = MAX_GROUP_SIZE_V2
# Group-wide caps (spec 09 §9.11, R13), so memory does not grow with n × per-sender bounds.
MAX_SKIPPED_TOTAL = 4096
MAX_HELD_TOTAL = 1024
# Hashes of our last sent blobs, kept to check the hub's echoes of them (older echoes cannot
# be checked: we keep no key that could open our own messages).
MAX_ECHO_CHECK = MAX_KNOWN_DIGESTS
# CBOR items of one saved epoch state at most: the fixed fields, the roster, every receiving
# chain and the group-wide skipped keys, every sender's order and the group-wide held messages,
# the known digests. A decode is charged against it before anything is built, so a hostile saved
# state is refused at the first array header that overdraws it instead of after building
# millions of items.
MAX_EPOCH_STATE_ITEMS = (
    32 + MAX_GROUP_SIZE * 3
    + MAX_GROUP_SIZE * 5 + MAX_SKIPPED_TOTAL * 4
    + MAX_GROUP_SIZE * 3 + MAX_HELD_TOTAL * 8
    + MAX_KNOWN_DIGESTS + MAX_ECHO_CHECK + 2)


_T = TypeVar("_T")


def evolve(value: _T, **changes: Any) -> _T:
    """`dataclasses.replace` for the frozen state values of the message path.

    `replace` re-runs `__init__` (one `object.__setattr__` per field, ~15 µs for an `EpochState`)
    several times per message; this copies the instance dict instead. Only for frozen dataclasses
    without `__post_init__` or validation in `__init__` (EpochState, the session's _State, Grace).
    """
    new = object.__new__(type(value))
    attributes = new.__dict__
    attributes.update(value.__dict__)
    attributes.update(changes)
    if len(attributes) != len(value.__dict__):  # every field is set, so a new name is a typo
        raise TypeError(f"{type(value).__name__} has no field among {sorted(changes)}")
    return new


class KnownDigests:
    """The last `MAX_KNOWN_DIGESTS` digests, an immutable value with O(1) `add` and lookup.

    Copying a 1024-entry tuple and scanning it cost ~35 µs per message. Instead, values share
    one append-only log and a digest -> latest-position map: a value is (log, end) and holds
    log[end - MAX_KNOWN_DIGESTS:end]. Only the value at the log's tip appends in place; any
    other (an older state kept after a failed step) copies its window into a new log first, so
    no value ever sees another's additions. The log is compacted when it reaches twice the
    window (amortized O(1)).
    """

    __slots__ = ("_end", "_log", "_pos")

    def __init__(self, digests: Iterable[bytes] = ()) -> None:
        self._log: list[bytes] = list(digests)[-MAX_KNOWN_DIGESTS:]
        self._pos: dict[bytes, int] = {d: i for i, d in enumerate(self._log)}
        self._end = len(self._log)

    def add(self, digest: bytes) -> KnownDigests:
        log = self._log
        if len(log) != self._end or self._end >= 2 * MAX_KNOWN_DIGESTS:
            return KnownDigests(self.window()).add(digest)
        log.append(digest)
        self._pos[digest] = self._end
        new = object.__new__(KnownDigests)
        new._log, new._pos, new._end = log, self._pos, self._end + 1
        return new

    def window(self) -> list[bytes]:
        return self._log[max(0, self._end - MAX_KNOWN_DIGESTS):self._end]

    def __contains__(self, digest: object) -> bool:
        p = self._pos.get(digest) if isinstance(digest, bytes) else None
        if p is None:
            return False  # never added to this log: not in any window of it
        if p < self._end:
            # `p` is the latest position of `digest` at or before our end.
            return p >= self._end - MAX_KNOWN_DIGESTS
        # Re-added after our end by a value that was discarded: look in our window itself.
        return digest in self.window()

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.window())

    def __len__(self) -> int:
        return min(self._end, MAX_KNOWN_DIGESTS)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KnownDigests) and self.window() == other.window()

    def __hash__(self) -> int:
        return hash(tuple(self.window()))

    def __repr__(self) -> str:
        return f"KnownDigests({len(self)})"


class _KeyedMac:
    """An HMAC object and the key it was made with (to tell it still matches the state). Only
    ever copied, never updated, so copies of a state may share it (and deep copies too: an
    HMAC object cannot be deep-copied itself)."""

    __slots__ = ("key", "mac")

    def __init__(self, key: bytes, mac: KeyedHmac) -> None:
        self.key, self.mac = key, mac

    def __copy__(self) -> _KeyedMac:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> _KeyedMac:
        return self

    def __repr__(self) -> str:
        return "_KeyedMac(<secret>)"


@dataclass(frozen=True)
class Member:
    """A roster entry: the member's identity key and its per-epoch signing key (public)."""

    identity_key: bytes
    signing_key: bytes


@dataclass(frozen=True)
class EpochState:
    suite_id: int
    group_id: bytes
    epoch: int
    roster: tuple[Member, ...]
    own_index: int
    public_epoch_id: bytes
    mailbox_id: bytes
    mailbox_access_key: bytes = field(repr=False)
    sender_data_secret: bytes = field(repr=False)
    init_secret: bytes = field(repr=False)  # init_secret(e+1), input to the next change
    signing_key: bytes = field(repr=False)  # own per-epoch signing key (private)
    sending: SendingChain = field(repr=False)
    # One chain per member; None at our own index (we never decrypt our own echoes, so no key
    # that could open our past messages is kept).
    receiving: tuple[ReceivingChain | None, ...] = field(repr=False)
    order: tuple[SenderOrder, ...] = field(repr=False)
    last_seen: bytes = b""  # digest of the last message this member sent or delivered
    known_digests: KnownDigests = field(default_factory=KnownDigests, repr=False)
    last_sent: bytes = b""  # digest of the last message we sent (announced at an epoch change)
    # Hash of each of our last sent blobs, oldest first, the last for generation sending - 1.
    sent_blobs: tuple[bytes, ...] = field(default=(), repr=False)
    # Parsed form of `signing_key`, filled on first use (parsing a P-256 key costs ~70 µs).
    signer: SigningKey | None = field(default=None, compare=False, repr=False)
    # Parsed roster signing keys by encoding, filled on first use (decoding validates the point:
    # ~50 µs for Ed25519, ~70 µs for P-256). Public data; shared by the states derived from
    # this one, and keyed by encoding, so a stale entry can never be returned for another key.
    verifiers: dict[bytes, VerifyingKey] = field(default_factory=dict, compare=False,
                                                 repr=False)
    # HMAC keyed with `sender_data_secret`, filled on first use: copying it skips the key
    # setup in both per-message derivations.
    sd_mac: _KeyedMac | None = field(default=None, compare=False, repr=False)
    # Wire version of the epoch's messages (spec 09 §9.11; saved, so that a state of another
    # version is refused by name).
    version: int = VERSION

    @property
    def suite(self) -> Suite:
        return suite_by_id(self.suite_id)

    @classmethod
    def activate(cls, *, suite: Suite, group_id: bytes, epoch: int,
                 roster: Sequence[Member], own_index: int, chain_roots: Sequence[bytes],
                 sender_data_secret: bytes, mailbox_access_key: bytes, mailbox_id: bytes,
                 public_epoch_id: bytes, init_secret: bytes, signing_key: SigningKey,
                 version: int = VERSION) -> EpochState:
        """Build the state from the key schedule's outputs for this epoch."""
        if version != VERSION:
            raise UsageError("unknown group message version")
        if not 0 < len(roster) <= MAX_GROUP_SIZE or len(chain_roots) != len(roster):
            raise UsageError("roster and chain roots must have the same size, 1..MAX_GROUP_SIZE")
        if not 0 <= own_index < len(roster):
            raise UsageError("own index outside the roster")
        if not hmac.compare_digest(signing_key.public_key().to_bytes(),
                                   roster[own_index].signing_key):
            raise UsageError("own signing key does not match the roster")
        if len(group_id) > MAX_GROUP_ID_LEN:
            raise UsageError("group id too long")
        return cls(
            suite.suite_id, group_id, epoch, tuple(roster), own_index, public_epoch_id,
            mailbox_id, mailbox_access_key, sender_data_secret, init_secret,
            signing_key.to_bytes(), SendingChain(chain_roots[own_index]),
            tuple(None if i == own_index else ReceivingChain(root)
                  for i, root in enumerate(chain_roots)),
            tuple(SenderOrder() for _ in roster), version=version,
        )

    @classmethod
    def from_secrets_v2(cls, secrets: EpochSecretsV2, *, group_id: bytes, epoch: int,
                        roster: Sequence[Member], own_index: int,
                        signing_key: SigningKey) -> EpochState:
        """A version-2 epoch (spec 09 §9.11) from `derive_epoch_v2`'s output and the epoch's
        roster as `Member(identity, current record signing key)` pairs (`v2_members`);
        `signing_key` is the private key of our own current record (or join key)."""
        return cls.activate(
            suite=secrets.suite, group_id=group_id, epoch=epoch, roster=roster,
            own_index=own_index, chain_roots=secrets.chain_roots,
            sender_data_secret=secrets.sender_data_secret,
            mailbox_access_key=secrets.mailbox.access_key.to_bytes(),
            mailbox_id=secrets.mailbox.mailbox_id, public_epoch_id=secrets.epoch_id,
            init_secret=secrets.init_secret_next, signing_key=signing_key,
            version=VERSION)

    def skipped_total(self) -> int:
        return sum(len(c.skipped) for c in self.receiving if c is not None)

    def held_total(self) -> int:
        return sum(len(o.held) for o in self.order)

    def own_signing_key(self) -> SigningKey:
        signer = self.signer
        if signer is None:
            signer = self.suite.signing_from_bytes(self.signing_key)
            object.__setattr__(self, "signer", signer)
        return signer

    def sender_data_hmac(self) -> KeyedHmac:
        cached = self.sd_mac
        if cached is None or cached.key is not self.sender_data_secret:
            cached = _KeyedMac(self.sender_data_secret,
                               sender_data_mac(self.suite, self.sender_data_secret))
            object.__setattr__(self, "sd_mac", cached)
        return cached.mac

    def verifying_key(self, index: int) -> VerifyingKey:
        if not 0 <= index < len(self.roster):
            raise ProtocolError("sender index is not in the roster")
        encoded = self.roster[index].signing_key
        key = self.verifiers.get(encoded)
        if key is None:
            key = self.verifiers[encoded] = self.suite.verifying_from_bytes(encoded)
        return key

    def index_of(self, identity_key: bytes) -> int | None:
        for i, member in enumerate(self.roster):
            if hmac.compare_digest(member.identity_key, identity_key):
                return i
        return None

    def receiving_chain(self, index: int) -> ReceivingChain:
        chain = self.receiving[index] if 0 <= index < len(self.receiving) else None
        if chain is None:
            raise ProtocolError("no receiving chain for this sender index")
        return chain

    def with_receiving(self, index: int, chain: ReceivingChain) -> EpochState:
        # O(n) in the roster (at most MAX_GROUP_SIZE references), nothing per message.
        chains = (*self.receiving[:index], chain, *self.receiving[index + 1:])
        return evolve(self, receiving=chains)

    def with_order(self, index: int, order: SenderOrder) -> EpochState:
        if self.order[index] is order:
            return self
        return evolve(self, order=(*self.order[:index], order, *self.order[index + 1:]))

    def with_seen(self, digest: bytes) -> EpochState:
        return evolve(self, last_seen=digest, known_digests=self.known_digests.add(digest))

    def knows(self, digest: bytes) -> bool:
        # Digests are public (they travel inside messages), so a plain comparison is fine.
        return digest in self.known_digests

    def __repr__(self) -> str:
        return (f"EpochState(group={self.group_id.hex()}, epoch={self.epoch}, "
                f"n={len(self.roster)}, own_index={self.own_index}, <secrets>)")

    # --- serialization ------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return cbor.encode(self.to_cbor())

    @classmethod
    def from_bytes(cls, data: bytes, *, max_size: int) -> EpochState:
        """A saved epoch state, decoded within its own item budget (see MAX_EPOCH_STATE_ITEMS)."""
        return cls.from_cbor(cbor.decode(
            data, max_size=max_size,
            max_items=MAX_EPOCH_STATE_ITEMS, max_depth=5))

    def to_cbor(self) -> list[cbor.CborEncodable]:
        return [
            self.suite_id, self.group_id, self.epoch,
            [[m.identity_key, m.signing_key] for m in self.roster],
            self.own_index, self.public_epoch_id, self.mailbox_id, self.mailbox_access_key,
            self.sender_data_secret, self.init_secret, self.signing_key,
            [self.sending.chain_key, self.sending.generation],
            [None if c is None else [c.chain_key, c.next_generation, [list(s) for s in c.skipped]]
             for c in self.receiving],
            self.last_seen, list(self.known_digests),
            [[o.next_deliver, [[h.generation, h.content_type, h.last_seen, h.digest,
                                h.predecessor_known, h.received_ms, h.body] for h in o.held]]
             for o in self.order],
            self.last_sent, list(self.sent_blobs),
            self.version,
        ]

    @classmethod
    def from_cbor(cls, value: cbor.CborValue) -> EpochState:
        items = cbor.as_list(value, "epoch state")
        if len(items) == 18:  # version 1's epoch state had no version element
            raise UnsupportedError(V1_UNSUPPORTED)
        if len(items) != 19:
            raise DecodeError("epoch state has the wrong shape")
        if cbor.as_int(items[18], "version") != VERSION:
            raise DecodeError("epoch state of an unknown version")
        version = VERSION
        suite = suite_by_id(cbor.as_int(items[0], "suite id"))
        h = suite.hash_len
        roster_items = cbor.as_list(items[3], "roster")
        if not 0 < len(roster_items) <= MAX_GROUP_SIZE:
            raise DecodeError("roster size out of range")
        roster = []
        for r in roster_items:
            pair = cbor.as_list(r, "member", length=2)
            roster.append(Member(cbor.as_bytes(pair[0], "identity key", max_length=512),
                                 cbor.as_bytes(pair[1], "signing key", max_length=256)))
        sending = cbor.as_list(items[11], "sending chain", length=2)
        own_index = cbor.as_int(items[4], "own index", maximum=len(roster) - 1)
        chains: list[ReceivingChain | None] = []
        for i, c in enumerate(cbor.as_list(items[12], "receiving chains")):
            if c is None and i == own_index:
                chains.append(None)
                continue
            ci = cbor.as_list(c, "receiving chain", length=3)
            skipped_items = cbor.as_list(ci[2], "skipped keys")
            if len(skipped_items) > MAX_SKIPPED:
                raise DecodeError("too many skipped keys")
            skipped = []
            for s in skipped_items:
                si = cbor.as_list(s, "skipped key", length=3)
                skipped.append((cbor.as_int(si[0], "generation"),
                                cbor.as_bytes(si[1], "key", length=suite.aead_key_len),
                                cbor.as_bytes(si[2], "nonce", length=suite.aead_nonce_len)))
            chains.append(ReceivingChain(cbor.as_bytes(ci[0], "chain key", length=h),
                                         cbor.as_int(ci[1], "next generation"), tuple(skipped)))
        if len(chains) != len(roster) or chains[own_index] is not None:
            raise DecodeError("one receiving chain per other member expected")
        orders = tuple(_order_from_cbor(o, h) for o in cbor.as_list(items[15], "order"))
        if len(orders) != len(roster):
            raise DecodeError("one delivery order per member expected")
        if (sum(len(c.skipped) for c in chains if c is not None) > MAX_SKIPPED_TOTAL
                or sum(len(o.held) for o in orders) > MAX_HELD_TOTAL):
            raise DecodeError("more skipped keys or held messages than the group-wide caps")
        known = [cbor.as_bytes(d, "digest", length=h)
                 for d in cbor.as_list(items[14], "known digests")]
        if len(known) > MAX_KNOWN_DIGESTS:
            raise DecodeError("too many known digests")
        last_seen = cbor.as_bytes(items[13], "last seen", max_length=h)
        sent_blobs = cbor.as_list(items[17], "sent blob hashes")
        if len(sent_blobs) > MAX_ECHO_CHECK:
            raise DecodeError("too many sent blob hashes")
        return cls(
            suite.suite_id,
            cbor.as_bytes(items[1], "group id", max_length=MAX_GROUP_ID_LEN),
            cbor.as_int(items[2], "epoch"), tuple(roster), own_index,
            cbor.as_bytes(items[5], "public epoch id", max_length=64),
            cbor.as_bytes(items[6], "mailbox id", length=MAILBOX_ID_LEN),
            cbor.as_bytes(items[7], "mailbox access key", max_length=64),
            cbor.as_bytes(items[8], "sender data secret", max_length=64),
            cbor.as_bytes(items[9], "init secret", max_length=64),
            cbor.as_bytes(items[10], "signing key", max_length=64),
            SendingChain(cbor.as_bytes(sending[0], "chain key", length=h),
                         cbor.as_int(sending[1], "generation")),
            tuple(chains), orders, last_seen, KnownDigests(known),
            cbor.as_bytes(items[16], "last sent", max_length=h),
            tuple(cbor.as_bytes(x, "sent blob hash", length=h) for x in sent_blobs),
            version=version,
        )


def _order_from_cbor(value: cbor.CborValue, hash_len: int) -> SenderOrder:
    items = cbor.as_list(value, "sender order", length=2)
    held_items = cbor.as_list(items[1], "held messages")
    if len(held_items) > MAX_HELD:
        raise DecodeError("too many held messages")
    held = []
    for v in held_items:
        hi = cbor.as_list(v, "held message", length=7)
        held.append(Held(cbor.as_int(hi[0], "generation"), cbor.as_int(hi[1], "content type"),
                         cbor.as_bytes(hi[2], "last seen", max_length=hash_len),
                         cbor.as_bytes(hi[3], "digest", length=hash_len),
                         cbor.as_bool(hi[4], "predecessor known"),
                         cbor.as_int(hi[5], "received at"),
                         cbor.as_bytes(hi[6], "body", max_length=MAX_BODY)))
    next_deliver = cbor.as_int(items[0], "next deliver")
    generations = [h.generation for h in held]
    if generations != sorted(set(generations)) or any(g <= next_deliver for g in generations):
        raise DecodeError("held messages out of order")
    return SenderOrder(next_deliver, tuple(held))
