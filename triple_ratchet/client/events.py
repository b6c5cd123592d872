"""What `Client.events()` yields: small frozen values, one class per kind of news."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from triple_ratchet.errors import HubRefused

if TYPE_CHECKING:
    from triple_ratchet.client.group import Group


@dataclass(frozen=True)
class Member:
    """A member as the app shows it: the identity (what others add) and a display name (from
    the contact list, the member's directory entry, or the group's info message; "" if none)."""

    identity: bytes = field(repr=False)
    name: str

    def __repr__(self) -> str:
        return f"Member({self.name!r}, {self.identity.hex()[:12]}…)"


class ConnectionState(enum.Enum):
    CONNECTED = "connected"
    CONNECTING = "connecting"  # lost, reconnecting with backoff
    OFFLINE = "offline"  # closed


class Event:
    """Base class of every client event."""


@dataclass(frozen=True)
class GroupMessage(Event):
    """A message of `group`, delivered exactly once even across a crash (spec 15 "Events").
    `text` is set for a text message (then `data` is its UTF-8 encoding)."""

    group: Group
    sender: Member
    text: str | None = field(repr=False)
    data: bytes = field(repr=False)
    message_id: bytes


@dataclass(frozen=True)
class DirectMessage(Event):
    """A one-to-one message over the pairwise session with `sender`."""

    sender: Member
    text: str | None = field(repr=False)
    data: bytes = field(repr=False)
    message_id: bytes


@dataclass(frozen=True)
class GroupJoined(Event):
    """We are in `group` now; `inviter` proposed (or created) it."""

    group: Group
    inviter: Member


@dataclass(frozen=True)
class MembershipChanged(Event):
    """The roster changed at `epoch`: `reason` is the protocol's ("change" or "refresh")."""

    group: Group
    epoch: int
    added: tuple[Member, ...]
    removed: tuple[Member, ...]
    proposer: Member
    reason: str


@dataclass(frozen=True)
class EpochChanged(Event):
    """A new epoch is active. `epoch_id` may be compared out of band."""

    group: Group
    epoch: int
    epoch_id: bytes


@dataclass(frozen=True)
class RemovedFromGroup(Event):
    """We are no longer a member of `group`; nothing more is read or sent in it."""

    group: Group
    proposer: Member


@dataclass(frozen=True)
class MemberOffline(Event):
    """`member` did not take part in an epoch change and is off its committee (never removed
    for that)."""

    group: Group
    member: Member
    reason: str


@dataclass(frozen=True)
class CatchingUp(Event):
    """`group` is being read from a backlog (after a restart or an absence)."""

    group: Group


@dataclass(frozen=True)
class Gap(Event):
    """Messages `first..last` of `sender` are missing; `lost` once they were given up on."""

    group: Group
    sender: Member
    first: int
    last: int
    lost: bool


@dataclass(frozen=True)
class Fork(Event):
    """Evidence that `group` may have split (the group session's `ForkDetected`)."""

    group: Group
    kind: str
    member: Member | None
    detail: str


@dataclass(frozen=True)
class RejoinNeeded(Event):
    """Our state of `group` cannot go on (e.g. restored from an old backup): ask to be added
    again."""

    group: Group


@dataclass(frozen=True)
class ConnectionChanged(Event):
    state: ConnectionState


@dataclass(frozen=True)
class Refused(Event):
    """The hub refused something done in the background (a put from the outbox, a followed
    mailbox). Never a forged or corrupted message: those are dropped and counted."""

    group: Group | None
    error: HubRefused


__all__ = [
    "CatchingUp",
    "ConnectionChanged",
    "ConnectionState",
    "DirectMessage",
    "EpochChanged",
    "Event",
    "Fork",
    "Gap",
    "GroupJoined",
    "GroupMessage",
    "Member",
    "MemberOffline",
    "MembershipChanged",
    "Refused",
    "RejoinNeeded",
    "RemovedFromGroup",
]
