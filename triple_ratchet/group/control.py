"""Control entries and control blobs (spec 11.v2.2 and 11.v2.5): every entry of an epoch change.

    entry       = CBOR[type (0x40..0x49), 2, suite_id, group_id, e, author_index, body (bytes)]
    SignedEntry = CBOR[entry (bytes), signature]

`author_index` is the author's roster index in epoch e. The signature covers the `entry` bytes and
is made with the author's identity key for records (label `identity: group member keys`),
proposals (`identity: group proposal`) and announcements (`identity: key announcement`), and with
the signing key of the author's roster entry (its record, or its join key in its first epoch;
label `member: control entry`) for round items, TICK, commit, REVEAL, evidence and convictions.
Version 1's two identity labels are safe to reuse: their version-1 contents begin `0x30, 1` /
`0x31, 1`, these begin with the entry types `0x41, 2` / `0x42, 2`, so no content is both. An
entry binds its body to one group, epoch and author position: copied into another epoch's
mailbox or under another author it does not verify.

Entries travel padded and encrypted under the control mailbox's traffic key (random nonce: every
member writes under the one key):

    ct          = AEAD(traffic_key, nonce, pad(SignedEntry), "triple-ratchet v2 control aad" ‖ id)
    ControlBlob = CBOR[0x22, 2, control_mailbox_id, nonce, ct]
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from triple_ratchet import cbor
from triple_ratchet.errors import (
    DecodeError,
    LimitExceeded,
    ProtocolError,
    UnsupportedError,
    UsageError,
)
from triple_ratchet.group.key_schedule import MAX_EPOCH, MAX_GROUP_SIZE_V2
from triple_ratchet.group.message import PAD_BUCKETS, pad, unpad
from triple_ratchet.group.records import (
    LABEL_MEMBER_CONTROL_ENTRY,
    MAX_GROUP_ID_LEN,
    member_sign,
    member_verify,
)
from triple_ratchet.identity import (
    LABEL_IDENTITY_ANNOUNCEMENT,
    LABEL_IDENTITY_MEMBER_KEYS,
    LABEL_IDENTITY_PROPOSAL,
    Identity,
    IdentityKeyPair,
)
from triple_ratchet.mailbox import MAILBOX_ID_LEN
from triple_ratchet.random import RandomSource, system_random
from triple_ratchet.suites import SigningKey, Suite, VerifyingKey

LABEL_CONTROL_AAD = b"triple-ratchet v2 control aad"

WIRE_CONTROL = 0x22
VERSION = 2

# Entry types (the whole registry; anything else is refused).
TYPE_RECORD = 0x40
TYPE_PROPOSAL = 0x41
TYPE_ANNOUNCEMENT = 0x42
TYPE_ROUND1 = 0x43
TYPE_ROUND3 = 0x44
TYPE_TICK = 0x45
TYPE_COMMIT = 0x46
TYPE_REVEAL = 0x47
TYPE_EVIDENCE = 0x48
TYPE_CONVICTION = 0x49
TYPES = frozenset(range(TYPE_RECORD, TYPE_CONVICTION + 1))
# Entries signed with the author's identity key, and the label of each; every other type is
# signed with the author's current member signing key.
IDENTITY_LABELS = {
    TYPE_RECORD: LABEL_IDENTITY_MEMBER_KEYS,
    TYPE_PROPOSAL: LABEL_IDENTITY_PROPOSAL,
    TYPE_ANNOUNCEMENT: LABEL_IDENTITY_ANNOUNCEMENT,
}
IDENTITY_SIGNED_TYPES = frozenset(IDENTITY_LABELS)

# Bounds (spec 11.v2.30): a signed commit entry fills at most the largest padding bucket (a
# 1,000-member commit is about 118 KB); every other signed entry is far smaller.
MAX_COMMIT_ENTRY_LEN = PAD_BUCKETS[-1] - 1
MAX_ENTRY_LEN = 16384
MAX_CONTROL_BLOB_LEN = PAD_BUCKETS[-1] + 256


def _entry_bytes(entry_type: int, suite: Suite, group_id: bytes, epoch: int, author: int,
                 body: bytes) -> bytes:
    return cbor.encode([entry_type, VERSION, suite.suite_id, group_id, epoch, author, body])


@dataclass(frozen=True)
class ControlEntry:
    """One control entry, decoded; `verify` checks its signature with the author's keys."""

    entry_type: int
    suite: Suite
    group_id: bytes
    epoch: int
    author: int  # roster index of the author in epoch e
    body: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    # `entry_bytes()`, encoded once (decoding checks it, verifying signs over it, readers hash
    # it); outside equality, declared so every instance has it.
    _entry: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def identity_signed(self) -> bool:
        return self.entry_type in IDENTITY_SIGNED_TYPES

    def entry_bytes(self) -> bytes:
        """The `entry` (signed content): what hashes and comparisons cover (never the
        signature, which ECDSA lets anyone re-randomise)."""
        entry = self._entry
        if entry is None:
            entry = _entry_bytes(self.entry_type, self.suite, self.group_id, self.epoch,
                                 self.author, self.body)
            object.__setattr__(self, "_entry", entry)
        return entry

    def to_bytes(self) -> bytes:
        """The `SignedEntry`."""
        return cbor.encode([self.entry_bytes(), self.signature])

    def verify(self, author_identity: Identity | None,
               author_signing_key: VerifyingKey | None) -> None:
        """Check the signature with the key its type calls for: the author's identity, or the
        signing key of the author's roster entry (the one needed missing: `ProtocolError`)."""
        content = self.entry_bytes()
        label = IDENTITY_LABELS.get(self.entry_type)
        if label is not None:
            if author_identity is None:
                raise ProtocolError("entry must be signed by an identity the author lacks")
            author_identity.verify(label, content, self.signature)
        elif author_signing_key is None:
            raise ProtocolError("entry must be signed by a member key the author does not have")
        else:
            member_verify(self.suite, author_signing_key, LABEL_MEMBER_CONTROL_ENTRY, content,
                          self.signature)

    def same_as(self, other: ControlEntry) -> bool:
        """Equal `entry` bytes (never compare signature bytes)."""
        return hmac.compare_digest(self.entry_bytes(), other.entry_bytes())

    @classmethod
    def from_bytes(cls, suite: Suite, data: bytes, *, group_id: bytes,
                   epoch: int) -> ControlEntry:
        """Decode a `SignedEntry` of this group's epoch `epoch` strictly (spec 11.v2.5 step 3;
        no signature check: the caller knows the author's keys)."""
        if not isinstance(data, bytes | bytearray):
            raise UsageError("expected bytes")
        if len(data) > MAX_COMMIT_ENTRY_LEN:
            raise LimitExceeded("control entry larger than the largest bucket")
        outer = cbor.as_list(cbor.decode(data, max_size=MAX_COMMIT_ENTRY_LEN, max_items=6,
                                         max_depth=2), "signed control entry", 2)
        raw = cbor.as_bytes(outer[0], "control entry")
        f = cbor.as_list(cbor.decode(raw, max_items=10, max_depth=2), "control entry", 7)
        entry_type = cbor.as_int(f[0], "control entry type")
        if entry_type not in TYPES:
            raise DecodeError("unknown control entry type")
        if cbor.as_int(f[1], "control entry version") != VERSION:
            raise UnsupportedError("control entry of another protocol version")
        if cbor.as_int(f[2], "control entry suite", maximum=0xFFFF) != suite.suite_id:
            raise ProtocolError("control entry of another suite than the group's")
        if not hmac.compare_digest(cbor.as_bytes(f[3], "group id", max_length=MAX_GROUP_ID_LEN),
                                   group_id):
            raise ProtocolError("control entry of another group")
        if cbor.as_int(f[4], "epoch", maximum=MAX_EPOCH) != epoch:
            raise ProtocolError("control entry of another epoch than its mailbox")
        if entry_type != TYPE_COMMIT and len(data) > MAX_ENTRY_LEN:
            raise LimitExceeded(f"control entry larger than {MAX_ENTRY_LEN} bytes")
        entry = cls(entry_type, suite, bytes(group_id), epoch,
                    cbor.as_int(f[5], "author index", maximum=MAX_GROUP_SIZE_V2 - 1),
                    cbor.as_bytes(f[6], "control entry body"),
                    cbor.as_bytes(outer[1], "control entry signature",
                                  length=suite.signature_len))
        if entry.entry_bytes() != raw:  # cannot differ for canonical input; cheap insurance
            raise DecodeError("control entry is not canonical")
        return entry


