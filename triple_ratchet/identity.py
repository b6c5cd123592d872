"""Identity keys, prekeys, prekey bundles and safety numbers (spec/03-identity.md).

An identity is a signing key plus a DH identity key signed by it: the signing key never does DH
and the DH key never signs (key hygiene). Every signature the identity key makes is over
`signature_input(suite, label, content)` with a label of its own kind, so a signature made for one
purpose can never be presented as another. Public values (`Identity`, `SignedPrekey`,
`OneTimePrekey`, `KemPrekey`, `PrekeyBundle`) are frozen; an identity and a bundle are valid by
construction: their constructors verify every signature, and their decoders validate every key
first. Secrets live in `IdentityKeyPair` and `Account`, whose reprs never show them.

Hybrid suites (`suite.post_quantum`) add PQXDH's signed ML-KEM-768 prekeys: a last-resort one per
signed prekey and one-time ones; each bundle carries one. Classical suites' encodings are
unchanged.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from functools import cached_property

from triple_ratchet import cbor
from triple_ratchet.errors import (
    DecodeError,
    LimitExceeded,
    ProtocolError,
    ReplayError,
    UsageError,
)
from triple_ratchet.random import RandomSource, system_random
from triple_ratchet.suites import (
    P256_SHA256_AES256GCM,
    DhPrivateKey,
    DhPublicKey,
    SigningKey,
    Suite,
    VerifyingKey,
    suite_by_id,
)
from triple_ratchet.suites.mlkem import (
    MLKEM768_PUBLIC_KEY_LEN,
    MLKEM768_SEED_LEN,
    MlKemPrivateKey,
    MlKemPublicKey,
)

# --- Labels (spec/03, "Labels"): one per kind of signature, plus the fingerprint hash. --------

# Prefix of every identity-key signature input; says "this is an identity-key signature".
LABEL_IDENTITY_SIGNATURE = b"triple-ratchet v1 identity signature"
LABEL_IDENTITY_DH_KEY = b"identity: dh identity key"
LABEL_IDENTITY_SIGNED_PREKEY = b"identity: signed prekey"
LABEL_IDENTITY_BUNDLE = b"identity: prekey bundle"
# Hybrid suites (PQXDH's signed ML-KEM prekeys): a last-resort KEM prekey, paired with the signed
# prekey of the same id, and one-time KEM prekeys. Two labels, so that neither kind of signature
# can pass for the other (their ids come from different counters).
LABEL_IDENTITY_LAST_RESORT_KEM_PREKEY = b"identity: last-resort kem prekey"
LABEL_IDENTITY_ONE_TIME_KEM_PREKEY = b"identity: one-time kem prekey"
# Reserved for the group layer: the only labels callers may sign with (`IdentityKeyPair.sign`).
LABEL_IDENTITY_PROPOSAL = b"identity: group proposal"
LABEL_IDENTITY_ANNOUNCEMENT = b"identity: key announcement"
# Version 2 of the epoch change (spec 11.v2.3-4): member key records and group join keys. Its
# proposal and announcement entries reuse the two labels above: their contents begin with the
# entry types 0x41 / 0x42, version 1's with 0x30 / 0x31, so neither decodes as the other.
LABEL_IDENTITY_MEMBER_KEYS = b"identity: group member keys"
LABEL_IDENTITY_JOIN_KEY = b"identity: group join key"
LABEL_IDENTITY_FINGERPRINT = b"identity: safety number fingerprint"

# Labels the identity signs only through this module's own methods.
_INTERNAL_LABELS = frozenset({LABEL_IDENTITY_DH_KEY, LABEL_IDENTITY_SIGNED_PREKEY,
                              LABEL_IDENTITY_BUNDLE, LABEL_IDENTITY_LAST_RESORT_KEM_PREKEY,
                              LABEL_IDENTITY_ONE_TIME_KEM_PREKEY})
CALLER_SIGNATURE_LABELS = frozenset({LABEL_IDENTITY_PROPOSAL, LABEL_IDENTITY_ANNOUNCEMENT,
                                     LABEL_IDENTITY_MEMBER_KEYS, LABEL_IDENTITY_JOIN_KEY})

# --- Encodings and limits ----------------------------------------------------------------

IDENTITY_VERSION = 1
BUNDLE_VERSION = 1
IDENTITY_KEYPAIR_STATE_VERSION = 1
ACCOUNT_STATE_VERSION = 1

# Prekey ids are 32-bit so that they fit every client's integer type.
MAX_PREKEY_ID = 2**32 - 1
# One-time prekeys an account holds at once: each costs ~40 bytes of saved state, and a relay
# hands out at most this many before the owner must upload more.
MAX_ONE_TIME_PREKEYS = 1000
# One-time ML-KEM-768 prekeys an account holds at once (hybrid suites): each costs ~140 bytes of
# saved state (seed and signature) and a 1184-byte public key in the upload.
MAX_ONE_TIME_KEM_PREKEYS = 1000
# Signed prekeys kept (the current one and older ones still accepting initial messages that were
# sent before a rotation reached the sender). Retiring one also drops its replay cache.
MAX_SIGNED_PREKEYS = 3
# Replay-cache entries per signed prekey (16-byte tags: 32 KiB of state). When full, the oldest
# entry is evicted and `signed_prekey_rotation_due` becomes true: rotate to close the window.
REPLAY_CACHE_CAPACITY = 2048
REPLAY_TAG_LEN = 16
# Largest bundle encodings: 471 bytes classical, 1,725 bytes hybrid (P-256, one-time prekeys).
MAX_BUNDLE_SIZE = 1024
MAX_HYBRID_BUNDLE_SIZE = 2048

# Safety numbers (Signal's scheme): 5200 hash iterations make a 2^100 second-preimage search on
# a 30-digit half ~2^12 times costlier; 30 digits per identity, sorted, 60 in all.
FINGERPRINT_ITERATIONS = 5200
FINGERPRINT_LEN = 32
SAFETY_NUMBER_VERSION = 1
SAFETY_DIGITS_PER_IDENTITY = 30


# Order of the P-256 group. ECDSA's (r, s) and (r, n - s) both verify; an identity's DH-key
# signature must have s <= n / 2 ("low s"), so each identity has exactly one encoding.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _is_ecdsa(suite: Suite) -> bool:
    # A hybrid suite signs as its classical suite does.
    return suite.classical.suite_id == P256_SHA256_AES256GCM.suite_id


def _low_s(suite: Suite, signature: bytes) -> bytes:
    """The low-s form of an ECDSA signature (other suites: unchanged)."""
    if not _is_ecdsa(suite) or len(signature) != 64:
        return signature
    s = int.from_bytes(signature[32:], "big")
    # s >= n is no signature at all: left as it is, for the verification to refuse.
    if s <= P256_ORDER // 2 or s >= P256_ORDER:
        return signature
    return signature[:32] + (P256_ORDER - s).to_bytes(32, "big")


# A valid identity encoding ends with its DH-key signature: a 64-byte string (header 0x58 0x40).
_SIGNATURE_FIELD = b"\x58\x40"
_SIGNATURE_FIELD_LEN = 2 + 64


def identity_keys(encoding: bytes) -> bytes:
    """What names an identity in a valid identity encoding: everything but its DH-key signature.

    The owner of a P-256 identity can sign its DH key again (ECDSA is randomised; nothing
    enforces RFC 6979), so one identity has many valid low-s encodings that differ only in that
    last field. Wherever identities are compared as bytes (roster membership), compare these.
    The encoding must be one `Identity.from_bytes` accepted (`UsageError` otherwise)."""
    if len(encoding) <= _SIGNATURE_FIELD_LEN or (
            encoding[-_SIGNATURE_FIELD_LEN:-64] != _SIGNATURE_FIELD):
        raise UsageError("not an identity encoding")
    return encoding[:-_SIGNATURE_FIELD_LEN]


def signature_input(suite: Suite, label: bytes, content: bytes) -> bytes:
    """What an identity key signs: prefix ‖ uint16(suite) ‖ len8(label) ‖ label ‖ content."""
    if not label or len(label) > 255:
        raise UsageError("a signature label must be 1..255 bytes")
    return (
        LABEL_IDENTITY_SIGNATURE
        + suite.suite_id.to_bytes(2, "big")
        + bytes([len(label)])
        + label
        + content
    )


def _check_id(prekey_id: int, what: str) -> None:
    if type(prekey_id) is not int or not 0 <= prekey_id <= MAX_PREKEY_ID:
        raise UsageError(f"{what} must be an integer in [0, 2^32-1]")


def _suite_of(value: cbor.CborValue, what: str, expected: Suite | None) -> Suite:
    suite = suite_by_id(cbor.as_int(value, what, maximum=0xFFFF))
    if expected is not None and suite.suite_id != expected.suite_id:
        raise ProtocolError(
            f"{what}: suite 0x{suite.suite_id:04x} where 0x{expected.suite_id:04x} was expected"
        )
    return suite


# --- Public identity ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Identity:
    """A party's public identity: signing key and the DH identity key it signed.

    Valid by construction: the DH key's signature is verified in `__post_init__`. The encoding
    is unique: an ECDSA signature must be in low-s form (`DecodeError` otherwise), since its
    high-s twin would verify too. Equality and hashing compare the suite and the two public keys
    only, so even two valid signatures (which only the owner could make) are one identity.
    """

    suite: Suite
    signing_key: VerifyingKey
    dh_key: DhPublicKey
    dh_key_signature: bytes

    def __post_init__(self) -> None:
        if _low_s(self.suite, self.dh_key_signature) != self.dh_key_signature:
            raise DecodeError("identity: the DH key signature is not in low-s form (an ECDSA "
                              "signature has a second encoding; only the low-s one is valid)")
        self.signing_key.verify(
            self.dh_key_signature,
            signature_input(self.suite, LABEL_IDENTITY_DH_KEY, self._dh_key_content()),
        )

    def _dh_key_content(self) -> bytes:
        return cbor.encode([self.signing_key.to_bytes(), self.dh_key.to_bytes()])

    def verify(self, label: bytes, content: bytes, signature: bytes) -> None:
        """Check a signature this identity made over `content` with a caller label (one of
        `CALLER_SIGNATURE_LABELS`: the group layer's). Raises `InvalidSignature`."""
        if label not in CALLER_SIGNATURE_LABELS:
            raise UsageError("not a label callers may verify identity signatures with")
        self.signing_key.verify(signature, signature_input(self.suite, label, content))

    def to_bytes(self) -> bytes:
        return self._encoded

    @cached_property
    def _encoded(self) -> bytes:
        return cbor.encode([IDENTITY_VERSION, self.suite.suite_id, self.signing_key.to_bytes(),
                            self.dh_key.to_bytes(), self.dh_key_signature])

    @classmethod
    def from_bytes(cls, data: bytes, suite: Suite | None = None) -> Identity:
        """Decode, validate both keys and verify the DH key's signature.

        `suite`, when given, is the suite the identity must belong to (`ProtocolError` if not).
        """
        fields = cbor.as_list(cbor.decode(data, max_size=512, max_items=8), "identity", 5)
        if cbor.as_int(fields[0], "identity version") != IDENTITY_VERSION:
            raise DecodeError("identity: unknown version")
        s = _suite_of(fields[1], "identity suite", suite)
        return cls._from_fields(s, fields[2], fields[3], fields[4])

    @classmethod
    def _from_fields(cls, suite: Suite, sig_pub: cbor.CborValue, dh_pub: cbor.CborValue,
                     dh_sig: cbor.CborValue) -> Identity:
        signing = suite.verifying_from_bytes(
            cbor.as_bytes(sig_pub, "identity signing key", suite.sign_public_len))
        dh = suite.dh_public_from_bytes(
            cbor.as_bytes(dh_pub, "identity DH key", suite.dh_public_len))
        signature = cbor.as_bytes(dh_sig, "identity DH key signature", suite.signature_len)
        return cls(suite, signing, dh, signature)

    @cached_property
    def fingerprint(self) -> bytes:
        """This identity's half of the safety number: an iterated hash of both public keys."""
        keys = self.signing_key.to_bytes() + self.dh_key.to_bytes()
        digest = self.suite.hash(
            bytes([len(LABEL_IDENTITY_FINGERPRINT)]) + LABEL_IDENTITY_FINGERPRINT
            + self.suite.suite_id.to_bytes(2, "big") + keys
        )
        for _ in range(FINGERPRINT_ITERATIONS - 1):
            digest = self.suite.hash(digest + keys)
        return digest[:FINGERPRINT_LEN]

    @cached_property
    def _keys(self) -> bytes:
        """What identifies the identity: suite and both public keys, not the signature."""
        return (self.suite.suite_id.to_bytes(2, "big") + self.signing_key.to_bytes()
                + self.dh_key.to_bytes())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Identity) and hmac.compare_digest(self._keys, other._keys)

    def __hash__(self) -> int:
        return hash(self._keys)

    def __repr__(self) -> str:
        return f"Identity({self.suite.name}, {self.signing_key.to_bytes().hex()[:16]}…)"


