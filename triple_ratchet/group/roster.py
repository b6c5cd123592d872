"""The roster of version 2 (spec 11 version 2, Terms): the ordered list of
`(identity, record, posted_at)`, where `record` is the member's latest applied member key record
(or, for a member that has not rotated since it joined, its join key) and `posted_at` the hub time
of the entry that first carried that record.

    roster      = CBOR[[identity, record (signed encoding), posted_at], …]
    roster hash = H(LABEL_ROSTER_HASH ‖ CBOR[[identity, record content, posted_at], …])

The hash covers the records' signed contents, not their signatures (ECDSA signatures can be
re-randomised by anyone, and readers must agree on the hash). Identities and receive keys are
unique within a roster.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from triple_ratchet import cbor
from triple_ratchet.errors import DecodeError, LimitExceeded, ProtocolError, UsageError
from triple_ratchet.group.key_schedule import MAX_GROUP_SIZE_V2
from triple_ratchet.group.records import (
    MAX_EXPIRY,
    MAX_IDENTITY_LEN,
    MAX_JOIN_KEY_LEN,
    MAX_RECORD_LEN,
    JoinKey,
    MemberKeyRecord,
    decode_record_or_join_key,
)
from triple_ratchet.suites import Suite

LABEL_ROSTER_HASH = b"triple-ratchet v2 roster hash"

MAX_POSTED_AT = MAX_EXPIRY
MAX_ROSTER_LEN = MAX_GROUP_SIZE_V2 * (MAX_IDENTITY_LEN + max(MAX_RECORD_LEN, MAX_JOIN_KEY_LEN)
                                      + 16) + 8


@dataclass(frozen=True)
class RosterEntry:
    identity: bytes
    record: MemberKeyRecord | JoinKey
    posted_at: int  # hub time (Unix ms) of the entry that first carried `record`

    @property
    def anchor(self) -> bytes:
        """The anchor every later record of this membership must carry."""
        if isinstance(self.record, JoinKey):
            return self.record.anchor()
        return self.record.anchor

    @property
    def receive_key(self) -> bytes:
        return self.record.receive_key

    @property
    def signing_key(self) -> bytes:
        return self.record.signing_key


@dataclass(frozen=True)
class Roster:
    suite: Suite
    entries: tuple[RosterEntry, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.entries) <= MAX_GROUP_SIZE_V2:
            raise LimitExceeded(f"a roster has 1..{MAX_GROUP_SIZE_V2} members")
        identities = {e.identity for e in self.entries}
        if len(identities) != len(self.entries):
            raise ProtocolError("a member is twice in the roster")
        if len({e.receive_key for e in self.entries}) != len(self.entries):
            raise ProtocolError("two roster entries share a receive key")
        for e in self.entries:
            if not hmac.compare_digest(e.identity, e.record.identity):
                raise ProtocolError("a roster entry's record belongs to another identity")
            if e.record.suite.suite_id != self.suite.suite_id:
                raise ProtocolError("a roster entry's record is of another suite")
            if type(e.posted_at) is not int or not 0 <= e.posted_at <= MAX_POSTED_AT:
                raise ProtocolError("posted_at out of range")

    def __len__(self) -> int:
        return len(self.entries)

    def index_of(self, identity: bytes) -> int | None:
        for i, e in enumerate(self.entries):
            if hmac.compare_digest(e.identity, identity):
                return i
        return None

    def receive_keys(self) -> tuple[bytes, ...]:
        return tuple(e.receive_key for e in self.entries)

    def to_bytes(self) -> bytes:
        return cbor.encode([[e.identity, e.record.to_bytes(), e.posted_at]
                            for e in self.entries])

    def hash(self) -> bytes:
        return self.suite.hash(LABEL_ROSTER_HASH + cbor.encode(
            [[e.identity, e.record.content(), e.posted_at] for e in self.entries]))

    @classmethod
    def from_bytes(cls, suite: Suite, data: bytes, *, group_id: bytes) -> Roster:
        """Decode strictly and verify every record (members' records must be of `group_id`)."""
        if not isinstance(data, bytes | bytearray):
            raise UsageError("expected bytes")
        items = cbor.as_list(cbor.decode(data, max_size=MAX_ROSTER_LEN,
                                         max_items=1 + 4 * MAX_GROUP_SIZE_V2, max_depth=2),
                             "roster")
        if not 1 <= len(items) <= MAX_GROUP_SIZE_V2:
            raise LimitExceeded(f"a roster has 1..{MAX_GROUP_SIZE_V2} members")
        entries = []
        for item in items:
            f = cbor.as_list(item, "roster entry", 3)
            identity = cbor.as_bytes(f[0], "member identity", max_length=MAX_IDENTITY_LEN)
            raw = cbor.as_bytes(f[1], "member record",
                                max_length=max(MAX_RECORD_LEN, MAX_JOIN_KEY_LEN))
            posted_at = cbor.as_int(f[2], "posted_at", maximum=MAX_POSTED_AT)
            record = decode_record_or_join_key(suite, raw)
            if isinstance(record, MemberKeyRecord) and not hmac.compare_digest(
                    record.group_id, group_id):
                raise ProtocolError("a roster record of another group")
            entries.append(RosterEntry(identity, record, posted_at))
        if not entries:
            raise DecodeError("empty roster")
        return cls(suite, tuple(entries))


def roster_hash(suite: Suite, entries: Sequence[RosterEntry]) -> bytes:
    return Roster(suite, tuple(entries)).hash()


__all__ = ["LABEL_ROSTER_HASH", "Roster", "RosterEntry", "roster_hash"]
