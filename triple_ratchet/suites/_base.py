"""The `Suite` interface and the pieces every suite shares (HKDF, HMAC, labelled expansion)."""

from __future__ import annotations

import hashlib
import hmac
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Self

from triple_ratchet.errors import AuthenticationError, UsageError
from triple_ratchet.random import RandomSource, system_random

PROTOCOL_LABEL = b"triple-ratchet v1"
# `signing_from_seed` expands the seed under this label (spec 02-suites, "Signing keys from seeds").
LABEL_SUITES_SIGNING_SEED = b"suites signing key from seed"

# Field widths of the `expand_label` info string bound the values they carry.
_MAX_LABEL_LEN = 255
_MAX_CONTEXT_LEN = 2**32 - 1


def key_bytes(data: object, what: str) -> bytes:
    """`data` as immutable bytes; anything but a bytes-like value is the caller's `UsageError`.

    (`bytes(5)` would silently make five zero bytes, so no blind conversion.)
    """
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise UsageError(f"{what} must be bytes, not {type(data).__name__}")


class _Immutable:
    """Keys and suites never change after construction, so a copy is the object itself.

    Layers above deep-copy their state to make updates transactional; this keeps that cheap
    and keeps suites singletons (`suite is DEFAULT_SUITE` stays true in a copied state).
    """

    __slots__ = ()

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Self:
        return self


class DhPublicKey(_Immutable, ABC):
    __slots__ = ()

    @abstractmethod
    def to_bytes(self) -> bytes: ...

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DhPublicKey) and hmac.compare_digest(
            self.to_bytes(), other.to_bytes()
        )

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_bytes().hex()[:16]}…)"


class DhPrivateKey(_Immutable, ABC):
    __slots__ = ()

    @abstractmethod
    def public_key(self) -> DhPublicKey: ...

    @abstractmethod
    def exchange(self, peer: DhPublicKey) -> bytes:
        """The shared secret; a low-order or identity result is an `InvalidKey`."""

    @abstractmethod
    def to_bytes(self) -> bytes:
        """Secret encoding, for serialized state only."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<secret>)"


class VerifyingKey(_Immutable, ABC):
    __slots__ = ()

    @abstractmethod
    def to_bytes(self) -> bytes: ...

    @abstractmethod
    def verify(self, signature: bytes, message: bytes) -> None:
        """Raise `InvalidSignature` unless `signature` is valid for `message`."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyingKey) and hmac.compare_digest(
            self.to_bytes(), other.to_bytes()
        )

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_bytes().hex()[:16]}…)"


