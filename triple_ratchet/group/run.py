"""The bodies of a committee run's control entries (spec 11.v2.9-12, rules R3, R4, R6, R8, R9).

| entry | body |
|---|---|
| 0x42 announcement | `CBOR[group_id, e, r, identity, dkg_public_key, applied_hash, roster_hash]` |
| 0x43 round 1 | `CBOR[r, signed_round1 (bytes)]` |
| 0x44 round 3 | `CBOR[r, certeq_signature, bundle_root, confirmation_tag, dkg_signature]` |
| 0x45 TICK | empty |
| 0x46 commit | `CBOR[r, [[enc_1, ct_1], …]]` |
| 0x47 REVEAL | `CBOR[r, [payload_1, …, payload_k]]` |
| 0x48 evidence | `CBOR[r, kind, evidence (bytes)]` |
| 0x49 conviction | `CBOR[e_c, r, recipient_index, enc, ct]` |

The entry's signature is each body's signature (identity key for announcements, the author's
member signing key for the rest; `group/control.py`). A round-3 item carries, besides COCKTAIL's
CertEq signature, a DKG-key signature (section 7.3, label `triple-ratchet v2 dkg round 3`, context
the run's COCKTAIL context) over `CBOR[run_session_id, bundle_root, confirmation_tag]`.
Round-3 agreement compares `(bundle_root, confirmation_tag)` only.

Every body decodes strictly (exact lengths, valid points) into a frozen dataclass; the checks that
need the run's state (committee, phases, the transcript, the recipients) are the group layer's.
The bundle's sealings are HPKE values (`group/sealing.py`); here they are pairs of exact sizes.
"""

from __future__ import annotations

import functools
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from triple_ratchet import cbor
from triple_ratchet.dkg.cocktail import CONTEXT_HASH_SIZE, SIGNATURE_SIZE, schnorr_verify
from triple_ratchet.dkg.ed25519 import POINT_SIZE, Point, Scalar
from triple_ratchet.dkg.signature import DKG_SIGNATURE_SIZE, dkg_sign, dkg_verify
from triple_ratchet.errors import (
    DecodeError,
    InvalidSignature,
    LimitExceeded,
    ProtocolError,
    UnsupportedError,
    UsageError,
)
from triple_ratchet.group.control import TYPE_ANNOUNCEMENT, ControlEntry
from triple_ratchet.group.key_schedule import (
    MAX_COMMITTEE,
    MAX_EPOCH,
    MAX_GROUP_SIZE_V2,
    MAX_RUN,
    PAYLOAD_LEN,
)
from triple_ratchet.group.records import MAX_GROUP_ID_LEN, identity_field
from triple_ratchet.identity import Identity
from triple_ratchet.random import RandomSource, system_random
from triple_ratchet.suites import Suite
from triple_ratchet.suites.hpke import hpke_for_suite

LABEL_ROUND3_SIGNATURE = b"triple-ratchet v2 dkg round 3"
LABEL_VIEW_HASH = b"triple-ratchet v2 view hash"

MAX_ANNOUNCEMENT_BODY_LEN = 1024
MAX_ROUND1_BODY_LEN = 8192
MAX_EVIDENCE_LEN = 8192
HPKE_TAG_LEN = 16
"""Both sealing AEADs (AES-256-GCM, ChaCha20-Poly1305) have 16-byte tags."""

EVIDENCE_ANNOUNCEMENT_EQUIVOCATION = 1
EVIDENCE_ROUND1_EQUIVOCATION = 2
EVIDENCE_BLAME = 3
EVIDENCE_KINDS = frozenset({EVIDENCE_ANNOUNCEMENT_EQUIVOCATION, EVIDENCE_ROUND1_EQUIVOCATION,
                            EVIDENCE_BLAME})


def _check_bytes(value: object, what: str, length: int) -> bytes:
    if not isinstance(value, bytes) or len(value) != length:
        raise UsageError(f"{what} must be {length} bytes")
    return value


def _check_run(run: object) -> int:
    if type(run) is not int or not 1 <= run <= MAX_RUN:
        raise UsageError(f"run must be 1..{MAX_RUN}")
    return run


