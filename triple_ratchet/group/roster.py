"""The roster of version 2 (spec 11.v2.8).

    roster entry = CBOR[identity, keys (bytes), posted_at (uint, Unix ms), anchor (Nh bytes)]
    roster       = [roster entry, …]                      (1..MAX_GROUP_SIZE entries)
    roster_hash  = H("triple-ratchet v2 roster hash"
                     ‖ CBOR[[identity, keys_body, posted_at, anchor], …])

`keys` is the member's current `SignedRecord` or `SignedJoinKey`; `keys_body` its signed body
(signatures are not hashed: ECDSA lets anyone re-randomise them, and readers must agree on the
hash). `posted_at` is the hub time of the entry that first carried those keys (0 for the entries
of a created group). No identity or signing key appears twice (a receive key may: review F4).
A rotation record's entry carries the record's `anchor` field; a join key's or resume record's
entry the anchor of the membership it began, `anchor_of(epoch_id(e), body)` of the change that
applied it (review F3).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from triple_ratchet import cbor
from triple_ratchet.errors import LimitExceeded, ProtocolError, UsageError
from triple_ratchet.group.key_schedule import (
    MAX_GROUP_SIZE_PQ,
    MAX_GROUP_SIZE_V2,
    max_group_size,
)
from triple_ratchet.group.records import (
    MAX_EXPIRY,
    MAX_IDENTITY_LEN,
    MAX_JOIN_KEY_LEN,
    MAX_JOIN_KEY_LEN_PQ,
    MAX_RECORD_LEN,
    MAX_RECORD_LEN_PQ,
    PURPOSE_RESUME,
    JoinKey,
    MemberKeyRecord,
    anchor_of,
    decode_keys,
    identity_field,
    max_join_key_len,
    max_record_len,
)
from triple_ratchet.identity import identity_keys
from triple_ratchet.suites import Suite

LABEL_ROSTER_HASH = b"triple-ratchet v2 roster hash"

MAX_POSTED_AT = MAX_EXPIRY
MAX_KEYS_LEN = max(MAX_RECORD_LEN, MAX_JOIN_KEY_LEN)
# A hybrid suite's member keys are up to 2048 bytes but its rosters hold at most
# MAX_GROUP_SIZE_PQ (100) entries, so this (classical, 1,000-entry) bound covers both.
MAX_ROSTER_LEN = 8 + MAX_GROUP_SIZE_V2 * (MAX_IDENTITY_LEN + MAX_KEYS_LEN + 96)
assert 8 + MAX_GROUP_SIZE_PQ * (MAX_IDENTITY_LEN + max(
    MAX_RECORD_LEN_PQ, MAX_JOIN_KEY_LEN_PQ) + 96) <= MAX_ROSTER_LEN


def _array_head(length: int) -> bytes:
    """The canonical CBOR head of an array of `length` (< 2**16) elements (RFC 8949 3.1)."""
    if length < 24:
        return bytes((0x80 | length,))
    if length < 0x100:
        return bytes((0x98, length))
    if length < 0x10000:
        return b"\x99" + length.to_bytes(2, "big")
    raise UsageError("array too long for a roster")


def implied_anchor(keys: MemberKeyRecord | JoinKey, epoch_id: bytes = b"") -> bytes:
    """The anchor of an entry holding `keys`: a rotation record's own `anchor` field; for a join
    key or resume record, the one it begins when applied in the change from the epoch
    `epoch_id` (empty: epoch 0)."""
    if isinstance(keys, JoinKey) or keys.purpose == PURPOSE_RESUME:
        return anchor_of(keys.suite, epoch_id, keys.body())
    return keys.anchor


@dataclass(frozen=True)
class RosterEntry:
    identity: bytes
    keys: MemberKeyRecord | JoinKey
    posted_at: int  # hub time (Unix ms) of the entry that first carried `keys`
    anchor: bytes  # of the join key or resume record that began this membership
    # `hash_item()`, computed once; declared (not added to __dict__ later) so that every entry
    # keeps the shared attribute layout (see MemberKeyRecord).
    _hash_item: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def of(cls, keys: MemberKeyRecord | JoinKey, posted_at: int,
           epoch_id: bytes = b"") -> RosterEntry:
        """The entry of `keys`; a join key or resume record applied in the change from the
        epoch `epoch_id` (empty: creation)."""
        return cls(keys.identity, keys, posted_at, implied_anchor(keys, epoch_id))

    @property
    def receive_key(self) -> bytes:
        return self.keys.receive_key

    @property
    def signing_key(self) -> bytes:
        return self.keys.signing_key

    @property
    def counter(self) -> int:
        return self.keys.counter

    def hash_item(self) -> bytes:
        """`CBOR[identity, keys_body, posted_at, anchor]`: this entry's part of the roster hash.

        Encoded once per (immutable) entry and kept outside the fields: a roster changes by a
        few entries per epoch, so each epoch's hash re-encodes only those."""
        item = self._hash_item
        if item is None:
            # joined from the fields' heads (a cold roster encodes 1,000 of these per hash);
            # equality with the general encoder is tested
            identity, body, anchor, head = self.identity, self.keys.body(), self.anchor, (
                cbor.bstr_head)
            item = b"".join((b"\x84", head(len(identity)), identity, head(len(body)), body,
                             cbor.uint_head(self.posted_at), head(len(anchor)), anchor))
            object.__setattr__(self, "_hash_item", item)
        return item


