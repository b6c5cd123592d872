"""Proposals of version 2 (spec 11 version 2, rule R5): a member's signed request for a change.

    content  = CBOR[kind, group id, e, epoch_id(e), author (identity encoding), change]
    proposal = CBOR[kind, group id, e, epoch_id(e), author, change, signature]

signed by the author's identity key (label `identity: v2 group proposal`: version 1's proposal
label signs version 1's layout, and both versions live side by side until the switch). The
change depends on the kind:

| kind | change |
|---|---|
| 0 add | the joiner's join key (its signed encoding, bytes) |
| 1 remove | the identity encoding of the member to remove (bytes) |
| 2 refresh | the empty byte string |
| 3 resume | CBOR array [resume record (its signed encoding, bytes), inbox id (32 bytes)] |

A proposal is a request: whether it is valid at its place and whether it is void when applied
depends on the roster and the control mailbox (R5), which the group layer judges; this module
decodes strictly and verifies. The applied-proposals hash names the proposals an attempt applies,
in order, by their signed contents.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field

from triple_ratchet import cbor
from triple_ratchet.errors import DecodeError, LimitExceeded, ProtocolError, UsageError
from triple_ratchet.group.key_schedule import EPOCH_ID_LEN, MAX_EPOCH, MAX_GROUP_SIZE_V2
from triple_ratchet.group.records import (
    MAX_GROUP_ID_LEN,
    MAX_IDENTITY_LEN,
    MAX_JOIN_KEY_LEN,
    MAX_RECORD_LEN,
    PURPOSE_RESUME,
    JoinKey,
    MemberKeyRecord,
)
from triple_ratchet.identity import LABEL_IDENTITY_PROPOSAL_V2, Identity, IdentityKeyPair
from triple_ratchet.mailbox import MAILBOX_ID_LEN
from triple_ratchet.suites import Suite

LABEL_APPLIED_PROPOSALS = b"triple-ratchet v2 applied proposals hash"

KIND_ADD = 0
KIND_REMOVE = 1
KIND_REFRESH = 2
KIND_RESUME = 3
KINDS = frozenset({KIND_ADD, KIND_REMOVE, KIND_REFRESH, KIND_RESUME})

MAX_PROPOSAL_LEN = 4096
"""The largest proposal, a resume (record ~470 bytes) or an add (join key ~420), is under 1.2 KB."""
MAX_APPLIED = 2 * MAX_GROUP_SIZE_V2
"""Bound on one attempt's list of proposals (the carried set): each member has at most one
pending proposal, and each proposal's author is a member."""


def _check_epoch_id(epoch: int, epoch_id: bytes) -> None:
    if len(epoch_id) != (0 if epoch == 0 else EPOCH_ID_LEN):
        raise DecodeError("epoch id: empty for epoch 0, 32 bytes after")


@dataclass(frozen=True)
class ResumeChange:
    """What a resume proposal carries: the member's resume record and its inbox."""

    record: MemberKeyRecord
    inbox_id: bytes


Change = JoinKey | bytes | ResumeChange | None


