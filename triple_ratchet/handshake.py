"""The X3DH-style handshake with a sealed initiator identity (spec/04-handshake.md).

Signal's X3DH with these choices: the DH identity key is separate from the signing key; the
initiator's identity travels sealed (AEAD under a key from DH(EK_A, SPK_B) and the responder's
identity), so a relay cannot see who starts a session; the suite, both identities and every
public value of the exchange are bound into the shared secret and the associated data; and
initial messages that use no one-time prekey go through a replay cache.

In a hybrid suite (`suite.post_quantum`) it is PQXDH-shaped: the bundle carries a signed
ML-KEM-768 prekey, the initiator encapsulates to it, and the KEM shared secret enters the key
derivation beside the DH outputs (and the sealing key), with the KEM prekey, its id and the
ciphertext bound into the transcript and the header; so an attacker who later breaks every DH
key still lacks the root key.

This module stops at the key material: the caller (`pairwise`) runs the Double Ratchet with
`shared_secret` and `associated_data` and puts its first message into the initial message. The
responder side is two-phase: `accept` only computes (the account is untouched), and
`AcceptedHandshake.commit` consumes the one-time prekey or records the replay tag once the first
ratchet message has decrypted, so any failure leaves the prekey store unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from triple_ratchet import cbor
from triple_ratchet.errors import (
    AuthenticationError,
    DecodeError,
    LimitExceeded,
    ProtocolError,
    UnsupportedError,
    UsageError,
)
from triple_ratchet.identity import (
    IDENTITY_VERSION,
    MAX_PREKEY_ID,
    REPLAY_TAG_LEN,
    Account,
    Identity,
    IdentityKeyPair,
    PrekeyBundle,
)
from triple_ratchet.random import DeterministicRandom, RandomSource, system_random
from triple_ratchet.suites import DhPrivateKey, DhPublicKey, Suite, suite_by_id
from triple_ratchet.suites.mlkem import MLKEM768_CIPHERTEXT_LEN

LABEL_HANDSHAKE_SHARED_SECRET = b"handshake: shared secret"
LABEL_HANDSHAKE_SEAL = b"handshake: sealed identity"
LABEL_HANDSHAKE_REPLAY = b"handshake: replay tag"

# Wire type of the initial message (first element of its CBOR array); pairwise session messages
# use the next one (see pairwise.py).
MSG_TYPE_INITIAL = 0x10
SHARED_SECRET_LEN = 32
# The encapsulation randomness `m` of ML-KEM-768 (FIPS 203), drawn from the initiator's RNG.
KEM_RANDOMNESS_LEN = 32
# The largest initial message: the CBOR layer's default bound, room for a welcome to a big group.
MAX_INITIAL_MESSAGE_SIZE = 1 << 20


def sealed_identity_length(suite: Suite) -> int:
    """Exact size of the sealed identity in `suite`: identity encodings have fixed sizes."""
    plain = cbor.encode([IDENTITY_VERSION, suite.suite_id, bytes(suite.sign_public_len),
                         bytes(suite.dh_public_len), bytes(suite.signature_len)])
    return len(plain) + suite.aead_tag_len


@dataclass(frozen=True)
class InitialMessage:
    """The initiator's first message. Decoding checks structure and lengths only; the ephemeral
    key is validated by the responder after the cheap checks (known prekey ids, replay).

    A hybrid suite's message also carries the one-time KEM prekey id (None: the signed
    prekey's last-resort KEM prekey) and the ML-KEM ciphertext, on the wire right after the
    one-time prekey id."""

    suite: Suite
    ephemeral_key: bytes
    signed_prekey_id: int
    one_time_prekey_id: int | None
    sealed_identity: bytes
    ratchet_message: bytes
    one_time_kem_prekey_id: int | None = None
    kem_ciphertext: bytes | None = None

    def __post_init__(self) -> None:
        if self.suite.post_quantum != (self.kem_ciphertext is not None):
            raise UsageError("a hybrid suite's initial message has a KEM ciphertext, a "
                             "classical one has none")
        if not self.suite.post_quantum and self.one_time_kem_prekey_id is not None:
            raise UsageError("a classical suite's initial message has no KEM prekey id")

    def header(self) -> bytes:
        """Everything but the ratchet message; its hash is bound into the associated data."""
        return cbor.encode(self._fields()[:-1])

    def seal_aad(self) -> bytes:
        """What the sealed identity's AEAD authenticates: type, suite, EK, prekey ids (and the
        KEM prekey id and ciphertext)."""
        return cbor.encode(self._fields()[:-2])

    def _fields(self) -> list[cbor.CborEncodable]:
        fields: list[cbor.CborEncodable] = [MSG_TYPE_INITIAL, self.suite.suite_id,
                                            self.ephemeral_key, self.signed_prekey_id,
                                            self.one_time_prekey_id]
        if self.suite.post_quantum:
            fields += [self.one_time_kem_prekey_id, self.kem_ciphertext]
        return [*fields, self.sealed_identity, self.ratchet_message]

    def with_ratchet_message(self, ratchet_message: bytes) -> InitialMessage:
        return InitialMessage(self.suite, self.ephemeral_key, self.signed_prekey_id,
                              self.one_time_prekey_id, self.sealed_identity, ratchet_message,
                              self.one_time_kem_prekey_id, self.kem_ciphertext)

    def to_bytes(self) -> bytes:
        return cbor.encode(self._fields())

    @classmethod
    def from_bytes(cls, data: bytes) -> InitialMessage:
        f = cbor.as_list(cbor.decode(data, max_size=MAX_INITIAL_MESSAGE_SIZE, max_items=16),
                         "initial message")
        if len(f) not in (7, 9):
            raise DecodeError(f"initial message: expected 7 or 9 elements, got {len(f)}")
        if cbor.as_int(f[0], "message type") != MSG_TYPE_INITIAL:
            raise UnsupportedError("unknown message type (not a handshake initial message)")
        suite = suite_by_id(cbor.as_int(f[1], "initial message suite", maximum=0xFFFF))
        # A hybrid suite's message without its KEM fields is malformed, never a classical one.
        cbor.as_list(f, "initial message", initial_message_field_count(suite))
        opk_id = None if f[4] is None else cbor.as_int(f[4], "one-time prekey id",
                                                        maximum=MAX_PREKEY_ID)
        kem_id = None
        kem_ct = None
        if suite.post_quantum:
            kem_id = None if f[5] is None else cbor.as_int(f[5], "one-time KEM prekey id",
                                                            maximum=MAX_PREKEY_ID)
            kem_ct = cbor.as_bytes(f[6], "KEM ciphertext", MLKEM768_CIPHERTEXT_LEN)
        return cls(
            suite,
            cbor.as_bytes(f[2], "ephemeral key", suite.dh_public_len),
            cbor.as_int(f[3], "signed prekey id", maximum=MAX_PREKEY_ID),
            opk_id,
            cbor.as_bytes(f[-2], "sealed identity", sealed_identity_length(suite)),
            cbor.as_bytes(f[-1], "ratchet message"),
            kem_id,
            kem_ct,
        )


def initial_message_field_count(suite: Suite) -> int:
    """Elements of an initial message's CBOR array: 7, or 9 in a hybrid suite."""
    return 9 if suite.post_quantum else 7


