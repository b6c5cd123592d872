"""The values of a committee run (spec 11 version 2, rules R3, R4, R6 and R8).

- **Announcement** (R6): `[group id, e, run r, identity, DKG public key, applied-proposals hash,
  new roster hash]` plus the identity signature (label `identity: v2 key announcement`: version
  1's announcement label signs version 1's layout). One whose hashes differ from the reader's is
  invalid for it; the group layer compares them.
- **Round-3 item** (R8): `[CertEq signature over the transcript, bundle_root, confirmation_tag,
  DKG-key signature]`; the DKG-key signature (label `triple-ratchet v2 round 3`, context the run
  session id) covers `CBOR[bundle_root, confirmation_tag]`, so an item cannot be moved to another
  run. Agreement compares `(bundle_root, confirmation_tag)` only.
- **TICK** (R3): an entry with an empty body; its envelope signature is all it has.
- **Commit** (R4): `[run r, bundle]`, the bundle a list of `(enc, ct)` sealings in roster order
  of the recipients (HPKE, spec 11 R2: built and opened by `group/sealing.py`); here they are
  opaque pairs of the suite's sizes.

Each value decodes strictly (exact lengths, valid points and keys) into a frozen dataclass; the
checks that need the run's state (committee, phases, the transcript) are the group layer's.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field

from triple_ratchet import cbor
from triple_ratchet.dkg.cocktail import SIGNATURE_SIZE, schnorr_verify
from triple_ratchet.dkg.ed25519 import POINT_SIZE, Point, Scalar
from triple_ratchet.dkg.signature import DKG_SIGNATURE_SIZE, dkg_sign, dkg_verify
from triple_ratchet.errors import DecodeError, InvalidSignature, LimitExceeded, UsageError
from triple_ratchet.group.key_schedule import MAX_EPOCH, MAX_GROUP_SIZE_V2, MAX_RUN
from triple_ratchet.group.records import MAX_GROUP_ID_LEN, MAX_IDENTITY_LEN
from triple_ratchet.identity import LABEL_IDENTITY_ANNOUNCEMENT_V2, Identity, IdentityKeyPair
from triple_ratchet.random import RandomSource, system_random
from triple_ratchet.suites import Suite

LABEL_ROUND3_SIGNATURE = b"triple-ratchet v2 round 3"

MAX_ANNOUNCEMENT_LEN = 1024
ROUND3_FIELDS = 4
HPKE_TAG_LEN = 16
"""Both sealing AEADs (AES-256-GCM, ChaCha20-Poly1305) have 16-byte tags."""


def _check_bytes(value: object, what: str, length: int) -> bytes:
    if not isinstance(value, bytes) or len(value) != length:
        raise UsageError(f"{what} must be {length} bytes")
    return value


# --- Announcement -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunAnnouncement:
    """A verified announcement of a member's DKG key for run r of epoch e's attempt."""

    suite: Suite
    group_id: bytes
    epoch: int
    run: int
    identity: bytes  # identity encoding of the announcer
    dkg_key: bytes  # COCKTAIL static public key (edwards25519 point)
    applied_proposals_hash: bytes
    roster_hash: bytes  # hash of the new roster the attempt makes
    signature: bytes = field(repr=False)

    def _fields(self) -> list[cbor.CborEncodable]:
        return [self.group_id, self.epoch, self.run, self.identity, self.dkg_key,
                self.applied_proposals_hash, self.roster_hash]

    def content(self) -> bytes:
        """The signed content; the run session id binds these, in committee order."""
        return cbor.encode(self._fields())

    def to_bytes(self) -> bytes:
        return cbor.encode([*self._fields(), self.signature])

    def dkg_point(self) -> Point:
        return Point.from_bytes(self.dkg_key)

    def same_as(self, other: RunAnnouncement) -> bool:
        """Equivocation is judged on signed content, never on signature bytes."""
        return hmac.compare_digest(self.content(), other.content())

    @classmethod
    def sign(cls, identity: IdentityKeyPair, *, group_id: bytes, epoch: int, run: int,
             dkg_key: Point, applied_proposals_hash: bytes,
             roster_hash: bytes) -> RunAnnouncement:
        suite = identity.suite
        if not isinstance(group_id, bytes) or not 1 <= len(group_id) <= MAX_GROUP_ID_LEN:
            raise UsageError(f"group id must be 1..{MAX_GROUP_ID_LEN} bytes")
        if type(epoch) is not int or not 0 <= epoch <= MAX_EPOCH:
            raise UsageError("epoch out of range")
        if type(run) is not int or not 1 <= run <= MAX_RUN:
            raise UsageError("run must be 1..2^32-1")
        if not isinstance(dkg_key, Point) or dkg_key.is_identity():
            raise UsageError("the DKG key must be a non-identity point")
        unsigned = cls(suite, group_id, epoch, run, identity.public.to_bytes(),
                       dkg_key.to_bytes(),
                       _check_bytes(applied_proposals_hash, "applied-proposals hash",
                                    suite.hash_len),
                       _check_bytes(roster_hash, "roster hash", suite.hash_len), b"")
        content = unsigned.content()
        return cls(suite, group_id, epoch, run, unsigned.identity, unsigned.dkg_key,
                   applied_proposals_hash, roster_hash,
                   identity.sign(LABEL_IDENTITY_ANNOUNCEMENT_V2, content))

    @classmethod
    def from_bytes(cls, suite: Suite, data: bytes) -> RunAnnouncement:
        """Decode strictly, validate the DKG point, verify the announcer's identity signature."""
        if not isinstance(data, bytes | bytearray):
            raise UsageError("expected bytes")
        f = cbor.as_list(cbor.decode(data, max_size=MAX_ANNOUNCEMENT_LEN, max_items=10,
                                     max_depth=1), "announcement", 8)
        group_id = cbor.as_bytes(f[0], "group id", max_length=MAX_GROUP_ID_LEN)
        if not group_id:
            raise DecodeError("announcement: empty group id")
        a = cls(suite, group_id, cbor.as_int(f[1], "epoch", maximum=MAX_EPOCH),
                cbor.as_int(f[2], "run", minimum=1, maximum=MAX_RUN),
                cbor.as_bytes(f[3], "announcer identity", max_length=MAX_IDENTITY_LEN),
                cbor.as_bytes(f[4], "DKG key", length=POINT_SIZE),
                cbor.as_bytes(f[5], "applied-proposals hash", length=suite.hash_len),
                cbor.as_bytes(f[6], "new roster hash", length=suite.hash_len),
                cbor.as_bytes(f[7], "announcement signature", length=suite.signature_len))
        a.dkg_point()  # InvalidKey for a non-canonical, small-order or identity point
        Identity.from_bytes(a.identity, suite).verify(LABEL_IDENTITY_ANNOUNCEMENT_V2,
                                                       a.content(), a.signature)
        return a


