"""Adversarial review (review-pq) of the hybrid (PQXDH-style) handshake, its bundles and the
suite registry's hybrid ids. Findings first (`xfail(strict=True)`), then the checks that held."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable

import pytest
import test_pqxdh

from triple_ratchet import cbor, handshake
from triple_ratchet.double_ratchet import DoubleRatchet
from triple_ratchet.errors import (
    AuthenticationError,
    DecodeError,
    InvalidSignature,
    LimitExceeded,
    ProtocolError,
    ReplayError,
    UsageError,
)
from triple_ratchet.handshake import (
    LABEL_HANDSHAKE_SHARED_SECRET,
    InitialMessage,
    accept,
    initiate,
)
from triple_ratchet.identity import (
    LABEL_IDENTITY_BUNDLE,
    LABEL_IDENTITY_LAST_RESORT_KEM_PREKEY,
    LABEL_IDENTITY_ONE_TIME_KEM_PREKEY,
    LABEL_IDENTITY_SIGNED_PREKEY,
    Account,
    Identity,
    IdentityKeyPair,
    KemPrekey,
    PrekeyBundle,
    SignedPrekey,
)
from triple_ratchet.pairwise import PairwiseSession
from triple_ratchet.random import DeterministicRandom, system_random
from triple_ratchet.suites import (
    CLASSICAL_SUITES,
    HYBRID_SUITES,
    DhPrivateKey,
    Suite,
    suite_by_id,
)
from triple_ratchet.suites.mlkem import MlKemPrivateKey, MlKemPublicKey

HYBRIDS = pytest.mark.parametrize("suite", list(HYBRID_SUITES), ids=lambda s: s.name)
PAIRS = pytest.mark.parametrize("hybrid", list(HYBRID_SUITES), ids=lambda s: s.name)


def _parties(suite: Suite, one_time: tuple[bool, bool] = (True, True),
             seed: bytes = b"review-pq") -> tuple[IdentityKeyPair, Account, PrekeyBundle]:
    rng = DeterministicRandom(seed + suite.name.encode())
    alice = IdentityKeyPair.generate(suite, rng)
    bob = Account.generate(suite, rng)
    opk = bob.generate_one_time_prekeys(1, rng)[0] if one_time[0] else None
    kem = bob.generate_one_time_kem_prekeys(1, rng)[0] if one_time[1] else None
    return alice, bob, bob.bundle(opk, kem)


def _fields(data: bytes) -> list[cbor.CborValue]:
    return cbor.as_list(cbor.decode(data), "array")


# --- A live recording: `initiate()` as applications call it, every DH key kept ----------------


class _Recorder:
    """Wraps a suite's `generate_dh` so the attacker later receives every DH private key the
    handshake drew (the ephemeral included), whatever RNG drew it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, suite: Suite) -> None:
        self.keys: list[DhPrivateKey] = []
        original = type(suite).generate_dh

        def generate_dh(this: Suite, rng: Callable[[int], bytes] = system_random) -> DhPrivateKey:
            key = original(this, rng)
            self.keys.append(key)
            return key

        monkeypatch.setattr(type(suite), "generate_dh", generate_dh)


def _candidate_secrets(bundle: PrekeyBundle, message: InitialMessage) -> list[bytes | None]:
    """SS candidates a recording attacker can compute without B's KEM private key: none, fixed
    values, and encapsulations to PQPK_B with `m` taken from public data of the handshake."""
    assert bundle.kem_prekey is not None and message.kem_ciphertext is not None
    pk = bundle.kem_prekey.public_key
    ek, ct = message.ephemeral_key, message.kem_ciphertext
    public_ms = [bytes(32), b"\xff" * 32, ek[:32], ek[-32:], hashlib.sha256(ek).digest(),
                 hashlib.sha256(message.header()).digest(), ct[:32],
                 hashlib.sha3_256(pk.to_bytes()).digest()]
    out: list[bytes | None] = [None, bytes(32), hashlib.sha3_256(ct).digest()]
    out += [pk.encapsulate(m)[0] for m in public_ms]
    return out


def _recorded_sk(suite: Suite, alice: IdentityKeyPair, bundle: PrekeyBundle,
                 ephemeral: DhPrivateKey, message: InitialMessage, ss: bytes | None) -> bytes:
    """SK from spec 04 with every DH private key (A's identity key, the ephemeral) and a guess
    of SS."""
    spk, opk, kem = bundle.signed_prekey, bundle.one_time_prekey, bundle.kem_prekey
    assert kem is not None
    dh = [alice.dh_private_key.exchange(spk.public_key),
          ephemeral.exchange(bundle.identity.dh_key),
          ephemeral.exchange(spk.public_key)]
    if opk is not None:
        dh.append(ephemeral.exchange(opk.public_key))
    a, b = alice.public, bundle.identity
    transcript = cbor.encode([
        a.signing_key.to_bytes(), a.dh_key.to_bytes(), b.signing_key.to_bytes(),
        b.dh_key.to_bytes(), spk.prekey_id, spk.public_key.to_bytes(),
        None if opk is None else opk.prekey_id, None if opk is None else opk.public_key.to_bytes(),
        message.ephemeral_key, message.one_time_kem_prekey_id, kem.public_key.to_bytes(),
        message.kem_ciphertext])
    return suite.derive_secret(b"", b"".join(dh) + (ss or b""), LABEL_HANDSHAKE_SHARED_SECRET,
                               transcript, 32)


