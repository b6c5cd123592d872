"""Member key records and group join keys (spec 11.v2.3-4, rule R1, Decisions 5 and 8).

A **member key record** is a member's current pair of group keys: a receive key (a public key of
the suite's HPKE KEM, `hpke_for_suite(suite).kem`, to which commits seal: a DH public key for a
classical suite, a hybrid X-Wing / MLKEM768-P256 key for a post-quantum one) and a signing key
(which signs its group messages and its member-signed control entries). It is signed twice: by
the identity key (label `identity: group member keys`), so no one but the owner can change its
entry, and by its own signing key (label `member: key possession`), so no one can claim another's
signing key. Its `anchor` is the hash of the join key or resume record that began the owner's
current membership: a record from an earlier membership (before a removal and re-add) is refused.

    record       = CBOR[0x50, 2, suite_id, group_id, identity, counter, purpose, receive_public_key,
                        signing_public_key, anchor]
    SignedRecord = CBOR[record (bytes), identity_signature, possession_signature]

A **group join key** is what an account publishes so that it can be added while offline (counter
0 of its records in the group it joins), signed the same two ways (identity label `identity: group
join key`):

    join_key      = CBOR[0x51, 2, suite_id, identity, receive_public_key, signing_public_key,
                         expiry, inbox_id]
    SignedJoinKey = CBOR[join_key (bytes), identity_signature, possession_signature]

Equality, equivocation and anchors look only at the signed **body** (`record` / `join_key`
bytes), never at signatures: ECDSA signatures can be re-randomised by anyone. The judgement of a
record against a roster entry (`judge_record`, spec 11.v2.16) is a pure function, so every reader
reaches the same verdict from the same control mailbox.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from triple_ratchet import cbor
from triple_ratchet.errors import (
    DecodeError,
    LimitExceeded,
    ProtocolError,
    ReplayError,
    UnsupportedError,
    UsageError,
)
from triple_ratchet.identity import (
    LABEL_IDENTITY_JOIN_KEY,
    LABEL_IDENTITY_MEMBER_KEYS,
    Identity,
    IdentityKeyPair,
)
from triple_ratchet.mailbox import MAILBOX_ID_LEN
from triple_ratchet.random import RandomSource
from triple_ratchet.suites import (
    DhPrivateKey,
    SigningKey,
    Suite,
    VerifyingKey,
    suite_by_id,
)
from triple_ratchet.suites.hpke import DhKem, Kem, hpke_for_suite

# --- Labels -------------------------------------------------------------------------------------
# Prefix of every signature made with a record's (or join key's) signing key, framed like an
# identity signature: prefix ‖ uint16(suite) ‖ len8(label) ‖ label ‖ content.
LABEL_MEMBER_SIGNATURE = b"triple-ratchet v2 member signature"
LABEL_MEMBER_POSSESSION = b"member: key possession"
LABEL_MEMBER_CONTROL_ENTRY = b"member: control entry"
# Hash prefix of an anchor: the join key or resume record body that began a membership.
LABEL_RECORD_ANCHOR = b"triple-ratchet v2 anchor"
# ExpandLabel from a record seed (local: how our keys are made, not on the wire).
LABEL_RECORD_RECEIVE_KEY = b"ks v2 record receive key"
LABEL_RECORD_SIGNING_SEED = b"ks v2 record signing seed"

MEMBER_SIGNATURE_LABELS = frozenset({LABEL_MEMBER_POSSESSION, LABEL_MEMBER_CONTROL_ENTRY})

# --- Encodings and limits -----------------------------------------------------------------------
WIRE_RECORD = 0x50
WIRE_JOIN_KEY = 0x51
VERSION = 2

PURPOSE_ROTATE = 1
PURPOSE_RESUME = 2
PURPOSES = frozenset({PURPOSE_ROTATE, PURPOSE_RESUME})

MAX_GROUP_ID_LEN = 64
MAX_IDENTITY_LEN = 512
MAX_RECORD_COUNTER = 2**64 - 1
MAX_EXPIRY = 2**64 - 1
RECORD_SEED_LEN = 32
MAX_RECORD_LEN = 1024
MAX_JOIN_KEY_LEN = 1024
# A post-quantum suite's receive key is a hybrid KEM key (1216 / 1249 bytes instead of 32 / 65):
# its records and join keys (about 1.8 KB) get a bound of their own; classical ones keep 1024.
MAX_RECORD_LEN_PQ = 2048
MAX_JOIN_KEY_LEN_PQ = 2048


def receive_kem(suite: Suite) -> Kem:
    """The KEM of a receive key: the suite's HPKE KEM (`hpke_for_suite(suite).kem`)."""
    return hpke_for_suite(suite).kem