# --- Round-3 item -----------------------------------------------------------------------------


def _round3_body(bundle_root: bytes, tag: bytes) -> bytes:
    return cbor.encode([bundle_root, tag])


@dataclass(frozen=True)
class Round3Item:
    """A committee member's round-3 item: its CertEq signature and what it certifies."""

    certeq_signature: bytes = field(repr=False)
    bundle_root: bytes
    confirmation_tag: bytes
    dkg_signature: bytes = field(repr=False)

    def to_bytes(self) -> bytes:
        return cbor.encode([self.certeq_signature, self.bundle_root, self.confirmation_tag,
                            self.dkg_signature])

    def agrees_with(self, other: Round3Item) -> bool:
        """Round-3 agreement compares (bundle_root, confirmation_tag) only."""
        return (hmac.compare_digest(self.bundle_root, other.bundle_root)
                and hmac.compare_digest(self.confirmation_tag, other.confirmation_tag))

    def verify(self, dkg_key: Point, run_session_id: bytes, transcript: bytes) -> None:
        """Both signatures under the member's announced DKG key: CertEq over the run's
        transcript, and the item's own over (run_session_id, bundle_root, confirmation_tag).
        An item that fails counts as missing (`InvalidSignature`)."""
        if not schnorr_verify(dkg_key, transcript, self.certeq_signature):
            raise InvalidSignature("round-3 CertEq signature does not verify on the transcript")
        dkg_verify(dkg_key, LABEL_ROUND3_SIGNATURE, run_session_id,
                   _round3_body(self.bundle_root, self.confirmation_tag), self.dkg_signature)

    @classmethod
    def sign(cls, suite: Suite, dkg_secret: Scalar, *, certeq_signature: bytes,
             run_session_id: bytes, bundle_root: bytes, confirmation_tag: bytes,
             rng: RandomSource = system_random) -> Round3Item:
        h = suite.hash_len
        _check_bytes(certeq_signature, "CertEq signature", SIGNATURE_SIZE)
        _check_bytes(run_session_id, "run session id", h)
        _check_bytes(bundle_root, "bundle root", h)
        _check_bytes(confirmation_tag, "confirmation tag", h)
        return cls(certeq_signature, bundle_root, confirmation_tag,
                   dkg_sign(dkg_secret, LABEL_ROUND3_SIGNATURE, run_session_id,
                            _round3_body(bundle_root, confirmation_tag), rng))

    @classmethod
    def from_bytes(cls, suite: Suite, data: bytes) -> Round3Item:
        if not isinstance(data, bytes | bytearray):
            raise UsageError("expected bytes")
        f = cbor.as_list(cbor.decode(data, max_size=512, max_items=ROUND3_FIELDS + 2,
                                     max_depth=1), "round-3 item", ROUND3_FIELDS)
        return cls(cbor.as_bytes(f[0], "CertEq signature", length=SIGNATURE_SIZE),
                   cbor.as_bytes(f[1], "bundle root", length=suite.hash_len),
                   cbor.as_bytes(f[2], "confirmation tag", length=suite.hash_len),
                   cbor.as_bytes(f[3], "round-3 DKG signature", length=DKG_SIGNATURE_SIZE))


