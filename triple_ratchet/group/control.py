"""The control envelope (spec 11 version 2, Decisions): every entry of an epoch change.

Every entry of epoch e's control mailbox is

    entry   = CBOR[type, 2, suite, group id, e, author index, body (bytes), signature]
    signed  = CBOR of the first seven fields

signed by its author — with the identity key (label `identity: group control entry`) for
proposals, records, announcements and rejoin requests, with the signing key of the author's
current record (label `member: control entry`) for everything else (round items, TICK, REVEAL,
evidence, convictions, commits). The body is the entry's value (a signed proposal, a record, …);
the envelope binds it to one group, epoch and author position, so a value copied into another
epoch's mailbox or under another author does not verify there.

Entries travel padded and encrypted under the control mailbox's traffic key, exactly as version
1's attempt-mailbox items do (random nonce: every member writes under the one key):

    ct   = AEAD(traffic_key, nonce, pad(entry), "triple-ratchet v2 control aad" ‖ mailbox id)
    blob = CBOR[0x22, 2, mailbox id, nonce, ct]
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from triple_ratchet import cbor
from triple_ratchet.errors import DecodeError, LimitExceeded, ProtocolError, UsageError
from triple_ratchet.group.key_schedule import MAX_EPOCH, MAX_GROUP_SIZE_V2
from triple_ratchet.group.message import PAD_BUCKETS, pad, unpad
from triple_ratchet.group.records import (
    LABEL_MEMBER_CONTROL_ENTRY,
    MAX_GROUP_ID_LEN,
    member_sign,
    member_verify,
)
from triple_ratchet.identity import LABEL_IDENTITY_CONTROL_ENTRY, Identity, IdentityKeyPair
from triple_ratchet.mailbox import MAILBOX_ID_LEN
from triple_ratchet.random import RandomSource, system_random
from triple_ratchet.suites import SigningKey, Suite, VerifyingKey, suite_by_id

LABEL_CONTROL_AAD = b"triple-ratchet v2 control aad"

WIRE_CONTROL = 0x22
VERSION = 2

# Entry types (the whole registry; anything else is refused).
TYPE_PROPOSAL = 1
TYPE_RECORD = 2
TYPE_ANNOUNCEMENT = 3
TYPE_ROUND1 = 4
TYPE_ROUND3 = 5
TYPE_TICK = 6
TYPE_REVEAL = 7
TYPE_EVIDENCE = 8
TYPE_CONVICTION = 9
TYPE_COMMIT = 10
TYPE_REJOIN_REQUEST = 11
TYPES = frozenset(range(TYPE_PROPOSAL, TYPE_REJOIN_REQUEST + 1))
# Signed with the identity key; every other type with the author's current record signing key.
# A rejoin request comes from a member that may no longer hold its record keys.
IDENTITY_SIGNED_TYPES = frozenset({TYPE_PROPOSAL, TYPE_RECORD, TYPE_ANNOUNCEMENT,
                                   TYPE_REJOIN_REQUEST})

# The largest padding bucket holds the whole signed entry (a 1,000-member commit needs
# ~118 KB of its 128 KiB); the blob adds nonce, tag and framing.
MAX_ENTRY_LEN = PAD_BUCKETS[-1] - 1
MAX_BODY_LEN = MAX_ENTRY_LEN - 256
MAX_CONTROL_BLOB_LEN = PAD_BUCKETS[-1] + 256
MAX_SIGNATURE_LEN = 64


@dataclass(frozen=True)
class ControlEntry:
    """One control-mailbox entry, decoded; `verify_*` checks its signature."""

    entry_type: int
    suite: Suite
    group_id: bytes
    epoch: int
    author: int  # roster position of the author in epoch e, 0..n-1
    body: bytes = field(repr=False)
    signature: bytes = field(repr=False)

    @property
    def identity_signed(self) -> bool:
        return self.entry_type in IDENTITY_SIGNED_TYPES

    def signed_content(self) -> bytes:
        return _signed_content(self.entry_type, self.suite, self.group_id, self.epoch,
                               self.author, self.body)

    def to_bytes(self) -> bytes:
        return cbor.encode([self.entry_type, VERSION, self.suite.suite_id, self.group_id,
                            self.epoch, self.author, self.body, self.signature])

    def verify(self, author_identity: Identity, author_signing_key: VerifyingKey | None) -> None:
        """Check the signature with the key its type calls for: the author's identity, or the
        signing key of the author's current record (None if it has none: refused)."""
        content = self.signed_content()
        if self.identity_signed:
            author_identity.verify(LABEL_IDENTITY_CONTROL_ENTRY, content, self.signature)
        elif author_signing_key is None:
            raise ProtocolError("entry must be signed by a record key the author does not have")
        else:
            member_verify(self.suite, author_signing_key, LABEL_MEMBER_CONTROL_ENTRY, content,
                          self.signature)

    def same_as(self, other: ControlEntry) -> bool:
        """Equal signed content (never compare signature bytes: ECDSA is malleable)."""
        return hmac.compare_digest(self.signed_content(), other.signed_content())

    @classmethod
    def from_bytes(cls, data: bytes, *, suite: Suite | None = None) -> ControlEntry:
        """Decode strictly (no signature check: the caller knows the author's keys)."""
        if not isinstance(data, bytes | bytearray):
            raise UsageError("expected bytes")
        f = cbor.as_list(cbor.decode(data, max_size=MAX_ENTRY_LEN, max_items=10, max_depth=1),
                         "control entry", 8)
        entry_type = cbor.as_int(f[0], "control entry type")
        if entry_type not in TYPES:
            raise DecodeError("unknown control entry type")
        if cbor.as_int(f[1], "control entry version") != VERSION:
            raise DecodeError("not a version-2 control entry")
        s = suite_by_id(cbor.as_int(f[2], "control entry suite", maximum=0xFFFF))
        if suite is not None and s.suite_id != suite.suite_id:
            raise ProtocolError("control entry of another suite")
        group_id = cbor.as_bytes(f[3], "group id", max_length=MAX_GROUP_ID_LEN)
        if not group_id:
            raise DecodeError("control entry: empty group id")
        return cls(entry_type, s, group_id,
                   cbor.as_int(f[4], "epoch", maximum=MAX_EPOCH),
                   cbor.as_int(f[5], "author index", maximum=MAX_GROUP_SIZE_V2 - 1),
                   cbor.as_bytes(f[6], "control entry body", max_length=MAX_BODY_LEN),
                   cbor.as_bytes(f[7], "control entry signature", length=s.signature_len))


