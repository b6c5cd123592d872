"""ML-KEM-768 (FIPS 203): key generation and decapsulation from `cryptography`, and the
derandomised encapsulation `Encaps_internal(ek, m)` in pure Python (spec 02, "ML-KEM-768").

Why our own encapsulation: the epoch change seals to every member with an ephemeral derived from
the seal secret, so every committee member computes the same bundle (rules R2, R9). `cryptography`
only exposes a randomised `encapsulate()`; FIPS 203's Algorithm 17 with a given 32-byte `m` is
what a hybrid KEM needs. Decapsulation stays `cryptography`'s (constant time, implicit rejection).

How it is fast in Python: the matrix Â and t̂ are sampled in the NTT domain, but Â^T·y and t̂^T·y
only need the products, so we take Â and t̂ back to the coefficient domain once per public key
(inverse NTT) and multiply polynomials by Kronecker substitution (one big-integer product per
pair, Python's C multiplication doing the work), reducing mod X^256 + 1 by folding the top half.
The per-key part is kept in a bounded LRU: the same member keys are sealed to in every epoch.
"""

from __future__ import annotations

import hashlib
import hmac
import sys
from array import array
from collections import OrderedDict
from threading import Lock
from typing import Final

from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey

from triple_ratchet.errors import DecodeError, InvalidKey, UnsupportedError, UsageError
from triple_ratchet.random import RandomSource, system_random
from triple_ratchet.suites._base import _Immutable, key_bytes

MLKEM768_PUBLIC_KEY_LEN: Final = 1184
MLKEM768_CIPHERTEXT_LEN: Final = 1088
MLKEM768_SEED_LEN: Final = 64
SHARED_LEN: Final = 32
MLKEM768_MESSAGE_LEN: Final = 32  # the encapsulation randomness `m`

_Q: Final = 3329
_N: Final = 256
_K: Final = 3
_DU: Final = 10
_DV: Final = 4
_T_LEN: Final = 384 * _K  # ByteEncode_12 of t̂
_INV_128: Final = 3303  # 128^-1 mod q, the inverse NTT's final scaling
# Kronecker slots of 24 bits: with Â, t̂ taken centred (|a| ≤ 1664) and |y| ≤ 2, every
# coefficient of Σ_j a_j·y_j, before and after folding mod X^256 + 1, is below 3·256·3328 < 2^22
# in size, so biased by 2^23 it fills its 3 bytes without carrying into the next.
_SLOT: Final = 3
_POLY_BITS: Final = 8 * _SLOT * _N
_BIAS: Final = 1 << 23
_LOW_MASK: Final = (1 << _POLY_BITS) - 1
_BIAS_LOW: Final = int.from_bytes(b"\x00\x00\x80" * _N, "little")  # 2^23 in each of 256 slots
_BIAS_PRODUCT: Final = int.from_bytes(b"\x00\x00\x80" * (2 * _N), "little")
_TWO_IN_EACH: Final = int.from_bytes(b"\x02\x00\x00" * _N, "little")
_UNBIAS: Final = -_BIAS % _Q
_SAMPLE_BYTES: Final = 3 * 168  # three SHAKE128 blocks give 336 candidates; 256 needed (~99%)
# How many public keys' expansions are kept (10.7 KB each, measured): a committee member seals
# to every member in roster order, a cyclic pattern under which an LRU smaller than the group
# never hits, so it holds a whole group of the largest size (1,000, spec 12): ~11 MB at most.
EXPANDED_KEY_CACHE_SIZE: Final = 1024


def _bitrev7(i: int) -> int:
    return int(f"{i:07b}"[::-1], 2)


_ZETAS: Final = tuple(pow(17, _bitrev7(i), _Q) for i in range(128))


def _inverse_ntt_steps() -> tuple[tuple[int, int, int], ...]:
    """FIPS 203 Algorithm 10's butterflies, flattened: (j, j + len, zeta) in execution order."""
    steps: list[tuple[int, int, int]] = []
    i = 127
    length = 2
    while length <= 128:
        for start in range(0, _N, 2 * length):
            zeta = _ZETAS[i]
            i -= 1
            steps.extend((j, j + length, zeta) for j in range(start, start + length))
        length *= 2
    return tuple(steps)


_INV_NTT_STEPS: Final = _inverse_ntt_steps()