# --- Safety numbers ---------------------------------------------------------------------------


def _digits(fingerprint: bytes) -> str:
    # Six 5-byte chunks, each reduced to five decimal digits (bias ~2^-23 per chunk, harmless).
    return "".join(
        f"{int.from_bytes(fingerprint[i:i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5)
    )


@dataclass(frozen=True)
class SafetyNumber:
    """What two parties compare out of band; the same on both sides (order-independent).

    `digits` is 60 decimal digits for reading aloud; `fingerprint` is the raw value for a QR code:
    uint8(version) ‖ uint16(suite) ‖ min(fp_a, fp_b) ‖ max(fp_a, fp_b).
    """

    digits: str
    fingerprint: bytes

    def formatted(self) -> str:
        """Twelve groups of five digits, as shown to users."""
        return " ".join(self.digits[i:i + 5] for i in range(0, len(self.digits), 5))

    def matches(self, scanned: bytes) -> bool:
        """Compare with a scanned fingerprint in constant time."""
        return hmac.compare_digest(self.fingerprint, scanned)


def safety_number(a: Identity, b: Identity) -> SafetyNumber:
    if a.suite.suite_id != b.suite.suite_id:
        raise UsageError("safety numbers compare identities of one suite")
    low, high = sorted((a.fingerprint, b.fingerprint))
    digits = "".join(sorted((_digits(a.fingerprint), _digits(b.fingerprint))))
    raw = bytes([SAFETY_NUMBER_VERSION]) + a.suite.suite_id.to_bytes(2, "big") + low + high
    return SafetyNumber(digits, raw)