def is_hybrid(suite: Suite) -> bool:
    """Whether the suite's receive keys are hybrid (post-quantum) KEM keys, not DH keys."""
    return not isinstance(receive_kem(suite), DhKem)


def max_record_len(suite: Suite) -> int:
    """The bound of a `SignedRecord` of `suite` (1024, or 2048 for a hybrid suite)."""
    return MAX_RECORD_LEN_PQ if is_hybrid(suite) else MAX_RECORD_LEN


def max_join_key_len(suite: Suite) -> int:
    """The bound of a `SignedJoinKey` of `suite` (1024, or 2048 for a hybrid suite)."""
    return MAX_JOIN_KEY_LEN_PQ if is_hybrid(suite) else MAX_JOIN_KEY_LEN


def member_signature_input(suite: Suite, label: bytes, content: bytes) -> bytes:
    """What a member signing key signs: prefix ‖ uint16(suite) ‖ len8(label) ‖ label ‖ content."""
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


def anchor_of(suite: Suite, epoch_id: bytes, body: bytes) -> bytes:
    """H("triple-ratchet v2 anchor" ‖ CBOR[epoch_id(e), body]) of the join key or resume record
    that begins a membership in the change from epoch e (epoch_id(0) is empty): the anchor its
    roster entry and its later records carry. The epoch id makes it unique per membership even
    when the same join key adds its owner again (review F3)."""
    return suite.hash(LABEL_RECORD_ANCHOR + cbor.encode([epoch_id, body]))


def creator_anchor(suite: Suite) -> bytes:
    """The group creator's membership was begun by no join key: its anchor is Nh zero bytes."""
    return bytes(suite.hash_len)


def _key_fields(suite: Suite, receive: cbor.CborValue, signing: cbor.CborValue
                ) -> tuple[bytes, bytes]:
    # The receive key is the suite's HPKE KEM key (P-256 SEC1 uncompressed / X25519, or a hybrid
    # KEM key), the signing key the suite's signature key; both are fully validated (`InvalidKey`).
    receive_key = cbor.as_bytes(receive, "receive public key", length=receive_kem(suite).n_pk)
    signing_key = cbor.as_bytes(signing, "signing public key", length=suite.sign_public_len)
    return receive_key, signing_key


def _validate_keys(suite: Suite, receive_key: bytes, signing_key: bytes) -> VerifyingKey:
    """Validate both keys; the validated signing key, which the caller keeps (validated once)."""
    receive_kem(suite).deserialize_public_key(receive_key)
    return suite.verifying_from_bytes(signing_key)


def _keep_decoded(value: MemberKeyRecord | JoinKey, body: bytes, owner: Identity,
                  verifying_key: VerifyingKey) -> None:
    """Keep what `from_bytes` decoded and validated as the value's computed-once fields, so
    that `verify` (and every later reader) uses them instead of decoding and validating the same
    identity and key again. The body is the wire's own bytes: the strict canonical decoder
    accepted it, so it is exactly what `body()` would encode from the fields."""
    object.__setattr__(value, "_body", body)
    object.__setattr__(value, "_owner", owner)
    object.__setattr__(value, "_verifying_key", verifying_key)


