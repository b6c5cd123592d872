"""Our layer around COCKTAIL round 1 (spec 07): payloads, the signed wrapper, the extension.

COCKTAIL's proof of possession covers C_i and E_i but not the ciphertexts, so a relay could swap a
ciphertext and get the dealer blamed. Each round-1 message therefore travels in a `SignedRound1`:
the sender's index, the hash of its payload and msg_{1|i}, signed with its DKG static key under our
own label. With the dealer's signature, anything wrong inside msg_{1|i} is attributable to the
dealer, and a bad signature is the relay's doing (no one is blamed).

Every member's application payload is exactly `PAYLOAD_LEN` fresh random bytes, the same to every
recipient; the COCKTAIL extension commits to all payload hashes, to the ordered key announcements
and to the joiner confirmation value (computed by `group.key_schedule.joiner_confirmation`; this
layer, below the group layer, takes it as bytes).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from triple_ratchet import cbor
from triple_ratchet.dkg.cocktail import (
    MAX_PARTICIPANTS,
    MIN_CIPHERTEXT_SIZE,
    SIGNATURE_SIZE,
    Fault,
    SessionParams,
    payload_commitment,
)
from triple_ratchet.dkg.cocktail_messages import Round1Message
from triple_ratchet.dkg.ed25519 import POINT_SIZE, Point, Scalar
from triple_ratchet.dkg.signature import DKG_SIGNATURE_SIZE, dkg_sign, dkg_verify
from triple_ratchet.errors import DecodeError, DkgError, LimitExceeded, UsageError
from triple_ratchet.random import RandomSource, system_random

LABEL_DKG_ROUND1_SIGNATURE = b"triple-ratchet v1 dkg signed round 1"
LABEL_DKG_EXTENSION = b"triple-ratchet v1 dkg extension"
LABEL_DKG_ANNOUNCEMENTS = b"triple-ratchet v1 dkg announcements"

#: CBOR message type of a signed round-1 message in the attempt's DKG mailbox.
MSG_DKG_SIGNED_ROUND1 = 0x36

PAYLOAD_LEN = 32
"""Each member's round-1 payload: 32 fresh random bytes (its contribution to the epoch secret)."""
PAYLOAD_HASH_LEN = 64
"""COCKTAIL's payload commitment H(uint64_le(len) ‖ payload), SHA-512."""
SHARE_CIPHERTEXT_LEN = MIN_CIPHERTEXT_SIZE + PAYLOAD_LEN
"""Every share ciphertext of ours: share (32) + payload (32) + tag (16) = 80 bytes."""
MAX_CONFIRMATION_LEN = 64
"""The joiner confirmation is one protocol-suite hash long (32 or 64 bytes)."""
MAX_ANNOUNCEMENT_LEN = 4096
"""A signed key announcement is a few hundred bytes; the bound caps what we hash."""


def _max_round1_len(t: int, n: int) -> int:
    return t * POINT_SIZE + SIGNATURE_SIZE + POINT_SIZE + n * (8 + SHARE_CIPHERTEXT_LEN)


# CBOR envelope: a few header bytes per field on top of the largest msg_{1|i}.
MAX_SIGNED_ROUND1_SIZE = _max_round1_len(MAX_PARTICIPANTS, MAX_PARTICIPANTS) + 256


def new_payload(rng: RandomSource = system_random) -> bytes:
    """A fresh payload. Never reuse one: it is what heals the group (spec 08)."""
    payload = rng(PAYLOAD_LEN)
    if len(payload) != PAYLOAD_LEN:
        raise UsageError("random source returned the wrong number of bytes")
    return payload


def payload_hash(payload: bytes) -> bytes:
    """COCKTAIL's recommended payload commitment, over a payload of exactly 32 bytes."""
    if not isinstance(payload, bytes | bytearray) or len(payload) != PAYLOAD_LEN:
        raise UsageError(f"a payload must be exactly {PAYLOAD_LEN} bytes")
    return payload_commitment(bytes(payload))


def _u32(v: int) -> bytes:
    return v.to_bytes(4, "little")


def _round1_body(sender: int, p_hash: bytes, message: bytes) -> bytes:
    return _u32(sender) + p_hash + len(message).to_bytes(8, "little") + message


