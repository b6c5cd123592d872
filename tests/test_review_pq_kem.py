"""Adversarial review (review-pq) of suites/mlkem.py and the hybrid HPKE KEMs (suites/hpke.py).

Findings first (`xfail(strict=True)`, each fails on today's code), then the checks that held, as
regression guards. The ML-KEM reference below is written from FIPS 203 alone (NTT domain, no
Kronecker packing, no cache), so it checks our encapsulation on keys `cryptography`'s key
generation never makes (extreme coefficients), where decapsulation cannot cross-check.
"""

from __future__ import annotations

import hashlib
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from triple_ratchet.errors import DecodeError, InvalidKey, UsageError
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import mlkem
from triple_ratchet.suites.hpke import MLKEM768_P256, XWING, HybridKem, KemKeyPair
from triple_ratchet.suites.mlkem import (
    MLKEM768_PUBLIC_KEY_LEN,
    MlKemPrivateKey,
    MlKemPublicKey,
    clear_expanded_key_cache,
)

Q, N, K = 3329, 256, 3
HYBRID_KEMS = pytest.mark.parametrize("kem", [XWING, MLKEM768_P256], ids=lambda k: k.name)


# --- An independent FIPS 203 K-PKE.Encrypt / Encaps_internal (Algorithms 7-10, 12, 14, 17) ----


def _bitrev7(i: int) -> int:
    return int(f"{i:07b}"[::-1], 2)


ZETA = [pow(17, _bitrev7(i), Q) for i in range(128)]
GAMMA = [pow(17, 2 * _bitrev7(i) + 1, Q) for i in range(128)]


def ref_ntt(f: list[int]) -> list[int]:
    f = list(f)
    i, length = 1, 128
    while length >= 2:
        for start in range(0, N, 2 * length):
            z = ZETA[i]
            i += 1
            for j in range(start, start + length):
                t = z * f[j + length] % Q
                f[j + length] = (f[j] - t) % Q
                f[j] = (f[j] + t) % Q
        length //= 2
    return f


def ref_intt(f: list[int]) -> list[int]:
    f = list(f)
    i, length = 127, 2
    while length <= 128:
        for start in range(0, N, 2 * length):
            z = ZETA[i]
            i -= 1
            for j in range(start, start + length):
                t = f[j]
                f[j] = (t + f[j + length]) % Q
                f[j + length] = z * (f[j + length] - t) % Q
        length *= 2
    return [x * 3303 % Q for x in f]


def ref_mul(a: list[int], b: list[int]) -> list[int]:
    out = [0] * N
    for i in range(128):
        a0, a1, b0, b1 = a[2 * i], a[2 * i + 1], b[2 * i], b[2 * i + 1]
        out[2 * i] = (a0 * b0 + a1 * b1 * GAMMA[i]) % Q
        out[2 * i + 1] = (a0 * b1 + a1 * b0) % Q
    return out


def ref_sample_ntt(seed: bytes) -> list[int]:
    stream = hashlib.shake_128(seed).digest(3 * 1024)
    out: list[int] = []
    pos = 0
    while len(out) < N:
        c0, c1, c2 = stream[pos:pos + 3]
        pos += 3
        d1, d2 = c0 + 256 * (c1 % 16), c1 // 16 + 16 * c2
        if d1 < Q:
            out.append(d1)
        if d2 < Q and len(out) < N:
            out.append(d2)
    return out


