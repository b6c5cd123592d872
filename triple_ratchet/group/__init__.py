"""The group layer (the Triple Ratchet's top): epochs, sender chains, group messages.

`GroupSession` is what applications drive (spec 09 and 11); `key_schedule` turns a certified
DKG attempt into every key of the new epoch (spec 08).
"""

from __future__ import annotations

from triple_ratchet.group.events import (
    AttemptAborted,
    EpochChanged,
    EpochChangeStarted,
    Event,
    ForkDetected,
    GapDetected,
    Ignored,
    MembershipChanged,
    MessageReceived,
    MessagesLost,
    Outgoing,
    RejoinNeeded,
    RemovedFromGroup,
    WelcomeOut,
)
from triple_ratchet.group.key_schedule import (
    AttemptSecrets,
    EpochSecrets,
    MailboxKeys,
    derive_attempt,
    derive_epoch,
    initial_init_secret,
    joiner_confirmation,
)
from triple_ratchet.group.session import GroupSession

__all__ = [
    "AttemptAborted",
    "AttemptSecrets",
    "EpochChangeStarted",
    "EpochChanged",
    "EpochSecrets",
    "Event",
    "ForkDetected",
    "GapDetected",
    "GroupSession",
    "Ignored",
    "MailboxKeys",
    "MembershipChanged",
    "MessageReceived",
    "MessagesLost",
    "Outgoing",
    "RejoinNeeded",
    "RemovedFromGroup",
    "WelcomeOut",
    "derive_attempt",
    "derive_epoch",
    "initial_init_secret",
    "joiner_confirmation",
]
