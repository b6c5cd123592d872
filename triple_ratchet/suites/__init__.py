"""Cipher suites: the primitives layer ("hazmat"). No layer above this one names a curve.

A `Suite` bundles a DH group, a signature scheme, a hash with its HKDF/HMAC and an AEAD, and
binds its 16-bit id into every labelled derivation (`expand_label`).
"""

from __future__ import annotations

from triple_ratchet.errors import UnsupportedError
from triple_ratchet.suites._base import (
    DhPrivateKey,
    DhPublicKey,
    SigningKey,
    Suite,
    VerifyingKey,
)
from triple_ratchet.suites.p256 import P256_MLKEM768_SHA256_AES256GCM, P256_SHA256_AES256GCM
from triple_ratchet.suites.x25519 import X25519_MLKEM768_SHA512_XCHACHA20, X25519_SHA512_XCHACHA20

DEFAULT_SUITE: Suite = P256_SHA256_AES256GCM

CLASSICAL_SUITES: tuple[Suite, ...] = (P256_SHA256_AES256GCM, X25519_SHA512_XCHACHA20)
# Each the classical suite of the same curve plus ML-KEM-768 (spec 02, "Hybrid suites").
HYBRID_SUITES: tuple[Suite, ...] = (P256_MLKEM768_SHA256_AES256GCM,
                                    X25519_MLKEM768_SHA512_XCHACHA20)

# Every suite this library knows: `suite_by_id` / `suite_by_name` (and unpickling) find them all.
_SUITES: dict[int, Suite] = {s.suite_id: s for s in CLASSICAL_SUITES + HYBRID_SUITES}


def suite_by_id(suite_id: int) -> Suite:
    """Look a suite up by its wire id; unknown ids are an `UnsupportedError`."""
    # `type(...) is int` keeps True from aliasing suite 1 and floats from aliasing integers.
    suite = _SUITES.get(suite_id) if type(suite_id) is int else None
    if suite is None:
        raise UnsupportedError(f"unknown suite id {suite_id!r}")
    return suite


# Every suite the library runs end to end (the CLI and the demo offer these); classical first.
# A hybrid group is bounded at `group.key_schedule.max_group_size(suite)` members (spec 12).
ALL_SUITES: tuple[Suite, ...] = CLASSICAL_SUITES + HYBRID_SUITES


def suite_by_name(name: object) -> Suite:
    """Look a suite up by its name (as in vector files and the CLI); `UnsupportedError` else."""
    for suite in _SUITES.values():
        if suite.name == name:
            return suite
    raise UnsupportedError(f"unknown suite {name!r}")


__all__ = [
    "ALL_SUITES",
    "CLASSICAL_SUITES",
    "DEFAULT_SUITE",
    "HYBRID_SUITES",
    "P256_MLKEM768_SHA256_AES256GCM",
    "P256_SHA256_AES256GCM",
    "X25519_MLKEM768_SHA512_XCHACHA20",
    "X25519_SHA512_XCHACHA20",
    "DhPrivateKey",
    "DhPublicKey",
    "SigningKey",
    "Suite",
    "VerifyingKey",
    "suite_by_id",
    "suite_by_name",
]