def ref_cbd2(data: bytes) -> list[int]:
    bits = [(data[i // 8] >> (i % 8)) & 1 for i in range(8 * len(data))]
    return [(bits[4 * i] + bits[4 * i + 1] - bits[4 * i + 2] - bits[4 * i + 3]) % Q
            for i in range(N)]


def ref_prf(s: bytes, b: int) -> bytes:
    return hashlib.shake_256(s + bytes([b])).digest(128)


def ref_compress(x: int, d: int) -> int:
    # round(2^d / q * x) mod 2^d with exact rational arithmetic, ties up.
    num = (x << d)
    return ((2 * num + Q) // (2 * Q)) % (1 << d)


def ref_encode(values: list[int], d: int) -> bytes:
    acc = 0
    for i, v in enumerate(values):
        acc |= v << (d * i)
    return acc.to_bytes(d * len(values) // 8, "little")


def ref_decode12(data: bytes) -> list[int]:
    acc = int.from_bytes(data, "little")
    return [(acc >> (12 * i)) & 0xFFF for i in range(8 * len(data) // 12)]


def ref_encaps(ek: bytes, m: bytes) -> tuple[bytes, bytes]:
    g = hashlib.sha3_512(m + hashlib.sha3_256(ek).digest()).digest()
    shared, r = g[:32], g[32:]
    t_hat = ref_decode12(ek[:384 * K])
    t = [t_hat[N * i:N * (i + 1)] for i in range(K)]
    rho = ek[384 * K:]
    a_hat = [[ref_sample_ntt(rho + bytes([j, i])) for j in range(K)] for i in range(K)]
    y = [ref_ntt(ref_cbd2(ref_prf(r, n))) for n in range(K)]
    e1 = [ref_cbd2(ref_prf(r, K + n)) for n in range(K)]
    e2 = ref_cbd2(ref_prf(r, 2 * K))
    u = []
    for i in range(K):
        acc = [0] * N
        for j in range(K):
            acc = [(x + z) % Q for x, z in zip(acc, ref_mul(a_hat[j][i], y[j]), strict=True)]
        u.append([(x + e) % Q for x, e in zip(ref_intt(acc), e1[i], strict=True)])
    acc = [0] * N
    for j in range(K):
        acc = [(x + z) % Q for x, z in zip(acc, ref_mul(t[j], y[j]), strict=True)]
    mu = [1665 * ((m[i // 8] >> (i % 8)) & 1) for i in range(N)]
    v = [(x + e + w) % Q for x, e, w in zip(ref_intt(acc), e2, mu, strict=True)]
    c1 = b"".join(ref_encode([ref_compress(x, 10) for x in poly], 10) for poly in u)
    c2 = ref_encode([ref_compress(x, 4) for x in v], 4)
    return shared, c1 + c2


def _ek(coefficients: list[int], rho: bytes) -> bytes:
    acc = 0
    for i, c in enumerate(coefficients):
        acc |= c << (12 * i)
    return acc.to_bytes(384 * K, "little") + rho


# =================================================================================================
# Findings
# =================================================================================================


def test_f1_mlkem_public_key_constructor_validates() -> None:
    """F1 (low). `MlKemPublicKey(data)` is public (exported, no underscore) and stores `data`
    unchecked: an unreduced key (every coefficient 4095) encapsulates happily, its expansion is
    cached, and `Identity.sign_kem_prekey` (which only checks `isinstance`) signs it into a
    bundle no peer can decode; a 10-byte "key" crashes `encapsulate` with a bare ValueError
    from zip(); likewise `MlKemPrivateKey(b"short")` is `cryptography`'s bare ValueError, not
    `InvalidKey` (`from_seed` checks, the constructor does not). Every other key type of the
    suites layer can only be made by its validating decoder (`_P256Public`, `_X25519Public`
    are private), which is what "valid by construction" of bundles leans on (checked: a
    `PrekeyBundle` object with the unreduced key is made and verifies; its own bytes are then
    refused by every peer's `from_bytes`). Fix: run the length + `_reduced` checks in `__init__`
    (2.5 µs; `MlKemPrivateKey` can keep a private trusted path), or rename the class's
    constructor path private and keep `from_bytes` the only public one."""
    with pytest.raises(InvalidKey):
        MlKemPublicKey(b"\xff" * MLKEM768_PUBLIC_KEY_LEN)
    with pytest.raises(InvalidKey):
        MlKemPublicKey(b"\x00" * 10)
    with pytest.raises(InvalidKey):
        MlKemPrivateKey(b"\x00" * 10)


# =================================================================================================
# Checks that held (regression guards)
# =================================================================================================


EDGE_POLYS = {
    "zero": [0] * (N * K),
    "q-1": [Q - 1] * (N * K),
    "1664": [1664] * (N * K),  # the largest centred value
    "1665": [1665] * (N * K),  # the most negative centred value
    "alternating": [1664 if i % 2 else 1665 for i in range(N * K)],
    "ramp": [i % Q for i in range(N * K)],
}


@pytest.mark.parametrize("name", list(EDGE_POLYS))
@pytest.mark.parametrize("m", [bytes(32), b"\xff" * 32, bytes(range(32))], ids=["0", "ff", "ramp"])
def test_encapsulation_matches_fips203_reference_on_extreme_keys(name: str, m: bytes) -> None:
    """Keys with every t̂ coefficient at an edge of the centred range (the Kronecker slots'
    worst case) and all-zero / all-one messages: our packed encapsulation equals the plain
    NTT-domain FIPS 203 one, with and without the cache."""
    ek = _ek(EDGE_POLYS[name], hashlib.sha256(name.encode()).digest())
    public = MlKemPublicKey.from_bytes(ek)
    clear_expanded_key_cache(public)
    assert public.encapsulate(m) == ref_encaps(ek, m)
    assert public.encapsulate(m) == ref_encaps(ek, m)  # cached expansion


@settings(max_examples=12, deadline=None)
@given(coefficients=st.lists(st.integers(0, Q - 1), min_size=N * K, max_size=N * K),
       rho=st.binary(min_size=32, max_size=32), m=st.binary(min_size=32, max_size=32))
def test_encapsulation_matches_fips203_reference_on_arbitrary_keys(
        coefficients: list[int], rho: bytes, m: bytes) -> None:
    ek = _ek(coefficients, rho)
    assert MlKemPublicKey.from_bytes(ek).encapsulate(m) == ref_encaps(ek, m)


@settings(max_examples=12, deadline=None)
@given(seed=st.binary(min_size=64, max_size=64), m=st.binary(min_size=32, max_size=32))
def test_reference_agrees_with_cryptography_keys(seed: bytes, m: bytes) -> None:
    """Anchors the reference itself: on honest keys it matches `cryptography`'s decapsulation."""
    ek = MLKEM768PrivateKey.from_seed_bytes(seed).public_key().public_bytes_raw()
    shared, ct = ref_encaps(ek, m)
    assert MLKEM768PrivateKey.from_seed_bytes(seed).decapsulate(ct) == shared
    assert MlKemPublicKey.from_bytes(ek).encapsulate(m) == (shared, ct)


@settings(max_examples=30, deadline=None)
@given(index=st.integers(0, N * K - 1), value=st.integers(Q, 4095))
def test_one_unreduced_coefficient_anywhere_is_refused(index: int, value: int) -> None:
    coefficients = [Q - 1] * (N * K)  # every other coefficient at the largest valid value
    coefficients[index] = value
    with pytest.raises(InvalidKey):
        MlKemPublicKey.from_bytes(_ek(coefficients, bytes(32)))


def test_modulus_check_is_exact_at_q_minus_1_and_q() -> None:
    assert MlKemPublicKey.from_bytes(_ek([Q - 1] * (N * K), bytes(32)))
    for index in (0, 1, N * K - 2, N * K - 1):
        coefficients = [0] * (N * K)
        coefficients[index] = Q
        with pytest.raises(InvalidKey):
            MlKemPublicKey.from_bytes(_ek(coefficients, bytes(32)))


def test_a_refused_key_never_reaches_or_poisons_the_cache() -> None:
    """A key that fails the modulus check is refused before any expansion; a valid key whose
    bytes share every byte but one with it (prefix, same length) gets its own expansion."""
    clear_expanded_key_cache()
    good = _ek([7] * (N * K), b"\x01" * 32)
    bad = bytearray(good)
    bad[0], bad[1] = 0xFF, bad[1] | 0x0F  # first coefficient 4095
    with pytest.raises(InvalidKey):
        MlKemPublicKey.from_bytes(bytes(bad))
    assert len(mlkem._cache) == 0
    m = bytes(range(32))
    twin = bytearray(good)
    twin[-1] ^= 1  # same length, same prefix, another ρ
    a = MlKemPublicKey.from_bytes(good).encapsulate(m)
    b = MlKemPublicKey.from_bytes(bytes(twin)).encapsulate(m)
    assert a == ref_encaps(good, m) and b == ref_encaps(bytes(twin), m) and a != b


def test_cache_is_keyed_by_the_whole_key_under_eviction_and_threads(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight threads encapsulating to five keys through a 2-entry cache (constant eviction):
    every result equals the uncached one."""
    monkeypatch.setattr(mlkem, "EXPANDED_KEY_CACHE_SIZE", 2)
    clear_expanded_key_cache()
    rng = DeterministicRandom(b"review-pq cache threads")
    keys = [MlKemPrivateKey.generate(rng).public_key() for _ in range(5)]
    ms = [rng(32) for _ in range(4)]
    expected = {(i, j): ref_encaps(k.to_bytes(), m)
                for i, k in enumerate(keys) for j, m in enumerate(ms)}
    failures: list[tuple[int, int]] = []

    def worker(offset: int) -> None:
        for step in range(12):
            i, j = (offset + step) % len(keys), (offset * step) % len(ms)
            if keys[i].encapsulate(ms[j]) != expected[(i, j)]:
                failures.append((i, j))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == [] and len(mlkem._cache) <= 2


def test_secrets_stay_out_of_repr_and_errors() -> None:
    seed = bytes(range(64))
    key = MlKemPrivateKey.from_seed(seed)
    assert seed.hex()[:16] not in repr(key)
    pair = XWING.derive_key_pair(b"\x42" * 32)
    assert pair.private_key.hex()[:16] not in repr(pair) and isinstance(pair, KemKeyPair)
    m = b"\x5a" * 31
    with pytest.raises(UsageError) as raised:
        key.public_key().encapsulate(m)
    assert m.hex() not in str(raised.value) and raised.value.__context__ is None
    with pytest.raises(DecodeError) as decode:
        key.decapsulate(b"\x00" * 1087)
    assert decode.value.__context__ is None


# --- Hybrid KEMs ----------------------------------------------------------------------------


def test_xwing_combiner_is_the_drafts_from_independent_parts() -> None:
    """ss = SHA3-256(ss_M ‖ ss_X ‖ ct_X ‖ pk_X ‖ "\\./" "/^\\") recomputed from `cryptography`'s
    ML-KEM decapsulation and X25519 alone, with the key expansion of the draft
    (SHAKE256(sk, 96): d ‖ z ‖ sk_X)."""
    pair = XWING.derive_key_pair(b"review-pq xwing".ljust(32, b"."))
    expanded = hashlib.shake_256(pair.private_key).digest(96)
    pk_m = MLKEM768PrivateKey.from_seed_bytes(expanded[:64]).public_key().public_bytes_raw()
    sk_x = X25519PrivateKey.from_private_bytes(expanded[64:])
    pk_x = sk_x.public_key().public_bytes_raw()
    assert pair.public_key == pk_m + pk_x
    eseed = hashlib.sha256(b"eseed").digest() + hashlib.sha256(b"eseed 2").digest()
    ss, enc = XWING.encap(pair.public_key, eseed)
    ct_m, ct_x = enc[:1088], enc[1088:]
    ss_m = MLKEM768PrivateKey.from_seed_bytes(expanded[:64]).decapsulate(ct_m)
    ss_x = sk_x.exchange(X25519PublicKey.from_public_bytes(ct_x))
    label = bytes.fromhex("5c2e2f2f5e5c")
    assert ss == hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + label).digest()
    assert XWING.decap(enc, pair.private_key) == ss
    # A classical-only break: the attacker holds both X25519 scalars, so ss_X, but not ss_M.
    assert ss != hashlib.sha3_256(bytes(32) + ss_x + ct_x + pk_x + label).digest()


@HYBRID_KEMS
def test_hybrid_secret_depends_on_the_mlkem_half(kem: HybridKem) -> None:
    """Same classical ephemeral and recipient, another ML-KEM `m`: another shared secret; the
    same `m`: the same one. A DH break (which fixes ss_T) never fixes ss."""
    pair = kem.derive_key_pair(b"\x07" * 32)
    rest = DeterministicRandom(b"group part")(kem.n_ikm - 32)
    a, enc_a = kem.encap(pair.public_key, b"\x01" * 32 + rest)
    b, enc_b = kem.encap(pair.public_key, b"\x02" * 32 + rest)
    assert enc_a[1088:] == enc_b[1088:] and a != b
    assert kem.decap(enc_a, pair.private_key) == a and kem.decap(enc_b, pair.private_key) == b


@HYBRID_KEMS
def test_hybrid_lengths_and_short_ikm(kem: HybridKem) -> None:
    pair = kem.derive_key_pair(b"\x09" * 32)
    for bad in (pair.public_key[:-1], pair.public_key + b"\x00", b""):
        with pytest.raises(InvalidKey):
            kem.deserialize_public_key(bad)
        with pytest.raises(InvalidKey):
            kem.encap(bad, b"\x01" * kem.n_ikm)
    _, enc = kem.encap(pair.public_key, b"\x01" * kem.n_ikm)
    for bad in (enc[:-1], enc + b"\x00"):
        with pytest.raises(InvalidKey):
            kem.decap(bad, pair.private_key)
    with pytest.raises(UsageError):
        kem.derive_key_pair(b"\x00" * 31)
    with pytest.raises(UsageError):
        kem.encap(pair.public_key, b"\x01" * (kem.n_ikm_min - 1))
    with pytest.raises(InvalidKey):
        kem.decap(enc, pair.private_key + b"\x00")


@HYBRID_KEMS
def test_hybrid_public_key_with_unreduced_mlkem_half_is_refused(kem: HybridKem) -> None:
    pair = kem.derive_key_pair(b"\x0a" * 32)
    bad = bytearray(pair.public_key)
    bad[0] = 0xFF
    bad[1] |= 0x0F
    with pytest.raises(InvalidKey):
        kem.deserialize_public_key(bytes(bad))
    with pytest.raises(InvalidKey):
        kem.encap(bytes(bad), b"\x01" * kem.n_ikm)


def test_xwing_small_order_and_noncanonical_x25519_refused() -> None:
    pair = XWING.derive_key_pair(b"\x0b" * 32)
    pk_m = pair.public_key[:1184]
    _, enc = XWING.encap(pair.public_key, b"\x01" * 64)
    small_order = [bytes(32), (1).to_bytes(32, "little"),
                   bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")]
    for point in small_order:
        with pytest.raises(InvalidKey):
            XWING.encap(pk_m + point, b"\x01" * 64)
        with pytest.raises(InvalidKey):
            XWING.decap(enc[:1088] + point, pair.private_key)
    p = 2**255 - 19
    honest_x = int.from_bytes(pair.public_key[1184:], "little")
    if honest_x + p < 2**256:  # u + p in 32 bytes: the same point, non-canonical
        with pytest.raises(InvalidKey):
            XWING.encap(pk_m + (honest_x + p).to_bytes(32, "little"), b"\x01" * 64)


def test_mlkem768_p256_off_curve_and_compressed_points_refused() -> None:
    pair = MLKEM768_P256.derive_key_pair(b"\x0c" * 32)
    pk_m, point = pair.public_key[:1184], pair.public_key[1184:]
    off_curve = point[:-1] + bytes([point[-1] ^ 1])
    for bad in (off_curve, b"\x00" * 65, b"\x02" + point[1:33] + bytes(32)):
        with pytest.raises(InvalidKey):
            MLKEM768_P256.encap(pk_m + bad, b"\x01" * 160)


@settings(max_examples=6, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), randomness=st.binary(min_size=160, max_size=160))
def test_mlkem768_p256_combiner_is_qsf_from_independent_parts(seed: bytes,
                                                              randomness: bytes) -> None:
    """ss = SHA3-256(ss_PQ ‖ ss_T ‖ ct_T ‖ ek_T ‖ "MLKEM768-P256"), recomputed with
    `cryptography`'s ML-KEM and ECDH from the draft's key expansion (SHAKE256(seed, 64 + 128):
    d ‖ z, then the first 32-byte chunk in [1, n − 1] as the P-256 scalar)."""
    expanded = hashlib.shake_256(seed).digest(64 + 128)
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    scalar = next(int.from_bytes(expanded[i:i + 32], "big") for i in range(64, 192, 32)
                  if 0 < int.from_bytes(expanded[i:i + 32], "big") < order)
    sk_t = ec.derive_private_key(scalar, ec.SECP256R1())
    ek_t = sk_t.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    mlkem_key = MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
    public = mlkem_key.public_key().public_bytes_raw() + ek_t
    assert MLKEM768_P256.public_key_of(seed) == public
    try:
        ss, enc = MLKEM768_P256.encap(public, randomness)
    except InvalidKey:  # no candidate scalar in range: probability 2^-128
        return
    ct_t = enc[1088:]
    ss_pq = mlkem_key.decapsulate(enc[:1088])
    ss_t = sk_t.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), ct_t))
    assert ss == hashlib.sha3_256(ss_pq + ss_t + ct_t + ek_t + b"MLKEM768-P256").digest()
    assert MLKEM768_P256.decap(enc, seed) == ss
    # The ML-KEM half is Encaps_internal(ek_PQ, randomness[0:32]), per the reference above.
    assert enc[:1088] == ref_encaps(public[:1184], randomness[:32])[1]
