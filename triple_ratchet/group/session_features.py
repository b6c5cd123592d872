"""What a version-2 session keeps for the member-side rules that are not the judge's: rotation
by age (11.v2.29), re-sending own entries a commit did not take (11.v2.15-16), confirmed
membership (11.v2.28), the hub's clock (11.v2.32) and the ids of past epochs (11.v2.37).

Pure values and functions; `session.GroupSession` holds one `Features` in its state.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from triple_ratchet import cbor
from triple_ratchet.errors import DecodeError
from triple_ratchet.group.change_proposal import KIND_REFRESH, ChangeProposal
from triple_ratchet.group.control_log import COMMITTEE_SIZE, ControlLog
from triple_ratchet.group.epoch_claim import MAX_REMEMBERED_EPOCHS, HeldEpoch, remember
from triple_ratchet.group.events import Event, HubClockSkew, Ignored, UpdateNotApplied
from triple_ratchet.group.records import PURPOSE_ROTATE, WIRE_RECORD

ROTATE_MIN_INTERVAL = 24 * 3_600_000  # ms: rotate after a commit if the latest record is older
ROTATE_MAX_AGE = 7 * 24 * 3_600_000  # ms: rotate while online if the latest record is older
SKEW_MAX = 120_000  # ms: HubClockSkew threshold, and what makes a delivered entry live
# Hub times are u64 on the wire; one beyond any real clock (2^53 ms is 285,000 years) would ride
# into the saved state and, plus our clock's progress, past what CBOR encodes (review v3). The
# session refuses such times, and a saved state holding one does not load.
HUB_TIME_LIMIT = 2**53
# How often one own proposal is re-made for a later epoch when it keeps missing the commit.
MAX_REMAKES = 3
MAX_QUEUED_RECORDS = 16
MAX_PROPOSAL_LEN = 4096
_MAX_RECORD_LEN = 2048  # the largest record of any suite (records.MAX_RECORD_LEN_PQ)
PROPOSAL_REMADE = "our proposal came after the deciding commit: re-made for epoch"
REFRESH_NOT_REMADE = ("our refresh came after the deciding commit: not re-made (the commit "
                      "gave new keys)")
PROPOSAL_DROPPED = "our proposal missed the deciding commit too often: dropped"


@dataclass(frozen=True)
class Features:
    """The member-side state of the features above (saved with the session)."""

    held: tuple[HeldEpoch, ...] = ()
    # The latest hub time we saw (an entry's t, a frame's hub_time, a PUT_OK's t) and our clock
    # then: between entries, hub time is estimated by our clock's progress since.
    hub_t: int = 0
    hub_seen_at: int = 0
    rotate_after_commit: bool = False
    # Our pending proposal (its ChangeProposal bytes), to find it at the commit (11.v2.15).
    own_proposal: bytes = field(default=b"", repr=False)
    remakes: int = 0
    # Queued for the current epoch's control mailbox once we have read it to its end.
    resend_proposal: bytes = field(default=b"", repr=False)
    resend_records: tuple[bytes, ...] = field(default=(), repr=False)
    reposted: frozenset[int] = frozenset()  # counters of records re-posted once already
    # The committee our first epoch's notice rests on, while no one outside it wrote (11.v2.28).
    unconfirmed_by: tuple[bytes, ...] = ()
    unconfirmed_reported: bool = False
    # Hub time when we last knew the current control mailbox read to its end (caught_up, or
    # the deciding commit that began the epoch): we send nothing while it is older than GRACE
    # (11.v2.29), so a member back from an absence cannot seal in an epoch a removal ended.
    synced_at: int = 0

    def hub_now(self, now_ms: int) -> int:
        """Hub time now: the latest seen, moved on by our clock's progress since."""
        now_ms = min(now_ms, HUB_TIME_LIMIT)
        return min(HUB_TIME_LIMIT, self.hub_t + max(0, now_ms - self.hub_seen_at)
                   if self.hub_t else now_ms)

    def saw_hub_time(self, t: int, now_ms: int) -> Features:
        if t <= self.hub_t:
            return self
        return replace(self, hub_t=t, hub_seen_at=min(max(0, now_ms), HUB_TIME_LIMIT))

    def to_cbor(self) -> cbor.CborValue:
        counters: list[cbor.CborValue] = [c for c in sorted(self.reposted)]
        return [[h.to_cbor() for h in self.held], self.hub_t, self.hub_seen_at,
                self.rotate_after_commit, self.own_proposal, self.remakes,
                self.resend_proposal, list(self.resend_records), counters,
                list(self.unconfirmed_by), self.unconfirmed_reported, self.synced_at]

    @classmethod
    def from_cbor(cls, value: cbor.CborValue) -> Features:
        f = cbor.as_list(value, "session features", 12)
        held = tuple(HeldEpoch.from_cbor(h) for h in cbor.as_list(f[0], "held epochs"))
        if len(held) > MAX_REMEMBERED_EPOCHS:
            raise DecodeError("too many remembered epochs")
        records = tuple(cbor.as_bytes(r, "queued record", max_length=_MAX_RECORD_LEN)
                        for r in cbor.as_list(f[7], "queued records"))
        reposted = frozenset(cbor.as_int(c, "re-posted counter")
                             for c in cbor.as_list(f[8], "re-posted counters"))
        committee = tuple(cbor.as_bytes(i, "committee identity", max_length=512)
                          for i in cbor.as_list(f[9], "unconfirmed by"))
        if (len(records) > MAX_QUEUED_RECORDS or len(reposted) > MAX_QUEUED_RECORDS
                or len(committee) > COMMITTEE_SIZE):
            raise DecodeError("session features out of range")
        return cls(held, cbor.as_int(f[1], "hub time", maximum=HUB_TIME_LIMIT),
                   cbor.as_int(f[2], "hub time seen at", maximum=HUB_TIME_LIMIT),
                   cbor.as_bool(f[3], "rotate after commit"),
                   cbor.as_bytes(f[4], "own proposal", max_length=MAX_PROPOSAL_LEN),
                   cbor.as_int(f[5], "remakes", maximum=MAX_REMAKES),
                   cbor.as_bytes(f[6], "queued proposal", max_length=MAX_PROPOSAL_LEN),
                   records, reposted, committee, cbor.as_bool(f[10], "unconfirmed reported"),
                   cbor.as_int(f[11], "synced at", maximum=HUB_TIME_LIMIT))