def _fields(data: bytes, what: str, n: int, max_size: int, max_items: int | None = None,
            max_depth: int = 2) -> list[cbor.CborValue]:
    if not isinstance(data, bytes | bytearray):
        raise UsageError("expected bytes")
    if len(data) > max_size:
        raise LimitExceeded(f"{what} larger than {max_size} bytes")
    return cbor.as_list(cbor.decode(data, max_size=max_size, max_items=max_items or n + 2,
                                    max_depth=max_depth), what, n)


def _run_field(value: cbor.CborValue) -> int:
    return cbor.as_int(value, "run", minimum=1, maximum=MAX_RUN)


# --- Announcement -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunAnnouncement:
    """An announcement of a member's DKG key for run r of epoch e's attempt (spec 11.v2.9)."""

    group_id: bytes
    epoch: int
    run: int
    identity: bytes  # identity encoding of the announcer
    dkg_key: bytes  # COCKTAIL static public key (edwards25519 point)
    applied_proposals_hash: bytes
    roster_hash: bytes  # hash of the new roster the attempt makes
    view_hash: bytes  # `view_hash(e)` of the announcer's view of epoch e (review F1)
    # The validated point, kept: decoding validates it and every reader then asks for it (a
    # subgroup check is ~40 µs). Outside equality; declared so every instance has it.
    _point: Point | None = field(default=None, init=False, repr=False, compare=False)

    def to_bytes(self) -> bytes:
        return cbor.encode([self.group_id, self.epoch, self.run, self.identity, self.dkg_key,
                            self.applied_proposals_hash, self.roster_hash, self.view_hash])

    def dkg_point(self) -> Point:
        point = self._point
        if point is None:
            point = Point.from_bytes(self.dkg_key)
            object.__setattr__(self, "_point", point)
        return point

    @classmethod
    def make(cls, suite: Suite, *, group_id: bytes, epoch: int, run: int, identity: bytes,
             dkg_key: Point, applied_proposals_hash: bytes,
             roster_hash: bytes, view_hash: bytes) -> RunAnnouncement:
        if not isinstance(group_id, bytes) or not 1 <= len(group_id) <= MAX_GROUP_ID_LEN:
            raise UsageError(f"group id must be 1..{MAX_GROUP_ID_LEN} bytes")
        if type(epoch) is not int or not 0 <= epoch <= MAX_EPOCH:
            raise UsageError("epoch out of range")
        if not isinstance(dkg_key, Point) or dkg_key.is_identity():
            raise UsageError("the DKG key must be a non-identity point")
        return cls(group_id, epoch, _check_run(run), identity, dkg_key.to_bytes(),
                   _check_bytes(applied_proposals_hash, "applied-proposals hash",
                                suite.hash_len),
                   _check_bytes(roster_hash, "roster hash", suite.hash_len),
                   _check_bytes(view_hash, "view hash", suite.hash_len))

    @classmethod
    def from_bytes(cls, suite: Suite, body: bytes) -> RunAnnouncement:
        """Decode strictly and validate the DKG point (`InvalidKey`)."""
        f = _fields(body, "announcement", 8, MAX_ANNOUNCEMENT_BODY_LEN)
        group_id = cbor.as_bytes(f[0], "group id", max_length=MAX_GROUP_ID_LEN)
        if not group_id:
            raise DecodeError("announcement: empty group id")
        a = cls(group_id, cbor.as_int(f[1], "epoch", maximum=MAX_EPOCH), _run_field(f[2]),
                identity_field(f[3], "announcer identity"),
                cbor.as_bytes(f[4], "DKG key", length=POINT_SIZE),
                cbor.as_bytes(f[5], "applied-proposals hash", length=suite.hash_len),
                cbor.as_bytes(f[6], "new roster hash", length=suite.hash_len),
                cbor.as_bytes(f[7], "view hash", length=suite.hash_len))
        a.dkg_point()
        return a

    @classmethod
    def from_entry(cls, entry: ControlEntry, author_identity: Identity) -> RunAnnouncement:
        """The announcement of an announcement entry whose signature the caller verified: its
        group and epoch must be the entry's and its identity the author's (`ProtocolError`)."""
        if entry.entry_type != TYPE_ANNOUNCEMENT:
            raise UsageError("not an announcement entry")
        a = cls.from_bytes(entry.suite, entry.body)
        if not hmac.compare_digest(a.group_id, entry.group_id) or a.epoch != entry.epoch:
            raise ProtocolError("announcement for another group or epoch than its entry")
        if not hmac.compare_digest(a.identity, author_identity.to_bytes()):
            raise ProtocolError("announcement identity is not the entry's author")
        return a