def identity_field(value: cbor.CborValue, what: str) -> bytes:
    """An identity encoding on the wire: 1..512 bytes (`DecodeError`); section 3 decodes it."""
    identity = cbor.as_bytes(value, what, max_length=MAX_IDENTITY_LEN)
    if not identity:
        raise DecodeError(f"{what}: empty identity")
    return identity


def _open_signed(data: bytes, what: str, max_len: int, suite: Suite, wire: int,
                 fields: int) -> tuple[bytes, list[cbor.CborValue], bytes, bytes]:
    """The common outer steps: size, the 3-element wrapper, the body's type, version and suite,
    and the two signatures' lengths. Returns (body, body fields, identity sig, possession sig)."""
    if not isinstance(data, bytes | bytearray):
        raise UsageError(f"{what}: expected bytes")
    if len(data) > max_len:
        raise LimitExceeded(f"{what} larger than {max_len} bytes")
    # Item budgets leave room for a few extra elements, so a wrong count is a DecodeError.
    outer = cbor.as_list(cbor.decode(data, max_size=max_len, max_items=8, max_depth=2),
                         what, 3)
    body = cbor.as_bytes(outer[0], f"{what} body", max_length=max_len)
    f = cbor.as_list(cbor.decode(body, max_size=max_len, max_items=16, max_depth=2),
                     f"{what} body", fields)
    if cbor.as_int(f[0], f"{what} type") != wire:
        raise DecodeError(f"not a {what}")
    if cbor.as_int(f[1], f"{what} version") != VERSION:
        raise UnsupportedError(f"{what}: only version 2 is supported")
    found = suite_by_id(cbor.as_int(f[2], f"{what} suite", maximum=0xFFFF))
    if found.suite_id != suite.suite_id:
        raise ProtocolError(f"{what} of another suite than the group's")
    return (body, f,
            cbor.as_bytes(outer[1], f"{what} identity signature", length=suite.signature_len),
            cbor.as_bytes(outer[2], f"{what} possession signature", length=suite.signature_len))


# --- Member key records -------------------------------------------------------------------------

# A record body's first bytes: the head of its 10-element array, its type and its version.
_RECORD_BODY_HEAD = cbor.encode([None] * 10)[:1] + cbor.encode([WIRE_RECORD, VERSION])[1:]