# --- Key derivation (shared by both sides) ------------------------------------------------


@dataclass(frozen=True, repr=False)
class _KemPart:
    """A hybrid handshake's KEM values: which prekey, its public key, ciphertext and secret."""

    one_time_id: int | None
    public_key: bytes
    ciphertext: bytes
    shared_secret: bytes

    def bound(self) -> list[cbor.CborEncodable]:
        return [self.one_time_id, self.public_key, self.ciphertext]


def _transcript(initiator: Identity, responder: Identity, spk_id: int, spk: DhPublicKey,
                opk_id: int | None, opk: DhPublicKey | None, ek: bytes,
                kem: _KemPart | None = None) -> bytes:
    fields: list[cbor.CborEncodable] = [
        initiator.signing_key.to_bytes(), initiator.dh_key.to_bytes(),
        responder.signing_key.to_bytes(), responder.dh_key.to_bytes(),
        spk_id, spk.to_bytes(), opk_id, None if opk is None else opk.to_bytes(), ek,
    ]
    if kem is not None:
        fields += kem.bound()
    return cbor.encode(fields)


def shared_secret(suite: Suite, dh_outputs: list[bytes], transcript: bytes,
                  kem_shared_secret: bytes | None = None) -> bytes:
    """SK = derive_secret(salt = "", ikm = DH1 ‖ DH2 ‖ DH3 [‖ DH4] [‖ SS], label, transcript,
    32): SS, the ML-KEM shared secret, in a hybrid suite."""
    if suite.post_quantum != (kem_shared_secret is not None):
        raise UsageError("a hybrid suite's shared secret needs the KEM secret, a classical one "
                         "has none")
    ikm = b"".join(dh_outputs) + (kem_shared_secret or b"")
    return suite.derive_secret(b"", ikm, LABEL_HANDSHAKE_SHARED_SECRET, transcript,
                               SHARED_SECRET_LEN)


