"""RFC 9180 HPKE, base mode: the sealing primitive of the version 2 epoch change (spec 02, "HPKE").

Pieces, each an object so one can be swapped (a hybrid post-quantum KEM such as X-Wing drops in
as another `Kem`):

- `Kem`: DHKEM(P-256, HKDF-SHA256) (0x0010) and DHKEM(X25519, HKDF-SHA256) (0x0020), with
  `derive_key_pair`, `encap` from a given ephemeral seed `ikm_e` (RFC 9180 section 7.1.3's
  DeriveKeyPair(ikmE)), `decap`, and strict (de)serialisation of keys; and the post-quantum KEMs
  of draft-ietf-hpke-pq: X-Wing (MLKEM768-X25519, 0x647A) and MLKEM768-P256 (0x0050) for the
  hybrid suites 3 and 4, ML-KEM-768 alone (0x0041), where `ikm_e` is the encapsulation
  randomness (ML-KEM's `m`, then the group's ephemeral seed);
- `Kdf`: HKDF-SHA256 (0x0001);
- `Aead`: AES-128-GCM (0x0001), AES-256-GCM (0x0002), ChaCha20-Poly1305 (0x0003), from
  `cryptography`;
- `HpkeSuite`: the three together, with the base-mode key schedule, `Context` (seal/open with
  sequence numbers, export) and single-shot `seal`/`open`.

The DH operations and the public-key validation are the protocol suites' own (spec 02: P-256
points uncompressed, reduced, on the curve; X25519 keys canonical and not of small order, an
all-zero shared secret refused), so HPKE accepts exactly the keys the rest of the protocol does.
Protocol suite 1 seals with P-256 + HKDF-SHA256 + AES-256-GCM, suite 2 with X25519 + HKDF-SHA256
+ ChaCha20-Poly1305, suites 3 and 4 the same with MLKEM768-P256 and X-Wing (`hpke_for_suite`).
"""

from __future__ import annotations

import hashlib
import hmac
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from triple_ratchet.errors import (
    AuthenticationError,
    InvalidKey,
    StateError,
    UnsupportedError,
    UsageError,
)
from triple_ratchet.suites._base import DhPrivateKey, Suite, key_bytes
from triple_ratchet.suites.mlkem import (
    MLKEM768_CIPHERTEXT_LEN,
    MLKEM768_MESSAGE_LEN,
    MLKEM768_PUBLIC_KEY_LEN,
    MLKEM768_SEED_LEN,
    SHARED_LEN,
    MlKemPrivateKey,
    MlKemPublicKey,
)
from triple_ratchet.suites.p256 import P256_MLKEM768_SHA256_AES256GCM, P256_SHA256_AES256GCM
from triple_ratchet.suites.x25519 import X25519_MLKEM768_SHA512_XCHACHA20, X25519_SHA512_XCHACHA20

# RFC 9180 section 4: the version label that starts every LabeledExtract / LabeledExpand input.
LABEL_HPKE_VERSION = b"HPKE-v1"
# The RFC's own labels (sections 4.1, 5.1, 5.3, 7.1.3), inside its "HPKE-v1" ‖ suite_id framing:
# they never meet our ExpandLabel, whose info starts with "triple-ratchet v1".
_EAE_PRK = b"eae_prk"
_SHARED_SECRET = b"shared_secret"
_PSK_ID_HASH = b"psk_id_hash"
_INFO_HASH = b"info_hash"
_SECRET = b"secret"
_KEY = b"key"
_BASE_NONCE = b"base_nonce"
_EXP = b"exp"
_SEC = b"sec"
_DKP_PRK = b"dkp_prk"
_CANDIDATE = b"candidate"
_SK = b"sk"

# suite_id prefixes (RFC 9180 sections 4.1 and 5.1).
_KEM_SUITE_PREFIX = b"KEM"
_HPKE_SUITE_PREFIX = b"HPKE"

MODE_BASE = 0x00
# Group order of P-256 (SEC 2), for DeriveKeyPair's rejection sampling.
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _i2osp(value: int, length: int) -> bytes:
    return value.to_bytes(length, "big")