@dataclass(frozen=True)
class MemberKeyRecord:
    """A signed member key record. Valid by construction through `from_bytes` and `sign`;
    `verify` re-checks both signatures."""

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
    # Computed once per (immutable) value, outside equality. Declared so that every instance
    # has them from construction: keys added to an instance's __dict__ later unshare it and
    # slow every attribute read of long-lived roster values (measured, ~50%).
    _body: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _owner: Identity | None = field(default=None, init=False, repr=False, compare=False)
    _verifying_key: VerifyingKey | None = field(default=None, init=False, repr=False,
                                                compare=False)

    def body(self) -> bytes:
        """The signed body (`record`): what both signatures and every comparison cover."""
        # Encoded once: the roster hash re-reads every member's body at each epoch change.
        body = self._body
        if body is None:
            # joined from the fields' heads (a cold roster encodes up to 1,000 bodies for its
            # hash); equality with the general encoder is tested
            head, uint = cbor.bstr_head, cbor.uint_head
            group_id, identity, receive, signing, anchor = (
                self.group_id, self.identity, self.receive_key, self.signing_key, self.anchor)
            body = b"".join((_RECORD_BODY_HEAD, uint(self.suite.suite_id),
                             head(len(group_id)), group_id, head(len(identity)), identity,
                             uint(self.counter), uint(self.purpose), head(len(receive)), receive,
                             head(len(signing)), signing, head(len(anchor)), anchor))
            object.__setattr__(self, "_body", body)
        return body

    def to_bytes(self) -> bytes:
        """The `SignedRecord`."""
        return cbor.encode([self.body(), self.identity_signature, self.possession_signature])

    def owner(self) -> Identity:
        # Decoded (keys validated, DH key signature verified) once per immutable value.
        owner = self._owner
        if owner is None:
            owner = Identity.from_bytes(self.identity, self.suite)
            object.__setattr__(self, "_owner", owner)
        return owner

    def verifying_key(self) -> VerifyingKey:
        # Validated once: a reader verifies every member-signed control entry with it.
        key = self._verifying_key
        if key is None:
            key = self.suite.verifying_from_bytes(self.signing_key)
            object.__setattr__(self, "_verifying_key", key)
        return key

    def verify(self) -> None:
        """Both signatures: the owner's identity key, then the record's own signing key."""
        body = self.body()
        self.owner().verify(LABEL_IDENTITY_MEMBER_KEYS, body, self.identity_signature)
        member_verify(self.suite, self.verifying_key(), LABEL_MEMBER_POSSESSION, body,
                      self.possession_signature)

    def same_body(self, other: MemberKeyRecord | JoinKey) -> bool:
        return hmac.compare_digest(self.body(), other.body())

    @classmethod
    def sign(cls, identity: IdentityKeyPair, keys: RecordKeys, *, group_id: bytes, counter: int,
             purpose: int, anchor: bytes) -> MemberKeyRecord:
        suite = identity.suite
        if keys.suite.suite_id != suite.suite_id:
            raise UsageError("record keys of another suite")
        if not isinstance(group_id, bytes) or not 1 <= len(group_id) <= MAX_GROUP_ID_LEN:
            raise UsageError(f"group id must be 1..{MAX_GROUP_ID_LEN} bytes")
        if type(counter) is not int or not 1 <= counter <= MAX_RECORD_COUNTER:
            raise UsageError("record counter must be in [1, 2^64-1]")
        if purpose not in PURPOSES:
            raise UsageError("unknown record purpose")
        if not isinstance(anchor, bytes) or len(anchor) != suite.hash_len:
            raise UsageError(f"anchor must be {suite.hash_len} bytes")
        unsigned = cls(suite, group_id, identity.public.to_bytes(), counter, purpose,
                       keys.receive_public, keys.signing_public, anchor, b"", b"")
        body = unsigned.body()
        return replace_signatures(unsigned, identity.sign(LABEL_IDENTITY_MEMBER_KEYS, body),
                                  member_sign(suite, keys.signing_key, LABEL_MEMBER_POSSESSION,
                                              body))

    @classmethod
    def from_bytes(cls, suite: Suite, data: bytes) -> MemberKeyRecord:
        """Decode a `SignedRecord` strictly, cheapest checks first (spec 11.v2.3).

        `LimitExceeded` (size), `DecodeError` (shape, type, lengths, purpose),
        `UnsupportedError` (version, unknown suite), `ProtocolError` (not the group's suite),
        `InvalidKey`, `InvalidSignature`."""
        body, f, identity_sig, possession_sig = _open_signed(
            data, "member key record", max_record_len(suite), suite, WIRE_RECORD, 10)
        group_id = cbor.as_bytes(f[3], "group id", max_length=MAX_GROUP_ID_LEN)
        if not group_id:
            raise DecodeError("member key record: empty group id")
        identity = identity_field(f[4], "record identity")
        counter = cbor.as_int(f[5], "record counter", minimum=1, maximum=MAX_RECORD_COUNTER)
        purpose = cbor.as_int(f[6], "record purpose")
        if purpose not in PURPOSES:
            raise DecodeError("member key record: unknown purpose")
        receive, signing = _key_fields(suite, f[7], f[8])
        anchor = cbor.as_bytes(f[9], "record anchor", length=suite.hash_len)
        owner = Identity.from_bytes(identity, suite)
        verifying_key = _validate_keys(suite, receive, signing)
        record = cls(suite, group_id, identity, counter, purpose, receive, signing, anchor,
                     identity_sig, possession_sig)
        _keep_decoded(record, body, owner, verifying_key)
        record.verify()
        return record


def replace_signatures(record: MemberKeyRecord, identity_signature: bytes,
                       possession_signature: bytes) -> MemberKeyRecord:
    return MemberKeyRecord(record.suite, record.group_id, record.identity, record.counter,
                           record.purpose, record.receive_key, record.signing_key,
                           record.anchor, identity_signature, possession_signature)


