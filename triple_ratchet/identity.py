"""Identity keys, prekeys, prekey bundles and safety numbers (spec/03-identity.md).

An identity is a signing key plus a DH identity key signed by it: the signing key never does DH
and the DH key never signs (key hygiene). Every signature the identity key makes is over
`signature_input(suite, label, content)` with a label of its own kind, so a signature made for one
purpose can never be presented as another. Public values (`Identity`, `SignedPrekey`,
`OneTimePrekey`, `PrekeyBundle`) are frozen and valid by construction: their constructors verify
every signature, and their decoders validate every key first. Secrets live in `IdentityKeyPair`
and `Account`, whose reprs never show them.
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

# --- Labels (spec/03, "Labels"): one per kind of signature, plus the fingerprint hash. --------

# Prefix of every identity-key signature input; says "this is an identity-key signature".
LABEL_IDENTITY_SIGNATURE = b"triple-ratchet v1 identity signature"
LABEL_IDENTITY_DH_KEY = b"identity: dh identity key"
LABEL_IDENTITY_SIGNED_PREKEY = b"identity: signed prekey"
LABEL_IDENTITY_BUNDLE = b"identity: prekey bundle"
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
                              LABEL_IDENTITY_BUNDLE})
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
# Signed prekeys kept (the current one and older ones still accepting initial messages that were
# sent before a rotation reached the sender). Retiring one also drops its replay cache.
MAX_SIGNED_PREKEYS = 3
# Replay-cache entries per signed prekey (16-byte tags: 32 KiB of state). When full, the oldest
# entry is evicted and `signed_prekey_rotation_due` becomes true: rotate to close the window.
REPLAY_CACHE_CAPACITY = 2048
REPLAY_TAG_LEN = 16

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
    return suite.suite_id == P256_SHA256_AES256GCM.suite_id


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

    def sign_bundle(self, signed_prekey: SignedPrekey,
                    one_time_prekey: OneTimePrekey | None) -> PrekeyBundle:
        """Sign a bundle of this identity's prekeys (`Account.bundle` is the usual way)."""
        fields = _bundle_fields(self._public, signed_prekey, one_time_prekey)
        signature = self._sign_internal(LABEL_IDENTITY_BUNDLE, cbor.encode(fields))
        return PrekeyBundle(self._public, signed_prekey, one_time_prekey, signature)

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