def view_hash(suite: Suite, t0: int | None, carried: Sequence[bytes],
              dormant_before: Iterable[bytes]) -> bytes:
    """`H("triple-ratchet v2 view hash" ‖ CBOR[T0(e) or null, carried set into e, sorted
    identities dormant at S(e−1)])`: what a member in its first epoch took from its notice, so
    a forged notice shows against every honest announcement (11.v2.9, review F1)."""
    return suite.hash(LABEL_VIEW_HASH + cbor.encode(
        [t0, list(carried), sorted(dormant_before)]))


# --- Round items ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Round1Item:
    """A round-1 body: the run and section 7.4's `SignedRound1` (decoded by the DKG layer)."""

    run: int
    signed_round1: bytes = field(repr=False)

    def to_bytes(self) -> bytes:
        return cbor.encode([self.run, self.signed_round1])

    @classmethod
    def from_bytes(cls, body: bytes) -> Round1Item:
        f = _fields(body, "round-1 item", 2, MAX_ROUND1_BODY_LEN)
        return cls(_run_field(f[0]),
                   cbor.as_bytes(f[1], "signed round 1", max_length=MAX_ROUND1_BODY_LEN))


def _round3_signed(run_session_id: bytes, bundle_root: bytes, tag: bytes) -> bytes:
    return cbor.encode([run_session_id, bundle_root, tag])


@dataclass(frozen=True)
class Round3Item:
    """A committee member's round-3 item: its CertEq signature and what it certifies."""

    run: int
    certeq_signature: bytes = field(repr=False)
    bundle_root: bytes
    confirmation_tag: bytes
    dkg_signature: bytes = field(repr=False)

    def to_bytes(self) -> bytes:
        return cbor.encode([self.run, self.certeq_signature, self.bundle_root,
                            self.confirmation_tag, self.dkg_signature])

    def agrees_with(self, other: Round3Item) -> bool:
        """Round-3 agreement compares (bundle_root, confirmation_tag) only."""
        return (hmac.compare_digest(self.bundle_root, other.bundle_root)
                and hmac.compare_digest(self.confirmation_tag, other.confirmation_tag))

    def verify(self, dkg_key: Point, *, context: bytes, run_session_id: bytes,
               transcript: bytes) -> None:
        """Both signatures under the author's announced DKG key: CertEq over the transcript the
        reader built (with this item's bundle root in the extension), and the item's own over
        (run_session_id, bundle_root, confirmation_tag) with the run's COCKTAIL context. An item
        that fails counts as missing (`InvalidSignature`)."""
        if not schnorr_verify(dkg_key, transcript, self.certeq_signature):
            raise InvalidSignature("round-3 CertEq signature does not verify on the transcript")
        dkg_verify(dkg_key, LABEL_ROUND3_SIGNATURE, context,
                   _round3_signed(run_session_id, self.bundle_root, self.confirmation_tag),
                   self.dkg_signature)

    @classmethod
    def sign(cls, suite: Suite, dkg_secret: Scalar, *, run: int, context: bytes,
             run_session_id: bytes, certeq_signature: bytes, bundle_root: bytes,
             confirmation_tag: bytes, rng: RandomSource = system_random) -> Round3Item:
        h = suite.hash_len
        _check_bytes(context, "COCKTAIL context", CONTEXT_HASH_SIZE)
        _check_bytes(certeq_signature, "CertEq signature", SIGNATURE_SIZE)
        _check_bytes(run_session_id, "run session id", h)
        _check_bytes(bundle_root, "bundle root", h)
        _check_bytes(confirmation_tag, "confirmation tag", h)
        return cls(_check_run(run), certeq_signature, bundle_root, confirmation_tag,
                   dkg_sign(dkg_secret, LABEL_ROUND3_SIGNATURE, context,
                            _round3_signed(run_session_id, bundle_root, confirmation_tag), rng))

    @classmethod
    def from_bytes(cls, suite: Suite, body: bytes) -> Round3Item:
        f = _fields(body, "round-3 item", 5, 512)
        return cls(_run_field(f[0]),
                   cbor.as_bytes(f[1], "CertEq signature", length=SIGNATURE_SIZE),
                   cbor.as_bytes(f[2], "bundle root", length=suite.hash_len),
                   cbor.as_bytes(f[3], "confirmation tag", length=suite.hash_len),
                   cbor.as_bytes(f[4], "round-3 DKG signature", length=DKG_SIGNATURE_SIZE))