# --- Join keys ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JoinKey:
    """A signed group join key, published in the directory and carried by an add proposal."""

    suite: Suite
    identity: bytes
    receive_key: bytes
    signing_key: bytes
    expiry: int  # hub time (Unix ms) from which an add may no longer use it
    inbox_id: bytes  # the hub inbox where notices for it go
    identity_signature: bytes = field(repr=False)
    possession_signature: bytes = field(repr=False)
    # Caches, as a record's.
    _body: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _owner: Identity | None = field(default=None, init=False, repr=False, compare=False)
    _verifying_key: VerifyingKey | None = field(default=None, init=False, repr=False,
                                                compare=False)

    # A join key is counter 0 of its owner's records in the group it joins.
    counter = 0

    def body(self) -> bytes:
        """The signed body (`join_key`)."""
        body = self._body  # encoded once, as a record's
        if body is None:
            body = cbor.encode_flat((WIRE_JOIN_KEY, VERSION, self.suite.suite_id,
                                     self.identity, self.receive_key, self.signing_key,
                                     self.expiry, self.inbox_id))
            object.__setattr__(self, "_body", body)
        return body

    def to_bytes(self) -> bytes:
        """The `SignedJoinKey`."""
        return cbor.encode([self.body(), self.identity_signature, self.possession_signature])

    def owner(self) -> Identity:
        # Decoded (keys validated, DH key signature verified) once per immutable value.
        owner = self._owner
        if owner is None:
            owner = Identity.from_bytes(self.identity, self.suite)
            object.__setattr__(self, "_owner", owner)
        return owner

    def verifying_key(self) -> VerifyingKey:
        # Validated once: a reader verifies every member-signed control entry with it.
        key = self._verifying_key
        if key is None:
            key = self.suite.verifying_from_bytes(self.signing_key)
            object.__setattr__(self, "_verifying_key", key)
        return key

    def verify(self) -> None:
        body = self.body()
        self.owner().verify(LABEL_IDENTITY_JOIN_KEY, body, self.identity_signature)
        member_verify(self.suite, self.verifying_key(), LABEL_MEMBER_POSSESSION, body,
                      self.possession_signature)

    def anchor(self, epoch_id: bytes = b"") -> bytes:
        """The anchor of the membership this join key begins when the change from the epoch
        `epoch_id` applies its add (empty: epoch 0, a created group's initial member)."""
        return anchor_of(self.suite, epoch_id, self.body())

    def usable_at(self, hub_time: int) -> bool:
        """An add is valid only while `expiry > t` of the proposal entry (spec 11.v2.17)."""
        return self.expiry > hub_time

    def same_body(self, other: MemberKeyRecord | JoinKey) -> bool:
        return hmac.compare_digest(self.body(), other.body())

    @classmethod
    def sign(cls, identity: IdentityKeyPair, keys: RecordKeys, *, expiry: int,
             inbox_id: bytes) -> JoinKey:
        suite = identity.suite
        if keys.suite.suite_id != suite.suite_id:
            raise UsageError("join key pair of another suite")
        if type(expiry) is not int or not 0 <= expiry <= MAX_EXPIRY:
            raise UsageError("expiry must be a Unix time in ms, [0, 2^64-1]")
        if not isinstance(inbox_id, bytes) or len(inbox_id) != MAILBOX_ID_LEN:
            raise UsageError(f"inbox id must be {MAILBOX_ID_LEN} bytes")
        unsigned = cls(suite, identity.public.to_bytes(), keys.receive_public,
                       keys.signing_public, expiry, inbox_id, b"", b"")
        body = unsigned.body()
        return cls(suite, unsigned.identity, keys.receive_public, keys.signing_public, expiry,
                   inbox_id, identity.sign(LABEL_IDENTITY_JOIN_KEY, body),
                   member_sign(suite, keys.signing_key, LABEL_MEMBER_POSSESSION, body))

    @classmethod
    def from_bytes(cls, suite: Suite, data: bytes) -> JoinKey:
        """Decode a `SignedJoinKey` strictly (as records), validate both keys, verify both
        signatures. Expiry is the rules' business, never decoding's."""
        body, f, identity_sig, possession_sig = _open_signed(
            data, "join key", max_join_key_len(suite), suite, WIRE_JOIN_KEY, 8)
        identity = identity_field(f[3], "join key identity")
        receive, signing = _key_fields(suite, f[4], f[5])
        expiry = cbor.as_int(f[6], "join key expiry", maximum=MAX_EXPIRY)
        inbox_id = cbor.as_bytes(f[7], "inbox id", length=MAILBOX_ID_LEN)
        owner = Identity.from_bytes(identity, suite)
        verifying_key = _validate_keys(suite, receive, signing)
        join_key = cls(suite, identity, receive, signing, expiry, inbox_id, identity_sig,
                       possession_sig)
        _keep_decoded(join_key, body, owner, verifying_key)
        join_key.verify()
        return join_key


