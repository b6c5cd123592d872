"""The group layer: the epoch key schedule and, above it, group sessions.

`key_schedule` turns a certified DKG attempt into every key of the new epoch (spec 08).
"""

from __future__ import annotations

from triple_ratchet.group.key_schedule import (
    AttemptSecrets,
    EpochSecrets,
    MailboxKeys,
    derive_attempt,
    derive_epoch,
    initial_init_secret,
    joiner_confirmation,
)

__all__ = [
    "AttemptSecrets",
    "EpochSecrets",
    "MailboxKeys",
    "derive_attempt",
    "derive_epoch",
    "initial_init_secret",
    "joiner_confirmation",
]
