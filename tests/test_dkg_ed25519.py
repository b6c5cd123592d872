"""edwards25519 group arithmetic (triple_ratchet.dkg.ed25519), checked against a small independent
pure-Python reference of the curve (RFC 8032 formulas) written here."""

from __future__ import annotations

import copy

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from triple_ratchet.dkg.ed25519 import (
    BASE,
    IDENTITY,
    ONE,
    ZERO,
    L,
    Point,
    Scalar,
    hash_to_scalar,
    sum_points,
)
from triple_ratchet.errors import DecodeError, InvalidKey, UsageError
from triple_ratchet.random import DeterministicRandom

# --- Reference edwards25519 (extended coordinates), independent of libsodium --------------------

P = 2**255 - 19
D = (-121665 * pow(121666, -1, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

RefPoint = tuple[int, int, int, int]
REF_IDENTITY: RefPoint = (0, 1, 1, 0)


def ref_add(a: RefPoint, b: RefPoint) -> RefPoint:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % P
    bb = (y1 + x1) * (y2 + x2) % P
    cc = t1 * 2 * D * t2 % P
    dd = z1 * 2 * z2 % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def ref_mul(k: int, p: RefPoint) -> RefPoint:
    q = REF_IDENTITY
    while k:
        if k & 1:
            q = ref_add(q, p)
        p = ref_add(p, p)
        k >>= 1
    return q


def ref_eq(a: RefPoint, b: RefPoint) -> bool:
    return (a[0] * b[2] - b[0] * a[2]) % P == 0 and (a[1] * b[2] - b[1] * a[2]) % P == 0


def ref_decode(s: bytes) -> RefPoint | None:
    """Lenient RFC 8032 decoding: returns the point even for a non-canonical y (y >= p)."""
    y = int.from_bytes(s, "little") & ((1 << 255) - 1)
    sign = s[31] >> 7
    y %= P
    x2 = (y * y - 1) * pow(D * y * y + 1, -1, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def ref_encode(p: RefPoint) -> bytes:
    zi = pow(p[2], -1, P)
    x, y = p[0] * zi % P, p[1] * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def ref_is_canonical(s: bytes) -> bool:
    return int.from_bytes(s, "little") & ((1 << 255) - 1) < P


def ref_accepts(s: bytes) -> bool:
    """What Point.from_bytes must accept: canonical, on curve, order exactly L."""
    if not ref_is_canonical(s):
        return False
    p = ref_decode(s)
    if p is None or ref_eq(p, REF_IDENTITY):
        return False
    return ref_eq(ref_mul(L, p), REF_IDENTITY)


REF_BASE = ref_decode(BASE.to_bytes())
assert REF_BASE is not None


def _torsion_points() -> list[bytes]:
    """All 8 points of small order, found from the reference curve (order-8 generator)."""
    for y in range(2, 200):
        cand = ref_decode(y.to_bytes(32, "little"))
        if cand is None:
            continue
        t = ref_mul(L, cand)  # lands in the torsion subgroup
        if not ref_eq(ref_mul(4, t), REF_IDENTITY):  # order exactly 8
            return [ref_encode(ref_mul(k, t)) for k in range(8)]
    raise AssertionError("no order-8 point found")


TORSION = _torsion_points()

scalars = st.integers(min_value=0, max_value=L - 1).map(Scalar.from_int)
nonzero_scalars = st.integers(min_value=1, max_value=L - 1).map(Scalar.from_int)


# --- Scalars ------------------------------------------------------------------------------------


@given(scalars, scalars, scalars)
@settings(max_examples=200, deadline=None)
def test_scalar_ring_laws(a: Scalar, b: Scalar, c: Scalar) -> None:
    assert a * (b + c) == a * b + a * c
    assert (a + b) + c == a + (b + c)
    assert a + b == b + a
    assert (a - b) + b == a
    assert a + (-a) == ZERO
    assert (a * b).to_int() == a.to_int() * b.to_int() % L


@given(nonzero_scalars)
@settings(max_examples=100, deadline=None)
def test_scalar_inverse(a: Scalar) -> None:
    assert a * a.inverse() == ONE


def test_zero_has_no_inverse() -> None:
    with pytest.raises(UsageError):
        ZERO.inverse()


@given(scalars)
@settings(max_examples=200, deadline=None)
def test_scalar_round_trip(a: Scalar) -> None:
    assert Scalar.from_bytes(a.to_bytes()) == a
    assert len(a.to_bytes()) == 32


@given(st.integers(min_value=L, max_value=2**256 - 1))
@settings(max_examples=200, deadline=None)
def test_scalar_rejects_non_canonical(v: int) -> None:
    with pytest.raises(DecodeError):
        Scalar.from_bytes(v.to_bytes(32, "little"))


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_scalar_rejects_wrong_length(length: int) -> None:
    with pytest.raises(DecodeError):
        Scalar.from_bytes(bytes(length))


@given(st.binary(min_size=0, max_size=80))
@settings(max_examples=100, deadline=None)
def test_scalar_wide_reduction(data: bytes) -> None:
    assert Scalar.from_bytes_wide(data).to_int() == int.from_bytes(data, "little") % L


def test_scalar_boundaries() -> None:
    assert Scalar.from_bytes((L - 1).to_bytes(32, "little")).to_int() == L - 1
    with pytest.raises(DecodeError):
        Scalar.from_bytes(L.to_bytes(32, "little"))


def test_scalar_random_is_uniform_draw_of_64_bytes() -> None:
    rng = DeterministicRandom(b"x")
    expected = int.from_bytes(DeterministicRandom(b"x")(64), "little") % L
    assert Scalar.random(rng).to_int() == expected
    assert not Scalar.random_nonzero(DeterministicRandom(b"y")).is_zero()


def test_scalar_repr_is_redacted_and_immutable() -> None:
    s = Scalar.from_int(0x1234567890ABCDEF)
    for text in (repr(s), str(s), f"{s}"):
        assert "1234567890" not in text.lower() and s.to_bytes().hex() not in text
    with pytest.raises(AttributeError):
        s._v = 3  # type: ignore[misc]
    assert copy.deepcopy(s) == s


def test_hash_to_scalar_is_sha512_mod_l() -> None:
    import hashlib

    want = int.from_bytes(hashlib.sha512(b"ab" + b"cd").digest(), "little") % L
    assert hash_to_scalar(b"ab", b"cd").to_int() == want
    assert hash_to_scalar(b"abcd") == hash_to_scalar(b"ab", b"cd")


# --- Points -------------------------------------------------------------------------------------


@given(scalars, scalars)
@settings(max_examples=60, deadline=None)
def test_point_homomorphism(a: Scalar, b: Scalar) -> None:
    pa, pb = Point.base_mul(a), Point.base_mul(b)
    assert pa + pb == Point.base_mul(a + b)
    assert pa - pb == Point.base_mul(a - b)
    assert pa * b == Point.base_mul(a * b) == b * pa
    assert pa + IDENTITY == pa and IDENTITY + pa == pa
    assert pa - pa == IDENTITY
    assert -pa + pa == IDENTITY


@given(nonzero_scalars)
@settings(max_examples=40, deadline=None)
def test_point_matches_reference_and_round_trips(a: Scalar) -> None:
    pa = Point.base_mul(a)
    assert pa.to_bytes() == ref_encode(ref_mul(a.to_int(), REF_BASE))
    assert Point.from_bytes(pa.to_bytes()) == pa


def test_zero_and_identity_multiplication() -> None:
    assert Point.base_mul(ZERO) == IDENTITY
    assert BASE * ZERO == IDENTITY
    assert IDENTITY * Scalar.from_int(5) == IDENTITY
    assert Point.base_mul(Scalar.from_int(L - 1)) + BASE == IDENTITY
    assert IDENTITY.to_bytes() == b"\x01" + bytes(31)
    assert IDENTITY.is_identity() and not BASE.is_identity()
    assert sum_points([BASE, BASE, -BASE]) == BASE


def test_identity_and_all_zero_are_rejected() -> None:
    with pytest.raises(InvalidKey):
        Point.from_bytes(IDENTITY.to_bytes())
    with pytest.raises(InvalidKey):
        Point.from_bytes(bytes(32))  # an order-4 point, not the identity


def test_every_small_order_point_is_rejected() -> None:
    assert len(set(TORSION)) == 8
    for t in TORSION:
        with pytest.raises(InvalidKey):
            Point.from_bytes(t)


def test_mixed_order_points_are_rejected() -> None:
    base = ref_mul(7, REF_BASE)
    for t in TORSION[1:]:
        tp = ref_decode(t)
        assert tp is not None
        mixed = ref_encode(ref_add(base, tp))
        with pytest.raises(InvalidKey):
            Point.from_bytes(mixed)
    Point.from_bytes(ref_encode(base))  # the torsion-free point itself is fine


def test_non_canonical_encodings_are_rejected() -> None:
    # y = p + k for small k (only y < 19 can be non-canonical); both sign bits.
    rejected = 0
    for k in range(19):
        for sign in (0, 1):
            enc = bytearray((P + k).to_bytes(32, "little"))
            enc[31] |= sign << 7
            with pytest.raises(InvalidKey):
                Point.from_bytes(bytes(enc))
            rejected += 1
    assert rejected == 38
    # x = 0 with the sign bit set (y = 1 is the identity, y = -1 the order-2 point).
    for y in (1, P - 1):
        enc = bytearray(y.to_bytes(32, "little"))
        enc[31] |= 0x80
        with pytest.raises(InvalidKey):
            Point.from_bytes(bytes(enc))


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_point_rejects_wrong_length(length: int) -> None:
    with pytest.raises(InvalidKey):
        Point.from_bytes(bytes(length))


@given(st.binary(min_size=32, max_size=32))
@settings(max_examples=150, deadline=None)
def test_from_bytes_agrees_with_reference(data: bytes) -> None:
    ok = ref_accepts(data)
    if ok:
        assert Point.from_bytes(data).to_bytes() == data
    else:
        with pytest.raises(InvalidKey):
            Point.from_bytes(data)


@given(nonzero_scalars, st.integers(min_value=1, max_value=7))
@settings(max_examples=40, deadline=None)
def test_valid_point_plus_torsion_is_rejected(a: Scalar, k: int) -> None:
    pa = ref_mul(a.to_int(), REF_BASE)
    tp = ref_decode(TORSION[k])
    assert tp is not None
    enc = ref_encode(ref_add(pa, tp))
    assume(enc != Point.base_mul(a).to_bytes())
    with pytest.raises(InvalidKey):
        Point.from_bytes(enc)


def test_points_cannot_be_built_unvalidated() -> None:
    with pytest.raises(UsageError):
        Point(bytes(32))
    with pytest.raises(AttributeError):
        BASE._b = bytes(32)  # type: ignore[misc]
    assert copy.deepcopy(BASE) == BASE
    assert hash(Point.from_bytes(BASE.to_bytes())) == hash(BASE)