# --- Identity key pair (secret) ----------------------------------------------------------------


class IdentityKeyPair:
    """An identity's secrets. Immutable; `public` is the `Identity` to publish."""

    __slots__ = ("_dh_key", "_public", "_signing_key", "suite")

    def __init__(self, suite: Suite, signing_key: SigningKey, dh_key: DhPrivateKey,
                 dh_key_signature: bytes | None = None) -> None:
        self.suite = suite
        self._signing_key = signing_key
        self._dh_key = dh_key
        if dh_key_signature is None:
            content = cbor.encode([signing_key.public_key().to_bytes(),
                                   dh_key.public_key().to_bytes()])
            dh_key_signature = signing_key.sign(
                signature_input(suite, LABEL_IDENTITY_DH_KEY, content))
        # Our own signature in its one valid form (also for a key pair saved before low-s was
        # required: its public encoding becomes the canonical one, with the same keys).
        dh_key_signature = _low_s(suite, dh_key_signature)
        # Identity() verifies the signature, so a corrupt saved state cannot load.
        self._public = Identity(suite, signing_key.public_key(), dh_key.public_key(),
                                dh_key_signature)

    @classmethod
    def generate(cls, suite: Suite, rng: RandomSource = system_random) -> IdentityKeyPair:
        return cls(suite, suite.generate_signing(rng), suite.generate_dh(rng))

    @property
    def public(self) -> Identity:
        return self._public

    @property
    def dh_private_key(self) -> DhPrivateKey:
        """The DH identity key, for the handshake (DH1 / DH2)."""
        return self._dh_key

    def sign(self, label: bytes, content: bytes) -> bytes:
        """Sign `content` under a caller label (one of `CALLER_SIGNATURE_LABELS`: the group
        layer's); other labels belong to this module."""
        if label not in CALLER_SIGNATURE_LABELS:
            raise UsageError("identity keys sign only the group layer's labels for callers")
        return self._signing_key.sign(signature_input(self.suite, label, content))

    def sign_prekey(self, prekey_id: int, public_key: DhPublicKey) -> SignedPrekey:
        """Sign a DH prekey as the signed prekey `prekey_id` of this identity."""
        _check_id(prekey_id, "signed prekey id")
        signature = self._sign_internal(
            LABEL_IDENTITY_SIGNED_PREKEY,
            _signed_prekey_content(self._public, prekey_id, public_key))
        return SignedPrekey(prekey_id, public_key, signature)

    def sign_kem_prekey(self, prekey_id: int, public_key: MlKemPublicKey,
                        one_time: bool) -> KemPrekey:
        """Sign an ML-KEM-768 prekey (hybrid suites): the last-resort one of signed prekey
        `prekey_id` (`one_time=False`), or the one-time KEM prekey `prekey_id`."""
        if not self.suite.post_quantum:
            raise UsageError("KEM prekeys belong to hybrid suites only")
        _check_id(prekey_id, "KEM prekey id")
        if not isinstance(public_key, MlKemPublicKey):
            raise UsageError("public_key must be an MlKemPublicKey")
        signature = self._sign_internal(
            _kem_prekey_label(one_time), _kem_prekey_content(self._public, prekey_id, public_key))
        return KemPrekey(prekey_id, public_key, signature, one_time)

    def sign_bundle(self, signed_prekey: SignedPrekey, one_time_prekey: OneTimePrekey | None,
                    kem_prekey: KemPrekey | None = None) -> PrekeyBundle:
        """Sign a bundle of this identity's prekeys (`Account.bundle` is the usual way). A
        hybrid suite's bundle needs its `kem_prekey`; a classical one has none."""
        fields = _bundle_fields(self._public, signed_prekey, one_time_prekey, kem_prekey)
        signature = self._sign_internal(LABEL_IDENTITY_BUNDLE, cbor.encode(fields))
        return PrekeyBundle(self._public, signed_prekey, one_time_prekey, signature, kem_prekey)

    def _sign_internal(self, label: bytes, content: bytes) -> bytes:
        assert label in _INTERNAL_LABELS
        return self._signing_key.sign(signature_input(self.suite, label, content))

    def _state(self) -> list[cbor.CborEncodable]:
        return [self._signing_key.to_bytes(), self._dh_key.to_bytes(),
                self._public.dh_key_signature]

    @classmethod
    def _from_state(cls, suite: Suite, fields: list[cbor.CborValue]) -> IdentityKeyPair:
        sig = suite.signing_from_bytes(
            cbor.as_bytes(fields[0], "identity signing secret", suite.sign_private_len))
        dh = suite.dh_private_from_bytes(
            cbor.as_bytes(fields[1], "identity DH secret", suite.dh_private_len))
        signature = cbor.as_bytes(fields[2], "identity DH key signature", suite.signature_len)
        return cls(suite, sig, dh, signature)

    def to_bytes(self) -> bytes:
        """Versioned CBOR holding secrets: store it like a private key."""
        return cbor.encode([IDENTITY_KEYPAIR_STATE_VERSION, self.suite.suite_id, *self._state()])

    @classmethod
    def from_bytes(cls, data: bytes) -> IdentityKeyPair:
        fields = cbor.as_list(cbor.decode(data, max_size=512, max_items=8),
                              "identity key pair", 5)
        if cbor.as_int(fields[0], "identity key pair version") != IDENTITY_KEYPAIR_STATE_VERSION:
            raise DecodeError("identity key pair: unknown state version")
        return cls._from_state(_suite_of(fields[1], "identity key pair suite", None), fields[2:])

    def __repr__(self) -> str:
        return f"IdentityKeyPair({self._public!r}, <secret>)"