def associated_data(suite: Suite, initiator: Identity, responder: Identity,
                    header: bytes) -> bytes:
    """AD = CBOR [suite, IK_sig_A, IK_dh_A, IK_sig_B, IK_dh_B, Hash(header)]."""
    return cbor.encode([
        suite.suite_id,
        initiator.signing_key.to_bytes(), initiator.dh_key.to_bytes(),
        responder.signing_key.to_bytes(), responder.dh_key.to_bytes(),
        suite.hash(header),
    ])


def _seal_key(suite: Suite, dh3: bytes, responder: Identity, spk_id: int, spk: DhPublicKey,
              ek: bytes, kem: _KemPart | None = None) -> tuple[bytes, bytes]:
    # In a hybrid suite the KEM secret keys the seal too: who started a recorded session stays
    # hidden from an attacker who later breaks DH3.
    fields: list[cbor.CborEncodable] = [responder.signing_key.to_bytes(),
                                        responder.dh_key.to_bytes(), spk_id, spk.to_bytes(), ek]
    ikm = dh3
    if kem is not None:
        fields += kem.bound()
        ikm += kem.shared_secret
    out = suite.derive_secret(b"", ikm, LABEL_HANDSHAKE_SEAL, cbor.encode(fields),
                              suite.aead_key_len + suite.aead_nonce_len)
    return out[:suite.aead_key_len], out[suite.aead_key_len:]


def replay_tag(suite: Suite, ephemeral_key: bytes, sealed_identity: bytes,
               kem_ciphertext: bytes | None = None) -> bytes:
    """Replay-cache entry: Hash(len8(label) ‖ label ‖ EK ‖ sealed identity [‖ KEM ciphertext]),
    first 16 bytes."""
    return suite.hash(bytes([len(LABEL_HANDSHAKE_REPLAY)]) + LABEL_HANDSHAKE_REPLAY
                      + ephemeral_key + sealed_identity + (kem_ciphertext or b""))[:REPLAY_TAG_LEN]


# --- Initiator ----------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Initiation:
    """The initiator's result: key material for the Double Ratchet and the message framing."""

    suite: Suite
    peer: Identity
    shared_secret: bytes
    associated_data: bytes
    responder_ratchet_key: DhPublicKey
    header: InitialMessage  # with an empty ratchet message

    def initial_message(self, ratchet_message: bytes) -> bytes:
        """The initial message carrying the first Double Ratchet message."""
        if not isinstance(ratchet_message, bytes):
            raise UsageError("ratchet_message must be bytes")
        data = self.header.with_ratchet_message(ratchet_message).to_bytes()
        if len(data) > MAX_INITIAL_MESSAGE_SIZE:
            raise UsageError("initial message would exceed MAX_INITIAL_MESSAGE_SIZE")
        return data

    def __repr__(self) -> str:
        return f"Initiation({self.suite.name}, peer={self.peer!r}, <secrets>)"


def initiate(own: IdentityKeyPair, bundle: PrekeyBundle,
             rng: RandomSource = system_random) -> Initiation:
    """Start a session with the owner of `bundle` (already verified when it was decoded).

    In a hybrid suite the ML-KEM encapsulation is `cryptography`'s (constant time, `m` from the
    OS) for every source of randomness but the tests' `DeterministicRandom`, which draws `m`
    after EK so that vectors reproduce (our pure-Python derandomised encapsulation is not
    constant time; spec 02)."""
    suite = bundle.suite
    if own.suite.suite_id != suite.suite_id:  # before any encapsulation
        raise ProtocolError("the bundle's suite is not the initiator identity's suite")
    ephemeral = suite.generate_dh(rng)
    if bundle.kem_prekey is None:
        return initiate_with_ephemeral(own, bundle, ephemeral)
    if isinstance(rng, DeterministicRandom):
        return initiate_with_ephemeral(own, bundle, ephemeral, rng(KEM_RANDOMNESS_LEN))
    return _initiate(own, bundle, ephemeral, bundle.kem_prekey.public_key.encapsulate_random())


