"""COCKTAIL-DKG primitives for the ciphersuite COCKTAIL(Ed25519, SHA-512).

Spec: spec/06-dkg-cocktail.md (our profile of C2SP COCKTAIL-DKG v0.2.1). This module holds the
stateless pieces: session parameters and the context string, the COCKTAIL Schnorr scheme (PoP and
CertEq), polynomials and VSS commitments, the ECDH values, H6 and share encryption. Messages and
the transcript are in `cocktail_messages`; the participant state machine, the coordinator and
recovery in `cocktail_participant`.

One deliberate deviation from the spec text, following the published vectors: ECDH outputs are
encoded as plain RFC 8032 edwards25519 points, not Ristretto255 (upstream C2SP/C2SP#299).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from nacl import bindings as _sodium
from nacl.exceptions import CryptoError

from ..errors import DecodeError, DkgError, InvalidKey, UsageError
from ..random import RandomSource, system_random
from .ed25519 import (
    IDENTITY,
    POINT_SIZE,
    SCALAR_SIZE,
    Point,
    Scalar,
    hash_to_scalar,
    schnorr_equation_holds,
)

# --- Constants ----------------------------------------------------------------------------------

#: The ciphersuite id, verbatim from the spec's normative table (bound into context and transcript).
CIPHERSUITE_ID: Final[bytes] = b"COCKTAIL(Ed25519, SHA-512)"

#: Domain prefixes fixed by COCKTAIL(Ed25519, SHA-512). They are COCKTAIL's, not ours, and must stay
#: byte-identical for interop.
LABEL_COCKTAIL_CONTEXT: Final[bytes] = b"COCKTAIL-DKG-CONTEXT"
LABEL_COCKTAIL_H6: Final[bytes] = b"COCKTAIL-DKG-Ed25519-SHA512-H6"
LABEL_COCKTAIL_H7: Final[bytes] = b"COCKTAIL-DKG-Ed25519-SHA512-H7"
LABEL_COCKTAIL_NONCE: Final[bytes] = b"COCKTAIL-DKG-Ed25519-SHA512-NONCE"

#: Largest group we run a DKG for. Every epoch change needs all n members online, costs each of
#: them 2n ECDH multiplications, n PoP checks and n*t commitment evaluations, and moves n round-1
#: messages of ~56n bytes each to every member (O(n^2) traffic: ~3.6 MB per member at 256).
#: Beyond that the "everyone online, everyone re-keys" model stops being practical.
MAX_PARTICIPANTS: Final[int] = 256

#: Upper bound on one share ciphertext (the spec's MAX_CIPHERTEXT_SIZE; its SHOULD floor is 64 KiB).
MAX_CIPHERTEXT_SIZE: Final[int] = 65536
AEAD_TAG_SIZE: Final[int] = 16
#: Smallest valid ciphertext: a bare share plus the AEAD tag.
MIN_CIPHERTEXT_SIZE: Final[int] = SCALAR_SIZE + AEAD_TAG_SIZE
#: Largest payload that fits in one ciphertext.
MAX_PAYLOAD_SIZE: Final[int] = MAX_CIPHERTEXT_SIZE - MIN_CIPHERTEXT_SIZE
#: Bounds for the transcript's variable-length fields (our contexts are 64 bytes; extensions are
#: application hashes). They keep a hostile transcript from costing more than it should to parse.
MAX_CONTEXT_SIZE: Final[int] = 1024
MAX_EXTENSION_SIZE: Final[int] = 65536

SIGNATURE_SIZE: Final[int] = POINT_SIZE + SCALAR_SIZE
CONTEXT_HASH_SIZE: Final[int] = 64
_KEY_SIZE: Final[int] = 32
_NONCE_SIZE: Final[int] = 24


class Fault(StrEnum):
    """Why a DKG step failed; used as `DkgError.reason`. Stable strings (they appear in aborts)."""

    BAD_PARAMETERS = "bad-parameters"
    TOO_MANY_PARTICIPANTS = "too-many-participants"
    INVALID_STATIC_KEY = "invalid-static-key"
    DUPLICATE_STATIC_KEY = "duplicate-static-key"
    MALFORMED_MESSAGE = "malformed-message"
    COMMITMENT_LENGTH = "commitment-length"
    INVALID_POINT = "invalid-point"
    BAD_POP = "bad-pop"
    BAD_CIPHERTEXT_FRAME = "bad-ciphertext-frame"
    DECRYPTION_FAILED = "decryption-failed"
    NON_CANONICAL_PLAINTEXT = "non-canonical-plaintext"
    SHARE_MISMATCH = "share-mismatch"
    PAYLOAD_MISMATCH = "payload-mismatch"
    FINAL_CHECK_FAILED = "final-check-failed"
    BAD_TRANSCRIPT_SIGNATURE = "bad-transcript-signature"
    MALFORMED_TRANSCRIPT = "malformed-transcript"
    NOT_A_PARTICIPANT = "not-a-participant"


def _fail(fault: Fault, culprit: int | None, detail: str) -> DkgError:
    who = f"participant {culprit}: " if culprit is not None else ""
    return DkgError(f"{who}{detail}", culprit=culprit, reason=fault.value)


def u64le(v: int) -> bytes:
    return v.to_bytes(8, "little")


def u64be(v: int) -> bytes:
    return v.to_bytes(8, "big")


def u32le(v: int) -> bytes:
    return v.to_bytes(4, "little")


# --- Session parameters -------------------------------------------------------------------------


def check_parameters(t: int, n: int) -> None:
    """1 <= t <= n <= MAX_PARTICIPANTS (the spec's own bound, 2^32 - 1, is far above ours)."""
    if n > MAX_PARTICIPANTS:
        raise _fail(Fault.TOO_MANY_PARTICIPANTS, None, f"n = {n} exceeds {MAX_PARTICIPANTS}")
    if n < 1 or t < 1 or t > n:
        raise _fail(Fault.BAD_PARAMETERS, None, f"need 1 <= t <= n, got t = {t}, n = {n}")


def decode_static_keys(keys: Sequence[bytes]) -> tuple[Point, ...]:
    """Decode the ordered static public keys; name the first invalid or repeated one."""
    points: list[Point] = []
    seen: set[bytes] = set()
    for index, raw in enumerate(keys, start=1):
        try:
            p = Point.from_bytes(raw)
        except InvalidKey as exc:
            raise _fail(Fault.INVALID_STATIC_KEY, index, f"static key invalid: {exc}") from exc
        if raw in seen:
            raise _fail(Fault.DUPLICATE_STATIC_KEY, index, "static key repeats an earlier one")
        seen.add(raw)
        points.append(p)
    return tuple(points)


def make_context(session_id: bytes, static_keys: Sequence[Point]) -> bytes:
    """The spec's recommended context: binds session id, ciphersuite id and the ordered keys."""
    h = hashlib.sha512()
    h.update(LABEL_COCKTAIL_CONTEXT)
    h.update(u64be(len(session_id)))
    h.update(session_id)
    h.update(u64be(len(CIPHERSUITE_ID)))
    h.update(CIPHERSUITE_ID)
    h.update(u32le(len(static_keys)))
    for p in static_keys:
        h.update(p.to_bytes())
    return h.digest()


@dataclass(frozen=True)
class SessionParams:
    """Everything all participants must agree on before round 1 (all public)."""

    threshold: int
    static_keys: tuple[Point, ...]
    context: bytes

    def __post_init__(self) -> None:
        check_parameters(self.threshold, len(self.static_keys))
        if len({p.to_bytes() for p in self.static_keys}) != len(self.static_keys):
            decode_static_keys([p.to_bytes() for p in self.static_keys])  # names the duplicate
        for index, p in enumerate(self.static_keys, start=1):
            if p.is_identity():
                raise _fail(Fault.INVALID_STATIC_KEY, index, "static key is the identity")
        if not 1 <= len(self.context) <= MAX_CONTEXT_SIZE:
            raise UsageError(f"context must be 1..{MAX_CONTEXT_SIZE} bytes")

    @classmethod
    def create(
        cls, session_id: bytes, static_keys: Sequence[bytes], threshold: int
    ) -> SessionParams:
        """Validate raw parameters (from a proposal) and derive the context from the session id."""
        check_parameters(threshold, len(static_keys))
        points = decode_static_keys(static_keys)
        return cls(threshold, points, make_context(session_id, points))

    @property
    def n(self) -> int:
        return len(self.static_keys)

    @property
    def t(self) -> int:
        return self.threshold

    def index_of(self, key: Point) -> int:
        for index, p in enumerate(self.static_keys, start=1):
            if p == key:
                return index
        raise _fail(Fault.NOT_A_PARTICIPANT, None, "key is not in the participant list")


# --- Schnorr (PoP and CertEq) -------------------------------------------------------------------


@dataclass(frozen=True)
class SchnorrTrace:
    """Intermediate values of one signature, as the vectors publish them for the PoP."""

    nonce_input: bytes = field(repr=False)  # contains the secret key
    nonce: Scalar
    nonce_commitment: Point
    challenge_input: bytes
    challenge: Scalar
    signature: bytes


def schnorr_sign_traced(secret: Scalar, message: bytes) -> SchnorrTrace:
    """COCKTAIL's Schnorr Sign with every intermediate value (spec: Schnorr Sign Algorithm)."""
    if secret.is_zero():
        raise UsageError("cannot sign with the zero scalar")
    public = Point.base_mul(secret)
    nonce_input = LABEL_COCKTAIL_NONCE + secret.to_bytes() + message
    k = hash_to_scalar(nonce_input)
    if k.is_zero():
        # Deterministic nonce: retrying gives the same k. The spec says abandon the session.
        raise UsageError("Schnorr nonce is zero; this session cannot be signed in")
    r = Point.base_mul(k)
    challenge_input = LABEL_COCKTAIL_H7 + r.to_bytes() + public.to_bytes() + message
    c = hash_to_scalar(challenge_input)
    z = k + c * secret
    return SchnorrTrace(nonce_input, k, r, challenge_input, c, r.to_bytes() + z.to_bytes())


def schnorr_sign(secret: Scalar, message: bytes) -> bytes:
    return schnorr_sign_traced(secret, message).signature


def schnorr_verify(public: Point, message: bytes, signature: bytes) -> bool:
    """COCKTAIL's Schnorr Verify: z canonical, R a valid non-identity point, zB = R + cP (R's
    validity checked by the equation itself: `schnorr_equation_holds`)."""
    if len(signature) != SIGNATURE_SIZE or public.is_identity():
        return False
    try:
        z = Scalar.from_bytes(signature[POINT_SIZE:])
    except DecodeError:
        return False
    r = bytes(signature[:POINT_SIZE])
    c = hash_to_scalar(LABEL_COCKTAIL_H7, r, public.to_bytes(), message)
    return schnorr_equation_holds(public, c, z, r)


# --- Polynomials and VSS commitments ------------------------------------------------------------


class Polynomial:
    """f(x) = a_0 + a_1 x + ... + a_{t-1} x^{t-1} with nonzero coefficients. Secret."""

    __slots__ = ("_coefficients",)

    def __init__(self, coefficients: Sequence[Scalar]) -> None:
        if not coefficients:
            raise UsageError("a polynomial needs at least one coefficient")
        if any(a.is_zero() for a in coefficients):
            raise UsageError("COCKTAIL coefficients must be nonzero")
        self._coefficients = tuple(coefficients)

    @classmethod
    def random(cls, t: int, rng: RandomSource = system_random) -> Polynomial:
        """Draw a_0 .. a_{t-1} in order, 64 rng bytes each, resampling zero (spec Algorithm 1).

        The draw order is normative for our vectors: coefficients first, then the ephemeral key.
        """
        return cls([Scalar.random_nonzero(rng) for _ in range(t)])

    @property
    def degree(self) -> int:
        return len(self._coefficients) - 1

    @property
    def secret(self) -> Scalar:
        return self._coefficients[0]

    def evaluate(self, x: int) -> Scalar:
        """f(x) by Horner's rule, reduced mod L."""
        from .ed25519 import L

        acc = 0
        for a in reversed(self._coefficients):
            acc = (acc * x + a.to_int()) % L
        return Scalar.from_int(acc)

    def commitment(self) -> VssCommitment:
        return VssCommitment(tuple(Point.base_mul(a) for a in self._coefficients))

    def __repr__(self) -> str:
        return f"Polynomial(degree={self.degree}, <coefficients redacted>)"


@dataclass(frozen=True)
class VssCommitment:
    """C = (C_0, ..., C_{t-1}), C_k = a_k * B. Encodes as the plain concatenation of the points."""

    points: tuple[Point, ...]

    @classmethod
    def from_bytes(cls, data: bytes, t: int) -> VssCommitment:
        """Exactly t valid non-identity subgroup points (InvalidKey / DecodeError otherwise)."""
        if len(data) != t * POINT_SIZE:
            raise DecodeError(f"commitment must be {t} points")
        return cls(
            tuple(Point.from_bytes(data[k : k + POINT_SIZE]) for k in range(0, len(data), 32))
        )

    def to_bytes(self) -> bytes:
        return b"".join(p.to_bytes() for p in self.points)

    @property
    def threshold(self) -> int:
        return len(self.points)

    @property
    def public_key(self) -> Point:
        """C_0, the dealer's PoP key and contribution to the group key."""
        return self.points[0]

    def evaluate(self, index: int) -> Point:
        """sum_k index^k * C_k (Horner: t-1 variable-base multiplications by the index)."""
        x = Scalar.from_int(index)
        acc = IDENTITY
        for c in reversed(self.points):
            acc = acc * x + c
        return acc

    def verify_share(self, index: int, share: Scalar) -> bool:
        """s * B == sum_k index^k * C_k."""
        return Point.base_mul(share) == self.evaluate(index)

    def __add__(self, other: VssCommitment) -> VssCommitment:
        if len(self.points) != len(other.points):
            raise UsageError("commitments of different lengths")
        return VssCommitment(tuple(a + b for a, b in zip(self.points, other.points, strict=True)))


def aggregate_commitments(commitments: Sequence[VssCommitment]) -> VssCommitment:
    """C_agg,k = sum_j C_j,k; its evaluation at m is the verification share Y_m, C_agg,0 = Y."""
    acc = commitments[0]
    for c in commitments[1:]:
        acc = acc + c
    return acc


def pop_message(context: bytes, commitment: VssCommitment, ephemeral: Point) -> bytes:
    """context || C_0 || ... || C_{t-1} || E (what the PoP signs)."""
    return context + commitment.to_bytes() + ephemeral.to_bytes()


# --- ECDH, H6 and share encryption --------------------------------------------------------------


@dataclass(frozen=True)
class EcdhValues:
    """(S^e, S^d) for one (sender, recipient) pair, each a plain edwards25519 encoding. Secret."""

    ephemeral: bytes = field(repr=False)  # S^e = e_s * P_r = d_r * E_s
    static: bytes = field(repr=False)  # S^d = d_s * P_r = d_r * P_s

    def __post_init__(self) -> None:
        if len(self.ephemeral) != POINT_SIZE or len(self.static) != POINT_SIZE:
            raise UsageError("ECDH values are 32-byte point encodings")

    @classmethod
    def from_points(cls, ephemeral: Point, static: Point) -> EcdhValues:
        """From the points themselves (e.g. values a blame DLEQ proof has established)."""
        return cls(ephemeral.to_bytes(), static.to_bytes())

    def points(self) -> tuple[Point, Point]:
        """(S^e, S^d) as points, for a DLEQ proof. Both are valid subgroup points by
        construction (a nonzero scalar times a validated point)."""
        return Point.from_bytes(self.ephemeral), Point.from_bytes(self.static)


def sender_ecdh(ephemeral_secret: Scalar, static_secret: Scalar, recipient: Point) -> EcdhValues:
    """Sender side: (e_i * P_j, d_i * P_j)."""
    return EcdhValues(
        (recipient * ephemeral_secret).to_bytes(), (recipient * static_secret).to_bytes()
    )


def recipient_ecdh(static_secret: Scalar, ephemeral: Point, sender: Point) -> EcdhValues:
    """Recipient side: (d_i * E_j, d_i * P_j) — the values a blame DLEQ proof is about."""
    return EcdhValues((ephemeral * static_secret).to_bytes(), (sender * static_secret).to_bytes())


@dataclass(frozen=True)
class ShareKey:
    """The AEAD key and nonce of one share ciphertext. Secret."""

    key: bytes = field(repr=False)
    nonce: bytes = field(repr=False)


def h6(
    ecdh: EcdhValues, ephemeral: Point, sender: Point, recipient: Point, context: bytes
) -> ShareKey:
    """H6 = SHA-512(prefix || S^e || S^d || E || P_s || P_r || u64le(len ctx) || ctx);
    key = out[0:32], nonce = out[32:56] (SHA-512 is wide enough for one call)."""
    out = hashlib.sha512(
        LABEL_COCKTAIL_H6
        + ecdh.ephemeral
        + ecdh.static
        + ephemeral.to_bytes()
        + sender.to_bytes()
        + recipient.to_bytes()
        + u64le(len(context))
        + context
    ).digest()
    return ShareKey(out[:_KEY_SIZE], out[_KEY_SIZE : _KEY_SIZE + _NONCE_SIZE])


def encrypt_share(key: ShareKey, share: Scalar, payload: bytes = b"") -> bytes:
    """XChaCha20-Poly1305(key, nonce, s || payload), no associated data."""
    if len(payload) > MAX_PAYLOAD_SIZE:
        raise UsageError(f"payload larger than {MAX_PAYLOAD_SIZE} bytes")
    return bytes(
        _sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
            share.to_bytes() + payload, None, key.nonce, key.key
        )
    )