# --- Prekeys and bundles ------------------------------------------------------------------


def _signed_prekey_content(identity: Identity, prekey_id: int, key: DhPublicKey) -> bytes:
    return cbor.encode([identity.signing_key.to_bytes(), prekey_id, key.to_bytes()])


def _kem_prekey_content(identity: Identity, prekey_id: int, key: MlKemPublicKey) -> bytes:
    return cbor.encode([identity.signing_key.to_bytes(), prekey_id, key.to_bytes()])


def _kem_prekey_label(one_time: bool) -> bytes:
    return LABEL_IDENTITY_ONE_TIME_KEM_PREKEY if one_time else LABEL_IDENTITY_LAST_RESORT_KEM_PREKEY


@dataclass(frozen=True)
class SignedPrekey:
    """A medium-term DH prekey and the identity's signature on (identity, id, key)."""

    prekey_id: int
    public_key: DhPublicKey
    signature: bytes

    def verify(self, identity: Identity) -> None:
        identity.signing_key.verify(
            self.signature,
            signature_input(identity.suite, LABEL_IDENTITY_SIGNED_PREKEY,
                            _signed_prekey_content(identity, self.prekey_id, self.public_key)),
        )


@dataclass(frozen=True)
class OneTimePrekey:
    """A single-use DH prekey (signed as part of the bundle that carries it)."""

    prekey_id: int
    public_key: DhPublicKey


@dataclass(frozen=True)
class KemPrekey:
    """A signed ML-KEM-768 prekey of a hybrid suite (PQXDH's PQPK).

    The last-resort one (`one_time=False`) belongs to the signed prekey with the same id and is
    rotated with it; a one-time one has an id of its own counter and is used once. The identity
    signs (identity, id, key) under a label per kind.
    """

    prekey_id: int
    public_key: MlKemPublicKey
    signature: bytes
    one_time: bool

    def verify(self, identity: Identity) -> None:
        identity.signing_key.verify(
            self.signature,
            signature_input(identity.suite, _kem_prekey_label(self.one_time),
                            _kem_prekey_content(identity, self.prekey_id, self.public_key)),
        )

    def __repr__(self) -> str:
        kind = "one-time" if self.one_time else "last-resort"
        return f"KemPrekey({kind} {self.prekey_id}, {self.public_key.to_bytes()[:8].hex()}…)"


def _bundle_fields(identity: Identity, spk: SignedPrekey, opk: OneTimePrekey | None,
                   kem: KemPrekey | None = None) -> list[cbor.CborEncodable]:
    fields: list[cbor.CborEncodable] = [
        BUNDLE_VERSION,
        identity.suite.suite_id,
        identity.signing_key.to_bytes(),
        identity.dh_key.to_bytes(),
        identity.dh_key_signature,
        spk.prekey_id,
        spk.public_key.to_bytes(),
        spk.signature,
        None if opk is None else opk.prekey_id,
        None if opk is None else opk.public_key.to_bytes(),
    ]
    if kem is not None:
        # A last-resort KEM prekey's id is its signed prekey's (field 5): null here.
        fields += [kem.prekey_id if kem.one_time else None, kem.public_key.to_bytes(),
                   kem.signature]
    return fields


def bundle_size_limit(suite: Suite) -> int:
    """The largest bundle encoding `PrekeyBundle.from_bytes` reads in `suite`."""
    return MAX_HYBRID_BUNDLE_SIZE if suite.post_quantum else MAX_BUNDLE_SIZE


def _bundle_field_count(suite: Suite) -> int:
    return 14 if suite.post_quantum else 11