# =================================================================================================
# Findings
# =================================================================================================


def _public_m_initiate(own: IdentityKeyPair, bundle: PrekeyBundle,
                      rng: Callable[[int], bytes] = system_random) -> handshake.Initiation:
    """The mutation: `initiate()` as today, but its encapsulation's m is SHA-256(EK_A) — public,
    and different in every handshake."""
    ephemeral = bundle.suite.generate_dh(rng)
    assert bundle.kem_prekey is not None
    m = hashlib.sha256(ephemeral.public_key().to_bytes()).digest()
    return handshake._initiate(own, bundle, ephemeral, bundle.kem_prekey.public_key.encapsulate(m))


@HYBRIDS
@pytest.mark.parametrize("rng", [os.urandom, secrets.token_bytes], ids=["os.urandom", "secrets"])
def test_f3_a_live_handshake_with_an_os_rng_encapsulates_with_cryptography(
        suite: Suite, rng: Callable[[int], bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    """F3 (low). `initiate(own, bundle, rng)` chooses by identity, `rng is system_random`:
    any other source — `os.urandom`, `secrets.token_bytes`, a logging wrapper around the OS
    CSPRNG, all of them production RNGs — goes to `encapsulate(rng(32))`, the pure-Python
    Encaps_internal, which spec 02 says is not constant time and ~40x slower to a new key, with
    a live handshake's secret `m`; spec 02 ("one fresh m per handshake through
    encapsulate_random(), which is cryptography's") and spec 04 describe only the two cases.
    Reproducibility is wanted only for `DeterministicRandom` (random.py: "nothing else may
    construct one"). Fix: derandomise only when `isinstance(rng, DeterministicRandom)` (or take
    an explicit `kem_randomness=` for vectors) and use `encapsulate_random()` otherwise."""
    alice, bob, bundle = _parties(suite, (False, False))

    def pure_python(self: MlKemPublicKey, m: bytes) -> tuple[bytes, bytes]:
        raise AssertionError("a live handshake's m went to the pure-Python encapsulation")

    monkeypatch.setattr(MlKemPublicKey, "encapsulate", pure_python)
    start = initiate(alice, bundle, rng)
    assert accept(bob, start.initial_message(b"")).shared_secret == start.shared_secret


# =================================================================================================
# Checks that held (regression guards)
# =================================================================================================


@HYBRIDS
@pytest.mark.parametrize("one_time", [(True, True), (False, False)],
                         ids=["one-time", "last-resort"])
@pytest.mark.parametrize("rng_kind", ["system", "deterministic"])
def test_live_hybrid_handshake_stays_secret_with_every_dh_key(
        suite: Suite, one_time: tuple[bool, bool], rng_kind: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Through `initiate()` itself (both m sources): with every DH private key (A's identity,
    the ephemeral, B's prekeys are all public-key-equivalent here) and SS guesses from every
    public value, SK stays out of reach; the control with B's true SS reproduces it."""
    _live_property(suite, one_time, rng_kind, monkeypatch)


def _live_property(suite: Suite, one_time: tuple[bool, bool], rng_kind: str,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob, bundle = _parties(suite, one_time)
    recorder = _Recorder(monkeypatch, suite)
    rng = (system_random if rng_kind == "system"
           else DeterministicRandom(b"live " + suite.name.encode()))
    start = handshake.initiate(alice, bundle, rng)  # looked up late: mutations reach it
    [ephemeral] = recorder.keys
    message = start.header
    pending = accept(bob, start.initial_message(b""))
    assert pending.shared_secret == start.shared_secret
    kem = bob._kem_prekey_secret(message.signed_prekey_id, message.one_time_kem_prekey_id)[0]
    assert message.kem_ciphertext is not None
    true_ss = kem.decapsulate(message.kem_ciphertext)
    assert _recorded_sk(suite, alice, bundle, ephemeral, message, true_ss) == start.shared_secret
    for guess in _candidate_secrets(bundle, message):
        assert _recorded_sk(suite, alice, bundle, ephemeral, message, guess) != start.shared_secret


@HYBRIDS
def test_live_property_catches_a_public_m(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handshake, "initiate", _public_m_initiate)
    with pytest.raises(AssertionError):
        _live_property(suite, (False, False), "system", monkeypatch)


@HYBRIDS
def test_done_when_property_catches_a_constant_or_missing_kem_secret(
        suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Done-when test does catch SS replaced by a constant on both sides, or left out."""
    real = handshake.shared_secret
    for replacement in (bytes(32), None):
        def mutated(s: Suite, dh: list[bytes], transcript: bytes,
                    kem_shared_secret: bytes | None = None,
                    constant: bytes | None = replacement) -> bytes:
            if kem_shared_secret is None:
                return real(s, dh, transcript)
            if constant is None:  # SS left out: the classical derivation under the hybrid id
                return s.derive_secret(b"", b"".join(dh), LABEL_HANDSHAKE_SHARED_SECRET,
                                       transcript, 32)
            return real(s, dh, transcript, constant)

        monkeypatch.setattr(handshake, "shared_secret", mutated)
        with pytest.raises(AssertionError):
            test_pqxdh.test_recorded_hybrid_handshake_stays_secret_when_every_dh_key_is_broken(
                suite)
        monkeypatch.undo()


@HYBRIDS
def test_m_is_fresh_per_handshake_on_both_paths(suite: Suite) -> None:
    """No m reuse: a continuing RandomSource and the system RNG each give a new CT per
    handshake to the same last-resort KEM prekey."""
    alice, _, bundle = _parties(suite, (False, False))
    rng = DeterministicRandom(b"one stream")
    cts = {initiate(alice, bundle, rng).header.kem_ciphertext for _ in range(3)}
    cts |= {initiate(alice, bundle).header.kem_ciphertext for _ in range(3)}
    assert len(cts) == 6


# --- Suite mixing: 1/3 and 2/4 share key classes, never roles ----------------------------------


@PAIRS
def test_classical_and_hybrid_twins_never_mix(hybrid: Suite) -> None:
    classical = hybrid.classical
    assert classical in CLASSICAL_SUITES and isinstance(hybrid, type(classical))
    h_alice, h_bob, h_bundle = _parties(hybrid)
    c_alice, c_bob, c_bundle = _parties(classical, (True, False))
    for own, bundle in ((c_alice, h_bundle), (h_alice, c_bundle)):
        with pytest.raises(ProtocolError):
            initiate(own, bundle)
    for account, data in ((h_bob, initiate(c_alice, c_bundle).initial_message(b"")),
                          (c_bob, initiate(h_alice, h_bundle).initial_message(b""))):
        saved = account.to_bytes()
        with pytest.raises(ProtocolError):
            accept(account, data)
        assert account.to_bytes() == saved
    for data, expected, other in ((h_bundle.to_bytes(), hybrid, classical),
                                  (c_bundle.to_bytes(), classical, hybrid)):
        assert PrekeyBundle.from_bytes(data, expected).suite is expected
        with pytest.raises(ProtocolError):
            PrekeyBundle.from_bytes(data, other)
    with pytest.raises(ProtocolError):
        Identity.from_bytes(c_alice.public.to_bytes(), hybrid)
    with pytest.raises(ProtocolError):
        Identity.from_bytes(h_alice.public.to_bytes(), classical)


def _relabel(data: bytes, index: int, suite_id: int) -> bytes:
    fields = _fields(data)
    fields[index] = suite_id
    return cbor.encode(fields)


@PAIRS
def test_saved_state_relabelled_between_twins_is_refused(hybrid: Suite) -> None:
    """A state saved under suite 1 (2) never loads as 3 (4), nor back: every identity
    signature binds the suite id, and the hybrid layouts have their own field counts."""
    classical = hybrid.classical
    for suite, other in ((classical, hybrid), (hybrid, classical)):
        alice, bob, bundle = _parties(suite, (True, suite.post_quantum))
        with pytest.raises((InvalidSignature, DecodeError)):
            IdentityKeyPair.from_bytes(_relabel(alice.to_bytes(), 1, other.suite_id))
        with pytest.raises((InvalidSignature, DecodeError)):
            Identity.from_bytes(_relabel(alice.public.to_bytes(), 1, other.suite_id))
        with pytest.raises((InvalidSignature, DecodeError, ProtocolError)):
            Account.from_bytes(_relabel(bob.to_bytes(), 1, other.suite_id))
        with pytest.raises((InvalidSignature, DecodeError, ProtocolError, LimitExceeded)):
            PrekeyBundle.from_bytes(_relabel(bundle.to_bytes(), 1, other.suite_id))
        session, blob = PairwiseSession.initiate(alice, bundle, DeterministicRandom(b"s"))
        state = _fields(session.to_bytes())
        ratchet = DoubleRatchet.from_bytes(cbor.as_bytes(state[3], "ratchet"))
        assert ratchet.suite is suite
        # Swapping in the other suite's identity encodings cannot be done without their keys'
        # signatures; swapping the ratchet's suite is refused by the session.
        relabelled = cbor.encode([*state[:3], _relabel_ratchet(state[3], other)])
        with pytest.raises(DecodeError):
            PairwiseSession.from_bytes(relabelled)
        assert blob


def _relabel_ratchet(ratchet_state: cbor.CborValue, other: Suite) -> bytes:
    # Spec 05's state: [version, suite_id, limits, AD, ...]; the relabelled ratchet alone loads
    # (its keys are the same classes), the session around it must not.
    fields = _fields(cbor.as_bytes(ratchet_state, "ratchet"))
    assert fields[1] != other.suite_id and suite_by_id(fields[1]).classical is other.classical
    fields[1] = other.suite_id
    relabelled = cbor.encode(fields)
    assert DoubleRatchet.from_bytes(relabelled).suite is other
    return relabelled


def test_every_suite_id_decodes_to_its_own_singleton() -> None:
    for suite in CLASSICAL_SUITES + HYBRID_SUITES:
        assert suite_by_id(suite.suite_id) is suite
        assert suite.post_quantum == (suite in HYBRID_SUITES)
        assert suite.classical.suite_id in (1, 2) and not suite.classical.post_quantum


# --- KEM prekeys: consumption and signatures ----------------------------------------------------


@HYBRIDS
def test_one_time_kem_prekey_survives_a_failed_respond_then_is_consumed_once(suite: Suite) -> None:
    alice, bob, bundle = _parties(suite, (False, True))
    session, blob = PairwiseSession.initiate(alice, bundle, DeterministicRandom(b"f"),
                                             plaintext=b"hello")
    saved = bob.to_bytes()
    fields = _fields(blob)
    ratchet = bytearray(cbor.as_bytes(fields[-1], "ratchet"))
    ratchet[-1] ^= 1
    with pytest.raises(AuthenticationError):
        PairwiseSession.respond(bob, cbor.encode([*fields[:-1], bytes(ratchet)]))
    assert bob.to_bytes() == saved and bob.one_time_kem_prekey_count == 1
    _, plaintext, _ = PairwiseSession.respond(bob, blob)
    assert plaintext == b"hello" and bob.one_time_kem_prekey_count == 0
    with pytest.raises(ReplayError):
        PairwiseSession.respond(bob, blob)
    with pytest.raises(ReplayError):
        PairwiseSession.respond(Account.from_bytes(bob.to_bytes()), blob)
    assert session


@HYBRIDS
def test_kem_prekey_signatures_are_label_separated(suite: Suite) -> None:
    """Neither kind of KEM prekey signature verifies as the other kind or as a signed DH
    prekey's, and callers cannot have the identity sign under these labels."""
    _, bob, _ = _parties(suite, (False, False))
    identity = bob.identity
    key = MlKemPrivateKey.generate(DeterministicRandom(b"kem")).public_key()
    one_time = identity.sign_kem_prekey(7, key, one_time=True)
    last = identity.sign_kem_prekey(7, key, one_time=False)
    assert one_time.signature != last.signature
    for sig, as_one_time in ((one_time.signature, False), (last.signature, True)):
        with pytest.raises(InvalidSignature):
            KemPrekey(7, key, sig, as_one_time).verify(identity.public)
    spk = SignedPrekey(7, suite.generate_dh(DeterministicRandom(b"dh")).public_key(),
                       last.signature)
    with pytest.raises(InvalidSignature):
        spk.verify(identity.public)
    for label in (LABEL_IDENTITY_ONE_TIME_KEM_PREKEY, LABEL_IDENTITY_LAST_RESORT_KEM_PREKEY,
                  LABEL_IDENTITY_SIGNED_PREKEY, LABEL_IDENTITY_BUNDLE):
        with pytest.raises(UsageError):
            identity.sign(label, b"content")


@HYBRIDS
def test_replay_tag_covers_the_kem_ciphertext(suite: Suite) -> None:
    """Last-resort of both kinds: the replay tag changes with CT; a replay of the committed
    message is refused before any DH; a CT-altered replay fails to open the seal."""
    alice, bob, bundle = _parties(suite, (False, False))
    data = initiate(alice, bundle).initial_message(b"")
    accept(bob, data).commit()
    with pytest.raises(ReplayError):
        accept(bob, data)
    fields = _fields(data)
    ct = bytearray(cbor.as_bytes(fields[6], "ct"))
    ct[100] ^= 4
    fields[6] = bytes(ct)
    with pytest.raises(AuthenticationError):
        accept(bob, cbor.encode(fields))
    message = InitialMessage.from_bytes(data)
    assert handshake.replay_tag(suite, message.ephemeral_key, message.sealed_identity,
                                message.kem_ciphertext) != handshake.replay_tag(
        suite, message.ephemeral_key, message.sealed_identity, bytes(ct))
