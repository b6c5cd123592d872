"""Member key records and group join keys (spec 11 version 2, rule R1 and Decisions 5 and 8).

A **member key record** is a member's current pair of group keys: a receive key (an HPKE KEM
public key of the suite, to which commits seal) and a signing key (which signs its group messages
and its TICK, commit and evidence entries). It is signed twice: by the identity key (label
`identity: group member keys`), so no one but the owner can change its entry, and by its own
signing key (proof of possession), so no one can claim another's signing key. Its `anchor` is the
hash of the join key or resume record that began the owner's current membership: a record from
an earlier membership (before a removal and re-add) is refused.

A **group join key** is what an account publishes so that it can be added while offline: a
receive key, a signing key, an expiry and the inbox where its notice goes, identity-signed
(label `identity: group join key`). For a joiner it stands as its record (counter 0) until its
first rotation.

Everything signed or hashed here is the signed *content* (the fields without signatures): ECDSA
signatures can be re-randomised by anyone, so equality, equivocation and anchors never look at
signature bytes. The judgement of a new record against a roster entry (`judge_record`) is a pure
function, so every reader reaches the same verdict from the same control mailbox.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field

from triple_ratchet import cbor
from triple_ratchet.errors import DecodeError, LimitExceeded, ProtocolError, UsageError
from triple_ratchet.identity import (
    LABEL_IDENTITY_JOIN_KEY,
    LABEL_IDENTITY_MEMBER_KEYS,
    Identity,
    IdentityKeyPair,
)
from triple_ratchet.mailbox import MAILBOX_ID_LEN
from triple_ratchet.random import RandomSource
from triple_ratchet.suites import DhPrivateKey, SigningKey, Suite, VerifyingKey

# --- Labels --------------------------------------------------------------------------------
# Prefix of every signature made with a record's (or join key's) signing key, framed like an
# identity signature: prefix ‖ uint16(suite) ‖ len8(label) ‖ label ‖ content.
LABEL_MEMBER_SIGNATURE = b"triple-ratchet v2 member key signature"
LABEL_MEMBER_POSSESSION = b"member: proof of possession"
LABEL_MEMBER_CONTROL_ENTRY = b"member: control entry"
# Hash prefix of an anchor: the join key or resume record that began a membership.
LABEL_RECORD_ANCHOR = b"triple-ratchet v2 record anchor"
# ExpandLabel from a record seed: the receive key's scalar stream and the signing key's seed.
LABEL_RECORD_RECEIVE_KEY = b"record receive key"
LABEL_RECORD_SIGNING_SEED = b"record signing key seed"

MEMBER_SIGNATURE_LABELS = frozenset({LABEL_MEMBER_POSSESSION, LABEL_MEMBER_CONTROL_ENTRY})

# --- Encodings and limits ------------------------------------------------------------------
PURPOSE_ROTATE = 0
PURPOSE_RESUME = 1
PURPOSES = frozenset({PURPOSE_ROTATE, PURPOSE_RESUME})

RECORD_FIELDS = 7
JOIN_KEY_FIELDS = 5
MAX_GROUP_ID_LEN = 64
MAX_IDENTITY_LEN = 512
MAX_RECORD_COUNTER = 2**32 - 1
MAX_EXPIRY = 2**63 - 1
"""Hub time is Unix milliseconds; 2^63 - 1 fits every client's signed 64-bit integer."""
RECORD_SEED_LEN = 32
# Largest encodings (suite 1: 203-byte identity, 65-byte keys, 32-byte anchor, two signatures).
MAX_RECORD_LEN = 1024
MAX_JOIN_KEY_LEN = 1024


def member_signature_input(suite: Suite, label: bytes, content: bytes) -> bytes:
    """What a record's signing key signs: prefix ‖ uint16(suite) ‖ len8(label) ‖ label ‖ content."""
    if label not in MEMBER_SIGNATURE_LABELS:
        raise UsageError("not a member-key signature label")
    return (LABEL_MEMBER_SIGNATURE + suite.suite_id.to_bytes(2, "big") + bytes([len(label)])
            + label + content)


def member_sign(suite: Suite, key: SigningKey, label: bytes, content: bytes) -> bytes:
    return key.sign(member_signature_input(suite, label, content))


