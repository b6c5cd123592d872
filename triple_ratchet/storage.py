"""Sealed storage for saved session states (the "pickle key" of vodozemac).

Every session's `to_bytes()` is plaintext CBOR that decodes strictly, but a strict decoder cannot
tell a flipped bit inside a key from a different valid key. An application that stores states
where they could be corrupted or tampered with seals them under a storage key it keeps apart
(e.g. in the platform keystore): any change is then an `AuthenticationError`, never a silently
different state.
"""

from __future__ import annotations

import nacl.bindings as sodium
import nacl.exceptions

from triple_ratchet.errors import AuthenticationError, DecodeError, UsageError
from triple_ratchet.random import RandomSource, system_random

LABEL_SEALED_STATE = b"triple-ratchet sealed state v1"
STORAGE_KEY_LEN = 32
_NONCE_LEN = 24  # XChaCha20-Poly1305: random nonces are safe at any number of saves
_VERSION = b"\x01"
_OVERHEAD = len(_VERSION) + _NONCE_LEN + 16


def _check_bytes(value: object, what: str) -> None:
    # bytes only: PyNaCl would raise TypeError for anything else, outside our error contract.
    if not isinstance(value, bytes):
        raise UsageError(f"{what} must be bytes")


def generate_storage_key(rng: RandomSource = system_random) -> bytes:
    return rng(STORAGE_KEY_LEN)


def seal_state(storage_key: bytes, state: bytes, rng: RandomSource = system_random) -> bytes:
    """`version ‖ nonce ‖ XChaCha20-Poly1305(key, nonce, state, aad = label ‖ version)`."""
    _check_bytes(storage_key, "storage key")
    _check_bytes(state, "state")
    if len(storage_key) != STORAGE_KEY_LEN:
        raise UsageError("storage key must be 32 bytes")
    nonce = rng(_NONCE_LEN)
    sealed: bytes = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        state, LABEL_SEALED_STATE + _VERSION, nonce, storage_key)
    return _VERSION + nonce + sealed


def open_state(storage_key: bytes, blob: bytes) -> bytes:
    """The state bytes, or `AuthenticationError` if the blob was changed in any way."""
    _check_bytes(storage_key, "storage key")
    _check_bytes(blob, "sealed state")
    if len(storage_key) != STORAGE_KEY_LEN:
        raise UsageError("storage key must be 32 bytes")
    if len(blob) < _OVERHEAD:
        raise DecodeError("sealed state is shorter than its header and tag")
    if blob[:1] != _VERSION:
        raise DecodeError(f"unknown sealed state version {blob[0]}")
    nonce, sealed = blob[1:1 + _NONCE_LEN], blob[1 + _NONCE_LEN:]
    try:
        state: bytes = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            sealed, LABEL_SEALED_STATE + _VERSION, nonce, storage_key)
    except nacl.exceptions.CryptoError:
        pass
    else:
        return state
    # Raised outside the handler so that no library exception rides along as __context__.
    raise AuthenticationError("sealed state was modified or the storage key is wrong")


__all__ = ["LABEL_SEALED_STATE", "STORAGE_KEY_LEN", "generate_storage_key", "open_state",
           "seal_state"]