class SigningKey(_Immutable, ABC):
    __slots__ = ()

    @abstractmethod
    def public_key(self) -> VerifyingKey: ...

    @abstractmethod
    def sign(self, message: bytes) -> bytes:
        """Deterministic signature (RFC 6979 for ECDSA, RFC 8032 for Ed25519)."""

    @abstractmethod
    def to_bytes(self) -> bytes:
        """Secret encoding, for serialized state only."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<secret>)"


class Suite(_Immutable, ABC):
    """A cipher suite. Instances are module-level singletons; compare them by `suite_id`."""

    suite_id: int
    name: str
    hash_name: str
    hash_len: int
    dh_public_len: int
    dh_private_len: int
    sign_public_len: int
    sign_private_len: int
    signature_len: int
    aead_key_len: int
    aead_nonce_len: int
    aead_tag_len: int
    # Hybrid suites (spec 02, "Hybrid suites") add ML-KEM-768 to the handshake and the sealing;
    # everything else about them is their classical suite's.
    post_quantum: bool = False

    @property
    def classical(self) -> Suite:
        """The classical suite this one extends (a classical suite's is itself): code whose rule
        depends on the primitives, e.g. ECDSA's low-s rule, tests this, not the suite id."""
        return self

    def __init__(self) -> None:
        # hashlib.sha256 is about twice as fast as hashlib.new("sha256") on short inputs.
        self._hash_ctor: Callable[[bytes], Any] = getattr(hashlib, self.hash_name)
        self._info_prefix = PROTOCOL_LABEL + self.suite_id.to_bytes(2, "big")

    # --- DH -------------------------------------------------------------------------------
    @abstractmethod
    def generate_dh(self, rng: RandomSource = system_random) -> DhPrivateKey: ...

    @abstractmethod
    def dh_public_from_bytes(self, data: bytes) -> DhPublicKey:
        """Strictly decode and validate a DH public key (`InvalidKey` otherwise)."""

    @abstractmethod
    def dh_private_from_bytes(self, data: bytes) -> DhPrivateKey: ...

    # --- Signatures -------------------------------------------------------------------------
    @abstractmethod
    def generate_signing(self, rng: RandomSource = system_random) -> SigningKey: ...

    @abstractmethod
    def signing_from_seed(self, seed: bytes) -> SigningKey:
        """A signing key derived deterministically from a 32-byte secret seed."""

    @abstractmethod
    def verifying_from_bytes(self, data: bytes) -> VerifyingKey:
        """Strictly decode and validate a signature public key (`InvalidKey` otherwise)."""

    @abstractmethod
    def signing_from_bytes(self, data: bytes) -> SigningKey: ...

    # --- AEAD -------------------------------------------------------------------------------
    @abstractmethod
    def aead_encrypt(self, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes: ...

    @abstractmethod
    def aead_decrypt(self, key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        """Raise `AuthenticationError` when the tag does not verify."""

    # --- Hash, MAC, KDF (shared) -------------------------------------------------------------
    def hash(self, data: bytes) -> bytes:
        digest: bytes = self._hash_ctor(data).digest()
        return digest

    def hmac(self, key: bytes, data: bytes) -> bytes:
        return hmac.digest(key, data, self.hash_name)

    def hmac_verify(self, key: bytes, data: bytes, tag: bytes) -> None:
        """Raise `AuthenticationError` unless `tag` is the full HMAC of `data` (constant time)."""
        if not hmac.compare_digest(hmac.digest(key, data, self.hash_name), tag):
            raise AuthenticationError("MAC does not verify")

    def hkdf_extract(self, salt: bytes, ikm: bytes) -> bytes:
        # An empty salt is HashLen zero bytes (RFC 5869 2.2); HMAC pads keys with zeros anyway.
        return hmac.digest(salt or b"\x00" * self.hash_len, ikm, self.hash_name)

    def _check_okm_length(self, length: int) -> None:
        if type(length) is not int or not 0 <= length <= 255 * self.hash_len:
            raise UsageError(
                f"HKDF output length must be an int in 0..255 * {self.hash_len} (RFC 5869)"
            )

    def hkdf_expand(self, prk: bytes, info: bytes, length: int) -> bytes:
        """HKDF-Expand (RFC 5869); a length outside 0..255 * hash length is a `UsageError`."""
        self._check_okm_length(length)
        return self._expand(prk, info, length)

    def _expand(self, prk: bytes, info: bytes, length: int) -> bytes:
        if length <= self.hash_len:  # the common case: one block
            return hmac.digest(prk, info + b"\x01", self.hash_name)[:length]
        blocks = []
        block = b""
        for counter in range(1, -(-length // self.hash_len) + 1):
            block = hmac.digest(prk, block + info + bytes((counter,)), self.hash_name)
            blocks.append(block)
        return b"".join(blocks)[:length]

    def hkdf(self, salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
        return self.hkdf_expand(self.hkdf_extract(salt, ikm), info, length)

    def label_info(self, label: bytes, context: bytes, length: int) -> bytes:
        """The HKDF info string of every labelled derivation (spec 02-suites, "Labelled KDF").

        PROTOCOL_LABEL || suite_id (u16) || length (u16) || len(label) (u8) || label ||
        len(context) (u32) || context, all big-endian: fixed widths and length prefixes make
        the map from (suite, length, label, context) to info injective.
        """
        self._check_okm_length(length)
        if not 1 <= len(label) <= _MAX_LABEL_LEN:
            raise UsageError("a KDF label must be 1..255 bytes")
        if len(context) > _MAX_CONTEXT_LEN:
            raise UsageError("a KDF context must be shorter than 2**32 bytes")
        return b"".join((
            self._info_prefix,  # PROTOCOL_LABEL || suite_id
            length.to_bytes(2, "big"),
            bytes((len(label),)),
            label,
            len(context).to_bytes(4, "big"),
            context,
        ))

    def expand_label(self, secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
        """The one labelled KDF: HKDF-Expand(secret, info(suite, label, context, length))."""
        return self._expand(secret, self.label_info(label, context, length), length)

    def derive_secret(self, salt: bytes, ikm: bytes, label: bytes, context: bytes,
                      length: int) -> bytes:
        """HKDF-Extract then `expand_label`: the common "root from inputs" step."""
        return self.expand_label(self.hkdf_extract(salt, ikm), label, context, length)

    def __reduce__(self) -> tuple[Callable[[int], Suite], tuple[int]]:
        # Pickles as its id, so unpickling yields the registered singleton.
        from triple_ratchet.suites import suite_by_id

        return (suite_by_id, (self.suite_id,))

    def __repr__(self) -> str:
        return f"Suite({self.name}, id=0x{self.suite_id:04x})"