def _check_fields(entry_type: int, group_id: bytes, epoch: int, author: int,
                  body: bytes) -> None:
    if entry_type not in TYPES:
        raise UsageError("unknown control entry type")
    if not isinstance(group_id, bytes) or not 1 <= len(group_id) <= MAX_GROUP_ID_LEN:
        raise UsageError(f"group id must be 1..{MAX_GROUP_ID_LEN} bytes")
    if type(epoch) is not int or not 0 <= epoch <= MAX_EPOCH:
        raise UsageError("epoch out of range")
    if type(author) is not int or not 0 <= author < MAX_GROUP_SIZE_V2:
        raise UsageError(f"author index must be 0..{MAX_GROUP_SIZE_V2 - 1}")
    if not isinstance(body, bytes):
        raise UsageError("a control entry body is bytes")


def _check_size(entry: ControlEntry) -> ControlEntry:
    bound = MAX_COMMIT_ENTRY_LEN if entry.entry_type == TYPE_COMMIT else MAX_ENTRY_LEN
    if len(entry.to_bytes()) > bound:
        raise UsageError(f"this control entry is larger than its bound ({bound} bytes)")
    return entry


def sign_identity_entry(identity: IdentityKeyPair, entry_type: int, *, group_id: bytes,
                        epoch: int, author: int, body: bytes) -> ControlEntry:
    """An entry of an identity-signed type (record, proposal, announcement)."""
    label = IDENTITY_LABELS.get(entry_type)
    if label is None:
        raise UsageError("this entry type is signed with the member signing key")
    _check_fields(entry_type, group_id, epoch, author, body)
    suite = identity.suite
    content = _entry_bytes(entry_type, suite, group_id, epoch, author, body)
    return _check_size(ControlEntry(entry_type, suite, group_id, epoch, author, body,
                                    identity.sign(label, content)))