def _signed_content(entry_type: int, suite: Suite, group_id: bytes, epoch: int, author: int,
                    body: bytes) -> bytes:
    return cbor.encode([entry_type, VERSION, suite.suite_id, group_id, epoch, author, body])


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
    if not isinstance(body, bytes) or len(body) > MAX_BODY_LEN:
        raise UsageError(f"a control entry body is at most {MAX_BODY_LEN} bytes")


def sign_identity_entry(identity: IdentityKeyPair, entry_type: int, *, group_id: bytes,
                        epoch: int, author: int, body: bytes) -> ControlEntry:
    """An entry of an identity-signed type (proposal, record, announcement, rejoin request)."""
    if entry_type not in IDENTITY_SIGNED_TYPES:
        raise UsageError("this entry type is signed with the record signing key")
    _check_fields(entry_type, group_id, epoch, author, body)
    suite = identity.suite
    content = _signed_content(entry_type, suite, group_id, epoch, author, body)
    return ControlEntry(entry_type, suite, group_id, epoch, author, body,
                        identity.sign(LABEL_IDENTITY_CONTROL_ENTRY, content))


def sign_member_entry(suite: Suite, signing_key: SigningKey, entry_type: int, *,
                      group_id: bytes, epoch: int, author: int, body: bytes) -> ControlEntry:
    """An entry signed with the author's current record signing key (everything else)."""
    if entry_type in IDENTITY_SIGNED_TYPES:
        raise UsageError("this entry type is signed with the identity key")
    _check_fields(entry_type, group_id, epoch, author, body)
    content = _signed_content(entry_type, suite, group_id, epoch, author, body)
    return ControlEntry(entry_type, suite, group_id, epoch, author, body,
                        member_sign(suite, signing_key, LABEL_MEMBER_CONTROL_ENTRY, content))