@dataclass(frozen=True)
class PrekeyBundle:
    """What an initiator fetches: identity, signed prekey, optional one-time prekey, all signed;
    in a hybrid suite also a signed ML-KEM-768 prekey (one-time, or the signed prekey's
    last-resort one).

    Valid by construction: `__post_init__` verifies the DH identity key's, the signed prekey's,
    the KEM prekey's and the bundle's signatures, checks that the DH keys are distinct, and that
    a hybrid suite's bundle has its KEM prekey and a classical one has none (`ProtocolError`: a
    hybrid bundle stripped of its KEM prekey is never taken for a classical one).
    """

    identity: Identity
    signed_prekey: SignedPrekey
    one_time_prekey: OneTimePrekey | None
    signature: bytes
    kem_prekey: KemPrekey | None = None

    def __post_init__(self) -> None:
        _check_id(self.signed_prekey.prekey_id, "signed prekey id")
        keys = [self.identity.dh_key.to_bytes(), self.signed_prekey.public_key.to_bytes()]
        if self.one_time_prekey is not None:
            _check_id(self.one_time_prekey.prekey_id, "one-time prekey id")
            keys.append(self.one_time_prekey.public_key.to_bytes())
        if len(set(keys)) != len(keys):
            raise ProtocolError("prekey bundle uses one DH key for two roles")
        kem = self.kem_prekey
        if self.suite.post_quantum and kem is None:
            raise ProtocolError("a hybrid-suite prekey bundle must carry a signed KEM prekey")
        if not self.suite.post_quantum and kem is not None:
            raise ProtocolError("a classical-suite prekey bundle carries no KEM prekey")
        if kem is not None:
            _check_id(kem.prekey_id, "KEM prekey id")
            if not kem.one_time and kem.prekey_id != self.signed_prekey.prekey_id:
                raise ProtocolError("a last-resort KEM prekey must be the bundle's signed "
                                    "prekey's")
        self.signed_prekey.verify(self.identity)
        if kem is not None:
            kem.verify(self.identity)
        self.identity.signing_key.verify(
            self.signature,
            signature_input(self.suite, LABEL_IDENTITY_BUNDLE, self.signed_content()),
        )

    @property
    def suite(self) -> Suite:
        return self.identity.suite

    def _fields(self) -> list[cbor.CborEncodable]:
        return _bundle_fields(self.identity, self.signed_prekey, self.one_time_prekey,
                              self.kem_prekey)

    def signed_content(self) -> bytes:
        """The bundle signature's content: the encoding of every field but the signature."""
        return cbor.encode(self._fields())

    def to_bytes(self) -> bytes:
        return cbor.encode([*self._fields(), self.signature])

    @classmethod
    def from_bytes(cls, data: bytes, suite: Suite | None = None) -> PrekeyBundle:
        """Decode strictly, validate every key, verify every signature.

        Errors: `DecodeError`/`InvalidKey` (malformed, off-curve, low-order, a KEM key failing
        FIPS 203's checks), `UnsupportedError` (unknown suite), `ProtocolError` (not the expected
        `suite`, a key reused, a hybrid suite's bundle without its KEM prekey),
        `InvalidSignature`.
        """
        f = cbor.as_list(cbor.decode(data, max_size=MAX_HYBRID_BUNDLE_SIZE, max_items=16),
                         "prekey bundle")
        if not f:
            raise DecodeError("prekey bundle: empty array")
        if cbor.as_int(f[0], "prekey bundle version") != BUNDLE_VERSION:
            raise DecodeError("prekey bundle: unknown version")
        if len(f) < 2:
            raise DecodeError("prekey bundle: no suite")
        s = _suite_of(f[1], "prekey bundle suite", suite)
        if len(bytes(data)) > bundle_size_limit(s):
            raise LimitExceeded("prekey bundle larger than its suite's bound")
        if s.post_quantum and len(f) == 11:
            raise ProtocolError("a hybrid-suite prekey bundle without its KEM prekey (refused, "
                                "never read as a classical bundle)")
        cbor.as_list(f, "prekey bundle", _bundle_field_count(s))
        # Every length and key is checked before any signature is verified.
        spk_id = cbor.as_int(f[5], "signed prekey id", maximum=MAX_PREKEY_ID)
        spk = s.dh_public_from_bytes(cbor.as_bytes(f[6], "signed prekey", s.dh_public_len))
        spk_sig = cbor.as_bytes(f[7], "signed prekey signature", s.signature_len)
        if (f[8] is None) != (f[9] is None):
            raise DecodeError("prekey bundle: one-time prekey id and key must both be present")
        opk = None
        if f[8] is not None:
            opk = OneTimePrekey(
                cbor.as_int(f[8], "one-time prekey id", maximum=MAX_PREKEY_ID),
                s.dh_public_from_bytes(cbor.as_bytes(f[9], "one-time prekey", s.dh_public_len)),
            )
        kem = None
        if s.post_quantum:
            kem_id = (spk_id if f[10] is None
                      else cbor.as_int(f[10], "one-time KEM prekey id", maximum=MAX_PREKEY_ID))
            kem = KemPrekey(
                kem_id,
                MlKemPublicKey.from_bytes(
                    cbor.as_bytes(f[11], "KEM prekey", MLKEM768_PUBLIC_KEY_LEN)),
                cbor.as_bytes(f[12], "KEM prekey signature", s.signature_len),
                f[10] is not None)
        signature = cbor.as_bytes(f[-1], "prekey bundle signature", s.signature_len)
        identity = Identity._from_fields(s, f[2], f[3], f[4])
        return cls(identity, SignedPrekey(spk_id, spk, spk_sig), opk, signature, kem)


# --- Account: the private side of the prekeys --------------------------------------------------


@dataclass
class _SignedPrekeySecret:
    prekey_id: int
    private_key: DhPrivateKey
    signature: bytes
    # Ordered set of replay tags of initial messages that used no one-time prekey (oldest first).
    replay_tags: dict[bytes, None] = field(default_factory=dict)
    evicted: bool = False
    # Hybrid suites: the last-resort KEM prekey paired with this signed prekey, and its signature.
    kem_key: MlKemPrivateKey | None = None
    kem_signature: bytes = b""

    def public(self) -> SignedPrekey:
        return SignedPrekey(self.prekey_id, self.private_key.public_key(), self.signature)

    def public_kem(self) -> KemPrekey:
        if self.kem_key is None:
            raise UsageError("KEM prekeys belong to hybrid suites only")
        return KemPrekey(self.prekey_id, self.kem_key.public_key(), self.kem_signature, False)


@dataclass
class _OneTimeKemSecret:
    seed: bytes = field(repr=False)
    signature: bytes
    # Expanded on first use: expanding a thousand seeds would make every account load ~0.5 s.
    key: MlKemPrivateKey | None = field(default=None, repr=False)

    @property
    def private_key(self) -> MlKemPrivateKey:
        if self.key is None:
            self.key = MlKemPrivateKey.from_seed(self.seed)
        return self.key

    def public(self, prekey_id: int) -> KemPrekey:
        return KemPrekey(prekey_id, self.private_key.public_key(), self.signature, True)