def sign_member_entry(suite: Suite, signing_key: SigningKey, entry_type: int, *,
                      group_id: bytes, epoch: int, author: int, body: bytes) -> ControlEntry:
    """An entry signed with the author's current member signing key (every other type)."""
    if entry_type in IDENTITY_SIGNED_TYPES:
        raise UsageError("this entry type is signed with the identity key")
    _check_fields(entry_type, group_id, epoch, author, body)
    content = _entry_bytes(entry_type, suite, group_id, epoch, author, body)
    return _check_size(ControlEntry(
        entry_type, suite, group_id, epoch, author, body,
        member_sign(suite, signing_key, LABEL_MEMBER_CONTROL_ENTRY, content)))


# --- The control mailbox blob -----------------------------------------------------------------


def _aad(mailbox_id: bytes) -> bytes:
    return LABEL_CONTROL_AAD + mailbox_id


def seal_entry(suite: Suite, traffic_key: bytes, mailbox_id: bytes, entry: ControlEntry,
               rng: RandomSource = system_random) -> bytes:
    """The `ControlBlob` to post: the signed entry padded and encrypted under the traffic key."""
    if entry.suite.suite_id != suite.suite_id:
        raise UsageError("entry of another suite")
    if not isinstance(mailbox_id, bytes) or len(mailbox_id) != MAILBOX_ID_LEN:
        raise UsageError(f"mailbox id must be {MAILBOX_ID_LEN} bytes")
    nonce = rng(suite.aead_nonce_len)
    ct = suite.aead_encrypt(traffic_key, nonce, pad(_check_size(entry).to_bytes()),
                            _aad(mailbox_id))
    return cbor.encode([WIRE_CONTROL, VERSION, mailbox_id, nonce, ct])


def open_entry(suite: Suite, traffic_key: bytes, mailbox_id: bytes, blob: bytes, *,
               group_id: bytes, epoch: int, roster_size: int) -> ControlEntry:
    """Decrypt and decode one control blob of this group's epoch `epoch` (spec 11.v2.5 steps
    1-4 but the signature, which `ControlEntry.verify` checks with the author's keys).

    `LimitExceeded` (size), `DecodeError` (framing, bucket, padding, entry),
    `UnsupportedError` (blob version), `AuthenticationError` (AEAD), `ProtocolError` (another
    mailbox, suite, group or epoch; an author index outside the roster of `roster_size`)."""
    if not isinstance(blob, bytes | bytearray):
        raise UsageError("expected bytes")
    if len(blob) > MAX_CONTROL_BLOB_LEN:
        raise LimitExceeded("control blob too large")
    items = cbor.as_list(cbor.decode(blob, max_size=MAX_CONTROL_BLOB_LEN, max_items=8,
                                     max_depth=1), "control blob", length=5)
    if cbor.as_int(items[0], "type") != WIRE_CONTROL:
        raise DecodeError("not a control blob")
    if cbor.as_int(items[1], "version") != VERSION:
        raise UnsupportedError("control blob of another protocol version")
    if not hmac.compare_digest(cbor.as_bytes(items[2], "mailbox id", length=MAILBOX_ID_LEN),
                               mailbox_id):
        raise ProtocolError("control blob for another mailbox")
    nonce = cbor.as_bytes(items[3], "nonce", length=suite.aead_nonce_len)
    ct = cbor.as_bytes(items[4], "ciphertext", max_length=PAD_BUCKETS[-1] + suite.aead_tag_len)
    if len(ct) - suite.aead_tag_len not in PAD_BUCKETS:
        raise DecodeError("ciphertext length is not a padding bucket")
    entry = ControlEntry.from_bytes(
        suite, unpad(suite.aead_decrypt(traffic_key, nonce, ct, _aad(mailbox_id))),
        group_id=group_id, epoch=epoch)
    if entry.author >= roster_size:
        raise ProtocolError("control entry author outside the roster")
    return entry


__all__ = [
    "IDENTITY_LABELS",
    "IDENTITY_SIGNED_TYPES",
    "LABEL_CONTROL_AAD",
    "TYPES",
    "TYPE_ANNOUNCEMENT",
    "TYPE_COMMIT",
    "TYPE_CONVICTION",
    "TYPE_EVIDENCE",
    "TYPE_PROPOSAL",
    "TYPE_RECORD",
    "TYPE_REVEAL",
    "TYPE_ROUND1",
    "TYPE_ROUND3",
    "TYPE_TICK",
    "ControlEntry",
    "open_entry",
    "seal_entry",
    "sign_identity_entry",
    "sign_member_entry",
]