@dataclass(frozen=True)
class Roster:
    suite: Suite
    entries: tuple[RosterEntry, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.entries) <= max_group_size(self.suite):
            raise LimitExceeded(f"a roster has 1..{max_group_size(self.suite)} members")
        for e in self.entries:
            if e.keys.suite.suite_id != self.suite.suite_id:
                raise ProtocolError("a roster entry's keys are of another suite")
            if not hmac.compare_digest(e.identity, e.keys.identity):
                raise ProtocolError("a roster entry's keys belong to another identity")
            if type(e.posted_at) is not int or not 0 <= e.posted_at <= MAX_POSTED_AT:
                raise ProtocolError("posted_at out of range")
            # A join key's or resume record's anchor depends on the epoch that applied it, which
            # the roster does not hold: its appliers set it; a rotation keeps its field's.
            if isinstance(e.keys, MemberKeyRecord) and e.keys.purpose != PURPOSE_RESUME and (
                    not hmac.compare_digest(e.anchor, e.keys.anchor)):
                raise ProtocolError("a roster entry's anchor is not the one its keys imply")
            if len(e.anchor) != self.suite.hash_len:
                raise ProtocolError("a roster entry's anchor is not Nh bytes")
        # By keys, not bytes: one identity has many valid encodings (identity_keys).
        if len({identity_keys(e.identity) for e in self.entries}) != len(self.entries):
            raise ProtocolError("a member is twice in the roster")
        # Signing keys carry a possession signature and name their signer: unique. A receive
        # key proves nothing and may be another's (review F4): a copy only makes its holder
        # unable to open its own sealing, and must not void the owner's add.
        keys = [e.signing_key for e in self.entries]
        if len(set(keys)) != len(keys):
            raise ProtocolError("a key appears twice in the roster")

    def __len__(self) -> int:
        return len(self.entries)

    def index_of(self, identity: bytes) -> int | None:
        for i, e in enumerate(self.entries):
            if hmac.compare_digest(e.identity, identity):
                return i
        return None

    def taken_keys(self, owner: bytes) -> frozenset[bytes]:
        """The keys a new record of `owner` may not use: every signing key of the roster and
        the owner's current receive key (receive keys of others may repeat, review F4)."""
        own = self.index_of(owner)
        receive = () if own is None else (self.entries[own].receive_key,)
        return frozenset((*(e.signing_key for e in self.entries), *receive))

    def to_bytes(self) -> bytes:
        return cbor.encode([[e.identity, e.keys.to_bytes(), e.posted_at, e.anchor]
                            for e in self.entries])

    def hash(self) -> bytes:
        """`roster_hash`: the CBOR array of the entries is its head followed by each entry's
        encoding, so it is joined from the entries' cached `hash_item`s (equality with the
        general encoder is tested)."""
        return self.suite.hash(b"".join((LABEL_ROSTER_HASH, _array_head(len(self.entries)),
                                         *(e.hash_item() for e in self.entries))))

    @classmethod
    def from_bytes(cls, suite: Suite, data: bytes, *, group_id: bytes) -> Roster:
        """Decode strictly and verify every entry's keys (records must be of `group_id`)."""
        if not isinstance(data, bytes | bytearray):
            raise UsageError("expected bytes")
        if len(data) > MAX_ROSTER_LEN:
            raise LimitExceeded("roster larger than its bound")
        items = cbor.as_list(cbor.decode(data, max_size=MAX_ROSTER_LEN,
                                         max_items=1 + 5 * MAX_GROUP_SIZE_V2, max_depth=2),
                             "roster")
        if not 1 <= len(items) <= MAX_GROUP_SIZE_V2:
            raise LimitExceeded(f"a roster has 1..{MAX_GROUP_SIZE_V2} members")
        if len(items) > max_group_size(suite):
            raise LimitExceeded(f"a roster has 1..{max_group_size(suite)} members")
        keys_bound = max(max_record_len(suite), max_join_key_len(suite))
        entries = []
        for item in items:
            f = cbor.as_list(item, "roster entry", 4)
            identity = identity_field(f[0], "member identity")
            raw = cbor.as_bytes(f[1], "member keys", max_length=keys_bound)
            posted_at = cbor.as_int(f[2], "posted_at", maximum=MAX_POSTED_AT)
            anchor = cbor.as_bytes(f[3], "anchor", length=suite.hash_len)
            keys = decode_keys(suite, raw)
            if isinstance(keys, MemberKeyRecord) and not hmac.compare_digest(
                    keys.group_id, group_id):
                raise ProtocolError("a roster record of another group")
            entries.append(RosterEntry(identity, keys, posted_at, anchor))
        return cls(suite, tuple(entries))


__all__ = ["LABEL_ROSTER_HASH", "Roster", "RosterEntry", "implied_anchor"]