def member_verify(suite: Suite, key: VerifyingKey, label: bytes, content: bytes,
                  signature: bytes) -> None:
    """Raise `InvalidSignature` unless `key` signed `content` under `label`."""
    key.verify(signature, member_signature_input(suite, label, content))


def anchor_of(suite: Suite, content: bytes) -> bytes:
    """The anchor a membership begun by this join key or resume record gives its records:
    H(LABEL_RECORD_ANCHOR ‖ signed content), Nh bytes."""
    return suite.hash(LABEL_RECORD_ANCHOR + content)


def creator_anchor(suite: Suite) -> bytes:
    """The group creator's membership was begun by no join key: its anchor is Nh zero bytes."""
    return bytes(suite.hash_len)


def _key_fields(suite: Suite, receive: cbor.CborValue, signing: cbor.CborValue
                ) -> tuple[bytes, bytes]:
    # The receive key is the suite's HPKE KEM key (P-256 SEC1 uncompressed / X25519), the
    # signing key the suite's signature key; both are fully validated (`InvalidKey`).
    receive_key = cbor.as_bytes(receive, "receive public key", length=suite.dh_public_len)
    signing_key = cbor.as_bytes(signing, "signing public key", length=suite.sign_public_len)
    suite.dh_public_from_bytes(receive_key)
    suite.verifying_from_bytes(signing_key)
    return receive_key, signing_key


def _decode_list(data: bytes, what: str, length: int, max_size: int) -> list[cbor.CborValue]:
    if not isinstance(data, bytes | bytearray):
        raise UsageError(f"{what}: expected bytes")
    return cbor.as_list(cbor.decode(data, max_size=max_size, max_items=length + 2, max_depth=1),
                        what, length)


# --- Member key records --------------------------------------------------------------------


@dataclass(frozen=True)
class MemberKeyRecord:
    """A signed member key record. Valid by construction: `from_bytes` and `sign` are the ways
    to make one, and `verify` re-checks both signatures."""

    suite: Suite
    group_id: bytes
    identity: bytes  # the owner's Identity encoding
    counter: int
    purpose: int
    receive_key: bytes
    signing_key: bytes
    anchor: bytes
    identity_signature: bytes = field(repr=False)
    possession_signature: bytes = field(repr=False)

    def content(self) -> bytes:
        """The signed content: CBOR of the seven fields, in order."""
        return cbor.encode([self.group_id, self.identity, self.counter, self.purpose,
                            self.receive_key, self.signing_key, self.anchor])

    def to_bytes(self) -> bytes:
        return cbor.encode([self.group_id, self.identity, self.counter, self.purpose,
                            self.receive_key, self.signing_key, self.anchor,
                            self.identity_signature, self.possession_signature])

    def owner(self) -> Identity:
        return Identity.from_bytes(self.identity, self.suite)

    def verifying_key(self) -> VerifyingKey:
        return self.suite.verifying_from_bytes(self.signing_key)

    def verify(self) -> None:
        """Both signatures: the owner's identity key, then the record's own signing key."""
        content = self.content()
        self.owner().verify(LABEL_IDENTITY_MEMBER_KEYS, content, self.identity_signature)
        member_verify(self.suite, self.verifying_key(), LABEL_MEMBER_POSSESSION, content,
                      self.possession_signature)

    def same_content(self, other: MemberKeyRecord | JoinKey) -> bool:
        return hmac.compare_digest(self.content(), other.content())

    @classmethod
    def sign(cls, identity: IdentityKeyPair, keys: RecordKeys, *, group_id: bytes, counter: int,
             purpose: int, anchor: bytes) -> MemberKeyRecord:
        suite = identity.suite
        if keys.suite.suite_id != suite.suite_id:
            raise UsageError("record keys of another suite")
        if not isinstance(group_id, bytes) or not 1 <= len(group_id) <= MAX_GROUP_ID_LEN:
            raise UsageError(f"group id must be 1..{MAX_GROUP_ID_LEN} bytes")
        if type(counter) is not int or not 0 <= counter <= MAX_RECORD_COUNTER:
            raise UsageError("record counter must be in [0, 2^32-1]")
        if purpose not in PURPOSES:
            raise UsageError("unknown record purpose")
        if not isinstance(anchor, bytes) or len(anchor) != suite.hash_len:
            raise UsageError(f"anchor must be {suite.hash_len} bytes")
        unsigned = cls(suite, group_id, identity.public.to_bytes(), counter, purpose,
                       keys.receive_public, keys.signing_public, anchor, b"", b"")
        content = unsigned.content()
        return cls(suite, group_id, unsigned.identity, counter, purpose, keys.receive_public,
                   keys.signing_public, anchor,
                   identity.sign(LABEL_IDENTITY_MEMBER_KEYS, content),
                   member_sign(suite, keys.signing_key, LABEL_MEMBER_POSSESSION, content))

    @classmethod
    def from_bytes(cls, suite: Suite, data: bytes) -> MemberKeyRecord:
        """Decode strictly, validate every key, verify both signatures.

        `DecodeError`/`InvalidKey` (shape, lengths, keys), `LimitExceeded` (size),
        `ProtocolError` (identity of another suite), `InvalidSignature`."""
        f = _decode_list(data, "member key record", RECORD_FIELDS + 2, MAX_RECORD_LEN)
        group_id = cbor.as_bytes(f[0], "group id", max_length=MAX_GROUP_ID_LEN)
        if not group_id:
            raise DecodeError("member key record: empty group id")
        identity = cbor.as_bytes(f[1], "record identity", max_length=MAX_IDENTITY_LEN)
        counter = cbor.as_int(f[2], "record counter", maximum=MAX_RECORD_COUNTER)
        purpose = cbor.as_int(f[3], "record purpose")
        if purpose not in PURPOSES:
            raise DecodeError("member key record: unknown purpose")
        receive, signing = _key_fields(suite, f[4], f[5])
        anchor = cbor.as_bytes(f[6], "record anchor", length=suite.hash_len)
        record = cls(suite, group_id, identity, counter, purpose, receive, signing, anchor,
                     cbor.as_bytes(f[7], "record identity signature", length=suite.signature_len),
                     cbor.as_bytes(f[8], "record possession signature",
                                   length=suite.signature_len))
        record.verify()
        return record