@dataclass(frozen=True)
class ChangeProposal:
    """A verified version-2 proposal. `change` is a `JoinKey` (add), the removed member's
    identity encoding (remove), None (refresh) or a `ResumeChange` (resume)."""

    suite: Suite
    kind: int
    group_id: bytes
    epoch: int
    epoch_id: bytes
    author: bytes  # identity encoding
    change: Change
    signature: bytes = field(repr=False)

    def _change_value(self) -> cbor.CborEncodable:
        if self.kind == KIND_ADD and isinstance(self.change, JoinKey):
            return self.change.to_bytes()
        if self.kind == KIND_REMOVE and isinstance(self.change, bytes):
            return self.change
        if self.kind == KIND_REFRESH and self.change is None:
            return b""
        if self.kind == KIND_RESUME and isinstance(self.change, ResumeChange):
            return [self.change.record.to_bytes(), self.change.inbox_id]
        raise UsageError("the change does not match the proposal kind")

    def _fields(self) -> list[cbor.CborEncodable]:
        return [self.kind, self.group_id, self.epoch, self.epoch_id, self.author,
                self._change_value()]

    def content(self) -> bytes:
        return cbor.encode(self._fields())

    def to_bytes(self) -> bytes:
        return cbor.encode([*self._fields(), self.signature])

    def subject(self) -> bytes | None:
        """The identity the change is about (joiner, removed or resumed member), or None."""
        if isinstance(self.change, JoinKey):
            return self.change.identity
        if isinstance(self.change, bytes):
            return self.change
        if isinstance(self.change, ResumeChange):
            return self.change.record.identity
        return None

    def same_as(self, other: ChangeProposal) -> bool:
        """Duplicates count once: equal signed content (never the signature bytes)."""
        return hmac.compare_digest(self.content(), other.content())

    @classmethod
    def sign(cls, identity: IdentityKeyPair, kind: int, *, group_id: bytes, epoch: int,
             epoch_id: bytes, change: Change) -> ChangeProposal:
        suite = identity.suite
        if kind not in KINDS:
            raise UsageError("unknown proposal kind")
        if not isinstance(group_id, bytes) or not 1 <= len(group_id) <= MAX_GROUP_ID_LEN:
            raise UsageError(f"group id must be 1..{MAX_GROUP_ID_LEN} bytes")
        if type(epoch) is not int or not 0 <= epoch <= MAX_EPOCH:
            raise UsageError("epoch out of range")
        if not isinstance(epoch_id, bytes) or len(epoch_id) != (0 if epoch == 0 else 32):
            raise UsageError("epoch id: empty for epoch 0, 32 bytes after")
        if isinstance(change, ResumeChange) and change.record.purpose != PURPOSE_RESUME:
            raise UsageError("a resume proposal carries a record of purpose resume")
        unsigned = cls(suite, kind, group_id, epoch, epoch_id, identity.public.to_bytes(),
                       change, b"")
        content = unsigned.content()  # UsageError if the change does not match the kind
        return cls(suite, kind, group_id, epoch, epoch_id, unsigned.author, change,
                   identity.sign(LABEL_IDENTITY_PROPOSAL_V2, content))

    @classmethod
    def from_bytes(cls, suite: Suite, data: bytes) -> ChangeProposal:
        """Decode strictly, verify the author's signature and the carried join key or record.

        `DecodeError`/`InvalidKey`, `LimitExceeded`, `ProtocolError` (author of another suite),
        `InvalidSignature`."""
        if not isinstance(data, bytes | bytearray):
            raise UsageError("expected bytes")
        f = cbor.as_list(cbor.decode(data, max_size=MAX_PROPOSAL_LEN, max_items=16,
                                     max_depth=2), "proposal", 7)
        kind = cbor.as_int(f[0], "proposal kind")
        if kind not in KINDS:
            raise DecodeError("unknown proposal kind")
        group_id = cbor.as_bytes(f[1], "group id", max_length=MAX_GROUP_ID_LEN)
        if not group_id:
            raise DecodeError("proposal: empty group id")
        epoch = cbor.as_int(f[2], "epoch", maximum=MAX_EPOCH)
        epoch_id = cbor.as_bytes(f[3], "epoch id", max_length=EPOCH_ID_LEN)
        _check_epoch_id(epoch, epoch_id)
        author = cbor.as_bytes(f[4], "proposal author", max_length=MAX_IDENTITY_LEN)
        signature = cbor.as_bytes(f[6], "proposal signature", length=suite.signature_len)
        # Cheap shape checks of the change before any signature is verified.
        raw = f[5]
        carried = b""  # the join key or resume record, verified after the author's signature
        inbox_id = b""
        change: Change = None
        if kind == KIND_ADD:
            carried = cbor.as_bytes(raw, "added join key", max_length=MAX_JOIN_KEY_LEN)
        elif kind == KIND_REMOVE:
            change = cbor.as_bytes(raw, "removed identity", max_length=MAX_IDENTITY_LEN)
            if not change:
                raise DecodeError("proposal: empty removed identity")
        elif kind == KIND_REFRESH:
            cbor.as_bytes(raw, "refresh change", length=0)
        else:
            pair = cbor.as_list(raw, "resume change", 2)
            carried = cbor.as_bytes(pair[0], "resume record", max_length=MAX_RECORD_LEN)
            inbox_id = cbor.as_bytes(pair[1], "inbox id", length=MAILBOX_ID_LEN)
        Identity.from_bytes(author, suite).verify(
            LABEL_IDENTITY_PROPOSAL_V2, cbor.encode(f[:6]), signature)
        if kind == KIND_ADD:
            change = JoinKey.from_bytes(suite, carried)
        elif kind == KIND_RESUME:
            record = MemberKeyRecord.from_bytes(suite, carried)
            if record.purpose != PURPOSE_RESUME:
                # A rotation record wrapped as a resume (R12): refused.
                raise ProtocolError("a resume proposal must carry a record of purpose resume")
            if not hmac.compare_digest(record.group_id, group_id):
                raise ProtocolError("resume record for another group")
            change = ResumeChange(record, inbox_id)
        return cls(suite, kind, group_id, epoch, epoch_id, author, change, signature)


def applied_proposals_hash(suite: Suite, proposals: Sequence[ChangeProposal]) -> bytes:
    """H(LABEL_APPLIED_PROPOSALS ‖ CBOR[content_1, …, content_m]): the proposals an attempt
    applies, in application order (void ones included: voiding is computed from them)."""
    if len(proposals) > MAX_APPLIED:
        raise LimitExceeded(f"an attempt applies at most {MAX_APPLIED} proposals")
    return suite.hash(LABEL_APPLIED_PROPOSALS + cbor.encode([p.content() for p in proposals]))


__all__ = [
    "KINDS",
    "KIND_ADD",
    "KIND_REFRESH",
    "KIND_REMOVE",
    "KIND_RESUME",
    "LABEL_APPLIED_PROPOSALS",
    "ChangeProposal",
    "ResumeChange",
    "applied_proposals_hash",
]
