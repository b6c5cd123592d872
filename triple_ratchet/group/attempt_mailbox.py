"""The per-attempt DKG mailbox (spec 11): framing and encryption of everything of an attempt.

Announcements, signed round-1 messages, round-3 signatures and aborts travel padded and
encrypted under the attempt's traffic key (from the attempt secret in the proposal), in the
attempt's own mailbox, so joiners can read them and one hub order covers the whole attempt.
Nonces are random: every participant writes under the one traffic key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from triple_ratchet import cbor
from triple_ratchet.dkg.abort import MAX_ABORT_SIZE
from triple_ratchet.dkg.cocktail import SIGNATURE_SIZE
from triple_ratchet.dkg.ed25519 import Point, Scalar
from triple_ratchet.dkg.signature import DKG_SIGNATURE_SIZE, dkg_sign, dkg_verify
from triple_ratchet.errors import DecodeError, LimitExceeded
from triple_ratchet.group.epoch import MAX_GROUP_SIZE
from triple_ratchet.group.message import PAD_BUCKETS, pad, unpad
from triple_ratchet.mailbox import MAILBOX_ID_LEN
from triple_ratchet.random import RandomSource, system_random
from triple_ratchet.suites import Suite

LABEL_GROUP_ATTEMPT_AAD = b"triple-ratchet v1 group attempt aad"
LABEL_GROUP_ABORT_SIGNATURE = b"triple-ratchet v1 group abort"

WIRE_ATTEMPT = 0x21
VERSION = 1
MAX_ATTEMPT_BLOB_LEN = PAD_BUCKETS[-1] + 256

KIND_ANNOUNCEMENT = 1
KIND_ROUND1 = 2
KIND_ROUND3 = 3
KIND_ABORT = 4
KINDS = frozenset({KIND_ANNOUNCEMENT, KIND_ROUND1, KIND_ROUND3, KIND_ABORT})

ABORT_TIMEOUT = 1  # named members did not answer in time
ABORT_EQUIVOCATION = 2  # named member sent two different messages for one step
ABORT_BLAME = 3  # named member's share or payload failed (evidence attached)
ABORT_REASONS = frozenset({ABORT_TIMEOUT, ABORT_EQUIVOCATION, ABORT_BLAME})
# Evidence is at most section 7's largest signed abort (two signed round-1 messages).
MAX_EVIDENCE_LEN = MAX_ABORT_SIZE


def seal_item(suite: Suite, traffic_key: bytes, mailbox_id: bytes, kind: int, payload: bytes,
              rng: RandomSource = system_random) -> bytes:
    nonce = rng(suite.aead_nonce_len)
    plaintext = pad(cbor.encode([kind, payload]))
    ct = suite.aead_encrypt(traffic_key, nonce, plaintext, LABEL_GROUP_ATTEMPT_AAD + mailbox_id)
    return cbor.encode([WIRE_ATTEMPT, VERSION, mailbox_id, nonce, ct])


def peek_mailbox(blob: bytes) -> bytes | None:
    """The mailbox id of an attempt blob, or None if `blob` is not one (cheap, no crypto)."""
    if len(blob) > MAX_ATTEMPT_BLOB_LEN:
        return None
    try:
        items = cbor.as_list(cbor.decode(blob, max_size=MAX_ATTEMPT_BLOB_LEN, max_items=8,
                                         max_depth=1), "attempt blob", length=5)
        if cbor.as_int(items[0], "type") != WIRE_ATTEMPT:
            return None
        return cbor.as_bytes(items[2], "mailbox id", length=MAILBOX_ID_LEN)
    except DecodeError:
        return None


def open_item(suite: Suite, traffic_key: bytes, mailbox_id: bytes, blob: bytes
              ) -> tuple[int, bytes]:
    if len(blob) > MAX_ATTEMPT_BLOB_LEN:
        raise LimitExceeded("attempt blob too large")
    items = cbor.as_list(cbor.decode(blob, max_size=MAX_ATTEMPT_BLOB_LEN, max_items=8,
                                     max_depth=1), "attempt blob", length=5)
    if cbor.as_int(items[0], "type") != WIRE_ATTEMPT or cbor.as_int(items[1], "version") != 1:
        raise DecodeError("not a version-1 attempt blob")
    if cbor.as_bytes(items[2], "mailbox id", length=MAILBOX_ID_LEN) != mailbox_id:
        raise DecodeError("attempt blob for another mailbox")
    nonce = cbor.as_bytes(items[3], "nonce", length=suite.aead_nonce_len)
    ct = cbor.as_bytes(items[4], "ciphertext", max_length=PAD_BUCKETS[-1] + suite.aead_tag_len)
    if len(ct) - suite.aead_tag_len not in PAD_BUCKETS:
        raise DecodeError("ciphertext length is not a padding bucket")
    plaintext = unpad(suite.aead_decrypt(traffic_key, nonce, ct,
                                         LABEL_GROUP_ATTEMPT_AAD + mailbox_id))
    inner = cbor.as_list(cbor.decode(plaintext, max_size=len(plaintext), max_items=4,
                                     max_depth=1), "attempt item", length=2)
    kind = cbor.as_int(inner[0], "kind")
    if kind not in KINDS:
        raise DecodeError("unknown attempt item kind")
    return kind, cbor.as_bytes(inner[1], "attempt item payload")


@dataclass(frozen=True)
class Round3:
    sender: int  # 1..n
    signature: bytes  # CertEq signature over the transcript

    def to_bytes(self) -> bytes:
        return cbor.encode([self.sender, self.signature])

    @classmethod
    def from_bytes(cls, data: bytes) -> Round3:
        items = cbor.as_list(cbor.decode(data, max_size=128, max_depth=1), "round 3", length=2)
        return cls(cbor.as_int(items[0], "sender", minimum=1, maximum=MAX_GROUP_SIZE),
                   cbor.as_bytes(items[1], "transcript signature", length=SIGNATURE_SIZE))


@dataclass(frozen=True)
class Abort:
    """A participant's signed end of an attempt: why, whom it names, and the evidence."""

    sender: int  # 1..n
    reason: int
    named: tuple[int, ...]
    evidence: bytes = field(repr=False)
    signature: bytes = field(repr=False)

    def _body(self) -> bytes:
        return cbor.encode([self.sender, self.reason, list(self.named), self.evidence])

    @classmethod
    def sign(cls, secret: Scalar, session_id: bytes, sender: int, reason: int,
             named: tuple[int, ...], evidence: bytes, rng: RandomSource) -> Abort:
        body = cbor.encode([sender, reason, list(named), evidence])
        return cls(sender, reason, named, evidence,
                   dkg_sign(secret, LABEL_GROUP_ABORT_SIGNATURE, session_id, body, rng))

    def verify(self, key: Point, session_id: bytes) -> None:
        dkg_verify(key, LABEL_GROUP_ABORT_SIGNATURE, session_id, self._body(), self.signature)

    def to_bytes(self) -> bytes:
        return cbor.encode([self._body(), self.signature])

    @classmethod
    def from_bytes(cls, data: bytes) -> Abort:
        outer = cbor.as_list(cbor.decode(data, max_size=MAX_EVIDENCE_LEN + 512, max_depth=2),
                             "abort", length=2)
        body = cbor.as_bytes(outer[0], "abort body", max_length=MAX_EVIDENCE_LEN + 256)
        items = cbor.as_list(cbor.decode(body, max_size=len(body), max_depth=2), "abort body",
                             length=4)
        named = cbor.as_list(items[2], "named members")
        if len(named) > MAX_GROUP_SIZE:
            raise LimitExceeded("abort names too many members")
        reason = cbor.as_int(items[1], "reason")
        if reason not in ABORT_REASONS:
            raise DecodeError("unknown abort reason")
        return cls(cbor.as_int(items[0], "sender", minimum=1, maximum=MAX_GROUP_SIZE), reason,
                   tuple(cbor.as_int(x, "named", minimum=1, maximum=MAX_GROUP_SIZE)
                         for x in named),
                   cbor.as_bytes(items[3], "evidence", max_length=MAX_EVIDENCE_LEN),
                   cbor.as_bytes(outer[1], "abort signature", length=DKG_SIGNATURE_SIZE))