# --- Join keys -----------------------------------------------------------------------------


@dataclass(frozen=True)
class JoinKey:
    """A signed group join key, published in the directory and carried by an add proposal."""

    suite: Suite
    identity: bytes
    receive_key: bytes
    signing_key: bytes
    expiry: int  # hub time (Unix ms) after which an add may no longer use it
    inbox_id: bytes  # mailbox where the joiner's notice goes
    signature: bytes = field(repr=False)

    # A join key stands as its owner's record (counter 0) until the first rotation.
    counter = 0

    def content(self) -> bytes:
        return cbor.encode([self.identity, self.receive_key, self.signing_key, self.expiry,
                            self.inbox_id])

    def to_bytes(self) -> bytes:
        return cbor.encode([self.identity, self.receive_key, self.signing_key, self.expiry,
                            self.inbox_id, self.signature])

    def owner(self) -> Identity:
        return Identity.from_bytes(self.identity, self.suite)

    def verifying_key(self) -> VerifyingKey:
        return self.suite.verifying_from_bytes(self.signing_key)

    def verify(self) -> None:
        self.owner().verify(LABEL_IDENTITY_JOIN_KEY, self.content(), self.signature)

    def anchor(self) -> bytes:
        """The anchor of every record of the membership this join key begins."""
        return anchor_of(self.suite, self.content())

    def expired_at(self, hub_time: int) -> bool:
        return hub_time > self.expiry

    def same_content(self, other: MemberKeyRecord | JoinKey) -> bool:
        return hmac.compare_digest(self.content(), other.content())

    @classmethod
    def sign(cls, identity: IdentityKeyPair, keys: RecordKeys, *, expiry: int,
             inbox_id: bytes) -> JoinKey:
        suite = identity.suite
        if keys.suite.suite_id != suite.suite_id:
            raise UsageError("join key pair of another suite")
        if type(expiry) is not int or not 0 <= expiry <= MAX_EXPIRY:
            raise UsageError("expiry must be a Unix time in ms, [0, 2^63-1]")
        if not isinstance(inbox_id, bytes) or len(inbox_id) != MAILBOX_ID_LEN:
            raise UsageError(f"inbox id must be {MAILBOX_ID_LEN} bytes")
        unsigned = cls(suite, identity.public.to_bytes(), keys.receive_public,
                       keys.signing_public, expiry, inbox_id, b"")
        return cls(suite, unsigned.identity, keys.receive_public, keys.signing_public, expiry,
                   inbox_id, identity.sign(LABEL_IDENTITY_JOIN_KEY, unsigned.content()))

    @classmethod
    def from_bytes(cls, suite: Suite, data: bytes) -> JoinKey:
        """Decode strictly, validate both keys, verify the identity signature."""
        f = _decode_list(data, "join key", JOIN_KEY_FIELDS + 1, MAX_JOIN_KEY_LEN)
        identity = cbor.as_bytes(f[0], "join key identity", max_length=MAX_IDENTITY_LEN)
        receive, signing = _key_fields(suite, f[1], f[2])
        join_key = cls(suite, identity, receive, signing,
                       cbor.as_int(f[3], "join key expiry", maximum=MAX_EXPIRY),
                       cbor.as_bytes(f[4], "inbox id", length=MAILBOX_ID_LEN),
                       cbor.as_bytes(f[5], "join key signature", length=suite.signature_len))
        join_key.verify()
        return join_key


