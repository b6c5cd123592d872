"""The epoch key schedule: from a certified DKG attempt to every key of the new epoch.

Spec: 08-key-schedule.md. One extraction, then one labelled expansion per derived value::

    epoch_secret = HKDF-Extract(salt = transcript_hash,
                                ikm  = init_secret(e) ‖ payload_1 ‖ … ‖ payload_n)

Every value of the epoch is expanded from `epoch_secret` at once by `derive_epoch`, which then
drops it: the returned `EpochSecrets` holds the derived values only, so a state captured later
cannot re-derive anything it was not handed.

Member indices here are roster positions, 0..n-1, as the group layer numbers senders. (The DKG
numbers the same members 1..n: COCKTAIL participant index = roster position + 1.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from triple_ratchet.dkg.attempt import PAYLOAD_LEN
from triple_ratchet.dkg.cocktail import MAX_PARTICIPANTS
from triple_ratchet.errors import LimitExceeded, UsageError
from triple_ratchet.mailbox import mailbox_id
from triple_ratchet.suites import SigningKey, Suite

# --- Labels (spec 08, label table). expand_label binds the protocol label and suite id. ----------
LABEL_KS_CHAIN_ROOT = b"ks chain root"
LABEL_KS_SENDER_DATA = b"ks sender data secret"
LABEL_KS_MAILBOX_SEED = b"ks group mailbox access seed"
LABEL_KS_EPOCH_ID = b"ks epoch id"
LABEL_KS_INIT_SECRET = b"ks init secret"
LABEL_KS_JOINER_CONFIRMATION = b"ks joiner confirmation"
LABEL_KS_ATTEMPT_MAILBOX_SEED = b"ks attempt mailbox access seed"
LABEL_KS_ATTEMPT_TRAFFIC_KEY = b"ks attempt traffic key"

# --- Sizes -------------------------------------------------------------------------------------
# PAYLOAD_LEN (each member's 32-byte round-1 payload) is the DKG layer's, imported above.
TRANSCRIPT_HASH_LEN = 64
"""SHA-512 of the COCKTAIL(Ed25519, SHA-512) transcript."""
MAILBOX_SEED_LEN = 32
"""`Suite.signing_from_seed` takes 32 bytes."""
EPOCH_ID_LEN = 32
"""Public, compared by users out of band: 256 bits make a chosen collision infeasible."""
MAX_ROSTER_SIZE = MAX_PARTICIPANTS
"""Roster sizes accepted here: the DKG's own maximum (one place for the bound, spec 06)."""
MAX_ROSTER_ENTRY_LEN = 1024
"""Bound on one previous-roster entry (an identity encoding) in the joiner confirmation."""


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def _check_secret(suite: Suite, value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != suite.hash_len:
        raise UsageError(f"{what} must be {suite.hash_len} bytes for suite {suite.name}")


def initial_init_secret(suite: Suite) -> bytes:
    """`init_secret(0)`: the fixed all-zero string, one hash length long."""
    return bytes(suite.hash_len)


@dataclass(frozen=True, repr=False)
class MailboxKeys:
    """A mailbox's access key pair and its id. The signing key opens the mailbox at the hub."""

    # Compared through its public half (SigningKey has no value equality).
    access_key: SigningKey = field(compare=False)
    access_public: bytes
    mailbox_id: bytes

    @classmethod
    def from_seed(cls, suite: Suite, seed: bytes) -> MailboxKeys:
        key = suite.signing_from_seed(seed)
        public = key.public_key().to_bytes()
        return cls(key, public, mailbox_id(suite, public))

    def __repr__(self) -> str:
        return f"MailboxKeys(mailbox_id={self.mailbox_id.hex()}, access_key=<secret>)"


@dataclass(frozen=True, repr=False)
class EpochSecrets:
    """Everything derived from one epoch secret (which is not kept).

    `chain_roots[k]` is the sending-chain root of the member at roster position k.
    """

    suite: Suite
    chain_roots: tuple[bytes, ...]
    sender_data_secret: bytes
    mailbox: MailboxKeys
    epoch_id: bytes
    init_secret_next: bytes

    @property
    def roster_size(self) -> int:
        return len(self.chain_roots)

    def chain_root(self, index: int) -> bytes:
        """The sending-chain root of the member at roster position `index` (0..n-1)."""
        if not isinstance(index, int) or not 0 <= index < len(self.chain_roots):
            raise UsageError(f"member index must be 0..{len(self.chain_roots) - 1}")
        return self.chain_roots[index]

    def __repr__(self) -> str:
        return (
            f"EpochSecrets(suite={self.suite.name}, n={self.roster_size}, "
            f"epoch_id={self.epoch_id.hex()}, mailbox_id={self.mailbox.mailbox_id.hex()}, "
            "<secrets redacted>)"
        )


@dataclass(frozen=True, repr=False)
class AttemptSecrets:
    """What a DKG attempt derives from its proposal's attempt secret."""

    mailbox: MailboxKeys
    traffic_key: bytes

    def __repr__(self) -> str:
        return f"AttemptSecrets(mailbox_id={self.mailbox.mailbox_id.hex()}, <secrets redacted>)"


def _validate_epoch_inputs(
    suite: Suite, init_secret: bytes, transcript_hash: bytes, payloads: Sequence[bytes]
) -> None:
    _check_secret(suite, init_secret, "init_secret")
    if not isinstance(transcript_hash, bytes | bytearray) or (
        len(transcript_hash) != TRANSCRIPT_HASH_LEN
    ):
        raise UsageError(f"transcript hash must be {TRANSCRIPT_HASH_LEN} bytes")
    if not 1 <= len(payloads) <= MAX_ROSTER_SIZE:
        raise LimitExceeded(f"roster size must be 1..{MAX_ROSTER_SIZE}")
    for payload in payloads:
        if not isinstance(payload, bytes | bytearray) or len(payload) != PAYLOAD_LEN:
            raise UsageError(f"every payload must be exactly {PAYLOAD_LEN} bytes")


def extract_epoch_secret(
    suite: Suite, init_secret: bytes, transcript_hash: bytes, payloads: Sequence[bytes]
) -> bytes:
    """The epoch secret. Only `derive_epoch` and the vectors call this; never store the result."""
    _validate_epoch_inputs(suite, init_secret, transcript_hash, payloads)
    ikm = bytes(init_secret) + b"".join(bytes(p) for p in payloads)
    return suite.hkdf_extract(bytes(transcript_hash), ikm)


def derive_epoch(
    suite: Suite, init_secret: bytes, transcript_hash: bytes, payloads: Sequence[bytes]
) -> EpochSecrets:
    """Derive every value of the new epoch from a certified attempt (brief step 6).

    `payloads` are the n round-1 payloads in roster order; n is the new roster size, so there
    is one chain root per payload.
    """
    secret = extract_epoch_secret(suite, init_secret, transcript_hash, payloads)
    n = len(payloads)
    roots = tuple(
        suite.expand_label(secret, LABEL_KS_CHAIN_ROOT, _u32(i), suite.hash_len)
        for i in range(n)
    )
    sender_data = suite.expand_label(secret, LABEL_KS_SENDER_DATA, b"", suite.hash_len)
    seed = suite.expand_label(secret, LABEL_KS_MAILBOX_SEED, b"", MAILBOX_SEED_LEN)
    epoch_id = suite.expand_label(secret, LABEL_KS_EPOCH_ID, b"", EPOCH_ID_LEN)
    init_next = suite.expand_label(secret, LABEL_KS_INIT_SECRET, b"", suite.hash_len)
    # `secret` goes out of scope here; Python cannot wipe it (spec 12, honest limits).
    del secret
    return EpochSecrets(
        suite=suite,
        chain_roots=roots,
        sender_data_secret=sender_data,
        mailbox=MailboxKeys.from_seed(suite, seed),
        epoch_id=epoch_id,
        init_secret_next=init_next,
    )


def roster_context(previous_roster: Sequence[bytes], session_id: bytes) -> bytes:
    """The KDF context of the joiner confirmation: the framed previous roster and session id."""
    if not 1 <= len(previous_roster) <= MAX_ROSTER_SIZE:
        raise LimitExceeded(f"previous roster size must be 1..{MAX_ROSTER_SIZE}")
    parts = [_u32(len(previous_roster))]
    for entry in previous_roster:
        if not isinstance(entry, bytes | bytearray) or not 1 <= len(entry) <= MAX_ROSTER_ENTRY_LEN:
            raise UsageError(f"a roster entry must be 1..{MAX_ROSTER_ENTRY_LEN} bytes")
        parts.append(_u32(len(entry)) + bytes(entry))
    if not isinstance(session_id, bytes | bytearray) or not 1 <= len(session_id) <= 255:
        raise UsageError("session id must be 1..255 bytes")
    parts.append(bytes([len(session_id)]) + bytes(session_id))
    return b"".join(parts)


def joiner_confirmation(
    suite: Suite, init_secret: bytes, previous_roster: Sequence[bytes], session_id: bytes
) -> bytes:
    """The value the COCKTAIL extension commits to so that a wrong welcome fails certification.

    expand_label(init_secret(e), LABEL_KS_JOINER_CONFIRMATION,
                 roster_context(previous roster, session id), hash_len)
    `previous_roster` is epoch e's roster in order, one identity encoding per member.
    """
    _check_secret(suite, init_secret, "init_secret")
    context = roster_context(previous_roster, session_id)
    return suite.expand_label(
        bytes(init_secret), LABEL_KS_JOINER_CONFIRMATION, context, suite.hash_len
    )


def derive_attempt(suite: Suite, attempt_secret: bytes) -> AttemptSecrets:
    """The attempt's DKG mailbox keys and the key that encrypts all of its traffic."""
    _check_secret(suite, attempt_secret, "attempt secret")
    seed = suite.expand_label(
        bytes(attempt_secret), LABEL_KS_ATTEMPT_MAILBOX_SEED, b"", MAILBOX_SEED_LEN
    )
    traffic = suite.expand_label(
        bytes(attempt_secret), LABEL_KS_ATTEMPT_TRAFFIC_KEY, b"", suite.aead_key_len
    )
    return AttemptSecrets(mailbox=MailboxKeys.from_seed(suite, seed), traffic_key=traffic)


__all__ = [
    "EPOCH_ID_LEN",
    "LABEL_KS_ATTEMPT_MAILBOX_SEED",
    "LABEL_KS_ATTEMPT_TRAFFIC_KEY",
    "LABEL_KS_CHAIN_ROOT",
    "LABEL_KS_EPOCH_ID",
    "LABEL_KS_INIT_SECRET",
    "LABEL_KS_JOINER_CONFIRMATION",
    "LABEL_KS_MAILBOX_SEED",
    "LABEL_KS_SENDER_DATA",
    "MAX_ROSTER_SIZE",
    "PAYLOAD_LEN",
    "TRANSCRIPT_HASH_LEN",
    "AttemptSecrets",
    "EpochSecrets",
    "MailboxKeys",
    "derive_attempt",
    "derive_epoch",
    "extract_epoch_secret",
    "initial_init_secret",
    "joiner_confirmation",
    "roster_context",
]
