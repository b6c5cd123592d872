"""edwards25519 prime-order group arithmetic for the DKG (COCKTAIL(Ed25519, SHA-512)).

Points are kept as their canonical 32-byte RFC 8032 encodings and every group operation is one
libsodium call (PyNaCl bindings, no-clamp variants: the DKG multiplies by raw scalars). Scalars are
Python ints mod L, which is faster than a libsodium round trip for + - * (~0.5 µs).

Validation happens once, at the boundary: `Point.from_bytes` accepts only canonical encodings of
non-identity points of the prime-order subgroup. Every Point reachable from the public API is
therefore in that subgroup (or is the identity, produced only by arithmetic), which is what makes
`crypto_core_ed25519_add` safe here: libsodium's add checks only that its inputs are on the curve.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from nacl import bindings as _sodium

from ..errors import DecodeError, InvalidKey, UsageError
from ..random import RandomSource, system_random

#: Order of the prime-order subgroup of edwards25519 (the scalar field modulus).
L: Final[int] = 2**252 + 27742317777372353535851937790883648493

SCALAR_SIZE: Final[int] = 32
POINT_SIZE: Final[int] = 32
_IDENTITY_BYTES: Final[bytes] = b"\x01" + bytes(31)
_ZERO32: Final[bytes] = bytes(32)


class Scalar:
    """An integer mod L. Immutable. Its repr never shows the value (scalars are usually secret)."""

    __slots__ = ("_v",)
    _v: int

    def __init__(self, value: int) -> None:
        # Always reduced, so to_bytes() can never emit a non-canonical encoding.
        object.__setattr__(self, "_v", value % L)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Scalar is immutable")

    # --- construction ----------------------------------------------------------------------

    @classmethod
    def from_bytes(cls, data: bytes) -> Scalar:
        """Strict canonical decoding: exactly 32 little-endian bytes encoding a value < L."""
        if len(data) != SCALAR_SIZE:
            raise DecodeError(f"scalar must be {SCALAR_SIZE} bytes, got {len(data)}")
        value = int.from_bytes(data, "little")
        if value >= L:
            raise DecodeError("scalar encoding is not canonical (value >= L)")
        return cls(value)

    @classmethod
    def from_bytes_wide(cls, data: bytes) -> Scalar:
        """Reduce any byte string (normally a 64-byte hash output), read little-endian, mod L."""
        return cls(int.from_bytes(data, "little"))

    @classmethod
    def from_int(cls, value: int) -> Scalar:
        return cls(value)

    @classmethod
    def random(cls, rng: RandomSource = system_random) -> Scalar:
        """Uniform scalar (64 random bytes reduced mod L; bias < 2^-250). May be zero."""
        return cls.from_bytes_wide(rng(64))

    @classmethod
    def random_nonzero(cls, rng: RandomSource = system_random) -> Scalar:
        while True:
            s = cls.random(rng)
            if s._v:
                return s

    # --- encoding / inspection ---------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return self._v.to_bytes(SCALAR_SIZE, "little")

    def to_int(self) -> int:
        return self._v

    def is_zero(self) -> bool:
        return self._v == 0

    # --- arithmetic ---------------------------------------------------------------------------

    def __add__(self, other: Scalar) -> Scalar:
        if not isinstance(other, Scalar):
            return NotImplemented
        return Scalar(self._v + other._v)

    def __sub__(self, other: Scalar) -> Scalar:
        if not isinstance(other, Scalar):
            return NotImplemented
        return Scalar(self._v - other._v)

    def __neg__(self) -> Scalar:
        return Scalar(-self._v)

    def __mul__(self, other: Scalar) -> Scalar:
        if not isinstance(other, Scalar):
            return NotImplemented
        return Scalar(self._v * other._v)

    def inverse(self) -> Scalar:
        if self._v == 0:
            raise UsageError("zero scalar has no inverse")
        return Scalar(pow(self._v, -1, L))

    # --- comparison / display -----------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Scalar):
            return NotImplemented
        # Constant-time on the encodings: scalars are usually secret.
        return hmac.compare_digest(self.to_bytes(), other.to_bytes())

    def __hash__(self) -> int:
        return hash(("Scalar", self._v))

    def __repr__(self) -> str:
        return "Scalar(<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        # Keep pickling (used by copy.deepcopy) working despite __slots__ + __setattr__.
        return (Scalar, (self._v,))


ZERO: Final[Scalar] = Scalar(0)
ONE: Final[Scalar] = Scalar(1)


class Point:
    """A point of the prime-order subgroup of edwards25519 (or the identity). Immutable.

    Construct from the wire only with `from_bytes`, which validates; arithmetic keeps the subgroup.
    """

    __slots__ = ("_b",)
    _b: bytes

    def __init__(self, encoding: bytes, *, _trusted: bool = False) -> None:
        if not _trusted:
            raise UsageError("use Point.from_bytes() or arithmetic to make a Point")
        object.__setattr__(self, "_b", encoding)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Point is immutable")

    @classmethod
    def from_bytes(cls, data: bytes) -> Point:
        """Strict decoding: 32 bytes, canonical, on the curve, in the prime-order subgroup and
        not the identity (libsodium's is_valid_point checks all four; it rejects every
        small-order point, the identity included)."""
        if len(data) != POINT_SIZE:
            raise InvalidKey(f"point must be {POINT_SIZE} bytes, got {len(data)}")
        data = bytes(data)
        if not _sodium.crypto_core_ed25519_is_valid_point(data):
            raise InvalidKey("not a canonical non-identity point of the prime-order subgroup")
        return cls(data, _trusted=True)

    @classmethod
    def base_mul(cls, scalar: Scalar) -> Point:
        """scalar * B (no clamping)."""
        if scalar.is_zero():
            return IDENTITY  # libsodium refuses to return the identity
        return cls(_sodium.crypto_scalarmult_ed25519_base_noclamp(scalar.to_bytes()), _trusted=True)

    def to_bytes(self) -> bytes:
        return self._b

    def is_identity(self) -> bool:
        return self._b == _IDENTITY_BYTES

    def __add__(self, other: Point) -> Point:
        if not isinstance(other, Point):
            return NotImplemented
        if self._b == _IDENTITY_BYTES:
            return other
        if other._b == _IDENTITY_BYTES:
            return self
        return Point(_sodium.crypto_core_ed25519_add(self._b, other._b), _trusted=True)

    def __sub__(self, other: Point) -> Point:
        if not isinstance(other, Point):
            return NotImplemented
        if other._b == _IDENTITY_BYTES:
            return self
        return Point(_sodium.crypto_core_ed25519_sub(self._b, other._b), _trusted=True)

    def __neg__(self) -> Point:
        return IDENTITY - self

    def __mul__(self, scalar: Scalar) -> Point:
        """Variable-base scalar multiplication (no clamping)."""
        if not isinstance(scalar, Scalar):
            return NotImplemented
        if scalar.is_zero() or self._b == _IDENTITY_BYTES:
            return IDENTITY  # libsodium refuses both (identity result / small-order input)
        return Point(
            _sodium.crypto_scalarmult_ed25519_noclamp(scalar.to_bytes(), self._b), _trusted=True
        )

    __rmul__ = __mul__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Point):
            return NotImplemented
        return self._b == other._b  # encodings are canonical, so equal points <=> equal bytes

    def __hash__(self) -> int:
        return hash(("Point", self._b))

    def __repr__(self) -> str:
        return f"Point({self._b.hex()})"

    def __reduce__(self) -> tuple[object, ...]:
        return (_point_from_trusted, (self._b,))


def _point_from_trusted(encoding: bytes) -> Point:
    return Point(encoding, _trusted=True)


#: The neutral element; encodes as 01 00..00. Never accepted by Point.from_bytes.
IDENTITY: Final[Point] = Point(_IDENTITY_BYTES, _trusted=True)
#: The standard base point B.
BASE: Final[Point] = Point.base_mul(ONE)


def hash_to_scalar(*parts: bytes) -> Scalar:
    """SHA-512 of the concatenation of `parts`, read little-endian and reduced mod L.

    This is COCKTAIL(Ed25519, SHA-512)'s HashToScalar; callers put the domain prefix first.
    """
    h = hashlib.sha512()
    for p in parts:
        h.update(p)
    return Scalar.from_bytes_wide(h.digest())


def schnorr_equation_holds(public: Point, c: Scalar, z: Scalar, r_encoding: bytes) -> bool:
    """Whether `r_encoding` encodes a valid non-identity subgroup point R with z·B = R + c·P.

    R' = z·B − c·P is computed and compared with `r_encoding` byte for byte: R' is a subgroup
    point, canonically encoded, so equal bytes mean R is canonical, on the curve and in the
    subgroup (all that `Point.from_bytes` checks), without a separate subgroup test of R (a
    multiplication by L); an identity R' is refused, as `from_bytes` refuses the identity."""
    expected = Point.base_mul(z) - public * c
    return not expected.is_identity() and hmac.compare_digest(expected.to_bytes(),
                                                              bytes(r_encoding))


def sum_points(points: list[Point] | tuple[Point, ...]) -> Point:
    acc = IDENTITY
    for p in points:
        acc = acc + p
    return acc


__all__ = [
    "BASE",
    "IDENTITY",
    "ONE",
    "POINT_SIZE",
    "SCALAR_SIZE",
    "ZERO",
    "L",
    "Point",
    "Scalar",
    "hash_to_scalar",
    "schnorr_equation_holds",
    "sum_points",
]
