"""The group layer (the Triple Ratchet's top): epochs, sender chains, group messages.

`GroupSessionV2` (version 2 of the epoch change, spec 11 and 08 "Version 2") and `GroupSession`
(version 1, to be deleted) are what applications drive; `key_schedule` turns a decided change
into every key of the new epoch (spec 08).
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
from triple_ratchet.group.session_v2 import GroupSessionV2

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
    "GroupSessionV2",
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