# --- Rejoin requests -------------------------------------------------------------------------

WIRE_REJOIN_REQUEST = 0x54
MAX_REJOIN_REQUEST_LEN = MAX_RECORD_LEN + 256


def max_rejoin_request_len(suite: Suite) -> int:
    """A rejoin request's bound: its resume record's and 256 bytes of framing."""
    return max_record_len(suite) + 256


@dataclass(frozen=True)
class RejoinRequest:
    """What a member that lost its place sends to members over pairwise sessions (R12, spec
    11.v2.14): a resume record and the inbox where its notice should go.

        RejoinRequest = CBOR[0x54, 2, suite_id, group_id, resume_record (SignedRecord), inbox_id]
    """

    record: MemberKeyRecord
    inbox_id: bytes

    def to_bytes(self) -> bytes:
        return cbor.encode([WIRE_REJOIN_REQUEST, VERSION, self.record.suite.suite_id,
                            self.record.group_id, self.record.to_bytes(), self.inbox_id])

    @classmethod
    def make(cls, record: MemberKeyRecord, inbox_id: bytes) -> RejoinRequest:
        if record.purpose != PURPOSE_RESUME:
            raise UsageError("a rejoin request carries a record of purpose resume")
        if not isinstance(inbox_id, bytes) or len(inbox_id) != MAILBOX_ID_LEN:
            raise UsageError(f"inbox id must be {MAILBOX_ID_LEN} bytes")
        return cls(record, inbox_id)

    @classmethod
    def from_bytes(cls, suite: Suite, data: bytes, *, group_id: bytes,
                   peer: Identity) -> RejoinRequest:
        """Decode strictly; the record must be a resume record of `group_id` by the pairwise
        `peer` (`ProtocolError`)."""
        if not isinstance(data, bytes | bytearray):
            raise UsageError("expected bytes")
        bound = max_rejoin_request_len(suite)
        if len(data) > bound:
            raise LimitExceeded("rejoin request larger than its bound")
        f = cbor.as_list(cbor.decode(data, max_size=bound, max_items=8,
                                     max_depth=1), "rejoin request", 6)
        if cbor.as_int(f[0], "rejoin request type") != WIRE_REJOIN_REQUEST:
            raise DecodeError("not a rejoin request")
        if cbor.as_int(f[1], "rejoin request version") != VERSION:
            raise UnsupportedError("rejoin request: only version 2 is supported")
        if suite_by_id(cbor.as_int(f[2], "suite", maximum=0xFFFF)).suite_id != suite.suite_id:
            raise ProtocolError("rejoin request of another suite than the group's")
        request_group = cbor.as_bytes(f[3], "group id", max_length=MAX_GROUP_ID_LEN)
        raw = cbor.as_bytes(f[4], "resume record", max_length=max_record_len(suite))
        inbox_id = cbor.as_bytes(f[5], "inbox id", length=MAILBOX_ID_LEN)
        if not hmac.compare_digest(request_group, group_id):
            raise ProtocolError("rejoin request for another group")
        record = MemberKeyRecord.from_bytes(suite, raw)
        if record.purpose != PURPOSE_RESUME:
            raise ProtocolError("a rotation record is never a resume")
        if not hmac.compare_digest(record.group_id, group_id):
            raise ProtocolError("resume record for another group")
        if not hmac.compare_digest(record.identity, peer.to_bytes()):
            raise ProtocolError("resume record of another identity than the pairwise peer")
        return cls(record, inbox_id)


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


