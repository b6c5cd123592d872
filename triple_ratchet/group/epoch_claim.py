"""Epoch claims (spec 11.v2.37): what a member tells a peer over their pairwise session about the
epoch it holds, so that two members shown two orders by the hub find out in band.

    EpochClaim = CBOR[0x56, 2, suite_id, group_id, e, epoch_id(e), T0(e) | null]

`T0(e)` is `t(C(e−1))`, the hub time of the commit that started epoch e (null only for epoch 1,
which no commit started). A claim is not signed: the pairwise session it travels in
authenticates the peer, and a claim only prompts a report, never a change of state.

The sans-IO session cannot talk to peers: it makes the claim (`GroupSession.epoch_claim`) and
judges a peer's (`compare_epoch_claim`); the transport (the client layer) carries claims.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from triple_ratchet import cbor
from triple_ratchet.errors import (
    DecodeError,
    LimitExceeded,
    ProtocolError,
    UnsupportedError,
    UsageError,
)
from triple_ratchet.group.events import Event, ForkDetected, Ignored
from triple_ratchet.group.key_schedule import EPOCH_ID_LEN, MAX_EPOCH
from triple_ratchet.group.records import MAX_GROUP_ID_LEN
from triple_ratchet.suites import Suite

WIRE_EPOCH_CLAIM = 0x56
VERSION = 2
# 7 items: at most 1 + 1 + 3 + (2 + 64) + 9 + (2 + 32) + 9 bytes plus the list head.
MAX_CLAIM_LEN = 160
MAX_HUB_TIME = 2**64 - 1
# Epochs whose ids a session remembers to judge claims of (bounded: kept in the saved state).
MAX_REMEMBERED_EPOCHS = 64

FORK_TWO_COMMITS = "two deciding commits"
FORK_HUB_TIMES = "hub times differ"
LATER_EPOCH = "epoch claim of a later epoch (read on, then compare again)"
EPOCH_NOT_HELD = "epoch claim of an epoch we do not hold"
NOT_A_MEMBER = "epoch claim from a peer that is not a member"


@dataclass(frozen=True)
class EpochClaim:
    """Epoch `epoch` of `group_id` has id `epoch_id` and began at hub time `t0` (None: epoch 1)."""

    suite: Suite
    group_id: bytes
    epoch: int
    epoch_id: bytes
    t0: int | None

    def __post_init__(self) -> None:
        if not isinstance(self.group_id, bytes) or not 1 <= len(self.group_id) <= (
                MAX_GROUP_ID_LEN):
            raise UsageError(f"group id must be 1..{MAX_GROUP_ID_LEN} bytes")
        if type(self.epoch) is not int or not 1 <= self.epoch <= MAX_EPOCH:
            raise UsageError("epoch must be in 1..2^64-2")
        if not isinstance(self.epoch_id, bytes) or len(self.epoch_id) != EPOCH_ID_LEN:
            raise UsageError(f"epoch id must be {EPOCH_ID_LEN} bytes")
        if (self.t0 is None) != (self.epoch == 1):
            raise UsageError("T0 is null for epoch 1 and a hub time for every later epoch")
        if self.t0 is not None and (type(self.t0) is not int
                                    or not 0 <= self.t0 <= MAX_HUB_TIME):
            raise UsageError("T0 is a hub time in 0..2^64-1")

    def to_bytes(self) -> bytes:
        return cbor.encode([WIRE_EPOCH_CLAIM, VERSION, self.suite.suite_id, self.group_id,
                            self.epoch, self.epoch_id, self.t0])

    @classmethod
    def from_bytes(cls, suite: Suite, data: bytes, *, group_id: bytes) -> EpochClaim:
        """Strict: `LimitExceeded` over MAX_CLAIM_LEN, `DecodeError` for anything malformed
        (truncated, trailing bytes, wrong item count, types or lengths, T0 present in epoch 1 or
        missing later), `UnsupportedError` for another version, `ProtocolError` for a claim of
        another suite or group."""
        if not isinstance(data, bytes | bytearray):
            raise UsageError("expected bytes")
        if len(data) > MAX_CLAIM_LEN:
            raise LimitExceeded(f"epoch claim larger than {MAX_CLAIM_LEN} bytes")
        f = cbor.as_list(cbor.decode(bytes(data), max_size=MAX_CLAIM_LEN, max_items=9,
                                     max_depth=1), "epoch claim", 7)
        if cbor.as_int(f[0], "epoch claim type") != WIRE_EPOCH_CLAIM:
            raise DecodeError("not an epoch claim")
        if cbor.as_int(f[1], "epoch claim version") != VERSION:
            raise UnsupportedError("epoch claim: only version 2 is supported")
        suite_id = cbor.as_int(f[2], "suite", maximum=0xFFFF)
        gid = cbor.as_bytes(f[3], "group id", max_length=MAX_GROUP_ID_LEN)
        if not gid:
            raise DecodeError("epoch claim: empty group id")
        epoch = cbor.as_int(f[4], "epoch", minimum=1, maximum=MAX_EPOCH)
        epoch_id = cbor.as_bytes(f[5], "epoch id", length=EPOCH_ID_LEN)
        if f[6] is None:
            if epoch != 1:
                raise DecodeError("epoch claim: T0 missing for an epoch a commit began")
            t0 = None
        else:
            t0 = cbor.as_int(f[6], "T0")
            if epoch == 1:
                raise DecodeError("epoch claim: epoch 1 has no T0")
        if suite_id != suite.suite_id:
            raise ProtocolError("epoch claim of another suite than the group's")
        if not hmac.compare_digest(gid, group_id):
            raise ProtocolError("epoch claim of another group")
        return cls(suite, gid, epoch, epoch_id, t0)


@dataclass(frozen=True)
class HeldEpoch:
    """An epoch this member held: its number, id and T0 (None for epoch 1)."""

    epoch: int
    epoch_id: bytes
    t0: int | None

    def to_cbor(self) -> cbor.CborValue:
        return [self.epoch, self.epoch_id, self.t0]

    @classmethod
    def from_cbor(cls, value: cbor.CborValue) -> HeldEpoch:
        f = cbor.as_list(value, "held epoch", 3)
        epoch = cbor.as_int(f[0], "held epoch", minimum=1, maximum=MAX_EPOCH)
        t0 = None if f[2] is None else cbor.as_int(f[2], "held epoch T0")
        return cls(epoch, cbor.as_bytes(f[1], "held epoch id", length=EPOCH_ID_LEN), t0)


def remember(held: tuple[HeldEpoch, ...], epoch: HeldEpoch) -> tuple[HeldEpoch, ...]:
    """`held` with `epoch` added, the oldest beyond MAX_REMEMBERED_EPOCHS forgotten."""
    kept = tuple(h for h in held if h.epoch != epoch.epoch)
    return (*kept, epoch)[-MAX_REMEMBERED_EPOCHS:]


def judge_claim(held: tuple[HeldEpoch, ...], claim: EpochClaim, peer: bytes
                ) -> tuple[bool, list[Event]]:
    """(matches, events): a claim for an epoch we hold either matches it or is a fork report
    (11.v2.23: another epoch id; 11.v2.32: one commit at two hub times); a claim for an epoch
    we do not hold says nothing yet (`Ignored`)."""
    ours = next((h for h in held if h.epoch == claim.epoch), None)
    if ours is None:
        latest = max((h.epoch for h in held), default=0)
        reason = LATER_EPOCH if claim.epoch > latest else EPOCH_NOT_HELD
        return False, [Ignored(reason, peer)]
    if not hmac.compare_digest(ours.epoch_id, claim.epoch_id):
        return False, [ForkDetected(FORK_TWO_COMMITS, peer,
                                    f"epoch {claim.epoch}: the peer holds another epoch id")]
    if ours.t0 != claim.t0:
        return False, [ForkDetected(FORK_HUB_TIMES, peer,
                                    f"epoch {claim.epoch}: the commit that began it has hub "
                                    f"time {ours.t0} here and {claim.t0} at the peer")]
    return True, []


__all__ = [
    "EPOCH_NOT_HELD",
    "FORK_HUB_TIMES",
    "FORK_TWO_COMMITS",
    "LATER_EPOCH",
    "MAX_CLAIM_LEN",
    "MAX_REMEMBERED_EPOCHS",
    "NOT_A_MEMBER",
    "WIRE_EPOCH_CLAIM",
    "EpochClaim",
    "HeldEpoch",
    "judge_claim",
    "remember",
]