@dataclass(frozen=True)
class OpenedShare:
    """A decrypted, verified share s_{j,i} and the payload that came with it. Secret."""

    share: Scalar
    payload: bytes = field(repr=False)


def classify_share(
    key: ShareKey, ciphertext: bytes, commitment: VssCommitment, recipient_index: int
) -> tuple[Fault | None, OpenedShare | None]:
    """Decrypt and check one share; return (fault, None) or (None, opened).

    The three faults are the spec's decryption-related failure modes (AEAD-fail,
    non-canonical-plaintext, VSS-mismatch), so a blame verifier that re-derives `key` from
    proven ECDH values reaches the same verdict as the accuser.
    """
    if not MIN_CIPHERTEXT_SIZE <= len(ciphertext) <= MAX_CIPHERTEXT_SIZE:
        return Fault.BAD_CIPHERTEXT_FRAME, None
    try:
        plaintext = bytes(
            _sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, None, key.nonce, key.key)
        )
    except CryptoError:
        return Fault.DECRYPTION_FAILED, None
    try:
        share = Scalar.from_bytes(plaintext[:SCALAR_SIZE])
    except DecodeError:
        return Fault.NON_CANONICAL_PLAINTEXT, None
    if not commitment.verify_share(recipient_index, share):
        return Fault.SHARE_MISMATCH, None
    return None, OpenedShare(share, plaintext[SCALAR_SIZE:])


