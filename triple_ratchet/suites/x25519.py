"""Second suite: X25519, Ed25519, HKDF-SHA-512, XChaCha20-Poly1305, all through PyNaCl."""

from __future__ import annotations

import nacl.bindings as sodium
import nacl.exceptions

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

_P = 2**255 - 19
# u-coordinates of the points of small order (libsodium's blacklist, canonical ones only).
_SMALL_ORDER = frozenset(
    bytes.fromhex(h)
    for h in (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    )
)


class _X25519Public(DhPublicKey):
    __slots__ = ("_encoded",)

    def __init__(self, encoded: bytes) -> None:
        self._encoded = encoded

    def to_bytes(self) -> bytes:
        return self._encoded


class _X25519Private(DhPrivateKey):
    __slots__ = ("_public", "_secret")

    def __init__(self, secret: bytes) -> None:
        secret = key_bytes(secret, "X25519 private key")
        if len(secret) != 32:
            raise InvalidKey("X25519 private key must be 32 bytes")
        self._secret = secret
        self._public = _X25519Public(sodium.crypto_scalarmult_base(self._secret))

    def public_key(self) -> DhPublicKey:
        return self._public

    def exchange(self, peer: DhPublicKey) -> bytes:
        if not isinstance(peer, _X25519Public):
            raise UsageError("peer key belongs to another suite")
        try:
            shared: bytes = sodium.crypto_scalarmult(self._secret, peer.to_bytes())
        except (nacl.exceptions.RuntimeError, RuntimeError):
            raise InvalidKey("X25519 shared secret is all zero (low-order point)") from None
        if shared == bytes(32):
            raise InvalidKey("X25519 shared secret is all zero (low-order point)")
        return shared

    def to_bytes(self) -> bytes:
        return self._secret


class _Ed25519Verifying(VerifyingKey):
    __slots__ = ("_encoded",)

    def __init__(self, encoded: bytes) -> None:
        self._encoded = encoded

    def to_bytes(self) -> bytes:
        return self._encoded

    def verify(self, signature: bytes, message: bytes) -> None:
        signature = key_bytes(signature, "signature")
        if len(signature) != 64:
            raise InvalidSignature("Ed25519 signature must be 64 bytes")
        try:
            sodium.crypto_sign_open(signature + message, self._encoded)
        except nacl.exceptions.BadSignatureError:
            raise InvalidSignature("Ed25519 signature does not verify") from None


class _Ed25519Signing(SigningKey):
    __slots__ = ("_public", "_secret", "_seed")

    def __init__(self, seed: bytes) -> None:
        seed = key_bytes(seed, "Ed25519 private key")
        if len(seed) != 32:
            raise InvalidKey("Ed25519 private key (seed) must be 32 bytes")
        self._seed = seed
        public, self._secret = sodium.crypto_sign_seed_keypair(self._seed)
        self._public = _Ed25519Verifying(public)

    def public_key(self) -> VerifyingKey:
        return self._public

    def sign(self, message: bytes) -> bytes:
        signed: bytes = sodium.crypto_sign(message, self._secret)
        return signed[:64]

    def to_bytes(self) -> bytes:
        return self._seed


class X25519Suite(Suite):
    suite_id = 0x0002
    name = "X25519-SHA512-XCHACHA20POLY1305"
    hash_name = "sha512"
    hash_len = 64
    dh_public_len = 32
    dh_private_len = 32
    sign_public_len = 32
    sign_private_len = 32
    signature_len = 64
    aead_key_len = 32
    aead_nonce_len = 24
    aead_tag_len = 16

    def generate_dh(self, rng: RandomSource = system_random) -> DhPrivateKey:
        return _X25519Private(rng(32))

    def dh_public_from_bytes(self, data: bytes) -> DhPublicKey:
        data = key_bytes(data, "X25519 public key")
        if len(data) != 32:
            raise InvalidKey("X25519 public key must be 32 bytes")
        if data[31] & 0x80 or int.from_bytes(data, "little") >= _P:
            raise InvalidKey("X25519 public key is not canonically encoded")
        if data in _SMALL_ORDER:
            raise InvalidKey("X25519 public key is a point of small order")
        return _X25519Public(data)

    def dh_private_from_bytes(self, data: bytes) -> DhPrivateKey:
        return _X25519Private(data)

    def generate_signing(self, rng: RandomSource = system_random) -> SigningKey:
        return _Ed25519Signing(rng(32))

    def signing_from_seed(self, seed: bytes) -> SigningKey:
        if len(key_bytes(seed, "signing seed")) != 32:
            raise UsageError("signing seed must be 32 bytes")
        return _Ed25519Signing(self.expand_label(seed, LABEL_SUITES_SIGNING_SEED, b"", 32))

    def verifying_from_bytes(self, data: bytes) -> VerifyingKey:
        data = key_bytes(data, "Ed25519 public key")
        if len(data) != 32:
            raise InvalidKey("Ed25519 public key must be 32 bytes")
        # Rejects non-canonical encodings, small-order points and points off the subgroup.
        if not sodium.crypto_core_ed25519_is_valid_point(data):
            raise InvalidKey("Ed25519 public key is not a valid prime-order point")
        return _Ed25519Verifying(data)

    def signing_from_bytes(self, data: bytes) -> SigningKey:
        return _Ed25519Signing(data)

    def aead_encrypt(self, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        if len(key) != 32 or len(nonce) != 24:
            raise UsageError("XChaCha20-Poly1305 takes a 32-byte key and a 24-byte nonce")
        out: bytes = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, nonce, key)
        return out

    def aead_decrypt(self, key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        if len(key) != 32 or len(nonce) != 24:
            raise UsageError("XChaCha20-Poly1305 takes a 32-byte key and a 24-byte nonce")
        if len(ciphertext) < 16:
            raise AuthenticationError("XChaCha20-Poly1305 ciphertext shorter than its tag")
        try:
            out: bytes = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
                ciphertext, aad, nonce, key
            )
        except nacl.exceptions.CryptoError:
            raise AuthenticationError("XChaCha20-Poly1305 tag does not verify") from None
        return out


X25519_SHA512_XCHACHA20: Suite = X25519Suite()


class X25519MlKem768Suite(X25519Suite):
    """Suite 2 plus ML-KEM-768: the PQXDH-style handshake's KEM prekeys and X-Wing HPKE sealing
    (spec 02, "Hybrid suites"). DH, signatures, hash and AEAD are suite 2's."""

    suite_id = 0x0004
    name = "X25519-MLKEM768-SHA512-XCHACHA20POLY1305"
    post_quantum = True

    @property
    def classical(self) -> Suite:
        return X25519_SHA512_XCHACHA20


X25519_MLKEM768_SHA512_XCHACHA20: Suite = X25519MlKem768Suite()