# --- KDF -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kdf:
    """HKDF with one hash (RFC 5869), and RFC 9180's labelled forms of it."""

    kdf_id: int
    hash_name: str
    n_h: int

    def extract(self, salt: bytes, ikm: bytes) -> bytes:
        # An empty salt is Nh zero bytes (RFC 5869 section 2.2).
        return hmac.digest(salt or bytes(self.n_h), ikm, self.hash_name)

    def expand(self, prk: bytes, info: bytes, length: int) -> bytes:
        if type(length) is not int or not 0 <= length <= 255 * self.n_h:
            raise UsageError(f"HKDF output length must be 0..{255 * self.n_h}")
        blocks: list[bytes] = []
        block = b""
        for counter in range(1, -(-length // self.n_h) + 1):
            block = hmac.digest(prk, block + info + bytes((counter,)), self.hash_name)
            blocks.append(block)
        return b"".join(blocks)[:length]

    def labeled_extract(self, suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
        return self.extract(salt, LABEL_HPKE_VERSION + suite_id + label + ikm)

    def labeled_expand(self, suite_id: bytes, prk: bytes, label: bytes, info: bytes,
                       length: int) -> bytes:
        if type(length) is not int or not 0 <= length < 2**16:
            raise UsageError("LabeledExpand length must fit two bytes")
        labeled_info = _i2osp(length, 2) + LABEL_HPKE_VERSION + suite_id + label + info
        return self.expand(prk, labeled_info, length)


HKDF_SHA256 = Kdf(kdf_id=0x0001, hash_name="sha256", n_h=32)


# --- KEM -----------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class KemKeyPair:
    """A serialised key pair (`SerializePrivateKey`, `SerializePublicKey` of RFC 9180)."""

    private_key: bytes
    public_key: bytes

    def __repr__(self) -> str:
        return f"KemKeyPair(public_key={self.public_key.hex()[:16]}…, private_key=<secret>)"


class Kem(ABC):
    """A KEM as HPKE uses it. `encap` takes its randomness as `ikm_e`, so a sealing is a
    deterministic function of its inputs (rule R2); a hybrid KEM implements the same five calls."""

    kem_id: int
    name: str
    n_secret: int  # shared secret length
    n_enc: int  # encapsulated key length
    n_pk: int  # serialised public key length
    n_sk: int  # serialised private key length
    n_ikm: int  # length of the `ikm_e` the protocol derives for one encapsulation
    n_ikm_min: int = 0  # hybrid KEMs: the least `ikm_e` their EncapsDerand accepts

    @abstractmethod
    def derive_key_pair(self, ikm: bytes) -> KemKeyPair: ...

    @abstractmethod
    def deserialize_public_key(self, data: bytes) -> bytes:
        """`data` if it is a valid public key of this KEM, else `InvalidKey`."""

    @abstractmethod
    def public_key_of(self, private_key: bytes) -> bytes:
        """The serialised public key of a serialised private key (`InvalidKey` if invalid)."""

    @abstractmethod
    def encap(self, public_key: bytes, ikm_e: bytes) -> tuple[bytes, bytes]:
        """`(shared_secret, enc)` to `public_key`, deterministic in `ikm_e` (`n_ikm` bytes, the
        encapsulation's randomness: for a DHKEM the ephemeral is `DeriveKeyPair(ikm_e)`, for a
        hybrid KEM its derandomised encapsulation seed)."""

    @abstractmethod
    def decap(self, enc: bytes, private_key: bytes) -> bytes:
        """The shared secret of `enc`; a bad `enc` is `InvalidKey`."""

    def __repr__(self) -> str:
        return f"Kem({self.name}, id=0x{self.kem_id:04x})"


class DhKem(Kem):
    """DHKEM(Group, HKDF-SHA256), RFC 9180 section 4.1, over a protocol suite's DH group (whose
    decoders validate every public key and whose exchange refuses an all-zero X25519 result)."""

    def __init__(self, kem_id: int, name: str, group: Suite, n_secret: int) -> None:
        self.kem_id = kem_id
        self.name = name
        self._group = group
        self._kdf = HKDF_SHA256
        self._suite_id = _KEM_SUITE_PREFIX + _i2osp(kem_id, 2)
        self.n_secret = n_secret
        self.n_enc = self.n_pk = group.dh_public_len
        self.n_sk = self.n_ikm = group.dh_private_len

    @abstractmethod
    def _private_from_prk(self, dkp_prk: bytes) -> bytes:
        """DeriveKeyPair's group-specific step (RFC 9180 section 7.1.3)."""

    def _derive(self, ikm: bytes) -> DhPrivateKey:
        ikm = key_bytes(ikm, "DeriveKeyPair ikm")
        if len(ikm) < self.n_sk:
            raise UsageError(f"DeriveKeyPair ikm must be at least {self.n_sk} bytes")
        dkp_prk = self._kdf.labeled_extract(self._suite_id, b"", _DKP_PRK, ikm)
        return self._group.dh_private_from_bytes(self._private_from_prk(dkp_prk))

    def derive_key_pair(self, ikm: bytes) -> KemKeyPair:
        key = self._derive(ikm)
        return KemKeyPair(key.to_bytes(), key.public_key().to_bytes())

    def deserialize_public_key(self, data: bytes) -> bytes:
        data = key_bytes(data, "HPKE public key")
        return self._group.dh_public_from_bytes(data).to_bytes()

    def public_key_of(self, private_key: bytes) -> bytes:
        return self._group.dh_private_from_bytes(private_key).public_key().to_bytes()

    def _extract_and_expand(self, dh: bytes, kem_context: bytes) -> bytes:
        eae_prk = self._kdf.labeled_extract(self._suite_id, b"", _EAE_PRK, dh)
        return self._kdf.labeled_expand(
            self._suite_id, eae_prk, _SHARED_SECRET, kem_context, self.n_secret
        )

    def encap(self, public_key: bytes, ikm_e: bytes) -> tuple[bytes, bytes]:
        pk_r = self._group.dh_public_from_bytes(key_bytes(public_key, "HPKE public key"))
        ephemeral = self._derive(ikm_e)
        dh = ephemeral.exchange(pk_r)
        enc = ephemeral.public_key().to_bytes()
        return self._extract_and_expand(dh, enc + pk_r.to_bytes()), enc

    def decap(self, enc: bytes, private_key: bytes) -> bytes:
        pk_e = self._group.dh_public_from_bytes(key_bytes(enc, "HPKE enc"))
        sk_r = self._group.dh_private_from_bytes(key_bytes(private_key, "HPKE private key"))
        dh = sk_r.exchange(pk_e)
        return self._extract_and_expand(dh, pk_e.to_bytes() + sk_r.public_key().to_bytes())


class _DhKemP256(DhKem):
    def _private_from_prk(self, dkp_prk: bytes) -> bytes:
        # Rejection sampling with bitmask 0xff, i.e. no bit cleared: uniform in [1, n-1].
        for counter in range(256):
            candidate = self._kdf.labeled_expand(
                self._suite_id, dkp_prk, _CANDIDATE, bytes((counter,)), self.n_sk
            )
            if 0 < int.from_bytes(candidate, "big") < _P256_ORDER:
                return candidate
        raise InvalidKey("DeriveKeyPair found no valid P-256 scalar in 256 candidates")


class _DhKemX25519(DhKem):
    def _private_from_prk(self, dkp_prk: bytes) -> bytes:
        # Any 32 bytes are an X25519 private key (clamped when used).
        return self._kdf.labeled_expand(self._suite_id, dkp_prk, _SK, b"", self.n_sk)


DHKEM_P256: Kem = _DhKemP256(0x0010, "DHKEM(P-256, HKDF-SHA256)", P256_SHA256_AES256GCM, 32)
DHKEM_X25519: Kem = _DhKemX25519(0x0020, "DHKEM(X25519, HKDF-SHA256)", X25519_SHA512_XCHACHA20,
                                 32)


# --- Post-quantum and hybrid KEMs (draft-ietf-hpke-pq) -------------------------------------------

# draft-ietf-hpke-pq's DeriveKeyPair label, inside SHAKE256.LabeledDerive's "HPKE-v1" framing.
_DERIVE_KEY_PAIR = b"DeriveKeyPair"
# The combiners' labels: X-Wing's "\\./" "/^\\" (draft-connolly-cfrg-xwing-kem) and the QSF label
# of MLKEM768-P256 (draft-irtf-cfrg-concrete-hybrid-kems); they end the SHA3-256 input.
_XWING_LABEL = bytes.fromhex("5c2e2f2f5e5c")
_MLKEM768_P256_LABEL = b"MLKEM768-P256"


def _labeled_derive(kem_id: int, ikm: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """SHAKE256.LabeledDerive (draft-ietf-hpke-pq, the single-stage KDF of draft-ietf-hpke-hpke):
    SHAKE256(ikm ‖ "HPKE-v1" ‖ "KEM" ‖ I2OSP(kem_id, 2) ‖ I2OSP(len(label), 2) ‖ label ‖
    I2OSP(L, 2) ‖ context, L)."""
    labeled_ikm = b"".join((ikm, LABEL_HPKE_VERSION, _KEM_SUITE_PREFIX, _i2osp(kem_id, 2),
                            _i2osp(len(label), 2), label, _i2osp(length, 2), context))
    return hashlib.shake_256(labeled_ikm).digest(length)


def _derive_seed(kem: Kem, ikm: bytes) -> bytes:
    ikm = key_bytes(ikm, "DeriveKeyPair ikm")
    if len(ikm) < kem.n_sk:
        raise UsageError(f"DeriveKeyPair ikm must be at least {kem.n_sk} bytes")
    return _labeled_derive(kem.kem_id, ikm, _DERIVE_KEY_PAIR, b"", kem.n_sk)


def _mlkem_private(seed: bytes) -> MlKemPrivateKey:
    return MlKemPrivateKey.from_seed(key_bytes(seed, "HPKE private key"))


def _mlkem_decapsulate(key: MlKemPrivateKey, ciphertext: bytes) -> bytes:
    if len(ciphertext) != MLKEM768_CIPHERTEXT_LEN:
        raise InvalidKey(f"ML-KEM-768 ciphertext must be {MLKEM768_CIPHERTEXT_LEN} bytes")
    return key.decapsulate(ciphertext)


class MlKem768Kem(Kem):
    """ML-KEM-768 alone as an HPKE KEM (0x0041): the private key is the 64-byte FIPS 203 seed,
    `ikm_e` is Encaps_internal's 32-byte `m`, decapsulation is `cryptography`'s."""

    kem_id = 0x0041
    name = "ML-KEM-768"
    n_secret = SHARED_LEN
    n_enc = MLKEM768_CIPHERTEXT_LEN
    n_pk = MLKEM768_PUBLIC_KEY_LEN
    n_sk = MLKEM768_SEED_LEN
    n_ikm = MLKEM768_MESSAGE_LEN

    def derive_key_pair(self, ikm: bytes) -> KemKeyPair:
        seed = _derive_seed(self, ikm)
        return KemKeyPair(seed, _mlkem_private(seed).public_key().to_bytes())

    def deserialize_public_key(self, data: bytes) -> bytes:
        return MlKemPublicKey.from_bytes(key_bytes(data, "HPKE public key")).to_bytes()

    def public_key_of(self, private_key: bytes) -> bytes:
        return _mlkem_private(private_key).public_key().to_bytes()

    def encap(self, public_key: bytes, ikm_e: bytes) -> tuple[bytes, bytes]:
        pk = MlKemPublicKey.from_bytes(key_bytes(public_key, "HPKE public key"))
        return pk.encapsulate(_encap_randomness(self, ikm_e, exact=True))

    def decap(self, enc: bytes, private_key: bytes) -> bytes:
        return _mlkem_decapsulate(_mlkem_private(private_key), key_bytes(enc, "HPKE enc"))


def _encap_randomness(kem: Kem, ikm_e: bytes, *, exact: bool) -> bytes:
    """`ikm_e` checked: `n_ikm` bytes, or for a hybrid KEM `n_ikm_min..n_ikm` (P-256's spare
    rejection candidates may be fewer, as in the draft's vectors)."""
    ikm_e = key_bytes(ikm_e, "encapsulation randomness")
    least = kem.n_ikm if exact else kem.n_ikm_min
    if not least <= len(ikm_e) <= kem.n_ikm:
        wanted = f"{least}" if least == kem.n_ikm else f"{least}..{kem.n_ikm}"
        raise UsageError(f"{kem.name} encapsulation randomness must be {wanted} bytes")
    return ikm_e


@dataclass(frozen=True, repr=False)
class _HybridKeys:
    """A hybrid seed expanded: ML-KEM-768 key and the traditional group's key."""

    mlkem: MlKemPrivateKey
    group: DhPrivateKey

    def public_key(self) -> bytes:
        return self.mlkem.public_key().to_bytes() + self.group.public_key().to_bytes()


class HybridKem(Kem):
    """ML-KEM-768 + an elliptic-curve group, draft-ietf-hpke-pq's construction (the QSF combiner
    of draft-irtf-cfrg-hybrid-kems): a 32-byte seed expands with SHAKE256 into the ML-KEM seed and
    the group's scalar; ek = ek_PQ ‖ ek_T, enc = ct_PQ ‖ ct_T, and
    ss = SHA3-256(ss_PQ ‖ ss_T ‖ ct_T ‖ ek_T ‖ Label). `ikm_e` is EncapsDerand's randomness:
    ML-KEM's `m` (32 bytes) then the group's ephemeral seed.

    Group keys go through the protocol suite's validating decoders (a P-256 point on the curve,
    an X25519 key not of small order, no all-zero X25519 result), as for DHKEM: stricter than the
    drafts, which accept any X25519 string, and what the rest of the protocol accepts."""

    n_sk = 32
    n_secret = SHARED_LEN

    def __init__(self, kem_id: int, name: str, label: bytes, group: Suite, n_group_seed: int,
                 n_ikm: int, order: int | None) -> None:
        self.kem_id = kem_id
        self.name = name
        self._label = label
        self._group = group
        self._n_group_seed = n_group_seed
        self._order = order  # None: every string is a scalar (X25519 clamps)
        self._n_elem = group.dh_public_len
        self.n_pk = MLKEM768_PUBLIC_KEY_LEN + self._n_elem
        self.n_enc = MLKEM768_CIPHERTEXT_LEN + self._n_elem
        self.n_ikm = n_ikm
        # EncapsDerand needs `m` and one candidate scalar; what follows is only rejection spare.
        self.n_ikm_min = MLKEM768_MESSAGE_LEN + group.dh_private_len

    def _random_scalar(self, seed: bytes) -> DhPrivateKey:
        """Group.RandomScalar: X25519 takes the seed as is; P-256 the first 32-byte chunk that
        is a scalar in [1, n − 1]."""
        size = self._group.dh_private_len
        if self._order is None:
            return self._group.dh_private_from_bytes(seed[:size])
        for start in range(0, len(seed) - size + 1, size):
            if 0 < int.from_bytes(seed[start:start + size], "big") < self._order:
                return self._group.dh_private_from_bytes(seed[start:start + size])
        raise InvalidKey(f"{self.name}: no valid scalar in the seed (probability < 2^-96)")

    def _expand(self, seed: bytes) -> _HybridKeys:
        seed = key_bytes(seed, "HPKE private key")
        if len(seed) != self.n_sk:
            raise InvalidKey(f"{self.name} private key must be a {self.n_sk}-byte seed")
        full = hashlib.shake_256(seed).digest(MLKEM768_SEED_LEN + self._n_group_seed)
        return _HybridKeys(MlKemPrivateKey.from_seed(full[:MLKEM768_SEED_LEN]),
                           self._random_scalar(full[MLKEM768_SEED_LEN:]))

    def derive_key_pair(self, ikm: bytes) -> KemKeyPair:
        seed = _derive_seed(self, ikm)
        return KemKeyPair(seed, self._expand(seed).public_key())

    def deserialize_public_key(self, data: bytes) -> bytes:
        data = key_bytes(data, "HPKE public key")
        if len(data) != self.n_pk:
            raise InvalidKey(f"{self.name} public key must be {self.n_pk} bytes")
        MlKemPublicKey.from_bytes(data[:MLKEM768_PUBLIC_KEY_LEN])
        self._group.dh_public_from_bytes(data[MLKEM768_PUBLIC_KEY_LEN:])
        return data

    def public_key_of(self, private_key: bytes) -> bytes:
        return self._expand(private_key).public_key()

    def _combine(self, ss_pq: bytes, ss_t: bytes, ct_t: bytes, ek_t: bytes) -> bytes:
        return hashlib.sha3_256(ss_pq + ss_t + ct_t + ek_t + self._label).digest()

    def encap(self, public_key: bytes, ikm_e: bytes) -> tuple[bytes, bytes]:
        public_key = self.deserialize_public_key(public_key)
        randomness = _encap_randomness(self, ikm_e, exact=False)
        ek_pq = MlKemPublicKey.from_bytes(public_key[:MLKEM768_PUBLIC_KEY_LEN])
        ek_t = public_key[MLKEM768_PUBLIC_KEY_LEN:]
        ss_pq, ct_pq = ek_pq.encapsulate(randomness[:MLKEM768_MESSAGE_LEN])
        ephemeral = self._random_scalar(randomness[MLKEM768_MESSAGE_LEN:])
        ct_t = ephemeral.public_key().to_bytes()
        ss_t = ephemeral.exchange(self._group.dh_public_from_bytes(ek_t))
        return self._combine(ss_pq, ss_t, ct_t, ek_t), ct_pq + ct_t

    def decap(self, enc: bytes, private_key: bytes) -> bytes:
        enc = key_bytes(enc, "HPKE enc")
        if len(enc) != self.n_enc:
            raise InvalidKey(f"{self.name} enc must be {self.n_enc} bytes")
        keys = self._expand(private_key)
        ct_t = enc[MLKEM768_CIPHERTEXT_LEN:]
        ss_t = keys.group.exchange(self._group.dh_public_from_bytes(ct_t))
        ss_pq = _mlkem_decapsulate(keys.mlkem, enc[:MLKEM768_CIPHERTEXT_LEN])
        ek_t = keys.group.public_key().to_bytes()
        return self._combine(ss_pq, ss_t, ct_t, ek_t)


MLKEM768: Kem = MlKem768Kem()
# X-Wing (draft-connolly-cfrg-xwing-kem, KEM 0x647A in draft-ietf-hpke-pq): 32 + 32 bytes of
# SHAKE256 output for the group, 64 bytes of encapsulation randomness.
XWING: Kem = HybridKem(0x647A, "MLKEM768-X25519", _XWING_LABEL, X25519_SHA512_XCHACHA20, 32, 64,
                       None)
# MLKEM768-P256 (0x0050): 128 bytes of group seed (four scalar candidates), and as much again
# for the ephemeral, `m` first (draft-ietf-hpke-pq's Nrandom = 160).
MLKEM768_P256: Kem = HybridKem(0x0050, "MLKEM768-P256", _MLKEM768_P256_LABEL,
                               P256_SHA256_AES256GCM, 128, 160, _P256_ORDER)


# --- AEAD ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Aead:
    """An RFC 9180 AEAD (12-byte nonce, 16-byte tag) from `cryptography`."""

    aead_id: int
    name: str
    n_k: int
    cipher: type[AESGCM] | type[ChaCha20Poly1305] = field(repr=False)
    n_n: int = 12
    n_t: int = 16

    def _cipher(self, key: bytes) -> AESGCM | ChaCha20Poly1305:
        if len(key) != self.n_k:
            raise UsageError(f"{self.name} takes a {self.n_k}-byte key")
        return self.cipher(key)

    def seal(self, key: bytes, nonce: bytes, aad: bytes, pt: bytes) -> bytes:
        return self._cipher(key).encrypt(nonce, pt, aad)

    def open(self, key: bytes, nonce: bytes, aad: bytes, ct: bytes) -> bytes:
        if len(ct) < self.n_t:
            raise AuthenticationError(f"{self.name} ciphertext shorter than its tag")
        try:
            return self._cipher(key).decrypt(nonce, ct, aad)
        except InvalidTag:
            raise AuthenticationError(f"HPKE {self.name} tag does not verify") from None


AES_128_GCM = Aead(0x0001, "AES-128-GCM", 16, AESGCM)
AES_256_GCM = Aead(0x0002, "AES-256-GCM", 32, AESGCM)
CHACHA20_POLY1305 = Aead(0x0003, "ChaCha20-Poly1305", 32, ChaCha20Poly1305)


# --- Context -------------------------------------------------------------------------------------


class Context:
    """A base-mode encryption context (RFC 9180 section 5.2): one key, nonces base_nonce XOR seq.

    The sender seals and the recipient opens in the same order; a failed `open` leaves `seq`
    unchanged, and when `seq` would wrap every further call is refused.
    """

    __slots__ = ("_aead", "_kdf", "_suite_id", "base_nonce", "exporter_secret", "key", "seq")

    def __init__(self, suite: HpkeSuite, key: bytes, base_nonce: bytes,
                 exporter_secret: bytes) -> None:
        self._aead = suite.aead
        self._kdf = suite.kdf
        self._suite_id = suite.suite_id
        self.key = key
        self.base_nonce = base_nonce
        self.exporter_secret = exporter_secret
        self.seq = 0

    def nonce(self, seq: int) -> bytes:
        """ComputeNonce(seq) = base_nonce XOR I2OSP(seq, Nn); the last value is never used."""
        if type(seq) is not int or not 0 <= seq < (1 << (8 * self._aead.n_n)) - 1:
            raise StateError("HPKE context: sequence number exhausted (MessageLimitReached)")
        encoded = seq.to_bytes(self._aead.n_n, "big")
        return bytes(a ^ b for a, b in zip(self.base_nonce, encoded, strict=True))

    def seal(self, aad: bytes, pt: bytes) -> bytes:
        ct = self._aead.seal(self.key, self.nonce(self.seq), aad, pt)
        self.seq += 1
        return ct

    def open(self, aad: bytes, ct: bytes) -> bytes:
        pt = self._aead.open(self.key, self.nonce(self.seq), aad, ct)
        self.seq += 1
        return pt

    def export(self, exporter_context: bytes, length: int) -> bytes:
        if type(length) is not int or not 0 <= length <= 255 * self._kdf.n_h:
            raise UsageError(f"HPKE export length must be 0..{255 * self._kdf.n_h}")
        return self._kdf.labeled_expand(
            self._suite_id, self.exporter_secret, _SEC, exporter_context, length
        )

    def __repr__(self) -> str:
        return f"Context(seq={self.seq}, <secrets redacted>)"


# --- Suite ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HpkeSuite:
    """KEM + KDF + AEAD, base mode. `seal`/`open` are the whole interface the protocol uses."""

    kem: Kem
    kdf: Kdf
    aead: Aead
    suite_id: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ids = (self.kem.kem_id, self.kdf.kdf_id, self.aead.aead_id)
        suite_id = _HPKE_SUITE_PREFIX + b"".join(_i2osp(i, 2) for i in ids)
        object.__setattr__(self, "suite_id", suite_id)

    def key_schedule_context(self, info: bytes) -> bytes:
        """`key_schedule_context` of base mode: mode ‖ psk_id_hash ‖ info_hash (public)."""
        info = key_bytes(info, "HPKE info")
        psk_id_hash = self.kdf.labeled_extract(self.suite_id, b"", _PSK_ID_HASH, b"")
        info_hash = self.kdf.labeled_extract(self.suite_id, b"", _INFO_HASH, info)
        return bytes((MODE_BASE,)) + psk_id_hash + info_hash

    def schedule_secret(self, shared_secret: bytes) -> bytes:
        """The key schedule's `secret` (base mode: an empty psk)."""
        return self.kdf.labeled_extract(self.suite_id, shared_secret, _SECRET, b"")

    def key_schedule(self, shared_secret: bytes, info: bytes) -> Context:
        """KeySchedule in base mode (RFC 9180 section 5.1): empty psk and psk_id."""
        sid, kdf = self.suite_id, self.kdf
        context = self.key_schedule_context(info)
        secret = self.schedule_secret(shared_secret)
        return Context(
            self,
            key=kdf.labeled_expand(sid, secret, _KEY, context, self.aead.n_k),
            base_nonce=kdf.labeled_expand(sid, secret, _BASE_NONCE, context, self.aead.n_n),
            exporter_secret=kdf.labeled_expand(sid, secret, _EXP, context, kdf.n_h),
        )

    def setup_sender(self, public_key: bytes, info: bytes, ikm_e: bytes) -> tuple[bytes, Context]:
        """SetupBaseS with the ephemeral from DeriveKeyPair(ikm_e): `(enc, context)`."""
        shared_secret, enc = self.kem.encap(public_key, ikm_e)
        return enc, self.key_schedule(shared_secret, info)

    def setup_recipient(self, enc: bytes, private_key: bytes, info: bytes) -> Context:
        """SetupBaseR."""
        if len(key_bytes(enc, "HPKE enc")) != self.kem.n_enc:
            raise InvalidKey(f"HPKE enc must be {self.kem.n_enc} bytes for {self.kem.name}")
        return self.key_schedule(self.kem.decap(enc, private_key), info)

    def seal(self, public_key: bytes, info: bytes, aad: bytes, pt: bytes,
             ikm_e: bytes) -> tuple[bytes, bytes]:
        """Single-shot Seal: `(enc, ct)`."""
        enc, context = self.setup_sender(public_key, info, ikm_e)
        return enc, context.seal(key_bytes(aad, "aad"), key_bytes(pt, "plaintext"))

    def open(self, private_key: bytes, enc: bytes, info: bytes, aad: bytes, ct: bytes) -> bytes:
        """Single-shot Open; a bad `enc` is `InvalidKey`, anything else wrong
        `AuthenticationError`."""
        context = self.setup_recipient(enc, private_key, info)
        return context.open(key_bytes(aad, "aad"), key_bytes(ct, "ciphertext"))

    @property
    def name(self) -> str:
        return f"{self.kem.name}, HKDF-SHA256, {self.aead.name}"


KEMS: dict[int, Kem] = {k.kem_id: k for k in (DHKEM_P256, DHKEM_X25519, MLKEM768, XWING,
                                               MLKEM768_P256)}
KDFS: dict[int, Kdf] = {HKDF_SHA256.kdf_id: HKDF_SHA256}
AEADS: dict[int, Aead] = {a.aead_id: a for a in (AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305)}

HPKE_P256_AES256GCM = HpkeSuite(DHKEM_P256, HKDF_SHA256, AES_256_GCM)
HPKE_X25519_CHACHA20POLY1305 = HpkeSuite(DHKEM_X25519, HKDF_SHA256, CHACHA20_POLY1305)
# The hybrid suites seal with their classical suite's KDF and AEAD and the hybrid KEM.
HPKE_MLKEM768_P256_AES256GCM = HpkeSuite(MLKEM768_P256, HKDF_SHA256, AES_256_GCM)
HPKE_XWING_CHACHA20POLY1305 = HpkeSuite(XWING, HKDF_SHA256, CHACHA20_POLY1305)
_BY_PROTOCOL_SUITE = {
    P256_SHA256_AES256GCM.suite_id: HPKE_P256_AES256GCM,
    X25519_SHA512_XCHACHA20.suite_id: HPKE_X25519_CHACHA20POLY1305,
    P256_MLKEM768_SHA256_AES256GCM.suite_id: HPKE_MLKEM768_P256_AES256GCM,
    X25519_MLKEM768_SHA512_XCHACHA20.suite_id: HPKE_XWING_CHACHA20POLY1305,
}


def hpke_for_suite(suite: Suite) -> HpkeSuite:
    """The HPKE suite a protocol suite seals with (spec 02, "HPKE")."""
    hpke = _BY_PROTOCOL_SUITE.get(suite.suite_id)
    if hpke is None:
        raise UnsupportedError(f"no HPKE suite for protocol suite {suite.name}")
    return hpke


__all__ = [
    "AEADS",
    "AES_128_GCM",
    "AES_256_GCM",
    "CHACHA20_POLY1305",
    "DHKEM_P256",
    "DHKEM_X25519",
    "HKDF_SHA256",
    "HPKE_MLKEM768_P256_AES256GCM",
    "HPKE_P256_AES256GCM",
    "HPKE_X25519_CHACHA20POLY1305",
    "HPKE_XWING_CHACHA20POLY1305",
    "KDFS",
    "KEMS",
    "LABEL_HPKE_VERSION",
    "MLKEM768",
    "MLKEM768_P256",
    "XWING",
    "Aead",
    "Context",
    "DhKem",
    "HpkeSuite",
    "HybridKem",
    "Kdf",
    "Kem",
    "KemKeyPair",
    "MlKem768Kem",
    "hpke_for_suite",
]