def classify_share_with_ecdh(
    ecdh: EcdhValues,
    *,
    params: SessionParams,
    sender_index: int,
    recipient_index: int,
    ephemeral: Point,
    ciphertext: bytes,
    commitment: VssCommitment,
) -> tuple[Fault | None, OpenedShare | None]:
    """H6 from given ECDH values, then `classify_share`: what a blame verifier runs once a DLEQ
    proof has established (S^e, S^d) for (recipient, sender)."""
    for index in (sender_index, recipient_index):
        if not 1 <= index <= params.n:
            raise UsageError("participant index out of range")
    key = h6(
        ecdh,
        ephemeral,
        params.static_keys[sender_index - 1],
        params.static_keys[recipient_index - 1],
        params.context,
    )
    return classify_share(key, ciphertext, commitment, recipient_index)


def open_share(
    key: ShareKey,
    ciphertext: bytes,
    commitment: VssCommitment,
    recipient_index: int,
    sender_index: int,
) -> OpenedShare:
    """`classify_share`, raising DkgError(culprit=sender_index) on any fault."""
    fault, opened = classify_share(key, ciphertext, commitment, recipient_index)
    if fault is not None or opened is None:
        assert fault is not None
        raise _fail(fault, sender_index, f"share for participant {recipient_index} rejected")
    return opened


