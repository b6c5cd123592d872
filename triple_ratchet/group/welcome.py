"""Welcome (spec 11, §2): what a joiner gets over a pairwise Double Ratchet session.

Exactly the signed proposal, the previous roster (identities in order) and `init_secret(e)` —
nothing else from epoch e. The joiner trusts its welcomer about these until certification; the
attempt's extension commits to a confirmation value from all three, so a wrong welcome makes the
certificate fail instead of giving the joiner another key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from triple_ratchet import cbor
from triple_ratchet.errors import DecodeError, LimitExceeded
from triple_ratchet.group.epoch import MAX_GROUP_SIZE
from triple_ratchet.group.proposal import MAX_IDENTITY_LEN, MAX_PROPOSAL_LEN, SignedProposal
from triple_ratchet.suites import suite_by_id

WIRE_WELCOME = 0x32
VERSION = 1
MAX_WELCOME_LEN = MAX_PROPOSAL_LEN + MAX_GROUP_SIZE * (MAX_IDENTITY_LEN + 4) + 512


@dataclass(frozen=True)
class Welcome:
    proposal: SignedProposal
    previous_roster: tuple[bytes, ...]
    init_secret: bytes = field(repr=False)

    def to_bytes(self) -> bytes:
        return cbor.encode([WIRE_WELCOME, VERSION, self.proposal.to_bytes(),
                            list(self.previous_roster), self.init_secret])

    @classmethod
    def from_bytes(cls, data: bytes) -> Welcome:
        if len(data) > MAX_WELCOME_LEN:
            raise LimitExceeded("welcome too large")
        items = cbor.as_list(cbor.decode(data, max_size=MAX_WELCOME_LEN, max_depth=2),
                             "welcome", length=5)
        if cbor.as_int(items[0], "type") != WIRE_WELCOME or cbor.as_int(items[1], "v") != VERSION:
            raise DecodeError("not a version-1 welcome")
        proposal = SignedProposal.from_bytes(cbor.as_bytes(items[2], "proposal"))
        roster = cbor.as_list(items[3], "previous roster")
        if not 1 <= len(roster) <= MAX_GROUP_SIZE:
            raise LimitExceeded("previous roster size out of range")
        previous = tuple(cbor.as_bytes(r, "roster entry", max_length=MAX_IDENTITY_LEN)
                         for r in roster)
        suite = suite_by_id(proposal.proposal.suite_id)
        init_secret = cbor.as_bytes(items[4], "init secret", length=suite.hash_len)
        return cls(proposal, previous, init_secret)

    def __repr__(self) -> str:
        return f"Welcome({self.proposal.proposal!r}, previous n={len(self.previous_roster)})"