# --- TICK -------------------------------------------------------------------------------------

TICK_BODY = b""


def check_tick_body(body: bytes) -> None:
    """A TICK carries nothing but its entry (R3)."""
    if body != TICK_BODY:
        raise DecodeError("a TICK has an empty body")


# --- Commit -----------------------------------------------------------------------------------


def sealing_sizes(suite: Suite) -> tuple[int, int]:
    """(len(enc), len(ct)) of one sealing: the HPKE KEM's encapsulated key (the suite's DH public
    key size, or the hybrid KEM's Nenc) and the sealed Nh-byte secret with its tag: 65/48
    (suite 1), 32/80 (suite 2), 1153/48 (suite 3, MLKEM768-P256), 1120/80 (suite 4, X-Wing)."""
    return hpke_for_suite(suite).kem.n_enc, suite.hash_len + HPKE_TAG_LEN


def _with_enc(suite: Suite, bound: int) -> int:
    """A bound sized for a DH-sized `enc`, grown by what a hybrid KEM's `enc` adds (1,088 bytes
    of ML-KEM ciphertext); a classical suite's bound is unchanged."""
    return bound + max(0, hpke_for_suite(suite).kem.n_enc - suite.dh_public_len)


# Additional information 24, 25, 26: the argument's width and its smallest canonical value.
_ARGUMENT = {24: (1, 24), 25: (2, 0x100), 26: (4, 0x10000)}


def _uint_head(data: bytes, pos: int, major: int) -> tuple[int, int] | None:
    """(argument, next position) of a canonical head of `major` (argument < 2**32) at `pos`,
    or None."""
    if pos >= len(data) or data[pos] >> 5 != major:
        return None
    info = data[pos] & 0x1F
    if info < 24:
        return info, pos + 1
    if info not in _ARGUMENT:
        return None
    width, smallest = _ARGUMENT[info]
    end = pos + 1 + width
    if end > len(data):
        return None
    value = int.from_bytes(data[pos + 1:end], "big")
    return (value, end) if value >= smallest else None


# Any number of pairs: head of a 2-array and enc's head, enc, ct's head, ct (a regex template).
_PAIRS = b"(?:%b.{%d}%b.{%d})*"


@functools.cache
def _pair_pattern(enc_len: int, ct_len: int) -> re.Pattern[bytes]:
    """`(0x82 ‖ bstr(enc) ‖ bstr(ct))*` for the suite's exact pair sizes."""
    return re.compile(_PAIRS % (re.escape(b"\x82" + cbor.bstr_head(enc_len)), enc_len,
                                re.escape(cbor.bstr_head(ct_len)), ct_len), re.DOTALL)


def _canonical_commit(body: object, enc_len: int, ct_len: int
                      ) -> tuple[int, tuple[tuple[bytes, bytes], ...]] | None:
    """(run, pairs) of a commit body in its one canonical form: `0x82`, the run, the bundle's
    array head, then pairs of exactly the suite's sizes, nothing after. A reader decodes a
    1,000-pair commit at every epoch change: this slices it instead of building ~3,000 CBOR
    items. Anything else is None, and the general decoder (which names the fault) decides, so
    the result is always the general decoder's (tested)."""
    if type(body) is not bytes or len(body) < 3 or body[0] != 0x82:
        return None
    run = _uint_head(body, 1, 0)
    if run is None or not 1 <= run[0] <= MAX_RUN:
        return None
    count = _uint_head(body, run[1], 4)
    if count is None or count[0] > MAX_GROUP_SIZE_V2:
        return None
    enc_at = 1 + len(cbor.bstr_head(enc_len))  # offsets inside one pair
    ct_at = enc_at + enc_len + len(cbor.bstr_head(ct_len))
    start, pair_len = count[1], ct_at + ct_len
    if len(body) - start != count[0] * pair_len or _pair_pattern(enc_len, ct_len).fullmatch(
            body, start) is None:
        return None
    return run[0], tuple((body[p + enc_at:p + enc_at + enc_len], body[p + ct_at:p + pair_len])
                         for p in range(start, len(body), pair_len))