def payload_commitment(payload: bytes) -> bytes:
    """The spec's recommended payload commitment H(u64le(len) || payload)."""
    return hashlib.sha512(u64le(len(payload)) + payload).digest()


def payload_extension(payloads: Sequence[bytes]) -> bytes:
    """The spec's recommended extension over broadcast payloads:
    H(u64le(n) || u64le(len p_1) || p_1 || ... || u64le(len p_n) || p_n)."""
    h = hashlib.sha512(u64le(len(payloads)))
    for p in payloads:
        h.update(u64le(len(p)))
        h.update(p)
    return h.digest()


def transcript_hash(transcript: bytes) -> bytes:
    return hashlib.sha512(transcript).digest()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


__all__ = [
    "AEAD_TAG_SIZE",
    "CIPHERSUITE_ID",
    "CONTEXT_HASH_SIZE",
    "LABEL_COCKTAIL_CONTEXT",
    "LABEL_COCKTAIL_H6",
    "LABEL_COCKTAIL_H7",
    "LABEL_COCKTAIL_NONCE",
    "MAX_CIPHERTEXT_SIZE",
    "MAX_CONTEXT_SIZE",
    "MAX_EXTENSION_SIZE",
    "MAX_PARTICIPANTS",
    "MAX_PAYLOAD_SIZE",
    "MIN_CIPHERTEXT_SIZE",
    "SIGNATURE_SIZE",
    "EcdhValues",
    "Fault",
    "OpenedShare",
    "Polynomial",
    "SchnorrTrace",
    "SessionParams",
    "ShareKey",
    "VssCommitment",
    "aggregate_commitments",
    "check_parameters",
    "classify_share",
    "classify_share_with_ecdh",
    "decode_static_keys",
    "encrypt_share",
    "h6",
    "make_context",
    "open_share",
    "payload_commitment",
    "payload_extension",
    "pop_message",
    "recipient_ecdh",
    "schnorr_sign",
    "schnorr_sign_traced",
    "schnorr_verify",
    "sender_ecdh",
    "transcript_hash",
]