class KemReceiveKey:
    """The private half of a hybrid receive key: the KEM's serialised private key (its seed,
    derived from the record seed). Secret: `repr` hides it."""

    __slots__ = ("_private", "_public")

    def __init__(self, private_key: bytes, public_key: bytes) -> None:
        self._private = private_key
        self._public = public_key

    def to_bytes(self) -> bytes:
        """The serialised private key `HpkeSuite.open` takes."""
        return self._private

    def public_bytes(self) -> bytes:
        return self._public

    def __repr__(self) -> str:
        return f"KemReceiveKey(public={self._public.hex()[:16]}…, <secret>)"


class RecordKeys:
    """The private halves of a record's (or join key's) two keys, derived from a 32-byte seed:

        receive key = classical suite: the suite's DH key generation fed by ExpandLabel(seed,
                      "ks v2 record receive key", u32be(i), 32) for i = 0, 1, … (P-256 redraws
                      a scalar out of range);
                      hybrid suite: the HPKE KEM's DeriveKeyPair(ExpandLabel(seed, "ks v2
                      record receive key", u32be(0), 32))
        signing key = SigningFromSeed(ExpandLabel(seed, "ks v2 record signing seed", "", 32))

    Local (another implementation may make its keys otherwise): a state restored from its
    stored seed re-creates byte-identical keys.
    """

    __slots__ = ("receive_key", "receive_public", "signing_key", "signing_public", "suite")

    def __init__(self, suite: Suite, receive_key: DhPrivateKey | KemReceiveKey,
                 signing_key: SigningKey) -> None:
        self.suite = suite
        self.receive_key = receive_key
        self.signing_key = signing_key
        self.receive_public = (receive_key.public_bytes() if isinstance(receive_key, KemReceiveKey)
                               else receive_key.public_key().to_bytes())
        self.signing_public = signing_key.public_key().to_bytes()

    @classmethod
    def from_seed(cls, suite: Suite, seed: bytes) -> RecordKeys:
        if not isinstance(seed, bytes) or len(seed) != RECORD_SEED_LEN:
            raise UsageError(f"a record seed is {RECORD_SEED_LEN} bytes")
        stream = _SeedStream(suite, seed, LABEL_RECORD_RECEIVE_KEY)
        receive: DhPrivateKey | KemReceiveKey
        if is_hybrid(suite):
            pair = receive_kem(suite).derive_key_pair(stream(32))
            receive = KemReceiveKey(pair.private_key, pair.public_key)
        else:
            receive = suite.generate_dh(stream)
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


# --- Supersede rules (R1, Decision 5; spec 11.v2.16)


class RecordVerdict(enum.Enum):
    SUPERSEDES = "supersedes"  # valid: the next commit applies the owner's latest one
    EQUIVOCATION = "equivocation"  # same counter, another body: refused, reported; first stands


