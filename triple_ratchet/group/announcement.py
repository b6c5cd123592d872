"""Key announcements (spec 11, §3): a participant's fresh DKG key and per-epoch signing key.

Signed by the participant's identity key (so it certifies both fresh keys) over the proposal
hash, the participant's index in the new roster, the two public keys, and its last generation
and message digest in the current epoch (the grace period's bound for its old-epoch messages).

Two different announcements from one member for one attempt are equivocation. The evidence is the
two identity-signed announcements themselves (`equivocation_evidence`); anyone holding the
attempt's proposal checks it with `judge_equivocation`, in any phase of the attempt.
"""

from __future__ import annotations

import functools
import hmac
from dataclasses import dataclass, field

from triple_ratchet import cbor
from triple_ratchet.dkg.attempt import MAX_ANNOUNCEMENT_LEN
from triple_ratchet.dkg.ed25519 import POINT_SIZE, Point
from triple_ratchet.errors import DecodeError, ProtocolError, RemoteError
from triple_ratchet.group.epoch import MAX_GROUP_SIZE
from triple_ratchet.group.proposal import MAX_IDENTITY_LEN
from triple_ratchet.group.sender_chain import MAX_GENERATION
from triple_ratchet.identity import LABEL_IDENTITY_ANNOUNCEMENT, Identity, IdentityKeyPair
from triple_ratchet.suites import Suite, suite_by_id

WIRE_ANNOUNCEMENT = 0x31
VERSION = 1
# First element of announcement-equivocation evidence (spec 11.8). Section 7's signed aborts,
# the other evidence form, start with an integer message type, so the two never collide.
EVIDENCE_ANNOUNCEMENTS = "announcements"
MAX_EQUIVOCATION_EVIDENCE_LEN = 2 * MAX_ANNOUNCEMENT_LEN + 64


@dataclass(frozen=True)
class Announcement:
    session_id: bytes
    index: int  # 1..n in the new roster
    identity: bytes
    dkg_key: bytes  # COCKTAIL static public key P_i (edwards25519)
    signing_key: bytes  # per-epoch signing public key, protocol suite
    sent_count: int  # messages sent in the current epoch: generations 0..sent_count-1
    last_digest: bytes  # digest of the last of them, or b""

    def body(self) -> bytes:
        return cbor.encode([WIRE_ANNOUNCEMENT, VERSION, self.session_id, self.index,
                            self.identity, self.dkg_key, self.signing_key, self.sent_count,
                            self.last_digest])

    def dkg_point(self) -> Point:
        return Point.from_bytes(self.dkg_key)


@dataclass(frozen=True)
class SignedAnnouncement:
    announcement: Announcement
    encoded: bytes = field(repr=False)  # [body, signature] as sent; hashed into the extension

    @classmethod
    def sign(cls, identity: IdentityKeyPair, announcement: Announcement) -> SignedAnnouncement:
        body = announcement.body()
        signature = identity.sign(LABEL_IDENTITY_ANNOUNCEMENT, body)
        return cls(announcement, cbor.encode([body, signature]))

    @classmethod
    def from_bytes(cls, suite: Suite, data: bytes) -> SignedAnnouncement:
        """Decode, validate both keys and verify the identity signature.

        Results are cached (announcements are public, and an attempt re-reads its stored ones
        at every step); a failure is never cached."""
        return _verified(suite.suite_id, bytes(data))

    @classmethod
    def _decode(cls, suite: Suite, data: bytes) -> SignedAnnouncement:
        items = cbor.as_list(cbor.decode(data, max_size=MAX_ANNOUNCEMENT_LEN, max_depth=2),
                             "signed announcement", length=2)
        body = cbor.as_bytes(items[0], "announcement body", max_length=MAX_ANNOUNCEMENT_LEN)
        signature = cbor.as_bytes(items[1], "announcement signature", max_length=256)
        f = cbor.as_list(cbor.decode(body, max_size=MAX_ANNOUNCEMENT_LEN, max_depth=1),
                         "announcement", length=9)
        if (cbor.as_int(f[0], "type") != WIRE_ANNOUNCEMENT
                or cbor.as_int(f[1], "version") != VERSION):
            raise DecodeError("not a version-1 key announcement")
        last = cbor.as_bytes(f[8], "last digest", max_length=suite.hash_len)
        if len(last) not in (0, suite.hash_len):
            raise DecodeError("last digest has the wrong length")
        a = Announcement(
            cbor.as_bytes(f[2], "session id", length=suite.hash_len),
            cbor.as_int(f[3], "index", minimum=1, maximum=MAX_GROUP_SIZE),
            cbor.as_bytes(f[4], "identity", max_length=MAX_IDENTITY_LEN),
            cbor.as_bytes(f[5], "dkg key", length=POINT_SIZE),
            cbor.as_bytes(f[6], "signing key", length=suite.sign_public_len),
            cbor.as_int(f[7], "sent count", maximum=MAX_GENERATION),
            last,
        )
        a.dkg_point()  # validates the point (InvalidKey otherwise)
        suite.verifying_from_bytes(a.signing_key)
        Identity.from_bytes(a.identity, suite).verify(LABEL_IDENTITY_ANNOUNCEMENT, body,
                                                       signature)
        return cls(a, bytes(data))

    def same_as(self, other: SignedAnnouncement) -> bool:
        return hmac.compare_digest(self.announcement.body(), other.announcement.body())


