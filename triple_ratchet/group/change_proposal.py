"""Proposals of version 2 (spec 11.v2.6-7, rule R5): a member's request for a change.

    proposal body = CBOR[kind, group_id, e, epoch_id(e), author (identity), change (bytes)]

travelling as the body of a proposal entry (type 0x41), whose identity signature (label
`identity: group proposal`, content = the `entry` bytes) is the proposal's signature; the entry
bytes are the proposal's **proposal bytes**. The change depends on the kind:

| kind | change |
|---|---|
| 1 add | the joiner's `SignedJoinKey` |
| 2 remove | the identity encoding of the member to remove |
| 3 refresh | empty |
| 4 resume | the resumed member's `SignedRecord`, purpose resume (from its rejoin request) |

Whether a proposal is valid at its place and whether it is void when applied depends on the
roster and the control mailbox (spec 11.v2.17), which the group layer judges; this module decodes
strictly, verifies what the proposal carries, and checks it against its entry.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from triple_ratchet import cbor
from triple_ratchet.errors import DecodeError, LimitExceeded, ProtocolError, UsageError
from triple_ratchet.group.control import TYPE_PROPOSAL, ControlEntry
from triple_ratchet.group.key_schedule import EPOCH_ID_LEN, MAX_EPOCH, MAX_GROUP_SIZE_V2
from triple_ratchet.group.records import (
    MAX_GROUP_ID_LEN,
    MAX_IDENTITY_LEN,
    PURPOSE_RESUME,
    JoinKey,
    MemberKeyRecord,
    identity_field,
    max_join_key_len,
    max_record_len,
)
from triple_ratchet.identity import Identity
from triple_ratchet.suites import Suite

LABEL_APPLIED_PROPOSALS = b"triple-ratchet v2 applied proposals"

KIND_ADD = 1
KIND_REMOVE = 2
KIND_REFRESH = 3
KIND_RESUME = 4
KINDS = frozenset({KIND_ADD, KIND_REMOVE, KIND_REFRESH, KIND_RESUME})

MAX_PROPOSAL_BODY_LEN = 2048
"""The largest body, an add or a resume, carries at most 1024 bytes of change plus a 512-byte
author and small fields."""
MAX_APPLIED = 2 * MAX_GROUP_SIZE_V2
"""Bound on one attempt's proposals: at most one pending proposal per member of the epoch, and
the carried set adds at most as many again."""

Change = JoinKey | bytes | MemberKeyRecord | None


@dataclass(frozen=True)
class ChangeProposal:
    """A decoded version-2 proposal. `change` is the `JoinKey` (add), the removed member's
    identity encoding (remove), None (refresh) or the resume `MemberKeyRecord` (resume)."""

    suite: Suite
    kind: int
    group_id: bytes
    epoch: int
    epoch_id: bytes
    author: bytes  # identity encoding
    change: Change

    def _change_bytes(self) -> bytes:
        if self.kind == KIND_ADD and isinstance(self.change, JoinKey):
            return self.change.to_bytes()
        if self.kind == KIND_REMOVE and isinstance(self.change, bytes):
            return self.change
        if self.kind == KIND_REFRESH and self.change is None:
            return b""
        if self.kind == KIND_RESUME and isinstance(self.change, MemberKeyRecord):
            return self.change.to_bytes()
        raise UsageError("the change does not match the proposal kind")

    def to_bytes(self) -> bytes:
        """The proposal body (an entry's `body`)."""
        return cbor.encode([self.kind, self.group_id, self.epoch, self.epoch_id, self.author,
                            self._change_bytes()])

    def subject(self) -> bytes | None:
        """The identity the change is about (joiner, removed or resumed member), or None."""
        if isinstance(self.change, JoinKey | MemberKeyRecord):
            return self.change.identity
        return self.change

    @classmethod
    def make(cls, suite: Suite, kind: int, *, group_id: bytes, epoch: int, epoch_id: bytes,
             author: bytes, change: Change) -> ChangeProposal:
        if kind not in KINDS:
            raise UsageError("unknown proposal kind")
        if not isinstance(group_id, bytes) or not 1 <= len(group_id) <= MAX_GROUP_ID_LEN:
            raise UsageError(f"group id must be 1..{MAX_GROUP_ID_LEN} bytes")
        if type(epoch) is not int or not 0 <= epoch <= MAX_EPOCH:
            raise UsageError("epoch out of range")
        if not isinstance(epoch_id, bytes) or len(epoch_id) != (0 if epoch == 0 else 32):
            raise UsageError("epoch id: empty for epoch 0, 32 bytes after")
        if isinstance(change, MemberKeyRecord) and change.purpose != PURPOSE_RESUME:
            raise UsageError("a resume proposal carries a record of purpose resume")
        proposal = cls(suite, kind, group_id, epoch, epoch_id, author, change)
        proposal.to_bytes()  # UsageError if the change does not match the kind
        return proposal

    @classmethod
    def from_bytes(cls, suite: Suite, body: bytes) -> ChangeProposal:
        """Decode a proposal body strictly and verify the join key or record it carries.

        `DecodeError`/`InvalidKey`, `LimitExceeded`, `UnsupportedError`, `ProtocolError` (a
        carried value of another suite; a rotation record wrapped as a resume; a resume record
        of another group), `InvalidSignature` (the carried value's signatures)."""
        if not isinstance(body, bytes | bytearray):
            raise UsageError("expected bytes")
        f = cbor.as_list(cbor.decode(body, max_size=MAX_PROPOSAL_BODY_LEN, max_items=8,
                                     max_depth=2), "proposal", 6)
        kind = cbor.as_int(f[0], "proposal kind")
        if kind not in KINDS:
            raise DecodeError("unknown proposal kind")
        group_id = cbor.as_bytes(f[1], "group id", max_length=MAX_GROUP_ID_LEN)
        if not group_id:
            raise DecodeError("proposal: empty group id")
        epoch = cbor.as_int(f[2], "epoch", maximum=MAX_EPOCH)
        epoch_id = cbor.as_bytes(f[3], "epoch id", max_length=EPOCH_ID_LEN)
        if len(epoch_id) != (0 if epoch == 0 else EPOCH_ID_LEN):
            raise DecodeError("epoch id: empty for epoch 0, 32 bytes after")
        author = identity_field(f[4], "proposal author")
        raw = cbor.as_bytes(f[5], "proposal change")
        change: Change
        if kind == KIND_ADD:
            if len(raw) > max_join_key_len(suite):
                raise LimitExceeded("added join key larger than its bound")
            change = JoinKey.from_bytes(suite, raw)
        elif kind == KIND_REMOVE:
            if not 1 <= len(raw) <= MAX_IDENTITY_LEN:
                raise DecodeError(f"removed identity must be 1..{MAX_IDENTITY_LEN} bytes")
            change = raw
        elif kind == KIND_REFRESH:
            if raw:
                raise DecodeError("a refresh carries no change")
            change = None
        else:
            if len(raw) > max_record_len(suite):
                raise LimitExceeded("resume record larger than its bound")
            change = MemberKeyRecord.from_bytes(suite, raw)
            if change.purpose != PURPOSE_RESUME:
                # A rotation record wrapped as a resume (R12): refused.
                raise ProtocolError("a rotation record is never a resume")
            if not hmac.compare_digest(change.group_id, group_id):
                raise ProtocolError("resume record for another group")
        return cls(suite, kind, group_id, epoch, epoch_id, author, change)

    @classmethod
    def from_entry(cls, entry: ControlEntry, author_identity: Identity) -> ChangeProposal:
        """The proposal of a proposal entry whose signature the caller verified: its group,
        epoch and author must be the entry's (`ProtocolError`)."""
        if entry.entry_type != TYPE_PROPOSAL:
            raise UsageError("not a proposal entry")
        proposal = cls.from_bytes(entry.suite, entry.body)
        if not hmac.compare_digest(proposal.group_id, entry.group_id) or (
                proposal.epoch != entry.epoch):
            raise ProtocolError("proposal for another group or epoch than its entry")
        if not hmac.compare_digest(proposal.author, author_identity.to_bytes()):
            raise ProtocolError("proposal author is not the entry's author")
        return proposal


def applied_proposals_hash(suite: Suite, proposals: Sequence[ControlEntry]) -> bytes:
    """H("triple-ratchet v2 applied proposals" ‖ CBOR[p_1, …, p_m]): the entry bytes of the
    proposals an attempt applies, in application order, void ones left out (m may be 0)."""
    if len(proposals) > MAX_APPLIED:
        raise LimitExceeded(f"an attempt applies at most {MAX_APPLIED} proposals")
    if any(p.entry_type != TYPE_PROPOSAL for p in proposals):
        raise UsageError("only proposal entries are applied")
    return suite.hash(LABEL_APPLIED_PROPOSALS + cbor.encode([p.entry_bytes() for p in proposals]))


__all__ = [
    "KINDS",
    "KIND_ADD",
    "KIND_REFRESH",
    "KIND_REMOVE",
    "KIND_RESUME",
    "LABEL_APPLIED_PROPOSALS",
    "ChangeProposal",
    "applied_proposals_hash",
]
