"""triple_ratchet: end-to-end encrypted group messaging (the Triple Ratchet).

Layers, bottom up: `suites` (primitives) → `cbor` (strict wire encoding) → `identity`,
`double_ratchet`, `handshake`, `pairwise` → `dkg` → `group` → `hub` and the CLI. A layer imports
only from layers below it; the core does no I/O and reads no clock.

The recipes most applications need are re-exported here::

    from triple_ratchet import Account, GroupSession, PairwiseSession
"""

from triple_ratchet import errors
from triple_ratchet.double_ratchet import DoubleRatchet, Limits
from triple_ratchet.group import GroupSession
from triple_ratchet.group.events import (
    EpochChanged,
    Event,
    MembershipChanged,
    MessageReceived,
    Outgoing,
)
from triple_ratchet.identity import (
    Account,
    Identity,
    IdentityKeyPair,
    PrekeyBundle,
    SafetyNumber,
    safety_number,
)
from triple_ratchet.pairwise import PairwiseSession
from triple_ratchet.suites import ALL_SUITES, DEFAULT_SUITE, Suite, suite_by_id

__version__ = "0.1.0"

__all__ = [
    "ALL_SUITES",
    "DEFAULT_SUITE",
    "Account",
    "DoubleRatchet",
    "EpochChanged",
    "Event",
    "GroupSession",
    "Identity",
    "IdentityKeyPair",
    "Limits",
    "MembershipChanged",
    "MessageReceived",
    "Outgoing",
    "PairwiseSession",
    "PrekeyBundle",
    "SafetyNumber",
    "Suite",
    "__version__",
    "errors",
    "safety_number",
    "suite_by_id",
]