def initiate_with_ephemeral(own: IdentityKeyPair, bundle: PrekeyBundle,
                            ephemeral: DhPrivateKey,
                            kem_randomness: bytes | None = None) -> Initiation:
    """`initiate` with a given ephemeral key (and, in a hybrid suite, the 32-byte ML-KEM
    encapsulation randomness `m`): for known-answer vectors only (both must be fresh)."""
    if bundle.suite.post_quantum:
        if not isinstance(kem_randomness, bytes) or len(kem_randomness) != KEM_RANDOMNESS_LEN:
            raise UsageError("a hybrid suite's handshake needs 32 bytes of KEM randomness")
    elif kem_randomness is not None:
        raise UsageError("a classical suite's handshake takes no KEM randomness")
    encapsulation = None
    if bundle.kem_prekey is not None and kem_randomness is not None:
        encapsulation = bundle.kem_prekey.public_key.encapsulate(kem_randomness)
    return _initiate(own, bundle, ephemeral, encapsulation)


def _initiate(own: IdentityKeyPair, bundle: PrekeyBundle, ephemeral: DhPrivateKey,
              encapsulation: tuple[bytes, bytes] | None) -> Initiation:
    """Both initiators' common part; `encapsulation` is (SS, CT) in a hybrid suite."""
    suite = bundle.suite
    if own.suite.suite_id != suite.suite_id:
        raise ProtocolError("the bundle's suite is not the initiator identity's suite")
    responder = bundle.identity
    me = own.public
    if me == responder:
        raise UsageError("cannot start a session with one's own identity")
    spk = bundle.signed_prekey
    opk = bundle.one_time_prekey
    ek = ephemeral.public_key().to_bytes()

    dh1 = own.dh_private_key.exchange(spk.public_key)
    dh2 = ephemeral.exchange(responder.dh_key)
    dh3 = ephemeral.exchange(spk.public_key)
    dh_outputs = [dh1, dh2, dh3]
    if opk is not None:
        dh_outputs.append(ephemeral.exchange(opk.public_key))
    kem = None
    if bundle.kem_prekey is not None and encapsulation is not None:
        ss, ct = encapsulation
        kem = _KemPart(bundle.kem_prekey.prekey_id if bundle.kem_prekey.one_time else None,
                       bundle.kem_prekey.public_key.to_bytes(), ct, ss)

    opk_id = None if opk is None else opk.prekey_id
    kem_id = None if kem is None else kem.one_time_id
    kem_ct = None if kem is None else kem.ciphertext
    unsealed = InitialMessage(suite, ek, spk.prekey_id, opk_id, b"", b"", kem_id, kem_ct)
    key, nonce = _seal_key(suite, dh3, responder, spk.prekey_id, spk.public_key, ek, kem)
    sealed = suite.aead_encrypt(key, nonce, me.to_bytes(), unsealed.seal_aad())
    header = InitialMessage(suite, ek, spk.prekey_id, opk_id, sealed, b"", kem_id, kem_ct)

    sk = shared_secret(suite, dh_outputs, _transcript(
        me, responder, spk.prekey_id, spk.public_key, opk_id,
        None if opk is None else opk.public_key, ek, kem),
        None if kem is None else kem.shared_secret)
    ad = associated_data(suite, me, responder, header.header())
    return Initiation(suite, responder, sk, ad, spk.public_key, header)


# --- Responder ----------------------------------------------------------------------------


class AcceptedHandshake:
    """A verified initial message whose prekey use is not yet committed to the account.

    Run the Double Ratchet (`DoubleRatchet.respond` with `own_ratchet_key`) and decrypt
    `ratchet_message`; only when that succeeds call `commit()`. Until then the account is
    unchanged, and dropping this object forgets the attempt.
    """

    __slots__ = ("_account", "_committed", "_kem_id", "_opk_id", "_replay_tag", "_spk_id",
                 "associated_data", "own_ratchet_key", "peer", "ratchet_message",
                 "shared_secret", "suite")

    def __init__(self, account: Account, message: InitialMessage, peer: Identity,
                 shared_secret: bytes, associated_data: bytes, own_ratchet_key: DhPrivateKey,
                 tag: bytes) -> None:
        self._account = account
        self._spk_id = message.signed_prekey_id
        self._opk_id = message.one_time_prekey_id
        self._kem_id = message.one_time_kem_prekey_id
        self._replay_tag = tag
        self._committed = False
        self.suite = message.suite
        self.peer = peer
        self.shared_secret = shared_secret
        self.associated_data = associated_data
        self.own_ratchet_key = own_ratchet_key
        self.ratchet_message = message.ratchet_message

    @property
    def used_one_time_prekey(self) -> bool:
        return self._opk_id is not None

    @property
    def used_one_time_kem_prekey(self) -> bool:
        return self._kem_id is not None

    def commit(self) -> None:
        """Consume the one-time prekey(s) or record the replay tag. `ReplayError` if another
        acceptance of the same message committed first; the account is then unchanged."""
        if self._committed:
            raise UsageError("handshake already committed")
        self._account._consume(self._spk_id, self._opk_id, self._replay_tag, self._kem_id)
        self._committed = True

    def __repr__(self) -> str:
        return f"AcceptedHandshake({self.suite.name}, peer={self.peer!r}, <secrets>)"


