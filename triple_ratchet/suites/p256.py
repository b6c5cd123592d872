"""Default suite: P-256 ECDH, ECDSA P-256/SHA-256 (P1363 r||s), HKDF-SHA-256, AES-256-GCM.

What WebCrypto offers natively, so a browser client needs no extra library for it.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from triple_ratchet.errors import AuthenticationError, InvalidKey, InvalidSignature, UsageError
from triple_ratchet.random import RandomSource, system_random
from triple_ratchet.suites._base import (
    LABEL_SUITES_SIGNING_SEED,
    DhPrivateKey,
    DhPublicKey,
    SigningKey,
    Suite,
    VerifyingKey,
    key_bytes,
)

_CURVE = ec.SECP256R1()
# Field prime p and group order n of P-256 (SEC 2). The cofactor is 1, so every point on the
# curve other than the identity generates the whole group: no small-subgroup check is needed.
_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_UNCOMPRESSED = serialization.PublicFormat.UncompressedPoint
_RAW = serialization.Encoding.X962
# Stateless parameter objects, shared to avoid rebuilding them on every call.
_ECDH = ec.ECDH()
_ECDSA = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
_ECDSA_VERIFY = ec.ECDSA(hashes.SHA256())


def _public_from_bytes(data: bytes) -> ec.EllipticCurvePublicKey:
    """Decode 0x04 || x || y strictly: right length and form, coordinates < p, on the curve.

    The identity has no encoding in this form and compressed points are refused, so each
    valid key has exactly one encoding.
    """
    if len(data) != 65 or data[0] != 0x04:
        raise InvalidKey("P-256 public key must be 65 bytes, uncompressed (0x04 || x || y)")
    if int.from_bytes(data[1:33], "big") >= _P or int.from_bytes(data[33:], "big") >= _P:
        raise InvalidKey("P-256 public key coordinate is not reduced mod p")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, data)
    except ValueError:
        raise InvalidKey("P-256 public key is not a point on the curve") from None


def _scalar_from_bytes(data: bytes) -> int:
    data = key_bytes(data, "P-256 private key")
    if len(data) != 32:
        raise InvalidKey("P-256 private key must be 32 bytes")
    k = int.from_bytes(data, "big")
    if not 0 < k < _N:
        raise InvalidKey("P-256 private key is out of range")
    return k


def _random_scalar(rng: RandomSource) -> bytes:
    # Rejection sampling: uniform in [1, n-1] and reproducible from an injected source.
    while True:
        data = rng(32)
        k = int.from_bytes(data, "big")
        if 0 < k < _N:
            return data


class _P256Public(DhPublicKey):
    __slots__ = ("_encoded", "key")

    def __init__(self, key: ec.EllipticCurvePublicKey, encoded: bytes | None = None) -> None:
        self.key = key
        self._encoded = encoded or key.public_bytes(_RAW, _UNCOMPRESSED)

    def to_bytes(self) -> bytes:
        return self._encoded


class _P256Private(DhPrivateKey):
    __slots__ = ("_key", "_public")

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key
        self._public = _P256Public(key.public_key())

    def public_key(self) -> DhPublicKey:
        return self._public

    def exchange(self, peer: DhPublicKey) -> bytes:
        if not isinstance(peer, _P256Public):
            raise UsageError("peer key belongs to another suite")
        # Cofactor 1, private scalar in [1, n-1], peer validated on decode: the product is
        # never the identity, so the x-coordinate always exists.
        return self._key.exchange(_ECDH, peer.key)

    def to_bytes(self) -> bytes:
        return self._key.private_numbers().private_value.to_bytes(32, "big")


class _P256Verifying(VerifyingKey):
    __slots__ = ("_encoded", "_key")

    def __init__(self, key: ec.EllipticCurvePublicKey, encoded: bytes | None = None) -> None:
        self._key = key
        self._encoded = encoded or key.public_bytes(_RAW, _UNCOMPRESSED)

    def to_bytes(self) -> bytes:
        return self._encoded

    def verify(self, signature: bytes, message: bytes) -> None:
        signature = key_bytes(signature, "signature")
        if len(signature) != 64:
            raise InvalidSignature("ECDSA P-256 signature must be 64 bytes (r || s)")
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:], "big")
        if not (0 < r < _N and 0 < s < _N):
            raise InvalidSignature("ECDSA signature component out of range")
        try:
            self._key.verify(encode_dss_signature(r, s), message, _ECDSA_VERIFY)
        except _CryptoInvalidSignature:
            raise InvalidSignature("ECDSA P-256 signature does not verify") from None


class _P256Signing(SigningKey):
    __slots__ = ("_key", "_public")

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key
        self._public = _P256Verifying(key.public_key())

    def public_key(self) -> VerifyingKey:
        return self._public

    def sign(self, message: bytes) -> bytes:
        r, s = decode_dss_signature(self._key.sign(message, _ECDSA))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def to_bytes(self) -> bytes:
        return self._key.private_numbers().private_value.to_bytes(32, "big")


def _private_key(data: bytes) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(_scalar_from_bytes(data), _CURVE)


class P256Suite(Suite):
    suite_id = 0x0001
    name = "P256-SHA256-AES256GCM"
    hash_name = "sha256"
    hash_len = 32
    dh_public_len = 65
    dh_private_len = 32
    sign_public_len = 65
    sign_private_len = 32
    signature_len = 64
    aead_key_len = 32
    aead_nonce_len = 12
    aead_tag_len = 16

    def generate_dh(self, rng: RandomSource = system_random) -> DhPrivateKey:
        return _P256Private(_private_key(_random_scalar(rng)))

    def dh_public_from_bytes(self, data: bytes) -> DhPublicKey:
        data = key_bytes(data, "P-256 public key")
        return _P256Public(_public_from_bytes(data), data)

    def dh_private_from_bytes(self, data: bytes) -> DhPrivateKey:
        return _P256Private(_private_key(data))

    def generate_signing(self, rng: RandomSource = system_random) -> SigningKey:
        return _P256Signing(_private_key(_random_scalar(rng)))

    def signing_from_seed(self, seed: bytes) -> SigningKey:
        if len(key_bytes(seed, "signing seed")) != 32:
            raise UsageError("signing seed must be 32 bytes")
        # Expand to 48 bytes before reducing so the scalar is statistically uniform mod n.
        wide = self.expand_label(seed, LABEL_SUITES_SIGNING_SEED, b"", 48)
        k = int.from_bytes(wide, "big") % (_N - 1) + 1
        return _P256Signing(ec.derive_private_key(k, _CURVE))

    def verifying_from_bytes(self, data: bytes) -> VerifyingKey:
        data = key_bytes(data, "P-256 public key")
        return _P256Verifying(_public_from_bytes(data), data)

    def signing_from_bytes(self, data: bytes) -> SigningKey:
        return _P256Signing(_private_key(data))

    def aead_encrypt(self, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        if len(key) != 32 or len(nonce) != 12:
            raise UsageError("AES-256-GCM takes a 32-byte key and a 12-byte nonce")
        return AESGCM(key).encrypt(nonce, plaintext, aad)

    def aead_decrypt(self, key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        if len(key) != 32 or len(nonce) != 12:
            raise UsageError("AES-256-GCM takes a 32-byte key and a 12-byte nonce")
        if len(ciphertext) < 16:
            raise AuthenticationError("AES-256-GCM ciphertext shorter than its tag")
        try:
            return AESGCM(key).decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise AuthenticationError("AES-256-GCM tag does not verify") from None


P256_SHA256_AES256GCM: Suite = P256Suite()


class P256MlKem768Suite(P256Suite):
    """Suite 1 plus ML-KEM-768: the PQXDH-style handshake's KEM prekeys and MLKEM768-P256 HPKE
    sealing (spec 02, "Hybrid suites"). DH, signatures, hash and AEAD are suite 1's."""

    suite_id = 0x0003
    name = "P256-MLKEM768-SHA256-AES256GCM"
    post_quantum = True

    @property
    def classical(self) -> Suite:
        return P256_SHA256_AES256GCM


P256_MLKEM768_SHA256_AES256GCM: Suite = P256MlKem768Suite()
