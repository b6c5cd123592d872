"""Proposals: a member's signed request to change the roster or refresh the epoch (spec 11, §1).

A proposal names everything the attempt needs: group id, the current epoch and its public id,
the members added and removed (explicitly), the new roster's identities in order, the threshold,
the suite ids, a random attempt nonce and the attempt secret from which the attempt's DKG mailbox
and traffic key derive. It is signed by the proposer's identity key; its hash (over the signed
body, never the signature) is the COCKTAIL session id, so the certificate binds all of it.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field

from triple_ratchet import cbor
from triple_ratchet.dkg.cocktail import CIPHERSUITE_ID
from triple_ratchet.errors import DecodeError, LimitExceeded, ProtocolError, UsageError
from triple_ratchet.group.epoch import MAX_GROUP_SIZE
from triple_ratchet.group.message import MAX_BODY, MAX_GROUP_ID_LEN
from triple_ratchet.identity import LABEL_IDENTITY_PROPOSAL, Identity, IdentityKeyPair
from triple_ratchet.random import RandomSource, system_random
from triple_ratchet.suites import Suite, suite_by_id

LABEL_GROUP_PROPOSAL_HASH = b"triple-ratchet v1 group proposal hash"

WIRE_PROPOSAL = 0x30
VERSION = 1
ATTEMPT_NONCE_LEN = 32
MAX_IDENTITY_LEN = 512
# A signed proposal travels as one group-message body: its body must leave room for the
# signature and framing (64 members with real identities, 203 bytes, take about 40 000).
MAX_PROPOSAL_LEN = MAX_BODY - 256
DEFAULT_THRESHOLD = 2  # the threshold key is unused by the group layer; 2 keeps it meaningful

REASON_CHANGE = 0  # members added or removed by request
REASON_REFRESH = 1  # scheduled re-key, roster unchanged
REASON_UNRESPONSIVE = 2  # removal of members named by a timeout abort
REASONS = frozenset({REASON_CHANGE, REASON_REFRESH, REASON_UNRESPONSIVE})


def next_roster(old: Sequence[bytes], added: Sequence[bytes], removed: Sequence[bytes]
                ) -> tuple[bytes, ...]:
    """The new roster: the old one in order without `removed`, then `added` in order."""
    if len(set(added)) != len(added) or len(set(removed)) != len(removed):
        raise ProtocolError("a member is listed twice in the change")
    if any(r not in old for r in removed):
        raise ProtocolError("a removed member is not in the roster")
    if any(a in old for a in added):
        raise ProtocolError("an added member is already in the roster")
    roster = tuple(m for m in old if m not in removed) + tuple(added)
    if not 1 <= len(roster) <= MAX_GROUP_SIZE:
        raise LimitExceeded(f"the new roster must have 1..{MAX_GROUP_SIZE} members")
    return roster


def default_threshold(n: int) -> int:
    return min(DEFAULT_THRESHOLD, n)


@dataclass(frozen=True)
class Proposal:
    suite_id: int
    group_id: bytes
    epoch: int
    public_epoch_id: bytes
    proposer: bytes  # Identity encoding
    reason: int
    added: tuple[bytes, ...]
    removed: tuple[bytes, ...]
    new_roster: tuple[bytes, ...]
    threshold: int
    attempt_nonce: bytes
    attempt_secret: bytes = field(repr=False)

    def body(self) -> bytes:
        return cbor.encode([
            WIRE_PROPOSAL, VERSION, self.suite_id, CIPHERSUITE_ID, self.group_id, self.epoch,
            self.public_epoch_id, self.proposer, self.reason, list(self.added),
            list(self.removed), list(self.new_roster), self.threshold, self.attempt_nonce,
            self.attempt_secret,
        ])

    @classmethod
    def from_body(cls, data: bytes) -> Proposal:
        items = cbor.as_list(cbor.decode(data, max_size=MAX_PROPOSAL_LEN, max_depth=2),
                             "proposal", length=15)
        if cbor.as_int(items[0], "type") != WIRE_PROPOSAL:
            raise DecodeError("not a proposal")
        if cbor.as_int(items[1], "version") != VERSION:
            raise DecodeError("unsupported proposal version")
        suite = suite_by_id(cbor.as_int(items[2], "suite id", maximum=0xFFFF))
        if cbor.as_bytes(items[3], "dkg suite", max_length=64) != CIPHERSUITE_ID:
            raise DecodeError("unsupported DKG ciphersuite")

        def identities(v: cbor.CborValue, what: str) -> tuple[bytes, ...]:
            lst = cbor.as_list(v, what)
            if len(lst) > MAX_GROUP_SIZE:
                raise LimitExceeded(f"{what}: more than {MAX_GROUP_SIZE} entries")
            return tuple(cbor.as_bytes(x, what, max_length=MAX_IDENTITY_LEN) for x in lst)

        reason = cbor.as_int(items[8], "reason")
        if reason not in REASONS:
            raise DecodeError("unknown proposal reason")
        return cls(
            suite.suite_id, cbor.as_bytes(items[4], "group id", max_length=MAX_GROUP_ID_LEN),
            cbor.as_int(items[5], "epoch"),
            cbor.as_bytes(items[6], "public epoch id", max_length=64),
            cbor.as_bytes(items[7], "proposer", max_length=MAX_IDENTITY_LEN), reason,
            identities(items[9], "added"), identities(items[10], "removed"),
            identities(items[11], "new roster"),
            cbor.as_int(items[12], "threshold", minimum=1, maximum=MAX_GROUP_SIZE),
            cbor.as_bytes(items[13], "attempt nonce", length=ATTEMPT_NONCE_LEN),
            cbor.as_bytes(items[14], "attempt secret", length=suite.hash_len),
        )

    def session_id(self, suite: Suite) -> bytes:
        """The proposal hash: COCKTAIL session id and the attempt's name everywhere."""
        return suite.hash(LABEL_GROUP_PROPOSAL_HASH + self.body())

    def check_roster(self, old_roster: Sequence[bytes]) -> None:
        """The new roster must be the old one minus `removed` plus `added`, in order."""
        if next_roster(old_roster, self.added, self.removed) != self.new_roster:
            raise ProtocolError("new roster is not the old one with the listed change")
        if not 1 <= self.threshold <= len(self.new_roster):
            raise ProtocolError("threshold out of range")
        if self.reason == REASON_REFRESH and (self.added or self.removed):
            raise ProtocolError("a refresh does not change the roster")

    def __repr__(self) -> str:
        return (f"Proposal(epoch={self.epoch}, +{len(self.added)} -{len(self.removed)}, "
                f"n={len(self.new_roster)}, <attempt secret>)")