# --- Key pairs -------------------------------------------------------------------------------


class _SeedStream:
    """ExpandLabel(seed, label, u32(i), n) for i = 0, 1, …: a deterministic RandomSource, so a
    key pair regenerated from its stored seed is byte-identical."""

    def __init__(self, suite: Suite, seed: bytes, label: bytes) -> None:
        self._suite, self._seed, self._label, self._counter = suite, seed, label, 0

    def __call__(self, n: int) -> bytes:
        out = self._suite.expand_label(self._seed, self._label,
                                       self._counter.to_bytes(4, "big"), n)
        self._counter += 1
        return out


class RecordKeys:
    """The private halves of a record's (or join key's) two keys, derived from a 32-byte seed:

        receive key = the suite's DH key generation fed by ExpandLabel(seed, "record receive
                      key", u32(i), 32) for i = 0, 1, … (P-256 redraws out-of-range scalars)
        signing key = SigningFromSeed(ExpandLabel(seed, "record signing key seed", "", 32))
    """

    __slots__ = ("receive_key", "receive_public", "signing_key", "signing_public", "suite")

    def __init__(self, suite: Suite, receive_key: DhPrivateKey, signing_key: SigningKey) -> None:
        self.suite = suite
        self.receive_key = receive_key
        self.signing_key = signing_key
        self.receive_public = receive_key.public_key().to_bytes()
        self.signing_public = signing_key.public_key().to_bytes()

    @classmethod
    def from_seed(cls, suite: Suite, seed: bytes) -> RecordKeys:
        if not isinstance(seed, bytes) or len(seed) != RECORD_SEED_LEN:
            raise UsageError(f"a record seed is {RECORD_SEED_LEN} bytes")
        receive = suite.generate_dh(_SeedStream(suite, seed, LABEL_RECORD_RECEIVE_KEY))
        signing = suite.signing_from_seed(
            suite.expand_label(seed, LABEL_RECORD_SIGNING_SEED, b"", 32))
        return cls(suite, receive, signing)

    @classmethod
    def generate(cls, suite: Suite, rng: RandomSource) -> RecordKeys:
        return cls.from_seed(suite, rng(RECORD_SEED_LEN))

    def holds(self, record: MemberKeyRecord | JoinKey) -> bool:
        """Whether these are the keys `record` publishes (R1: a record of ours whose keys we do
        not hold means another copy of us)."""
        return (hmac.compare_digest(self.receive_public, record.receive_key)
                and hmac.compare_digest(self.signing_public, record.signing_key))

    def __repr__(self) -> str:
        return f"RecordKeys({self.suite.name}, receive={self.receive_public.hex()[:16]}…, <secret>)"