# --- The control mailbox blob -----------------------------------------------------------------


def _aad(mailbox_id: bytes) -> bytes:
    return LABEL_CONTROL_AAD + mailbox_id


def seal_entry(suite: Suite, traffic_key: bytes, mailbox_id: bytes, entry: ControlEntry,
               rng: RandomSource = system_random) -> bytes:
    """The blob to post: the entry padded and encrypted under the control traffic key."""
    if entry.suite.suite_id != suite.suite_id:
        raise UsageError("entry of another suite")
    if not isinstance(mailbox_id, bytes) or len(mailbox_id) != MAILBOX_ID_LEN:
        raise UsageError(f"mailbox id must be {MAILBOX_ID_LEN} bytes")
    encoded = entry.to_bytes()
    if len(encoded) > MAX_ENTRY_LEN:
        raise UsageError("control entry too large for the largest padding bucket")
    nonce = rng(suite.aead_nonce_len)
    ct = suite.aead_encrypt(traffic_key, nonce, pad(encoded), _aad(mailbox_id))
    return cbor.encode([WIRE_CONTROL, VERSION, mailbox_id, nonce, ct])


def open_entry(suite: Suite, traffic_key: bytes, mailbox_id: bytes, blob: bytes, *,
               group_id: bytes, epoch: int) -> ControlEntry:
    """Decrypt and decode one control-mailbox blob of this group's epoch `epoch`.

    The signature is not checked here (`ControlEntry.verify` with the author's keys). Errors:
    `LimitExceeded` (size), `DecodeError` (framing, padding, entry), `AuthenticationError`
    (AEAD), `ProtocolError` (another suite, group or epoch than this mailbox's)."""
    if not isinstance(blob, bytes | bytearray):
        raise UsageError("expected bytes")
    if len(blob) > MAX_CONTROL_BLOB_LEN:
        raise LimitExceeded("control blob too large")
    items = cbor.as_list(cbor.decode(blob, max_size=MAX_CONTROL_BLOB_LEN, max_items=8,
                                     max_depth=1), "control blob", length=5)
    if cbor.as_int(items[0], "type") != WIRE_CONTROL:
        raise DecodeError("not a control blob")
    if cbor.as_int(items[1], "version") != VERSION:
        raise DecodeError("not a version-2 control blob")
    if not hmac.compare_digest(cbor.as_bytes(items[2], "mailbox id", length=MAILBOX_ID_LEN),
                               mailbox_id):
        raise DecodeError("control blob for another mailbox")
    nonce = cbor.as_bytes(items[3], "nonce", length=suite.aead_nonce_len)
    ct = cbor.as_bytes(items[4], "ciphertext", max_length=PAD_BUCKETS[-1] + suite.aead_tag_len)
    if len(ct) - suite.aead_tag_len not in PAD_BUCKETS:
        raise DecodeError("ciphertext length is not a padding bucket")
    entry = ControlEntry.from_bytes(
        unpad(suite.aead_decrypt(traffic_key, nonce, ct, _aad(mailbox_id))), suite=suite)
    if not hmac.compare_digest(entry.group_id, group_id) or entry.epoch != epoch:
        raise ProtocolError("control entry for another group or epoch than its mailbox")
    return entry


__all__ = [
    "IDENTITY_SIGNED_TYPES",
    "LABEL_CONTROL_AAD",
    "TYPES",
    "TYPE_ANNOUNCEMENT",
    "TYPE_COMMIT",
    "TYPE_CONVICTION",
    "TYPE_EVIDENCE",
    "TYPE_PROPOSAL",
    "TYPE_RECORD",
    "TYPE_REJOIN_REQUEST",
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