def clock_skew(mailbox: bytes, t: int, hub_time: int | None, now_ms: int) -> list[Event]:
    """HubClockSkew for a live entry (or our own entry's PUT_OK, `hub_time = t`) whose hub time
    is more than SKEW_MAX from our clock; a backlog entry (hub_time − t > SKEW_MAX), or one
    delivered without the frame's hub_time, says nothing about the clocks."""
    if hub_time is None or hub_time - t > SKEW_MAX:
        return []
    if abs(t - now_ms) <= SKEW_MAX:
        return []
    return [HubClockSkew(mailbox, t, now_ms)]


def after_commit(f: Features, log: ControlLog, own_records: Sequence[bytes], *,
                 applied_counter: int, posted_at: int, decided_t: int, epoch_id: bytes
                 ) -> tuple[Features, frozenset[bytes], list[Event]]:
    """After C(e) (11.v2.15-16, 11.v2.29), from `log` (epoch e's, decided) and our records:
    remember epoch e+1's id; find our proposal and rotation records that C(e) neither took nor
    carried (they came after it, or were refused) and queue them for e+1 (re-made, re-posted);
    note whether our latest record (`posted_at`; 0, from creation, counts as old) is old enough
    to rotate.
    Returns the features, the records to forget (re-posted once already and still not applied:
    a fresh rotation replaces them) and the events. The queue is posted once e+1's control
    mailbox is read to its end."""
    events: list[Event] = []
    held = remember(f.held, HeldEpoch(log.view.epoch + 1, epoch_id, decided_t))
    attempt = log.attempt
    seen = {p.entry.body for p in log.pending} | (
        {p.entry.body for p in attempt.proposals} if attempt is not None else set())
    resend, remakes, own = f.resend_proposal, f.remakes, f.own_proposal
    # A refresh is not re-made: C(e) itself gave every member new keys.
    refresh = bool(own) and ChangeProposal.from_bytes(log.view.suite, own).kind == KIND_REFRESH
    if own and own not in seen and not resend:
        if refresh:
            events.append(Ignored(REFRESH_NOT_REMADE))
        elif remakes < MAX_REMAKES:
            resend, remakes = own, remakes + 1
            events.append(Ignored(f"{PROPOSAL_REMADE} {log.view.epoch + 1}"))
        else:
            events.append(Ignored(PROPOSAL_DROPPED))
        own = b""
    elif own in seen:
        own, remakes = b"", 0
    carried = set(log.carried_out())
    taken = {p.keys().to_bytes() for p in log.records if p.signed() in carried}
    queued = list(f.resend_records)
    reposted = set(f.reposted)
    stale: set[bytes] = set()
    for raw in own_records:
        counter = own_rotation_counter(raw)
        if (counter is None or counter <= applied_counter or raw in taken or raw in queued):
            continue
        events.append(UpdateNotApplied(counter))
        if counter in reposted:
            stale.add(raw)  # re-posted once and still not applied: a new record instead
        elif len(queued) < MAX_QUEUED_RECORDS:
            queued.append(raw)
            reposted.add(counter)
    # posted_at 0 is an entry from the group's creation, never posted in a control mailbox: as
    # a sender rule it counts as old (read as T0 it would never age while commits come).
    age = decided_t - posted_at if posted_at else ROTATE_MIN_INTERVAL
    due = f.rotate_after_commit or bool(stale) or age >= ROTATE_MIN_INTERVAL
    return replace(f, held=held, resend_proposal=resend, remakes=remakes, own_proposal=own,
                   resend_records=tuple(queued),
                   reposted=frozenset(sorted(reposted)[-MAX_QUEUED_RECORDS:]),
                   rotate_after_commit=due), frozenset(stale), events