# --- TICK -------------------------------------------------------------------------------------

TICK_BODY = b""


def check_tick_body(body: bytes) -> None:
    """A TICK carries nothing but its envelope (R3)."""
    if body != TICK_BODY:
        raise DecodeError("a TICK has an empty body")


# --- Commit -----------------------------------------------------------------------------------


def sealing_sizes(suite: Suite) -> tuple[int, int]:
    """(len(enc), len(ct)) of one sealing: the KEM's encapsulated key (the suite's DH public key
    size) and the sealed Nh-byte secret with its tag."""
    return suite.dh_public_len, suite.hash_len + HPKE_TAG_LEN


@dataclass(frozen=True)
class Commit:
    """A commit entry's body: the run it decides and the sealed bundle (opaque pairs)."""

    run: int
    bundle: tuple[tuple[bytes, bytes], ...] = field(repr=False)

    def to_bytes(self) -> bytes:
        return cbor.encode([self.run, [list(pair) for pair in self.bundle]])

    @classmethod
    def make(cls, suite: Suite, run: int, bundle: Sequence[tuple[bytes, bytes]]) -> Commit:
        if type(run) is not int or not 1 <= run <= MAX_RUN:
            raise UsageError("run must be 1..2^32-1")
        if len(bundle) > MAX_GROUP_SIZE_V2:
            raise UsageError(f"a bundle has at most {MAX_GROUP_SIZE_V2} sealings")
        enc_len, ct_len = sealing_sizes(suite)
        pairs = tuple((_check_bytes(enc, "enc", enc_len), _check_bytes(ct, "ct", ct_len))
                      for enc, ct in bundle)
        return cls(run, pairs)

    @classmethod
    def from_bytes(cls, suite: Suite, data: bytes) -> Commit:
        if not isinstance(data, bytes | bytearray):
            raise UsageError("expected bytes")
        enc_len, ct_len = sealing_sizes(suite)
        max_size = 16 + MAX_GROUP_SIZE_V2 * (enc_len + ct_len + 8)
        f = cbor.as_list(cbor.decode(data, max_size=max_size,
                                     max_items=4 + 3 * MAX_GROUP_SIZE_V2, max_depth=3),
                         "commit", 2)
        run = cbor.as_int(f[0], "commit run", minimum=1, maximum=MAX_RUN)
        items = cbor.as_list(f[1], "bundle")
        if len(items) > MAX_GROUP_SIZE_V2:
            raise LimitExceeded(f"a bundle has at most {MAX_GROUP_SIZE_V2} sealings")
        pairs = []
        for item in items:
            pair = cbor.as_list(item, "sealing", 2)
            pairs.append((cbor.as_bytes(pair[0], "sealing enc", length=enc_len),
                          cbor.as_bytes(pair[1], "sealing ct", length=ct_len)))
        return cls(run, tuple(pairs))


__all__ = [
    "LABEL_ROUND3_SIGNATURE",
    "TICK_BODY",
    "Commit",
    "Round3Item",
    "RunAnnouncement",
    "check_tick_body",
    "sealing_sizes",
]