def _bundle_fields(identity: Identity, spk: SignedPrekey,
                   opk: OneTimePrekey | None) -> list[cbor.CborEncodable]:
    return [
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


@dataclass(frozen=True)
class PrekeyBundle:
    """What an initiator fetches: identity, signed prekey, optional one-time prekey, all signed.

    Valid by construction: `__post_init__` verifies the DH identity key's, the signed prekey's and
    the bundle's signatures and checks that the keys are distinct.
    """

    identity: Identity
    signed_prekey: SignedPrekey
    one_time_prekey: OneTimePrekey | None
    signature: bytes

    def __post_init__(self) -> None:
        _check_id(self.signed_prekey.prekey_id, "signed prekey id")
        keys = [self.identity.dh_key.to_bytes(), self.signed_prekey.public_key.to_bytes()]
        if self.one_time_prekey is not None:
            _check_id(self.one_time_prekey.prekey_id, "one-time prekey id")
            keys.append(self.one_time_prekey.public_key.to_bytes())
        if len(set(keys)) != len(keys):
            raise ProtocolError("prekey bundle uses one DH key for two roles")
        self.signed_prekey.verify(self.identity)
        self.identity.signing_key.verify(
            self.signature,
            signature_input(self.suite, LABEL_IDENTITY_BUNDLE, self.signed_content()),
        )

    @property
    def suite(self) -> Suite:
        return self.identity.suite

    def _fields(self) -> list[cbor.CborEncodable]:
        return _bundle_fields(self.identity, self.signed_prekey, self.one_time_prekey)

    def signed_content(self) -> bytes:
        """The bundle signature's content: the encoding of every field but the signature."""
        return cbor.encode(self._fields())

    def to_bytes(self) -> bytes:
        return cbor.encode([*self._fields(), self.signature])

    @classmethod
    def from_bytes(cls, data: bytes, suite: Suite | None = None) -> PrekeyBundle:
        """Decode strictly, validate every key, verify every signature.

        Errors: `DecodeError`/`InvalidKey` (malformed, off-curve, low-order), `UnsupportedError`
        (unknown suite), `ProtocolError` (not the expected `suite`, or a key reused),
        `InvalidSignature`.
        """
        f = cbor.as_list(cbor.decode(data, max_size=1024, max_items=16), "prekey bundle", 11)
        if cbor.as_int(f[0], "prekey bundle version") != BUNDLE_VERSION:
            raise DecodeError("prekey bundle: unknown version")
        s = _suite_of(f[1], "prekey bundle suite", suite)
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
        signature = cbor.as_bytes(f[10], "prekey bundle signature", s.signature_len)
        identity = Identity._from_fields(s, f[2], f[3], f[4])
        return cls(identity, SignedPrekey(spk_id, spk, spk_sig), opk, signature)


# --- Account: the private side of the prekeys --------------------------------------------------


@dataclass
class _SignedPrekeySecret:
    prekey_id: int
    private_key: DhPrivateKey
    signature: bytes
    # Ordered set of replay tags of initial messages that used no one-time prekey (oldest first).
    replay_tags: dict[bytes, None] = field(default_factory=dict)
    evicted: bool = False

    def public(self) -> SignedPrekey:
        return SignedPrekey(self.prekey_id, self.private_key.public_key(), self.signature)


class Account:
    """An identity's private prekey store (mutable; one per device).

    Holds the identity key pair, the signed prekeys (current last), the unused one-time prekeys
    and, per signed prekey, the replay cache of initial messages that used no one-time prekey.
    Ids are allocated in increasing order, so an id below the next one that is no longer held was
    consumed (one-time) or retired (signed). Save `to_bytes()` durably after every change and
    before publishing anything it returned.
    """

    __slots__ = ("_identity", "_next_one_time_id", "_next_signed_id", "_one_time", "_signed",
                 "suite")

    def __init__(self, identity: IdentityKeyPair) -> None:
        self.suite = identity.suite
        self._identity = identity
        self._signed: dict[int, _SignedPrekeySecret] = {}
        self._next_signed_id = 0
        self._one_time: dict[int, DhPrivateKey] = {}
        self._next_one_time_id = 0

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
    def one_time_prekey_count(self) -> int:
        return len(self._one_time)

    @property
    def signed_prekey_rotation_due(self) -> bool:
        """True once a replay cache has evicted an entry: rotate the signed prekey (and retire
        old ones) to close the window in which an evicted initial message could be replayed."""
        return any(spk.evicted for spk in self._signed.values())

    # --- Prekey management -------------------------------------------------------------

    def rotate_signed_prekey(self, rng: RandomSource = system_random) -> SignedPrekey:
        """Make a new current signed prekey; the oldest beyond `MAX_SIGNED_PREKEYS` is retired
        with its replay cache. The caller decides when (the core reads no clock)."""
        if self._next_signed_id > MAX_PREKEY_ID:
            raise UsageError("signed prekey ids exhausted")
        key = self.suite.generate_dh(rng)
        prekey_id = self._next_signed_id
        signed = self._identity.sign_prekey(prekey_id, key.public_key())
        self._signed[prekey_id] = _SignedPrekeySecret(prekey_id, key, signed.signature)
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
        if type(count) is not int or count < 0:
            raise UsageError("count must be a non-negative integer")
        if len(self._one_time) + count > MAX_ONE_TIME_PREKEYS:
            raise UsageError(f"an account holds at most {MAX_ONE_TIME_PREKEYS} one-time prekeys")
        if self._next_one_time_id + count - 1 > MAX_PREKEY_ID:
            raise UsageError("one-time prekey ids exhausted")
        out = []
        for _ in range(count):
            key = self.suite.generate_dh(rng)
            self._one_time[self._next_one_time_id] = key
            out.append(OneTimePrekey(self._next_one_time_id, key.public_key()))
            self._next_one_time_id += 1
        return out

    def bundle(self, one_time_prekey: OneTimePrekey | None = None) -> PrekeyBundle:
        """A signed bundle with the current signed prekey and the given unused one-time prekey
        (None: the last-resort bundle, whose handshakes go through the replay cache)."""
        if one_time_prekey is not None:
            held = self._one_time.get(one_time_prekey.prekey_id)
            if held is None or held.public_key() != one_time_prekey.public_key:
                raise UsageError("that one-time prekey is not held by this account")
        return self._identity.sign_bundle(self.signed_prekey, one_time_prekey)

    def new_bundles(self, count: int, rng: RandomSource = system_random) -> list[PrekeyBundle]:
        """`count` fresh one-time prekeys, each in its own signed bundle, for upload."""
        return [self.bundle(opk) for opk in self.generate_one_time_prekeys(count, rng)]

    # --- Used by the handshake (responder side) ----------------------------------------

    def _current(self) -> _SignedPrekeySecret:
        return self._signed[next(reversed(self._signed))]

    def _signed_prekey_secret(self, prekey_id: int) -> DhPrivateKey:
        """Cheap lookup, no DH. ProtocolError for an unknown or retired id."""
        spk = self._signed.get(prekey_id)
        if spk is None:
            if prekey_id < self._next_signed_id:
                raise ProtocolError("initial message uses a retired signed prekey")
            raise ProtocolError("initial message uses an unknown signed prekey")
        return spk.private_key

    def _one_time_prekey_secret(self, prekey_id: int) -> DhPrivateKey:
        """Cheap lookup, no DH. ReplayError for a consumed id, ProtocolError for an unknown one."""
        key = self._one_time.get(prekey_id)
        if key is None:
            if prekey_id < self._next_one_time_id:
                raise ReplayError("one-time prekey was already used")
            raise ProtocolError("initial message uses an unknown one-time prekey")
        return key

    def _check_replay(self, signed_prekey_id: int, tag: bytes) -> None:
        spk = self._signed.get(signed_prekey_id)
        if spk is not None and tag in spk.replay_tags:
            raise ReplayError("initial message was already processed")

    def _consume(self, signed_prekey_id: int, one_time_prekey_id: int | None,
                 replay_tag: bytes) -> None:
        """Commit an accepted initial message: all checks first, then the change."""
        spk = self._signed.get(signed_prekey_id)
        if spk is None:
            raise ProtocolError("signed prekey was retired before the handshake completed")
        if one_time_prekey_id is not None:
            self._one_time_prekey_secret(one_time_prekey_id)
            del self._one_time[one_time_prekey_id]
            return
        self._check_replay(signed_prekey_id, replay_tag)
        spk.replay_tags[replay_tag] = None
        if len(spk.replay_tags) > REPLAY_CACHE_CAPACITY:
            del spk.replay_tags[next(iter(spk.replay_tags))]
            spk.evicted = True

    # --- Serialization -----------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Versioned CBOR holding every secret of the account."""
        return cbor.encode([
            ACCOUNT_STATE_VERSION,
            self.suite.suite_id,
            self._identity._state(),
            self._next_signed_id,
            [[s.prekey_id, s.private_key.to_bytes(), s.signature, s.evicted, list(s.replay_tags)]
             for s in self._signed.values()],
            self._next_one_time_id,
            [[i, k.to_bytes()] for i, k in self._one_time.items()],
        ])

    @classmethod
    def from_bytes(cls, data: bytes) -> Account:
        f = cbor.as_list(cbor.decode(data), "account", 7)
        if cbor.as_int(f[0], "account version") != ACCOUNT_STATE_VERSION:
            raise DecodeError("account: unknown state version")
        suite = _suite_of(f[1], "account suite", None)
        account = cls(IdentityKeyPair._from_state(
            suite, cbor.as_list(f[2], "account identity", 3)))
        account._next_signed_id = cbor.as_int(f[3], "next signed prekey id",
                                              maximum=MAX_PREKEY_ID + 1)
        signed = cbor.as_list(f[4], "signed prekeys")
        if not 1 <= len(signed) <= MAX_SIGNED_PREKEYS:
            raise DecodeError(f"account: 1..{MAX_SIGNED_PREKEYS} signed prekeys expected")
        previous = -1
        for item in signed:
            s = cbor.as_list(item, "signed prekey", 5)
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
        return account

    def __repr__(self) -> str:
        return (f"Account({self.public_identity!r}, signed prekeys={list(self._signed)}, "
                f"one-time prekeys={len(self._one_time)}, <secrets>)")