@functools.lru_cache(maxsize=64)
def own_rotation_counter(keys_bytes: bytes) -> int | None:
    """The counter of one of our own rotation records (None for a join key or resume record),
    read without checking its signatures again: our records were checked when made or loaded,
    and this runs at every tick (hence the cache: a pure function of the bytes)."""
    outer = cbor.as_list(cbor.decode(keys_bytes, max_items=8, max_depth=1), "own keys")
    body = cbor.as_list(cbor.decode(cbor.as_bytes(outer[0], "own keys body"), max_items=16,
                                    max_depth=1), "own keys body")
    if len(body) != 10 or body[0] != WIRE_RECORD or body[6] != PURPOSE_ROTATE:
        return None
    return cbor.as_int(body[5], "record counter")


def rotation_due(f: Features, *, first_keys: bool, posted_at: int, hub_now: int) -> bool:
    """R10 (11.v2.29), with no own rotation pending: at once while our roster entry is a join key
    or resume record; after a commit that found our latest record older than
    ROTATE_MIN_INTERVAL; while online when it is older than ROTATE_MAX_AGE."""
    return first_keys or f.rotate_after_commit or hub_now - posted_at >= ROTATE_MAX_AGE


__all__ = [
    "MAX_REMAKES",
    "PROPOSAL_DROPPED",
    "PROPOSAL_REMADE",
    "REFRESH_NOT_REMADE",
    "ROTATE_MAX_AGE",
    "ROTATE_MIN_INTERVAL",
    "SKEW_MAX",
    "Features",
    "after_commit",
    "clock_skew",
    "own_rotation_counter",
    "rotation_due",
]