# --- Supersede rules (R1, Decision 5) ---------------------------------------------------------


class RecordVerdict(enum.Enum):
    SUPERSEDES = "supersedes"  # higher counter: applied by the next commit
    DUPLICATE = "duplicate"  # the same content again: counts once
    STALE = "stale"  # lower counter than the entry's current record: ignored
    EQUIVOCATION = "equivocation"  # same counter, other content: reported, the first stands


def judge_record(current: MemberKeyRecord | JoinKey, anchor: bytes, new: MemberKeyRecord,
                 roster_receive_keys: Iterable[bytes], *, group_id: bytes,
                 purpose: int = PURPOSE_ROTATE) -> RecordVerdict:
    """Judge a verified record `new` against the roster entry whose latest record is `current`
    and whose membership began with `anchor`.

    Refused with `ProtocolError` (no effect on the entry): another group, another owner than the
    entry's (no one but the owner changes its entry), another purpose than the place allows (a
    rotation is never a resume and vice versa), another anchor (a record of an earlier
    membership), or a receive key already in the roster (`roster_receive_keys`: every entry's
    current receive key, this one's included) when it would supersede. Otherwise the verdict.
    """
    if not hmac.compare_digest(new.group_id, group_id):
        raise ProtocolError("member key record for another group")
    if not hmac.compare_digest(new.identity, current.identity):
        raise ProtocolError("member key record by another identity than the entry's owner")
    if new.purpose != purpose:
        raise ProtocolError("member key record of the wrong purpose here")
    if not hmac.compare_digest(new.anchor, anchor):
        raise ProtocolError("member key record anchored to another membership")
    if new.counter < current.counter:
        return RecordVerdict.STALE
    if new.counter == current.counter:
        if isinstance(current, MemberKeyRecord) and new.same_content(current):
            return RecordVerdict.DUPLICATE
        return RecordVerdict.EQUIVOCATION
    if any(hmac.compare_digest(new.receive_key, k) for k in roster_receive_keys):
        raise ProtocolError("receive key already in the roster")
    return RecordVerdict.SUPERSEDES


def judge_posted(earlier: Iterable[MemberKeyRecord], new: MemberKeyRecord) -> RecordVerdict:
    """Among records posted in one window (not yet applied), the first with a counter stands:
    `new` against the owner's earlier-posted ones is a duplicate, an equivocation, or new."""
    for old in earlier:
        if old.counter == new.counter and hmac.compare_digest(old.identity, new.identity):
            return RecordVerdict.DUPLICATE if old.same_content(new) else (
                RecordVerdict.EQUIVOCATION)
    return RecordVerdict.SUPERSEDES


def decode_record_or_join_key(suite: Suite, data: bytes) -> MemberKeyRecord | JoinKey:
    """A roster entry's record: a member key record (9 fields) or a join key (6 fields)."""
    if not isinstance(data, bytes | bytearray):
        raise UsageError("expected bytes")
    if len(data) > max(MAX_RECORD_LEN, MAX_JOIN_KEY_LEN):
        raise LimitExceeded("record too large")
    if data[:1] == bytes([0x80 | (RECORD_FIELDS + 2)]):
        return MemberKeyRecord.from_bytes(suite, bytes(data))
    if data[:1] == bytes([0x80 | (JOIN_KEY_FIELDS + 1)]):
        return JoinKey.from_bytes(suite, bytes(data))
    raise DecodeError("neither a member key record nor a join key")


__all__ = [
    "LABEL_MEMBER_CONTROL_ENTRY",
    "LABEL_MEMBER_POSSESSION",
    "LABEL_MEMBER_SIGNATURE",
    "LABEL_RECORD_ANCHOR",
    "LABEL_RECORD_RECEIVE_KEY",
    "LABEL_RECORD_SIGNING_SEED",
    "PURPOSE_RESUME",
    "PURPOSE_ROTATE",
    "JoinKey",
    "MemberKeyRecord",
    "RecordKeys",
    "RecordVerdict",
    "anchor_of",
    "creator_anchor",
    "decode_record_or_join_key",
    "judge_posted",
    "judge_record",
    "member_sign",
    "member_signature_input",
    "member_verify",
]