@dataclass(frozen=True)
class Commit:
    """A commit body: the run it decides and the bundle (one sealing per recipient)."""

    run: int
    bundle: tuple[tuple[bytes, bytes], ...] = field(repr=False)

    def to_bytes(self) -> bytes:
        return cbor.encode([self.run, [list(pair) for pair in self.bundle]])

    @classmethod
    def make(cls, suite: Suite, run: int, bundle: Sequence[tuple[bytes, bytes]]) -> Commit:
        if len(bundle) > MAX_GROUP_SIZE_V2:
            raise UsageError(f"a bundle has at most {MAX_GROUP_SIZE_V2} sealings")
        enc_len, ct_len = sealing_sizes(suite)
        pairs = tuple((_check_bytes(enc, "enc", enc_len), _check_bytes(ct, "ct", ct_len))
                      for enc, ct in bundle)
        return cls(_check_run(run), pairs)

    @classmethod
    def from_bytes(cls, suite: Suite, body: bytes) -> Commit:
        enc_len, ct_len = sealing_sizes(suite)
        fast = _canonical_commit(body, enc_len, ct_len)
        if fast is not None:
            return cls(*fast)
        max_size = 16 + MAX_GROUP_SIZE_V2 * (enc_len + ct_len + 8)
        f = _fields(body, "commit", 2, max_size, max_items=4 + 3 * MAX_GROUP_SIZE_V2,
                    max_depth=3)
        run = _run_field(f[0])
        items = cbor.as_list(f[1], "bundle")
        if len(items) > MAX_GROUP_SIZE_V2:
            raise LimitExceeded(f"a bundle has at most {MAX_GROUP_SIZE_V2} sealings")
        pairs = []
        for item in items:
            pair = cbor.as_list(item, "sealing", 2)
            pairs.append((cbor.as_bytes(pair[0], "sealing enc", length=enc_len),
                          cbor.as_bytes(pair[1], "sealing ct", length=ct_len)))
        return cls(run, tuple(pairs))


# --- REVEAL, evidence, conviction ------------------------------------------------------------


@dataclass(frozen=True)
class Reveal:
    """REVEAL: run r's k payloads in committee order (evidence of a round-3 disagreement)."""

    run: int
    payloads: tuple[bytes, ...] = field(repr=False)

    def to_bytes(self) -> bytes:
        return cbor.encode([self.run, list(self.payloads)])

    @classmethod
    def make(cls, run: int, payloads: Sequence[bytes]) -> Reveal:
        if not 1 <= len(payloads) <= MAX_COMMITTEE:
            raise UsageError(f"a committee has 1..{MAX_COMMITTEE} payloads")
        return cls(_check_run(run),
                   tuple(_check_bytes(p, "payload", PAYLOAD_LEN) for p in payloads))

    @classmethod
    def from_bytes(cls, body: bytes) -> Reveal:
        f = _fields(body, "REVEAL", 2, 512, max_items=4 + MAX_COMMITTEE, max_depth=2)
        payloads = cbor.as_list(f[1], "revealed payloads")
        if not 1 <= len(payloads) <= MAX_COMMITTEE:
            raise DecodeError(f"a REVEAL carries 1..{MAX_COMMITTEE} payloads")
        return cls(_run_field(f[0]),
                   tuple(cbor.as_bytes(p, "payload", length=PAYLOAD_LEN) for p in payloads))


