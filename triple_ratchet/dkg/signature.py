"""Our signatures with a member's DKG static key (spec 07, "DKG-key signatures").

Round-1 wrappers and aborts are signed with the COCKTAIL static scalar d_i, but under our own
Schnorr prefixes, so no signature of ours can be taken for a COCKTAIL PoP or CertEq signature (or
an EdDSA one) and vice versa. Each kind of signed object also has its own label inside the signed
message. The nonce is hedged with 32 fresh random bytes (COCKTAIL's fault-injection advice):

    m = label ‖ uint64_le(len(context)) ‖ context ‖ body
    k = HashToScalar(LABEL_DKG_SIG_NONCE ‖ d ‖ rand ‖ m)      (redrawn if zero)
    R = k·B;  c = HashToScalar(LABEL_DKG_SIG_CHALLENGE ‖ R ‖ P ‖ m);  z = k + c·d
    signature = R ‖ z  (64 bytes)

Verification is COCKTAIL's: z canonical, R a valid non-identity subgroup point, z·B = R + c·P
(R's validity checked by the equation: `schnorr_equation_holds`).
"""

from __future__ import annotations

from triple_ratchet.dkg.ed25519 import (
    POINT_SIZE,
    SCALAR_SIZE,
    Point,
    Scalar,
    hash_to_scalar,
    schnorr_equation_holds,
)
from triple_ratchet.errors import DecodeError, InvalidSignature, UsageError
from triple_ratchet.random import RandomSource, system_random

LABEL_DKG_SIG_NONCE = b"triple-ratchet v1 dkg signature nonce"
LABEL_DKG_SIG_CHALLENGE = b"triple-ratchet v1 dkg signature challenge"

DKG_SIGNATURE_SIZE = POINT_SIZE + SCALAR_SIZE
NONCE_RANDOMNESS_LEN = 32


def _message(label: bytes, context: bytes, body: bytes) -> bytes:
    return label + len(context).to_bytes(8, "little") + context + body


def dkg_sign(
    secret: Scalar,
    label: bytes,
    context: bytes,
    body: bytes,
    rng: RandomSource = system_random,
) -> bytes:
    """Sign `body` for the session `context` under the signed object's `label`."""
    if not isinstance(secret, Scalar) or secret.is_zero():
        raise UsageError("a DKG signature needs a non-zero static scalar")
    public = Point.base_mul(secret)
    m = _message(label, context, body)
    while True:
        randomness = rng(NONCE_RANDOMNESS_LEN)
        if len(randomness) != NONCE_RANDOMNESS_LEN:
            raise UsageError("random source returned the wrong number of bytes")
        k = hash_to_scalar(LABEL_DKG_SIG_NONCE, secret.to_bytes(), randomness, m)
        if not k.is_zero():  # k = 0 would publish z = c·d; with fresh randomness, just redraw
            break
    r = Point.base_mul(k)
    c = hash_to_scalar(LABEL_DKG_SIG_CHALLENGE, r.to_bytes(), public.to_bytes(), m)
    return r.to_bytes() + (k + c * secret).to_bytes()


def dkg_verify(public: Point, label: bytes, context: bytes, body: bytes, signature: bytes) -> None:
    """Raise `InvalidSignature` unless `public` signed (label, context, body) with this."""
    if not isinstance(signature, bytes | bytearray) or len(signature) != DKG_SIGNATURE_SIZE:
        raise InvalidSignature(f"DKG signature must be {DKG_SIGNATURE_SIZE} bytes")
    try:
        z = Scalar.from_bytes(bytes(signature[POINT_SIZE:]))
    except DecodeError:
        raise InvalidSignature("DKG signature has a non-canonical z") from None
    r = bytes(signature[:POINT_SIZE])
    m = _message(label, context, body)
    c = hash_to_scalar(LABEL_DKG_SIG_CHALLENGE, r, public.to_bytes(), m)
    # R's validity (canonical, subgroup, not the identity) is checked by the equation itself
    if not schnorr_equation_holds(public, c, z, r):
        raise InvalidSignature("DKG signature does not verify (or its R is not a valid point)")


__all__ = [
    "DKG_SIGNATURE_SIZE",
    "LABEL_DKG_SIG_CHALLENGE",
    "LABEL_DKG_SIG_NONCE",
    "dkg_sign",
    "dkg_verify",
]
