"""Chaum–Pedersen proof of discrete-log equality over edwards25519 (spec 07, "DLEQ").

Statement, for a public key P = d·B and bases G_1..G_m with values V_1..V_m:
the same secret d satisfies P = d·B and V_k = d·G_k for every k. The blame procedure uses it with
m = 2, G = (E_j, P_j) and V = (d·E_j, d·P_j): the accuser's two COCKTAIL ECDH values with dealer j,
so anyone can re-derive the H6 key of the disputed ciphertext without learning d.

Non-interactive by Fiat–Shamir; the challenge hashes every public input and the caller's
`message` (which binds the proof to one session, accuser, dealer and ciphertext). The nonce is
hedged: derived from the secret, the statement and 32 fresh random bytes, so neither a bad RNG
nor a fault on a repeated statement reuses a nonce with different challenges.

    k  = HashToScalar(LABEL_DKG_DLEQ_NONCE ‖ d ‖ rand ‖ statement ‖ uint64_le(len(msg)) ‖ msg)
    R_0 = k·B,  R_k = k·G_k
    c  = HashToScalar(LABEL_DKG_DLEQ_CHALLENGE ‖ statement ‖ R_0 ‖ … ‖ R_m
                      ‖ uint64_le(len(msg)) ‖ msg)
    z  = k + c·d mod L
    proof = c ‖ z  (64 bytes, little-endian scalars)
    statement = uint32_le(m) ‖ B ‖ P ‖ G_1 ‖ V_1 ‖ … ‖ G_m ‖ V_m

Verification recomputes R_0 = z·B − c·P and R_k = z·G_k − c·V_k and accepts iff the challenge
computed from them equals c.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from triple_ratchet.dkg.ed25519 import BASE, SCALAR_SIZE, Point, Scalar, hash_to_scalar
from triple_ratchet.errors import AuthenticationError, DecodeError, LimitExceeded, UsageError
from triple_ratchet.random import RandomSource, system_random

LABEL_DKG_DLEQ_CHALLENGE = b"triple-ratchet v1 dkg dleq challenge"
LABEL_DKG_DLEQ_NONCE = b"triple-ratchet v1 dkg dleq nonce"

PROOF_SIZE = 2 * SCALAR_SIZE
NONCE_RANDOMNESS_LEN = 32
"""Fresh bytes mixed into the nonce: 256 bits, as COCKTAIL's own fault-injection advice."""
MAX_BASES = 8
"""The blame proof uses two bases; the bound only stops absurd statements (cost is linear)."""
MAX_MESSAGE_LEN = 1 << 16
"""The bound message is a short framed binding (session, indices, ciphertext hash)."""


@dataclass(frozen=True, repr=False)
class DleqProof:
    """A proof: challenge c and response z. Public (reveals nothing about d)."""

    challenge: Scalar
    response: Scalar

    def to_bytes(self) -> bytes:
        return self.challenge.to_bytes() + self.response.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> DleqProof:
        """Strict: exactly 64 bytes, both scalars canonical (< L), else `DecodeError`."""
        if not isinstance(data, bytes | bytearray) or len(data) != PROOF_SIZE:
            raise DecodeError(f"DLEQ proof must be {PROOF_SIZE} bytes")
        return cls(
            Scalar.from_bytes(bytes(data[:SCALAR_SIZE])),
            Scalar.from_bytes(bytes(data[SCALAR_SIZE:])),
        )

    def __repr__(self) -> str:
        return f"DleqProof({self.to_bytes().hex()})"


def _statement(public: Point, bases: Sequence[Point], values: Sequence[Point]) -> bytes:
    parts = [len(bases).to_bytes(4, "little"), BASE.to_bytes(), public.to_bytes()]
    for g, v in zip(bases, values, strict=True):
        parts += [g.to_bytes(), v.to_bytes()]
    return b"".join(parts)


def _framed(message: bytes) -> bytes:
    return len(message).to_bytes(8, "little") + message


def _check_shape(bases: Sequence[Point], values: Sequence[Point] | None, message: bytes) -> None:
    if not 1 <= len(bases) <= MAX_BASES:
        raise LimitExceeded(f"a DLEQ statement has 1..{MAX_BASES} bases")
    if values is not None and len(values) != len(bases):
        raise UsageError("one value per base")
    points = list(bases) + list(values or ())
    if not all(isinstance(p, Point) for p in points):
        raise UsageError("bases and values must be Points")
    if any(p.is_identity() for p in points):
        # Only reachable through arithmetic; Point.from_bytes already refuses the identity.
        raise UsageError("the identity is not a valid DLEQ base or value")
    if not isinstance(message, bytes | bytearray) or len(message) > MAX_MESSAGE_LEN:
        raise LimitExceeded(f"DLEQ message must be at most {MAX_MESSAGE_LEN} bytes")


def _challenge(statement: bytes, commitments: Sequence[Point], message: bytes) -> Scalar:
    return hash_to_scalar(
        LABEL_DKG_DLEQ_CHALLENGE,
        statement,
        *(r.to_bytes() for r in commitments),
        _framed(message),
    )


def prove(
    secret: Scalar,
    bases: Sequence[Point],
    message: bytes,
    rng: RandomSource = system_random,
) -> tuple[tuple[Point, ...], DleqProof]:
    """Prove log_B(secret·B) = log_{G_k}(secret·G_k) for every base; returns (values, proof)."""
    if not isinstance(secret, Scalar) or secret.is_zero():
        raise UsageError("the DLEQ secret must be a non-zero scalar")
    _check_shape(bases, None, message)
    public = Point.base_mul(secret)
    values = tuple(g * secret for g in bases)
    statement = _statement(public, bases, values)
    while True:
        randomness = rng(NONCE_RANDOMNESS_LEN)
        if len(randomness) != NONCE_RANDOMNESS_LEN:
            raise UsageError("random source returned the wrong number of bytes")
        k = hash_to_scalar(
            LABEL_DKG_DLEQ_NONCE, secret.to_bytes(), randomness, statement, _framed(bytes(message))
        )
        if not k.is_zero():  # probability 2^-252; redraw rather than publish z = c·d
            break
    commitments = [Point.base_mul(k), *(g * k for g in bases)]
    c = _challenge(statement, commitments, bytes(message))
    return values, DleqProof(c, k + c * secret)


def verify(
    public: Point,
    bases: Sequence[Point],
    values: Sequence[Point],
    message: bytes,
    proof: DleqProof,
) -> None:
    """Raise `AuthenticationError` unless `proof` shows values[k] = d·bases[k] with P = d·B."""
    if not isinstance(public, Point) or public.is_identity():
        raise UsageError("the DLEQ public key must be a non-identity Point")
    _check_shape(bases, values, message)
    c, z = proof.challenge, proof.response
    commitments = [Point.base_mul(z) - public * c]
    commitments += [g * z - v * c for g, v in zip(bases, values, strict=True)]
    expected = _challenge(_statement(public, bases, values), commitments, bytes(message))
    if not hmac.compare_digest(expected.to_bytes(), c.to_bytes()):
        raise AuthenticationError("DLEQ proof does not verify")


__all__ = [
    "LABEL_DKG_DLEQ_CHALLENGE",
    "LABEL_DKG_DLEQ_NONCE",
    "MAX_BASES",
    "NONCE_RANDOMNESS_LEN",
    "PROOF_SIZE",
    "DleqProof",
    "prove",
    "verify",
]