@dataclass(frozen=True)
class Evidence:
    """Evidence of equivocation or a blame (kind 1, 2, 3); its `evidence` is judged by the
    group layer (spec 11.v2.24)."""

    run: int
    kind: int
    evidence: bytes = field(repr=False)

    def to_bytes(self) -> bytes:
        return cbor.encode([self.run, self.kind, self.evidence])

    @classmethod
    def make(cls, run: int, kind: int, evidence: bytes) -> Evidence:
        if kind not in EVIDENCE_KINDS:
            raise UsageError("unknown evidence kind")
        if not isinstance(evidence, bytes) or len(evidence) > MAX_EVIDENCE_LEN:
            raise UsageError(f"evidence is at most {MAX_EVIDENCE_LEN} bytes")
        return cls(_check_run(run), kind, evidence)

    @classmethod
    def from_bytes(cls, body: bytes) -> Evidence:
        f = _fields(body, "evidence", 3, MAX_EVIDENCE_LEN + 32)
        kind = cbor.as_int(f[1], "evidence kind")
        if kind not in EVIDENCE_KINDS:
            raise DecodeError("unknown evidence kind")
        return cls(_run_field(f[0]), kind,
                   cbor.as_bytes(f[2], "evidence", max_length=MAX_EVIDENCE_LEN))


@dataclass(frozen=True)
class Conviction:
    """A conviction of a bad sealing: the deciding commit of epoch `e_c` (run r), the
    recipient's roster index in `e_c + 1` and the correct sealing for it (spec 11.v2.25)."""

    decided_epoch: int
    run: int
    recipient: int
    enc: bytes = field(repr=False)
    ct: bytes = field(repr=False)

    def to_bytes(self) -> bytes:
        return cbor.encode([self.decided_epoch, self.run, self.recipient, self.enc, self.ct])

    @classmethod
    def from_bytes(cls, suite: Suite, body: bytes) -> Conviction:
        enc_len, ct_len = sealing_sizes(suite)
        f = _fields(body, "conviction", 5, _with_enc(suite, 256))
        return cls(cbor.as_int(f[0], "convicted epoch", maximum=MAX_EPOCH), _run_field(f[1]),
                   cbor.as_int(f[2], "recipient index", maximum=MAX_GROUP_SIZE_V2 - 1),
                   cbor.as_bytes(f[3], "sealing enc", length=enc_len),
                   cbor.as_bytes(f[4], "sealing ct", length=ct_len))


WIRE_REPAIRED_SEALING = 0x55
VERSION = 2


@dataclass(frozen=True)
class RepairedSealing:
    """The correct sealing a member sends to a requester whose certified one was bad (R9, spec
    11.v2.14), over a pairwise session:

        RepairedSealing = CBOR[0x55, 2, suite_id, group_id, e_c, r, enc, ct]
    """

    suite: Suite
    group_id: bytes
    decided_epoch: int
    run: int
    enc: bytes = field(repr=False)
    ct: bytes = field(repr=False)

    def to_bytes(self) -> bytes:
        return cbor.encode([WIRE_REPAIRED_SEALING, VERSION, self.suite.suite_id, self.group_id,
                            self.decided_epoch, self.run, self.enc, self.ct])

    @classmethod
    def from_bytes(cls, suite: Suite, data: bytes) -> RepairedSealing:
        enc_len, ct_len = sealing_sizes(suite)
        f = _fields(data, "repaired sealing", 8, _with_enc(suite, 512))
        if cbor.as_int(f[0], "repaired sealing type") != WIRE_REPAIRED_SEALING:
            raise DecodeError("not a repaired sealing")
        if cbor.as_int(f[1], "repaired sealing version") != VERSION:
            raise UnsupportedError("repaired sealing: only version 2 is supported")
        if cbor.as_int(f[2], "suite", maximum=0xFFFF) != suite.suite_id:
            raise ProtocolError("repaired sealing of another suite than the group's")
        group_id = cbor.as_bytes(f[3], "group id", max_length=MAX_GROUP_ID_LEN)
        if not group_id:
            raise DecodeError("repaired sealing: empty group id")
        return cls(suite, group_id, cbor.as_int(f[4], "convicted epoch", maximum=MAX_EPOCH),
                   _run_field(f[5]), cbor.as_bytes(f[6], "sealing enc", length=enc_len),
                   cbor.as_bytes(f[7], "sealing ct", length=ct_len))


__all__ = [
    "EVIDENCE_KINDS",
    "LABEL_ROUND3_SIGNATURE",
    "LABEL_VIEW_HASH",
    "TICK_BODY",
    "Commit",
    "Conviction",
    "Evidence",
    "RepairedSealing",
    "Reveal",
    "Round1Item",
    "Round3Item",
    "RunAnnouncement",
    "check_tick_body",
    "sealing_sizes",
    "view_hash",
]