def accept(account: Account, data: bytes) -> AcceptedHandshake:
    """Verify an initial message addressed to `account`; the account is not modified.

    Cheap checks run before any DH or decapsulation: structure and lengths, suite, known signed
    prekey, unused one-time prekey (and one-time KEM prekey), replay cache. Errors:
    `DecodeError` (also a hybrid message without its KEM ciphertext, or one of the wrong
    length), `LimitExceeded`, `UnsupportedError` (unknown suite), `ProtocolError` (other suite,
    unknown or retired prekey, own identity), `ReplayError` (consumed one-time prekey or cached
    message), `InvalidKey` (bad ephemeral or sealed identity key), `AuthenticationError` (sealed
    identity does not open), `InvalidSignature` (sealed identity's DH key signature).
    """
    if not isinstance(data, bytes):
        raise UsageError("initial message must be bytes")
    if len(data) > MAX_INITIAL_MESSAGE_SIZE:
        raise LimitExceeded("initial message larger than MAX_INITIAL_MESSAGE_SIZE")
    message = InitialMessage.from_bytes(data)
    suite = account.suite
    if message.suite.suite_id != suite.suite_id:
        raise ProtocolError("initial message is for another suite than this account's")
    spk_secret = account._signed_prekey_secret(message.signed_prekey_id)
    opk_secret = None
    if message.one_time_prekey_id is not None:
        opk_secret = account._one_time_prekey_secret(message.one_time_prekey_id)
    kem_prekey = None
    if message.kem_ciphertext is not None:
        kem_prekey = account._kem_prekey_secret(message.signed_prekey_id,
                                                message.one_time_kem_prekey_id)
    tag = replay_tag(suite, message.ephemeral_key, message.sealed_identity,
                     message.kem_ciphertext)
    if opk_secret is None and message.one_time_kem_prekey_id is None:
        account._check_replay(message.signed_prekey_id, tag)

    ek = suite.dh_public_from_bytes(message.ephemeral_key)
    me = account.public_identity
    spk_public = spk_secret.public_key()
    dh3 = spk_secret.exchange(ek)
    kem = None
    if kem_prekey is not None and message.kem_ciphertext is not None:
        kem_private, kem_public = kem_prekey
        # ML-KEM decapsulation never fails on a ciphertext of the right length (implicit
        # rejection): a forged one gives an unrelated secret, and the seal does not open.
        kem = _KemPart(message.one_time_kem_prekey_id, kem_public.public_key.to_bytes(),
                       message.kem_ciphertext, kem_private.decapsulate(message.kem_ciphertext))
    key, nonce = _seal_key(suite, dh3, me, message.signed_prekey_id, spk_public,
                           message.ephemeral_key, kem)
    try:
        sealed_plain: bytes | None = suite.aead_decrypt(key, nonce, message.sealed_identity,
                                                        message.seal_aad())
    except AuthenticationError:
        sealed_plain = None
    if sealed_plain is None:  # raised outside the handler: no __context__
        raise AuthenticationError("sealed identity does not open")
    peer = Identity.from_bytes(sealed_plain, suite)
    if peer == me:
        raise ProtocolError("initial message claims the responder's own identity")

    dh_outputs = [spk_secret.exchange(peer.dh_key), account.identity.dh_private_key.exchange(ek),
                  dh3]
    if opk_secret is not None:
        dh_outputs.append(opk_secret.exchange(ek))
    sk = shared_secret(suite, dh_outputs, _transcript(
        peer, me, message.signed_prekey_id, spk_public, message.one_time_prekey_id,
        None if opk_secret is None else opk_secret.public_key(), message.ephemeral_key, kem),
        None if kem is None else kem.shared_secret)
    ad = associated_data(suite, peer, me, message.header())
    return AcceptedHandshake(account, message, peer, sk, ad, spk_secret, tag)