@functools.lru_cache(maxsize=1024)
def _verified(suite_id: int, data: bytes) -> SignedAnnouncement:
    return SignedAnnouncement._decode(suite_by_id(suite_id), data)


def check_for_attempt(suite: Suite, session_id: bytes, roster: tuple[bytes, ...],
                      data: bytes) -> SignedAnnouncement:
    """`data` verifies as an announcement for this attempt by the roster member whose slot it
    names: its identity signature, the session id, and that its identity is `roster[index-1]`
    (so the signature is by that member's identity key). Raises a typed error otherwise."""
    signed = SignedAnnouncement.from_bytes(suite, data)
    a = signed.announcement
    if not hmac.compare_digest(a.session_id, session_id):
        raise ProtocolError("announcement for another attempt")
    if not 1 <= a.index <= len(roster):
        raise ProtocolError("participant index outside the new roster")
    if not hmac.compare_digest(a.identity, roster[a.index - 1]):
        raise ProtocolError("announcement index does not match the signer's roster position")
    return signed


def equivocation_evidence(first: bytes, second: bytes) -> bytes:
    """Evidence that one member announced twice: both signed announcements, as received."""
    return cbor.encode([EVIDENCE_ANNOUNCEMENTS, bytes(first), bytes(second)])


def is_equivocation_evidence(data: bytes) -> bool:
    """Whether `data` is in the announcement-evidence form: a flat CBOR array whose first element
    is `EVIDENCE_ANNOUNCEMENTS` (no crypto; `judge_equivocation` checks the rest)."""
    try:
        items = cbor.decode(data, max_size=MAX_EQUIVOCATION_EVIDENCE_LEN, max_items=4,
                            max_depth=1)
    except RemoteError:
        return False  # malformed, or too large or deep for this form
    return isinstance(items, list) and bool(items) and items[0] == EVIDENCE_ANNOUNCEMENTS


def judge_equivocation(suite: Suite, session_id: bytes, roster: tuple[bytes, ...],
                       evidence: bytes) -> int:
    """Check announcement-equivocation evidence; return the index (1..n) it convicts.

    Both announcements must verify for this attempt (`check_for_attempt`), name the same slot and
    sign different content (one body under two signatures is not equivocation: a body can carry
    several valid signatures, e.g. ECDSA's (r, n - s)). Anything else raises (`DecodeError`,
    `InvalidSignature`, `InvalidKey`, `ProtocolError`): the evidence convicts no one."""
    items = cbor.as_list(cbor.decode(evidence, max_size=MAX_EQUIVOCATION_EVIDENCE_LEN,
                                     max_items=4, max_depth=1),
                         "announcement equivocation evidence", length=3)
    if cbor.as_str(items[0], "evidence kind", max_length=32) != EVIDENCE_ANNOUNCEMENTS:
        raise DecodeError("not announcement equivocation evidence")
    first, second = (check_for_attempt(
        suite, session_id, roster,
        cbor.as_bytes(x, "announcement", max_length=MAX_ANNOUNCEMENT_LEN)) for x in items[1:])
    if first.announcement.index != second.announcement.index:
        raise ProtocolError("the two announcements are for different slots")
    if first.same_as(second):
        raise ProtocolError("the two announcements sign the same content: not equivocation")
    return first.announcement.index