@dataclass(frozen=True, repr=False)
class SignedRound1:
    """[MSG_DKG_SIGNED_ROUND1, sender, payload_hash, msg1, signature] — all public."""

    sender: int
    payload_hash: bytes
    message: bytes
    signature: bytes

    def to_bytes(self) -> bytes:
        return cbor.encode(
            [MSG_DKG_SIGNED_ROUND1, self.sender, self.payload_hash, self.message, self.signature]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedRound1:
        """Strict structural decoding (no signature check: see `verify`)."""
        if not isinstance(data, bytes | bytearray) or len(data) > MAX_SIGNED_ROUND1_SIZE:
            raise LimitExceeded("signed round-1 message too large")
        items = cbor.as_list(
            cbor.decode(bytes(data), max_size=MAX_SIGNED_ROUND1_SIZE, max_items=16, max_depth=2),
            "signed round-1 message",
            length=5,
        )
        if cbor.as_int(items[0], "message type") != MSG_DKG_SIGNED_ROUND1:
            raise DecodeError("not a signed round-1 message")
        sender = cbor.as_int(items[1], "sender", minimum=1, maximum=MAX_PARTICIPANTS)
        p_hash = cbor.as_bytes(items[2], "payload hash", length=PAYLOAD_HASH_LEN)
        message = cbor.as_bytes(items[3], "round-1 message",
                                max_length=_max_round1_len(MAX_PARTICIPANTS, MAX_PARTICIPANTS))
        signature = cbor.as_bytes(items[4], "signature", length=DKG_SIGNATURE_SIZE)
        return cls(sender, p_hash, message, signature)

    def check_signature(self, params: SessionParams) -> None:
        """`InvalidSignature` unless the sender's DKG key signed this (else: relay tampering)."""
        if not 1 <= self.sender <= params.n:
            raise DecodeError(f"sender index {self.sender} outside 1..{params.n}")
        dkg_verify(
            params.static_keys[self.sender - 1],
            LABEL_DKG_ROUND1_SIGNATURE,
            params.context,
            _round1_body(self.sender, self.payload_hash, self.message),
            self.signature,
        )

    def parse(self, params: SessionParams) -> Round1Message:
        """Parse msg_{1|i} strictly. Only call after `check_signature`: a failure here is then
        the sender's own signed mistake, `DkgError(culprit=sender)`."""
        msg = Round1Message.from_bytes(self.message, params.t, params.n, self.sender)
        if any(len(c) != SHARE_CIPHERTEXT_LEN for c in msg.ciphertexts):
            raise DkgError(
                f"participant {self.sender}: a share ciphertext is not {SHARE_CIPHERTEXT_LEN} "
                "bytes (payloads are exactly 32 bytes)",
                culprit=self.sender,
                reason=Fault.BAD_CIPHERTEXT_FRAME.value,
            )
        return msg

    def verify(self, params: SessionParams) -> Round1Message:
        """Signature, then strict parse. Bad signature: `InvalidSignature` (no culprit)."""
        self.check_signature(params)
        return self.parse(params)

    def check_payload(self, payload: bytes) -> bytes:
        """The payload that came with this sender's share must be 32 bytes and match the signed
        hash. Returns it; otherwise `DkgError(culprit=sender, reason="payload-mismatch")`."""
        if len(payload) != PAYLOAD_LEN or not hmac.compare_digest(
            payload_commitment(bytes(payload)), self.payload_hash
        ):
            raise DkgError(
                f"participant {self.sender}: payload does not match its signed hash",
                culprit=self.sender,
                reason=Fault.PAYLOAD_MISMATCH.value,
            )
        return bytes(payload)

    def __repr__(self) -> str:
        return f"SignedRound1(sender={self.sender}, payload_hash={self.payload_hash.hex()[:16]}…)"


def sign_round1(
    params: SessionParams,
    static_secret: Scalar,
    message: Round1Message | bytes,
    payload: bytes,
    rng: RandomSource = system_random,
) -> SignedRound1:
    """Wrap our msg_{1|i}: sender index from our static key, hash of our payload, signature."""
    p_hash = payload_hash(payload)
    raw = message.to_bytes() if isinstance(message, Round1Message) else bytes(message)
    if not isinstance(static_secret, Scalar) or static_secret.is_zero():
        raise UsageError("static secret must be a non-zero scalar")
    try:
        sender = params.index_of(Point.base_mul(static_secret))
    except DkgError:
        raise UsageError("static key is not in the session's participant list") from None
    signature = dkg_sign(
        static_secret, LABEL_DKG_ROUND1_SIGNATURE, params.context,
        _round1_body(sender, p_hash, raw), rng,
    )
    return SignedRound1(sender, p_hash, raw, signature)


def check_payloads(
    messages: Sequence[SignedRound1], payloads: Sequence[bytes]
) -> tuple[bytes, ...]:
    """Check the payloads a member decrypted (payload_{j,i}, j = 1..n, e.g. COCKTAIL's
    `SharesVerified.payloads`) against the senders' signed hashes; returns them in order.
    The first mismatch raises `DkgError(culprit=j)`, which the member turns into a blame."""
    if len(messages) != len(payloads):
        raise UsageError("one payload per signed round-1 message")
    for j, m in enumerate(messages, start=1):
        if m.sender != j:
            raise UsageError("signed round-1 messages must be in participant order")
    return tuple(m.check_payload(p) for m, p in zip(messages, payloads, strict=True))


def announcements_hash(announcements: Sequence[bytes]) -> bytes:
    """SHA-512(LABEL ‖ uint32_le(n) ‖ for each: uint64_le(len) ‖ announcement), in roster order.

    Each entry is a member's signed key announcement exactly as it was received (its encoding is
    the epoch layer's)."""
    if not 1 <= len(announcements) <= MAX_PARTICIPANTS:
        raise LimitExceeded(f"1..{MAX_PARTICIPANTS} announcements")
    h = hashlib.sha512(LABEL_DKG_ANNOUNCEMENTS + _u32(len(announcements)))
    for a in announcements:
        if not isinstance(a, bytes | bytearray) or not 1 <= len(a) <= MAX_ANNOUNCEMENT_LEN:
            raise UsageError(f"an announcement must be 1..{MAX_ANNOUNCEMENT_LEN} bytes")
        h.update(len(a).to_bytes(8, "little"))
        h.update(a)
    return h.digest()


def attempt_extension(
    payload_hashes: Sequence[bytes], announcements_digest: bytes, confirmation: bytes
) -> bytes:
    """The COCKTAIL extension of one attempt (64 bytes):

    SHA-512(LABEL_DKG_EXTENSION ‖ uint32_le(n) ‖ payload_hash_1 ‖ … ‖ payload_hash_n
            ‖ announcements_hash ‖ uint64_le(len(confirmation)) ‖ confirmation)
    """
    if not 1 <= len(payload_hashes) <= MAX_PARTICIPANTS:
        raise LimitExceeded(f"1..{MAX_PARTICIPANTS} payload hashes")
    if any(len(h) != PAYLOAD_HASH_LEN for h in payload_hashes):
        raise UsageError(f"payload hashes are {PAYLOAD_HASH_LEN} bytes")
    if len(announcements_digest) != 64:
        raise UsageError("the announcements hash is 64 bytes")
    if not 1 <= len(confirmation) <= MAX_CONFIRMATION_LEN:
        raise UsageError(f"the confirmation value is 1..{MAX_CONFIRMATION_LEN} bytes")
    h = hashlib.sha512(LABEL_DKG_EXTENSION + _u32(len(payload_hashes)))
    for p in payload_hashes:
        h.update(p)
    h.update(announcements_digest)
    h.update(len(confirmation).to_bytes(8, "little") + confirmation)
    return h.digest()


__all__ = [
    "LABEL_DKG_ANNOUNCEMENTS",
    "LABEL_DKG_EXTENSION",
    "LABEL_DKG_ROUND1_SIGNATURE",
    "MAX_SIGNED_ROUND1_SIZE",
    "MSG_DKG_SIGNED_ROUND1",
    "PAYLOAD_HASH_LEN",
    "PAYLOAD_LEN",
    "SHARE_CIPHERTEXT_LEN",
    "SignedRound1",
    "announcements_hash",
    "attempt_extension",
    "check_payloads",
    "new_payload",
    "payload_hash",
    "sign_round1",
]