def judge_record(new: MemberKeyRecord, *, author_identity: bytes,
                 current: MemberKeyRecord | JoinKey, anchor: bytes,
                 seen: Iterable[MemberKeyRecord], taken_keys: Collection[bytes],
                 group_id: bytes, purpose: int = PURPOSE_ROTATE) -> RecordVerdict:
    """Judge a decoded (so verified) record against its owner's roster entry, spec 11.v2.16.

    `current` and `anchor` are the owner's roster entry (its record or join key, and its
    anchor); `seen` the owner's valid records seen so far in this and the carried window;
    `taken_keys` every signing key of the roster and of the valid records seen in the epoch,
    and the owner's own receive keys (receive keys of others may repeat, review F4).
    `purpose` is what the place allows: rotate in a record entry, resume inside a resume
    proposal or rejoin request. In order, the refusals (nothing changes):
    `ProtocolError` for another group, an owner other than the author (no one but the owner
    changes its entry), the wrong purpose (a rotation record is never a resume), another
    membership's anchor; `ReplayError` for a counter not above the entry's and every seen one
    (the same body again, or an older record); `ProtocolError` for a key already taken. Same
    counter with another body: `EQUIVOCATION`.

    `author_identity` is whose record it must be: the entry's author for a record entry, the
    resumed member for a resume record (whoever posts the resume proposal)."""
    seen = tuple(seen)
    if not hmac.compare_digest(new.group_id, group_id):
        raise ProtocolError("member key record for another group")
    if not hmac.compare_digest(new.identity, author_identity):
        raise ProtocolError("member key record by another identity than its author")
    if new.purpose != purpose:
        raise ProtocolError("a rotation record is never a resume" if purpose == PURPOSE_RESUME
                            else "a resume record travels only in a resume proposal")
    if not hmac.compare_digest(new.anchor, anchor):
        raise ProtocolError("record of another membership")
    for old in (current, *seen):
        if old.counter == new.counter and not (
                isinstance(old, MemberKeyRecord) and old.same_body(new)):
            return RecordVerdict.EQUIVOCATION
    if new.counter <= max((current.counter, *(old.counter for old in seen))):
        raise ReplayError("member key record not newer than its owner's latest")
    # Public keys: plain membership (a set in practice) is fine, nothing secret is compared.
    if new.receive_key in taken_keys or new.signing_key in taken_keys:
        raise ProtocolError("key already in the roster")
    return RecordVerdict.SUPERSEDES


def decode_keys(suite: Suite, data: bytes) -> MemberKeyRecord | JoinKey:
    """A roster entry's `keys`: a `SignedRecord` or a `SignedJoinKey` (told apart by the type
    of its body)."""
    if not isinstance(data, bytes | bytearray):
        raise UsageError("expected bytes")
    if len(data) > max(max_record_len(suite), max_join_key_len(suite)):
        raise LimitExceeded("member keys larger than their bound")
    outer = cbor.as_list(cbor.decode(data, max_items=8, max_depth=1), "member keys", 3)
    body = cbor.as_bytes(outer[0], "member keys body")
    # The body's first element is its type: 0x98 0x50 / 0x51 after the array head (0x8a / 0x88).
    if body[:1] == b"\x8a" and body[1:3] == bytes([0x18, WIRE_RECORD]):
        return MemberKeyRecord.from_bytes(suite, bytes(data))
    if body[:1] == b"\x88" and body[1:3] == bytes([0x18, WIRE_JOIN_KEY]):
        return JoinKey.from_bytes(suite, bytes(data))
    raise DecodeError("neither a member key record nor a join key")


__all__ = [
    "LABEL_MEMBER_CONTROL_ENTRY",
    "LABEL_MEMBER_POSSESSION",
    "LABEL_MEMBER_SIGNATURE",
    "LABEL_RECORD_ANCHOR",
    "LABEL_RECORD_RECEIVE_KEY",
    "LABEL_RECORD_SIGNING_SEED",
    "MAX_JOIN_KEY_LEN_PQ",
    "MAX_RECORD_LEN_PQ",
    "PURPOSE_RESUME",
    "PURPOSE_ROTATE",
    "JoinKey",
    "KemReceiveKey",
    "MemberKeyRecord",
    "RecordKeys",
    "RecordVerdict",
    "RejoinRequest",
    "anchor_of",
    "creator_anchor",
    "decode_keys",
    "identity_field",
    "is_hybrid",
    "judge_record",
    "max_join_key_len",
    "max_record_len",
    "max_rejoin_request_len",
    "member_sign",
    "member_signature_input",
    "member_verify",
    "receive_kem",
]
