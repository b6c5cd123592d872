"""What `GroupSession.receive` reports: small frozen values (spec: Group messages, Events)."""

from __future__ import annotations

from dataclasses import dataclass, field

from triple_ratchet.suites import SigningKey


@dataclass(frozen=True)
class Outgoing:
    """A blob to append to `mailbox_id` (the caller stores the session state first)."""

    mailbox_id: bytes
    blob: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"Outgoing(mailbox_id={self.mailbox_id.hex()[:16]}…, {len(self.blob)} bytes)"


@dataclass(frozen=True, repr=False)
class CommonOut(Outgoing):
    """A chunk of a notice's common part (spec 11.v2.13): append `blob` to `mailbox_id`, a
    control-kind mailbox the caller creates (and opens at the hub) with `access_key` (the
    change's common mailbox, which the session does not read itself)."""

    access_key: SigningKey = field(compare=False, repr=False)


@dataclass(frozen=True)
class PairwiseOut:
    """A payload to send to `peer` (an identity encoding) over the pairwise session with it,
    not to a hub mailbox: a `RepairedSealing` answering its rejoin request (spec 11.v2.25)."""

    peer: bytes
    payload: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"PairwiseOut(peer={self.peer.hex()[:16]}…, {len(self.payload)} bytes)"


class Event:
    """Base class of every event."""


@dataclass(frozen=True)
class MessageReceived(Event):
    """An authentic application message, released in its sender's order.

    `predecessor_known` says whether the message the sender had last seen (`last_seen`) is
    known here; `late` marks a message that arrives after its gap was declared lost.
    """

    sender_index: int
    sender_identity: bytes
    epoch: int
    generation: int
    digest: bytes
    last_seen: bytes
    predecessor_known: bool
    late: bool
    body: bytes = field(repr=False)


@dataclass(frozen=True)
class GapDetected(Event):
    """Generations `first..last` of a sender are missing (dropped, withheld or reordered)."""

    sender_index: int
    sender_identity: bytes
    epoch: int
    first: int
    last: int


@dataclass(frozen=True)
class MessagesLost(Event):
    """The gap `first..last` was given up on; later messages of the sender were delivered."""

    sender_index: int
    sender_identity: bytes
    epoch: int
    first: int
    last: int


@dataclass(frozen=True)
class MembershipChanged(Event):
    """The roster of `epoch` differs from the previous one (a refresh, which keeps the roster,
    reports only `EpochChanged`). `added` and `removed` are the identities that entered and
    left. `reason` is exactly one of two strings: "added" when the commit added anyone (it may
    also have removed others: read `removed`), else "removed". Nobody is removed for being
    offline. `proposer` is the identity of the author of the first proposal the commit applied
    (one commit may apply several), or b"" when it applied none."""

    epoch: int
    added: tuple[bytes, ...]
    removed: tuple[bytes, ...]
    proposer: bytes
    reason: str


@dataclass(frozen=True)
class EpochChanged(Event):
    """A new epoch is active. Users may compare `public_epoch_id` out of band."""

    epoch: int
    public_epoch_id: bytes
    roster: tuple[bytes, ...]


@dataclass(frozen=True)
class ForkDetected(Event):
    """Evidence that the group may have split: `kind` names it, `member` is who it concerns."""

    kind: str
    member: bytes
    detail: str


@dataclass(frozen=True)
class Ignored(Event):
    """Valid input ignored by a protocol rule (an entry of another epoch, a void proposal...)."""

    reason: str
    member: bytes | None = None


@dataclass(frozen=True)
class RemovedFromGroup(Event):
    """We are not in the new roster of `epoch`; the session is over. `proposer` is the identity
    of who proposed our removal (b"" when unknown); `reason` is "removed"."""

    epoch: int
    proposer: bytes
    reason: str


@dataclass(frozen=True)
class RejoinNeeded(Event):
    """A restored state cannot tell what it already sent in an epoch change; ask to be re-added."""

    epoch: int


@dataclass(frozen=True)
class MemberExcluded(Event):
    """`member` (an identity) is off run `run`'s committee and every later one until the epoch
    changes or an ANNOUNCE ends with no eligible announcer. Exclusion is never removal."""

    member: bytes
    run: int
    reason: str


@dataclass(frozen=True)
class ProposalVoid(Event):
    """A proposal of the attempt was skipped at its place of application (spec 11.v2.17);
    its author may propose again. `subject` is the joiner's, removed or resumed identity."""

    author: bytes
    kind: int
    subject: bytes | None
    reason: str


@dataclass(frozen=True)
class MisbehaviourReported(Event):
    """An authentic entry proves `member` broke a rule (`what`): equivocation, a leak, a
    budget overrun, a false conviction."""

    member: bytes
    what: str


@dataclass(frozen=True)
class SealingConvicted(Event):
    """Every member of `committee` certified a bundle whose sealing for `recipient` was wrong."""

    epoch: int
    run: int
    recipient: bytes
    committee: tuple[bytes, ...]


@dataclass(frozen=True)
class UpdateNotApplied(Event):
    """Our record `counter` posted before the snapshot was not applied; it is re-posted."""

    counter: int


@dataclass(frozen=True)
class MemberDormant(Event):
    """`member` is dormant at this epoch's snapshot: neither sealed to nor eligible."""

    member: bytes


@dataclass(frozen=True)
class MembershipUnconfirmed(Event):
    """Our membership rests on the committee's word until someone outside it writes."""


@dataclass(frozen=True)
class MembershipConfirmed(Event):
    """A member outside the committee wrote in the group (or the epoch id was compared)."""


@dataclass(frozen=True)
class HubClockSkew(Event):
    """The hub's time of an entry differs from our clock by more than SKEW_MAX."""

    mailbox: bytes
    hub_time: int
    local_time: int
