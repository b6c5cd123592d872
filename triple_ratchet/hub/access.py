"""Mailbox access keys: mailbox ids and the proof a connection gives to open a mailbox.

A mailbox id is the hash of a label, a suite id and an *access* public key
(`triple_ratchet.mailbox.mailbox_id`, re-exported here; the group layer uses the same function).
Whoever holds the access signing key may read, acknowledge and (for group mailboxes) write the
mailbox; the hub checks a signature over a fresh per-connection challenge and learns nothing
else. An access key signs hub challenges and nothing else: `LABEL_HUB_CHALLENGE` separates those
signatures from every other signature in the protocol, and the key is made for this one use.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from triple_ratchet.errors import InvalidSignature, LimitExceeded, UsageError
from triple_ratchet.mailbox import LABEL_MAILBOX_ID, MAILBOX_ID_LEN, mailbox_id
from triple_ratchet.random import RandomSource, system_random
from triple_ratchet.suites import SigningKey, Suite, suite_by_id

LABEL_HUB_CHALLENGE = b"triple-ratchet hub challenge v1"
LABEL_HUB_DIRECTORY_ID = b"triple-ratchet hub directory id v1"

CHALLENGE_LEN = 32
# The largest signature public key of any suite is an uncompressed P-256 point (65 bytes);
# the bound leaves room for a future suite without letting a frame carry an arbitrary blob.
MAX_ACCESS_PUBLIC_KEY_LEN = 133
MAX_ACCESS_SIGNATURE_LEN = 132


def directory_id(suite: Suite, identity: bytes) -> bytes:
    """Where a member's prekey bundle is published: a hash of its identity, not the identity.
    SHA-256(len(label) ‖ label ‖ suite id ‖ identity), like `mailbox_id`, where `identity` is the
    whole identity encoding (`Identity.to_bytes()`, spec 03), not one of its keys."""
    return hashlib.sha256(
        bytes([len(LABEL_HUB_DIRECTORY_ID)]) + LABEL_HUB_DIRECTORY_ID
        + suite.suite_id.to_bytes(2, "big") + identity
    ).digest()


def challenge_message(challenge: bytes, mailbox: bytes) -> bytes:
    """What an access key signs: the label, the connection's challenge and the mailbox id.

    Binding the mailbox id keeps one proof from being replayed for another mailbox even on the
    same connection; the fresh challenge keeps it from being replayed on another connection.
    """
    if len(challenge) != CHALLENGE_LEN or len(mailbox) != MAILBOX_ID_LEN:
        raise UsageError("challenge and mailbox id must be 32 bytes each")
    return bytes([len(LABEL_HUB_CHALLENGE)]) + LABEL_HUB_CHALLENGE + challenge + mailbox


@dataclass(frozen=True, repr=False)
class AccessProof:
    """A connection's claim to a mailbox: suite, access public key and challenge signature."""

    mailbox_id: bytes
    suite_id: int
    public_key: bytes
    signature: bytes

    def __repr__(self) -> str:
        return f"AccessProof(suite=0x{self.suite_id:04x})"


class AccessKey:
    """An access signing key bound to its suite; signs hub challenges only."""

    __slots__ = ("_key", "_mailbox_id", "_public", "suite")

    def __init__(self, suite: Suite, signing_key: SigningKey) -> None:
        self.suite = suite
        self._key = signing_key
        self._public = signing_key.public_key().to_bytes()
        self._mailbox_id = mailbox_id(suite, self._public)

    @classmethod
    def generate(cls, suite: Suite, rng: RandomSource = system_random) -> AccessKey:
        return cls(suite, suite.generate_signing(rng))

    @classmethod
    def from_seed(cls, suite: Suite, seed: bytes) -> AccessKey:
        """For access keys derived from a secret (group epochs, DKG attempts)."""
        return cls(suite, suite.signing_from_seed(seed))

    @property
    def mailbox_id(self) -> bytes:
        return self._mailbox_id

    @property
    def public_key(self) -> bytes:
        return self._public

    def prove(self, challenge: bytes) -> AccessProof:
        signature = self._key.sign(challenge_message(challenge, self._mailbox_id))
        return AccessProof(self._mailbox_id, self.suite.suite_id, self._public, signature)

    def __repr__(self) -> str:
        return f"AccessKey(suite=0x{self.suite.suite_id:04x}, <secret>)"


def verify_proof(proof: AccessProof, challenge: bytes) -> None:
    """Check a proof against this connection's challenge; raise a typed error otherwise.

    Order: cheap length checks, suite lookup, id match (a hash), then key decoding and the
    signature, so a forger pays for nothing but a hash before being refused.
    """
    if len(proof.public_key) > MAX_ACCESS_PUBLIC_KEY_LEN:
        raise LimitExceeded("access public key too long")
    if len(proof.signature) > MAX_ACCESS_SIGNATURE_LEN:
        raise LimitExceeded("access signature too long")
    suite = suite_by_id(proof.suite_id)
    if mailbox_id(suite, proof.public_key) != proof.mailbox_id:
        raise InvalidSignature("access key does not hash to the mailbox id")
    key = suite.verifying_from_bytes(proof.public_key)
    key.verify(proof.signature, challenge_message(challenge, proof.mailbox_id))


__all__ = [
    "CHALLENGE_LEN",
    "LABEL_HUB_CHALLENGE",
    "LABEL_HUB_DIRECTORY_ID",
    "LABEL_MAILBOX_ID",
    "MAILBOX_ID_LEN",
    "AccessKey",
    "AccessProof",
    "challenge_message",
    "directory_id",
    "mailbox_id",
    "verify_proof",
]