def _inverse_ntt(f_hat: list[int]) -> list[int]:
    f = list(f_hat)
    for a, b, zeta in _INV_NTT_STEPS:
        x = f[a]
        y = f[b]
        f[a] = x + y  # grows at most 2^7-fold over the seven layers; reduced at the end
        f[b] = zeta * (y - x) % _Q
    return [x * _INV_128 % _Q for x in f]


def _decode12(data: bytes) -> list[int]:
    """ByteDecode_12 (and SampleNTT's parsing): two 12-bit little-endian values per 3 bytes."""
    b0, b1, b2 = data[0::3], data[1::3], data[2::3]
    out = [0] * (2 * len(b0))
    out[0::2] = [x | (y & 0x0F) << 8 for x, y in zip(b0, b1, strict=True)]
    out[1::2] = [y >> 4 | z << 4 for y, z in zip(b1, b2, strict=True)]
    return out


# The modulus check without decoding: the 768 12-bit coefficients of ByteEncode_12(t̂), read as
# one integer, split into the even and the odd ones, each in a 24-bit slot. Adding 4096 − q to
# every coefficient carries into bit 12 of its slot exactly when the coefficient is ≥ q.
_EVEN_MASK: Final = int.from_bytes(b"\xff\x0f\x00" * (_N * _K // 2), "little")
_ADD_4096_MINUS_Q: Final = int.from_bytes((4096 - _Q).to_bytes(3, "little") * (_N * _K // 2),
                                          "little")
_BIT_12: Final = int.from_bytes(b"\x00\x10\x00" * (_N * _K // 2), "little")


def _reduced(encoded: bytes) -> bool:
    """Whether every coefficient of ByteEncode_12 data is below q (FIPS 203's modulus check)."""
    value = int.from_bytes(encoded, "little")
    even = value & _EVEN_MASK
    odd = value >> 12 & _EVEN_MASK
    return not ((even + _ADD_4096_MINUS_Q) | (odd + _ADD_4096_MINUS_Q)) & _BIT_12


def _sample_ntt(seed: bytes) -> list[int]:
    """SampleNTT (FIPS 203 Algorithm 7): rejection sampling of SHAKE128(seed) into [0, q)."""
    length = _SAMPLE_BYTES
    while True:
        stream = hashlib.shake_128(seed).digest(length)
        coefficients = [c for c in _decode12(stream) if c < _Q]
        if len(coefficients) >= _N:
            return coefficients[:_N]
        length += _SAMPLE_BYTES  # same prefix, longer: the XOF read further


# CBD_2 per byte: the low nibble gives one coefficient, the high nibble the next (FIPS 203
# Algorithm 8 with η = 2: bit0 + bit1 − bit2 − bit3). `_CBD_SHIFTED` is y + 2 ∈ [0, 4], one byte.
def _cbd_nibble(x: int) -> int:
    return (x & 1) + (x >> 1 & 1) - (x >> 2 & 1) - (x >> 3 & 1)


_CBD: Final = tuple((_cbd_nibble(b & 15), _cbd_nibble(b >> 4)) for b in range(256))
_CBD_SHIFTED: Final = tuple(bytes((lo + 2, hi + 2)) for lo, hi in _CBD)
_COMPRESS_DU: Final = tuple(((x << _DU) * 2 + _Q) // (2 * _Q) % (1 << _DU) for x in range(_Q))
_COMPRESS_DV: Final = tuple(((x << _DV) * 2 + _Q) // (2 * _Q) % (1 << _DV) for x in range(_Q))
_HALF_Q: Final = (_Q + 1) // 2  # Decompress_1(1) = round(q / 2)


def _prf(r: bytes, n: int) -> bytes:
    """PRF_2(r, N) = SHAKE256(r ‖ N, 128 bytes)."""
    return hashlib.shake_256(r + bytes((n,))).digest(128)


def _cbd(r: bytes, n: int) -> list[int]:
    return [c for b in _prf(r, n) for c in _CBD[b]]


def _packed_noise(r: bytes, n: int) -> int:
    """CBD_2(PRF(r, N)) evaluated at 2^24."""
    slots = bytearray(_SLOT * _N)
    slots[0::_SLOT] = b"".join([_CBD_SHIFTED[b] for b in _prf(r, n)])
    return int.from_bytes(slots, "little") - _TWO_IN_EACH


# Decompress_1(ByteDecode_1(m)): round(q/2) = 0x0681 in the slot of every set bit of m.
_BITS_TIMES_0X81: Final = tuple(bytes(0x81 * (b >> i & 1) for i in range(8)) for b in range(256))
_BITS_TIMES_0X06: Final = tuple(bytes(0x06 * (b >> i & 1) for i in range(8)) for b in range(256))


def _packed_message(m: bytes) -> int:
    slots = bytearray(_SLOT * _N)
    slots[0::_SLOT] = b"".join([_BITS_TIMES_0X81[b] for b in m])
    slots[1::_SLOT] = b"".join([_BITS_TIMES_0X06[b] for b in m])
    return int.from_bytes(slots, "little")


# A coefficient mod q as its centred representative plus the slot bias (always ≥ 0).
_CENTRED_BIASED: Final = tuple((c - _Q if c > _Q // 2 else c) + _BIAS for c in range(_Q))


def _pack_centred(poly: list[int]) -> int:
    """A polynomial mod q, coefficients centred in [−1664, 1664], evaluated at 2^24."""
    raw = array("I", [_CENTRED_BIASED[c] for c in poly]).tobytes()
    slots = bytearray(_SLOT * _N)
    slots[0::3] = raw[0::4]
    slots[1::3] = raw[1::4]
    slots[2::3] = raw[2::4]
    return int.from_bytes(slots, "little") - _BIAS_LOW


def _fold(product: int) -> list[int]:
    """A Kronecker product (degree ≤ 510) reduced mod (X^256 + 1, q): its 256 coefficients."""
    biased = product + _BIAS_PRODUCT
    folded = ((biased & _LOW_MASK) - (biased >> _POLY_BITS) + _BIAS_LOW).to_bytes(
        _SLOT * _N, "little")
    # Widen the 3-byte slots to 4 so that memoryview reads them as native unsigned ints.
    wide = bytearray(4 * _N)
    wide[0::4] = folded[0::3]
    wide[1::4] = folded[1::3]
    wide[2::4] = folded[2::3]
    return [(x + _UNBIAS) % _Q for x in memoryview(wide).cast("I")]


class _ExpandedKey:
    """What Encaps needs of one encapsulation key, computed once: H(ek), and A's columns and t
    in the coefficient domain, packed for Kronecker products."""

    __slots__ = ("a_columns", "h_ek", "t_packed")

    def __init__(self, ek: bytes) -> None:
        rho = ek[_T_LEN:]
        t_hat = _decode12(ek[:_T_LEN])
        self.h_ek = hashlib.sha3_256(ek).digest()
        # u[i] = Σ_j Â[j, i] ∘ ŷ[j] with Â[j, i] = SampleNTT(ρ ‖ i ‖ j) (Algorithm 13, transposed).
        self.a_columns = tuple(
            tuple(_pack_centred(_inverse_ntt(_sample_ntt(rho + bytes((i, j)))))
                  for j in range(_K))
            for i in range(_K)
        )
        self.t_packed = tuple(_pack_centred(_inverse_ntt(t_hat[_N * j:_N * (j + 1)]))
                              for j in range(_K))


_cache: OrderedDict[bytes, _ExpandedKey] = OrderedDict()
_cache_lock = Lock()


def _expanded(ek: bytes) -> _ExpandedKey:
    with _cache_lock:
        hit = _cache.get(ek)
        if hit is not None:
            _cache.move_to_end(ek)
            return hit
    expanded = _ExpandedKey(ek)
    with _cache_lock:
        _cache[ek] = expanded
        while len(_cache) > EXPANDED_KEY_CACHE_SIZE:
            _cache.popitem(last=False)
    return expanded


def _encode10(values: list[int]) -> bytes:
    """ByteEncode_10: four 10-bit values, little-endian, in five bytes (of an 8-byte word)."""
    words = memoryview(bytearray(8 * (len(values) // 4))).cast("Q")
    words[:] = array("Q", [
        a | b << 10 | c << 20 | d << 30
        for a, b, c, d in zip(values[0::4], values[1::4], values[2::4], values[3::4], strict=True)
    ])
    raw = words.cast("B")
    out = bytearray(5 * len(words))
    for k in range(5):
        out[k::5] = raw[k::8]
    return bytes(out)


def _encrypt(expanded: _ExpandedKey, m: bytes, r: bytes) -> bytes:
    """K-PKE.Encrypt (FIPS 203 Algorithm 14) with the key's expansion precomputed: the noise e1,
    e2 and the message μ are added to the Kronecker products before folding."""
    y0, y1, y2 = (_packed_noise(r, n) for n in range(_K))
    u: list[int] = []
    for i in range(_K):
        a0, a1, a2 = expanded.a_columns[i]
        u += [_COMPRESS_DU[x] for x in _fold(a0 * y0 + a1 * y1 + a2 * y2 +
                                             _packed_noise(r, _K + i))]
    t0, t1, t2 = expanded.t_packed
    v = [_COMPRESS_DV[x] for x in _fold(t0 * y0 + t1 * y1 + t2 * y2 +
                                        _packed_noise(r, 2 * _K) + _packed_message(m))]
    return _encode10(u) + bytes(a | b << 4 for a, b in zip(v[0::2], v[1::2], strict=True))


_LITTLE_ENDIAN = sys.byteorder == "little"

class MlKemPublicKey(_Immutable):
    """An ML-KEM-768 encapsulation key that passed FIPS 203's input checks (section 7.2)."""

    __slots__ = ("_encoded",)

    def __init__(self, encoded: bytes) -> None:
        # Checked here, not only in `from_bytes`: every key object is valid by construction
        # (a bundle signed over an unchecked key would be refused by every peer). ~2.5 µs.
        data = key_bytes(encoded, "ML-KEM-768 public key")
        if len(data) != MLKEM768_PUBLIC_KEY_LEN:
            raise InvalidKey(f"ML-KEM-768 public key must be {MLKEM768_PUBLIC_KEY_LEN} bytes")
        if not _reduced(data[:_T_LEN]):
            raise InvalidKey("ML-KEM-768 public key has a coefficient not reduced mod q")
        self._encoded = data

    @classmethod
    def from_bytes(cls, data: bytes) -> MlKemPublicKey:
        """Decode `ek`: 1184 bytes whose 768 12-bit coefficients are all below q (the modulus
        check: ByteEncode_12(ByteDecode_12(ek)) = ek); anything else is `InvalidKey`."""
        return cls(data)

    def to_bytes(self) -> bytes:
        return self._encoded

    def encapsulate(self, m: bytes) -> tuple[bytes, bytes]:
        """`(shared_secret, ciphertext)`: ML-KEM.Encaps_internal(ek, m) (FIPS 203 Algorithm
        17), deterministic in the 32-byte `m`, which must be secret and uniformly random."""
        m = key_bytes(m, "ML-KEM encapsulation randomness")
        if len(m) != MLKEM768_MESSAGE_LEN:
            raise UsageError(f"ML-KEM encapsulation randomness must be {MLKEM768_MESSAGE_LEN} "
                             "bytes")
        if not _LITTLE_ENDIAN:  # the packed arithmetic reads machine words (memoryview.cast)
            raise UnsupportedError("ML-KEM encapsulation from m needs a little-endian machine")
        expanded = _expanded(self._encoded)
        g = hashlib.sha3_512(m + expanded.h_ek).digest()
        shared, r = g[:SHARED_LEN], g[SHARED_LEN:]
        return shared, _encrypt(expanded, m, r)

    def encapsulate_random(self) -> tuple[bytes, bytes]:
        """`(shared_secret, ciphertext)` with `m` drawn by `cryptography` from the OS (its
        `ML-KEM.Encaps`, ~0.1 ms): for an encapsulation nobody needs to reproduce, e.g. a
        handshake with the system random source. Sealings use `encapsulate(m)`."""
        shared, ciphertext = MLKEM768PublicKey.from_public_bytes(self._encoded).encapsulate()
        return shared, ciphertext

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MlKemPublicKey) and hmac.compare_digest(
            self._encoded, other._encoded
        )

    def __hash__(self) -> int:
        return hash(self._encoded)

    def __repr__(self) -> str:
        return f"MlKemPublicKey({self._encoded.hex()[:16]}…)"


class MlKemPrivateKey(_Immutable):
    """An ML-KEM-768 decapsulation key, kept as its 64-byte seed d ‖ z (FIPS 203's compact
    form; `cryptography` expands it)."""

    __slots__ = ("_key", "_public", "_seed")

    def __init__(self, seed: bytes) -> None:
        seed = key_bytes(seed, "ML-KEM-768 seed")
        if len(seed) != MLKEM768_SEED_LEN:
            raise InvalidKey(f"ML-KEM-768 seed must be {MLKEM768_SEED_LEN} bytes")
        self._seed = seed
        self._key = MLKEM768PrivateKey.from_seed_bytes(seed)
        self._public = MlKemPublicKey(self._key.public_key().public_bytes_raw())

    @classmethod
    def from_seed(cls, seed: bytes) -> MlKemPrivateKey:
        """ML-KEM.KeyGen_internal(d, z) from `seed` = d ‖ z (64 bytes; else `InvalidKey`)."""
        return cls(seed)

    @classmethod
    def generate(cls, rng: RandomSource = system_random) -> MlKemPrivateKey:
        return cls.from_seed(rng(MLKEM768_SEED_LEN))

    def public_key(self) -> MlKemPublicKey:
        return self._public

    def decapsulate(self, ciphertext: bytes) -> bytes:
        """The 32-byte shared secret (implicit rejection: a wrong but well-sized ciphertext
        gives a pseudorandom secret); a ciphertext not 1088 bytes long is a `DecodeError`."""
        ciphertext = key_bytes(ciphertext, "ML-KEM-768 ciphertext")
        if len(ciphertext) != MLKEM768_CIPHERTEXT_LEN:
            raise DecodeError(f"ML-KEM-768 ciphertext must be {MLKEM768_CIPHERTEXT_LEN} bytes")
        return self._key.decapsulate(ciphertext)

    def to_bytes(self) -> bytes:
        """The 64-byte seed: secret, for serialised state only."""
        return self._seed

    def __repr__(self) -> str:
        return "MlKemPrivateKey(<secret>)"


def _ntt(f: list[int]) -> list[int]:
    """FIPS 203 Algorithm 9 (used only to write out the expanded decapsulation key)."""
    f = list(f)
    i = 1
    length = 128
    while length >= 2:
        for start in range(0, _N, 2 * length):
            zeta = _ZETAS[i]
            i += 1
            for j in range(start, start + length):
                t = zeta * f[j + length] % _Q
                f[j + length] = (f[j] - t) % _Q
                f[j] = (f[j] + t) % _Q
        length //= 2
    return f


def _encode12(values: list[int]) -> bytes:
    return b"".join((a | b << 12).to_bytes(3, "little")
                    for a, b in zip(values[0::2], values[1::2], strict=True))


def expanded_decapsulation_key(seed: bytes) -> bytes:
    """FIPS 203's 2400-byte decapsulation key dk = ByteEncode_12(ŝ) ‖ ek ‖ H(ek) ‖ z of the
    key `from_seed(seed)` (Algorithms 13 and 16). We keep keys as seeds; this is for checking
    key generation against published vectors, which give dk."""
    key = MlKemPrivateKey.from_seed(seed)
    d, z = seed[:32], seed[32:]
    sigma = hashlib.sha3_512(d + bytes((_K,))).digest()[32:]
    s_hat = [c for n in range(_K) for c in _ntt([x % _Q for x in _cbd(sigma, n)])]
    ek = key.public_key().to_bytes()
    return _encode12(s_hat) + ek + hashlib.sha3_256(ek).digest() + z


def clear_expanded_key_cache(public_key: MlKemPublicKey | None = None) -> None:
    """Forget the cached expansion of `public_key`, or of every key (measurements, tests)."""
    with _cache_lock:
        if public_key is None:
            _cache.clear()
        else:
            _cache.pop(public_key.to_bytes(), None)


__all__ = [
    "EXPANDED_KEY_CACHE_SIZE",
    "MLKEM768_CIPHERTEXT_LEN",
    "MLKEM768_MESSAGE_LEN",
    "MLKEM768_PUBLIC_KEY_LEN",
    "MLKEM768_SEED_LEN",
    "SHARED_LEN",
    "MlKemPrivateKey",
    "MlKemPublicKey",
    "clear_expanded_key_cache",
    "expanded_decapsulation_key",
]
