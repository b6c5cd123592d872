"""The group layer (the Triple Ratchet's top): epochs, sender chains, group messages.

`GroupSession` (spec 11 and 09) is what applications drive: a committee of the members online
runs each epoch change, and members offline catch up when they return. Version 1 of the epoch
change is withdrawn: its saved states and messages raise `UnsupportedError`.
"""

from __future__ import annotations

from triple_ratchet.group.events import (
    EpochChanged,
    Event,
    ForkDetected,
    GapDetected,
    HubClockSkew,
    Ignored,
    MemberDormant,
    MemberExcluded,
    MembershipChanged,
    MembershipConfirmed,
    MembershipUnconfirmed,
    MessageReceived,
    MessagesLost,
    MisbehaviourReported,
    Outgoing,
    ProposalVoid,
    RejoinNeeded,
    RemovedFromGroup,
    SealingConvicted,
    UpdateNotApplied,
)
from triple_ratchet.group.key_schedule import MailboxKeys
from triple_ratchet.group.session import GroupSession

__all__ = [
    "EpochChanged",
    "Event",
    "ForkDetected",
    "GapDetected",
    "GroupSession",
    "HubClockSkew",
    "Ignored",
    "MailboxKeys",
    "MemberDormant",
    "MemberExcluded",
    "MembershipChanged",
    "MembershipConfirmed",
    "MembershipUnconfirmed",
    "MessageReceived",
    "MessagesLost",
    "MisbehaviourReported",
    "Outgoing",
    "ProposalVoid",
    "RejoinNeeded",
    "RemovedFromGroup",
    "SealingConvicted",
    "UpdateNotApplied",
]