@dataclass(frozen=True)
class SignedProposal:
    proposal: Proposal
    body: bytes = field(repr=False)
    signature: bytes = field(repr=False)

    def to_bytes(self) -> bytes:
        return cbor.encode([self.body, self.signature])

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedProposal:
        """Decode and verify the proposer's identity signature."""
        items = cbor.as_list(cbor.decode(data, max_size=MAX_PROPOSAL_LEN + 256, max_depth=3),
                             "signed proposal", length=2)
        body = cbor.as_bytes(items[0], "proposal body", max_length=MAX_PROPOSAL_LEN)
        signature = cbor.as_bytes(items[1], "proposal signature", max_length=256)
        proposal = Proposal.from_body(body)
        suite = suite_by_id(proposal.suite_id)
        Identity.from_bytes(proposal.proposer, suite).verify(
            LABEL_IDENTITY_PROPOSAL, body, signature)
        return cls(proposal, body, signature)

    def session_id(self) -> bytes:
        return self.proposal.session_id(suite_by_id(self.proposal.suite_id))

    def same_as(self, other: SignedProposal) -> bool:
        return hmac.compare_digest(self.body, other.body)


def make_proposal(identity: IdentityKeyPair, *, group_id: bytes, epoch: int,
                  public_epoch_id: bytes, old_roster: Sequence[bytes], added: Sequence[bytes],
                  removed: Sequence[bytes], reason: int = REASON_CHANGE,
                  threshold: int | None = None, rng: RandomSource = system_random
                  ) -> SignedProposal:
    suite = identity.suite
    if reason not in REASONS:
        raise UsageError("unknown proposal reason")
    try:
        new = next_roster(old_roster, added, removed)
    except (ProtocolError, LimitExceeded) as exc:
        raise UsageError(f"cannot propose this change: {exc}") from None
    proposal = Proposal(
        suite.suite_id, group_id, epoch, public_epoch_id, identity.public.to_bytes(), reason,
        tuple(added), tuple(removed), new,
        default_threshold(len(new)) if threshold is None else threshold,
        rng(ATTEMPT_NONCE_LEN), rng(suite.hash_len))
    proposal.check_roster(old_roster)
    body = proposal.body()
    return SignedProposal(proposal, body, identity.sign(LABEL_IDENTITY_PROPOSAL, body))