class Account:
    """An identity's private prekey store (mutable; one per device).

    Holds the identity key pair, the signed prekeys (current last), the unused one-time prekeys
    and, per signed prekey, the replay cache of initial messages that used no one-time prekey.
    In a hybrid suite each signed prekey has its last-resort ML-KEM prekey (made, kept and
    retired with it) and the account also holds unused one-time KEM prekeys.
    Ids are allocated in increasing order, so an id below the next one that is no longer held was
    consumed (one-time) or retired (signed). Save `to_bytes()` durably after every change and
    before publishing anything it returned.
    """

    __slots__ = ("_identity", "_next_one_time_id", "_next_one_time_kem_id", "_next_signed_id",
                 "_one_time", "_one_time_kem", "_signed", "suite")

    def __init__(self, identity: IdentityKeyPair) -> None:
        self.suite = identity.suite
        self._identity = identity
        self._signed: dict[int, _SignedPrekeySecret] = {}
        self._next_signed_id = 0
        self._one_time: dict[int, DhPrivateKey] = {}
        self._next_one_time_id = 0
        self._one_time_kem: dict[int, _OneTimeKemSecret] = {}
        self._next_one_time_kem_id = 0

    @classmethod
    def generate(cls, suite: Suite, rng: RandomSource = system_random) -> Account:
        """A new identity with one signed prekey and no one-time prekeys."""
        account = cls(IdentityKeyPair.generate(suite, rng))
        account.rotate_signed_prekey(rng)
        return account

    @classmethod
    def from_identity(cls, identity: IdentityKeyPair,
                      rng: RandomSource = system_random) -> Account:
        account = cls(identity)
        account.rotate_signed_prekey(rng)
        return account

    # --- Public view ---------------------------------------------------------------------

    @property
    def identity(self) -> IdentityKeyPair:
        return self._identity

    @property
    def public_identity(self) -> Identity:
        return self._identity.public

    @property
    def signed_prekey(self) -> SignedPrekey:
        """The current signed prekey (the one new bundles carry)."""
        return self._current().public()

    @property
    def last_resort_kem_prekey(self) -> KemPrekey:
        """The current signed prekey's last-resort KEM prekey (hybrid suites; `UsageError`
        for a classical one)."""
        return self._current().public_kem()

    @property
    def one_time_prekey_count(self) -> int:
        return len(self._one_time)

    @property
    def one_time_kem_prekey_count(self) -> int:
        return len(self._one_time_kem)

    @property
    def signed_prekey_rotation_due(self) -> bool:
        """True once a replay cache has evicted an entry: rotate the signed prekey (and retire
        old ones) to close the window in which an evicted initial message could be replayed."""
        return any(spk.evicted for spk in self._signed.values())

    # --- Prekey management -------------------------------------------------------------

    def rotate_signed_prekey(self, rng: RandomSource = system_random) -> SignedPrekey:
        """Make a new current signed prekey (in a hybrid suite with its last-resort KEM
        prekey); the oldest beyond `MAX_SIGNED_PREKEYS` is retired with its replay cache (and
        KEM prekey). The caller decides when (the core reads no clock)."""
        if self._next_signed_id > MAX_PREKEY_ID:
            raise UsageError("signed prekey ids exhausted")
        key = self.suite.generate_dh(rng)
        prekey_id = self._next_signed_id
        signed = self._identity.sign_prekey(prekey_id, key.public_key())
        secret = _SignedPrekeySecret(prekey_id, key, signed.signature)
        if self.suite.post_quantum:
            kem_key = MlKemPrivateKey.generate(rng)
            secret.kem_key = kem_key
            secret.kem_signature = self._identity.sign_kem_prekey(
                prekey_id, kem_key.public_key(), one_time=False).signature
        self._signed[prekey_id] = secret
        self._next_signed_id += 1
        while len(self._signed) > MAX_SIGNED_PREKEYS:
            del self._signed[next(iter(self._signed))]
        return self._signed[prekey_id].public()

    def retire_old_signed_prekeys(self) -> None:
        """Keep only the current signed prekey (initial messages to older ones then fail)."""
        current = self._current()
        self._signed = {current.prekey_id: current}

    def generate_one_time_prekeys(self, count: int,
                                  rng: RandomSource = system_random) -> list[OneTimePrekey]:
        self._check_one_time_room(count, len(self._one_time), MAX_ONE_TIME_PREKEYS,
                                  self._next_one_time_id, "one-time prekeys")
        out = []
        for _ in range(count):
            key = self.suite.generate_dh(rng)
            self._one_time[self._next_one_time_id] = key
            out.append(OneTimePrekey(self._next_one_time_id, key.public_key()))
            self._next_one_time_id += 1
        return out

    def generate_one_time_kem_prekeys(self, count: int,
                                      rng: RandomSource = system_random) -> list[KemPrekey]:
        """`count` new signed one-time ML-KEM-768 prekeys (hybrid suites only)."""
        if not self.suite.post_quantum:
            raise UsageError("KEM prekeys belong to hybrid suites only")
        self._check_one_time_room(count, len(self._one_time_kem), MAX_ONE_TIME_KEM_PREKEYS,
                                  self._next_one_time_kem_id, "one-time KEM prekeys")
        out = []
        for _ in range(count):
            key = MlKemPrivateKey.generate(rng)
            prekey_id = self._next_one_time_kem_id
            signed = self._identity.sign_kem_prekey(prekey_id, key.public_key(), one_time=True)
            self._one_time_kem[prekey_id] = _OneTimeKemSecret(key.to_bytes(), signed.signature,
                                                              key)
            out.append(signed)
            self._next_one_time_kem_id += 1
        return out

    @staticmethod
    def _check_one_time_room(count: int, held: int, limit: int, next_id: int,
                             what: str) -> None:
        if type(count) is not int or count < 0:
            raise UsageError("count must be a non-negative integer")
        if held + count > limit:
            raise UsageError(f"an account holds at most {limit} {what}")
        if next_id + count - 1 > MAX_PREKEY_ID:
            raise UsageError(f"{what}: ids exhausted")

    def bundle(self, one_time_prekey: OneTimePrekey | None = None,
               kem_prekey: KemPrekey | None = None) -> PrekeyBundle:
        """A signed bundle with the current signed prekey and the given unused one-time prekey
        (None: the last-resort bundle, whose handshakes go through the replay cache). In a hybrid
        suite it also carries `kem_prekey`, an unused one-time KEM prekey, or by default the
        current last-resort KEM prekey; a classical suite takes none."""
        if one_time_prekey is not None:
            held = self._one_time.get(one_time_prekey.prekey_id)
            if held is None or held.public_key() != one_time_prekey.public_key:
                raise UsageError("that one-time prekey is not held by this account")
        if not self.suite.post_quantum:
            if kem_prekey is not None:
                raise UsageError("a classical suite's bundle carries no KEM prekey")
            return self._identity.sign_bundle(self.signed_prekey, one_time_prekey)
        if kem_prekey is None:
            kem_prekey = self.last_resort_kem_prekey
        elif kem_prekey.one_time:
            held_kem = self._one_time_kem.get(kem_prekey.prekey_id)
            if held_kem is None or (held_kem.private_key.public_key().to_bytes()
                                    != kem_prekey.public_key.to_bytes()):
                raise UsageError("that one-time KEM prekey is not held by this account")
            kem_prekey = held_kem.public(kem_prekey.prekey_id)
        elif (kem_prekey.prekey_id != self._current().prekey_id
              or kem_prekey.public_key.to_bytes()
              != self.last_resort_kem_prekey.public_key.to_bytes()):
            raise UsageError("a last-resort KEM prekey in a new bundle must be the current one")
        return self._identity.sign_bundle(self.signed_prekey, one_time_prekey, kem_prekey)

    def new_bundles(self, count: int, rng: RandomSource = system_random) -> list[PrekeyBundle]:
        """`count` fresh one-time prekeys, each in its own signed bundle, for upload. In a
        hybrid suite each bundle also has a fresh one-time KEM prekey."""
        if not self.suite.post_quantum:
            return [self.bundle(opk) for opk in self.generate_one_time_prekeys(count, rng)]
        # Both limits are checked before either kind of key is made.
        self._check_one_time_room(count, len(self._one_time_kem), MAX_ONE_TIME_KEM_PREKEYS,
                                  self._next_one_time_kem_id, "one-time KEM prekeys")
        opks = self.generate_one_time_prekeys(count, rng)
        kems = self.generate_one_time_kem_prekeys(count, rng)
        return [self.bundle(opk, kem) for opk, kem in zip(opks, kems, strict=True)]

    # --- Used by the handshake (responder side) ----------------------------------------

    def _current(self) -> _SignedPrekeySecret:
        return self._signed[next(reversed(self._signed))]

    def _signed_prekey_secret(self, prekey_id: int) -> DhPrivateKey:
        """Cheap lookup, no DH. ProtocolError for an unknown or retired id."""
        return self._signed_prekey_entry(prekey_id).private_key

    def _signed_prekey_entry(self, prekey_id: int) -> _SignedPrekeySecret:
        spk = self._signed.get(prekey_id)
        if spk is None:
            if prekey_id < self._next_signed_id:
                raise ProtocolError("initial message uses a retired signed prekey")
            raise ProtocolError("initial message uses an unknown signed prekey")
        return spk

    def _one_time_prekey_secret(self, prekey_id: int) -> DhPrivateKey:
        """Cheap lookup, no DH. ReplayError for a consumed id, ProtocolError for an unknown one."""
        key = self._one_time.get(prekey_id)
        if key is None:
            if prekey_id < self._next_one_time_id:
                raise ReplayError("one-time prekey was already used")
            raise ProtocolError("initial message uses an unknown one-time prekey")
        return key

    def _kem_prekey_secret(self, signed_prekey_id: int,
                           one_time_kem_id: int | None) -> tuple[MlKemPrivateKey, KemPrekey]:
        """The KEM prekey an initial message names: the one-time one `one_time_kem_id` (consumed:
        ReplayError; unknown: ProtocolError) or, for None, the signed prekey's last-resort one."""
        if one_time_kem_id is None:
            spk = self._signed_prekey_entry(signed_prekey_id)
            if spk.kem_key is None:
                raise ProtocolError("this account's suite has no KEM prekeys")
            return spk.kem_key, spk.public_kem()
        held = self._one_time_kem.get(one_time_kem_id)
        if held is None:
            if one_time_kem_id < self._next_one_time_kem_id:
                raise ReplayError("one-time KEM prekey was already used")
            raise ProtocolError("initial message uses an unknown one-time KEM prekey")
        return held.private_key, held.public(one_time_kem_id)

    def _check_replay(self, signed_prekey_id: int, tag: bytes) -> None:
        spk = self._signed.get(signed_prekey_id)
        if spk is not None and tag in spk.replay_tags:
            raise ReplayError("initial message was already processed")

    def _consume(self, signed_prekey_id: int, one_time_prekey_id: int | None,
                 replay_tag: bytes, one_time_kem_id: int | None = None) -> None:
        """Commit an accepted initial message: all checks first, then the change. A message that
        used a one-time prekey of either kind is consumed with it; any other goes to the replay
        cache."""
        spk = self._signed.get(signed_prekey_id)
        if spk is None:
            raise ProtocolError("signed prekey was retired before the handshake completed")
        if one_time_prekey_id is not None:
            self._one_time_prekey_secret(one_time_prekey_id)
        if one_time_kem_id is not None:
            self._kem_prekey_secret(signed_prekey_id, one_time_kem_id)
        if one_time_prekey_id is None and one_time_kem_id is None:
            self._check_replay(signed_prekey_id, replay_tag)
        # Checks done: now the change.
        if one_time_prekey_id is not None:
            del self._one_time[one_time_prekey_id]
        if one_time_kem_id is not None:
            del self._one_time_kem[one_time_kem_id]
        if one_time_prekey_id is not None or one_time_kem_id is not None:
            return
        spk.replay_tags[replay_tag] = None
        if len(spk.replay_tags) > REPLAY_CACHE_CAPACITY:
            del spk.replay_tags[next(iter(spk.replay_tags))]
            spk.evicted = True

    # --- Serialization -----------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Versioned CBOR holding every secret of the account (a hybrid suite's adds its KEM
        prekeys: each signed prekey's last-resort one, then the one-time ones)."""
        hybrid = self.suite.post_quantum
        signed: list[cbor.CborEncodable] = []
        for s in self._signed.values():
            entry: list[cbor.CborEncodable] = [s.prekey_id, s.private_key.to_bytes(), s.signature,
                                               s.evicted, list(s.replay_tags)]
            if s.kem_key is not None:
                entry += [s.kem_key.to_bytes(), s.kem_signature]
            signed.append(entry)
        fields: list[cbor.CborEncodable] = [
            ACCOUNT_STATE_VERSION,
            self.suite.suite_id,
            self._identity._state(),
            self._next_signed_id,
            signed,
            self._next_one_time_id,
            [[i, k.to_bytes()] for i, k in self._one_time.items()],
        ]
        if hybrid:
            fields += [self._next_one_time_kem_id,
                       [[i, k.seed, k.signature] for i, k in self._one_time_kem.items()]]
        return cbor.encode(fields)

    @classmethod
    def from_bytes(cls, data: bytes) -> Account:
        f = cbor.as_list(cbor.decode(data), "account")
        if not f or cbor.as_int(f[0], "account version") != ACCOUNT_STATE_VERSION:
            raise DecodeError("account: unknown state version")
        if len(f) < 2:
            raise DecodeError("account: no suite")
        suite = _suite_of(f[1], "account suite", None)
        hybrid = suite.post_quantum
        cbor.as_list(f, "account", 9 if hybrid else 7)
        account = cls(IdentityKeyPair._from_state(
            suite, cbor.as_list(f[2], "account identity", 3)))
        account._next_signed_id = cbor.as_int(f[3], "next signed prekey id",
                                              maximum=MAX_PREKEY_ID + 1)
        signed = cbor.as_list(f[4], "signed prekeys")
        if not 1 <= len(signed) <= MAX_SIGNED_PREKEYS:
            raise DecodeError(f"account: 1..{MAX_SIGNED_PREKEYS} signed prekeys expected")
        previous = -1
        for item in signed:
            s = cbor.as_list(item, "signed prekey", 7 if hybrid else 5)
            prekey_id = cbor.as_int(s[0], "signed prekey id",
                                    maximum=account._next_signed_id - 1)
            if prekey_id <= previous:
                raise DecodeError("account: signed prekeys out of order")
            previous = prekey_id
            key = suite.dh_private_from_bytes(
                cbor.as_bytes(s[1], "signed prekey secret", suite.dh_private_len))
            secret = _SignedPrekeySecret(
                prekey_id, key,
                cbor.as_bytes(s[2], "signed prekey signature", suite.signature_len),
                evicted=cbor.as_bool(s[3], "replay cache evicted"),
            )
            secret.public().verify(account.public_identity)
            if hybrid:
                secret.kem_key = MlKemPrivateKey.from_seed(
                    cbor.as_bytes(s[5], "last-resort KEM prekey secret", MLKEM768_SEED_LEN))
                secret.kem_signature = cbor.as_bytes(s[6], "last-resort KEM prekey signature",
                                                     suite.signature_len)
                secret.public_kem().verify(account.public_identity)
            tags = cbor.as_list(s[4], "replay cache")
            if len(tags) > REPLAY_CACHE_CAPACITY:
                raise LimitExceeded("account: replay cache larger than its capacity")
            secret.replay_tags = dict.fromkeys(
                cbor.as_bytes(t, "replay tag", REPLAY_TAG_LEN) for t in tags)
            if len(secret.replay_tags) != len(tags):
                raise DecodeError("account: duplicate replay tag")
            account._signed[prekey_id] = secret
        account._next_one_time_id = cbor.as_int(f[5], "next one-time prekey id",
                                                maximum=MAX_PREKEY_ID + 1)
        one_time = cbor.as_list(f[6], "one-time prekeys")
        if len(one_time) > MAX_ONE_TIME_PREKEYS:
            raise LimitExceeded("account: too many one-time prekeys")
        previous = -1
        for item in one_time:
            o = cbor.as_list(item, "one-time prekey", 2)
            prekey_id = cbor.as_int(o[0], "one-time prekey id",
                                    maximum=account._next_one_time_id - 1)
            if prekey_id <= previous:
                raise DecodeError("account: one-time prekeys out of order")
            previous = prekey_id
            account._one_time[prekey_id] = suite.dh_private_from_bytes(
                cbor.as_bytes(o[1], "one-time prekey secret", suite.dh_private_len))
        if hybrid:
            account._load_one_time_kem(f[7], f[8])
        return account

    def _load_one_time_kem(self, next_id: cbor.CborValue, items: cbor.CborValue) -> None:
        # Seeds are expanded, and signatures checked, when a key is first used (a bundle
        # verifies its KEM prekey's signature): doing it for a thousand keys on every load would
        # cost ~0.5 s.
        self._next_one_time_kem_id = cbor.as_int(next_id, "next one-time KEM prekey id",
                                                 maximum=MAX_PREKEY_ID + 1)
        one_time = cbor.as_list(items, "one-time KEM prekeys")
        if len(one_time) > MAX_ONE_TIME_KEM_PREKEYS:
            raise LimitExceeded("account: too many one-time KEM prekeys")
        previous = -1
        for item in one_time:
            o = cbor.as_list(item, "one-time KEM prekey", 3)
            prekey_id = cbor.as_int(o[0], "one-time KEM prekey id",
                                    maximum=self._next_one_time_kem_id - 1)
            if prekey_id <= previous:
                raise DecodeError("account: one-time KEM prekeys out of order")
            previous = prekey_id
            self._one_time_kem[prekey_id] = _OneTimeKemSecret(
                cbor.as_bytes(o[1], "one-time KEM prekey secret", MLKEM768_SEED_LEN),
                cbor.as_bytes(o[2], "one-time KEM prekey signature", self.suite.signature_len))

    def __repr__(self) -> str:
        kem = (f", one-time KEM prekeys={len(self._one_time_kem)}" if self.suite.post_quantum
               else "")
        return (f"Account({self.public_identity!r}, signed prekeys={list(self._signed)}, "
                f"one-time prekeys={len(self._one_time)}{kem}, <secrets>)")
