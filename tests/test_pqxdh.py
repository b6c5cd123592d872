"""The hybrid (PQXDH-style) handshake: signed ML-KEM-768 prekeys in bundles, the KEM secret in the
key derivation, the refusals, and the harvest-now-decrypt-later property (spec 03, 04, 13)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pytest

from triple_ratchet import cbor, handshake
from triple_ratchet.double_ratchet import DoubleRatchet
from triple_ratchet.errors import (
    AuthenticationError,
    DecodeError,
    InvalidKey,
    InvalidSignature,
    LimitExceeded,
    ProtocolError,
    RemoteError,
    ReplayError,
    StateError,
    UsageError,
)
from triple_ratchet.handshake import (
    LABEL_HANDSHAKE_SEAL,
    LABEL_HANDSHAKE_SHARED_SECRET,
    MSG_TYPE_INITIAL,
    InitialMessage,
    accept,
    initiate,
    initiate_with_ephemeral,
)
from triple_ratchet.identity import (
    LABEL_IDENTITY_BUNDLE,
    LABEL_IDENTITY_LAST_RESORT_KEM_PREKEY,
    LABEL_IDENTITY_ONE_TIME_KEM_PREKEY,
    LABEL_IDENTITY_SIGNED_PREKEY,
    MAX_HYBRID_BUNDLE_SIZE,
    P256_ORDER,
    Account,
    Identity,
    IdentityKeyPair,
    KemPrekey,
    PrekeyBundle,
)
from triple_ratchet.pairwise import PairwiseSession, message_type
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import CLASSICAL_SUITES, HYBRID_SUITES, DhPrivateKey, Suite
from triple_ratchet.suites.mlkem import (
    MLKEM768_CIPHERTEXT_LEN,
    MLKEM768_PUBLIC_KEY_LEN,
    MlKemPrivateKey,
)

HYBRID = list(HYBRID_SUITES)
CLASSICAL = list(CLASSICAL_SUITES)
HYBRIDS = pytest.mark.parametrize("suite", HYBRID, ids=lambda s: s.name)
# (one-time DH prekey, one-time KEM prekey) in the bundle.
PREKEYS = pytest.mark.parametrize("one_time", [(True, True), (False, False), (True, False),
                                               (False, True)],
                                  ids=["both-one-time", "last-resort", "dh-one-time",
                                       "kem-one-time"])
# Positions in a hybrid bundle and initial message (spec 03, 04).
B_KEM_ID, B_KEM_KEY, B_KEM_SIG, B_SIG = 10, 11, 12, 13
M_KEM_ID, M_KEM_CT, M_SEALED = 5, 6, 7


def _classical_twin(suite: Suite) -> Suite:
    """The classical suite a hybrid one extends (same DH, signature, hash and AEAD)."""
    assert suite.classical is not suite and not suite.classical.post_quantum
    return suite.classical


def _parties(suite: Suite, one_time: tuple[bool, bool] = (True, True),
             seed: bytes = b"pqxdh test") -> tuple[IdentityKeyPair, Account, PrekeyBundle]:
    rng = DeterministicRandom(seed + suite.name.encode())
    alice = IdentityKeyPair.generate(suite, rng)
    bob = Account.generate(suite, rng)
    opk = bob.generate_one_time_prekeys(1, rng)[0] if one_time[0] else None
    kem = bob.generate_one_time_kem_prekeys(1, rng)[0] if one_time[1] else None
    return alice, bob, bob.bundle(opk, kem)


def _fields(data: bytes) -> list[cbor.CborValue]:
    return cbor.as_list(cbor.decode(data), "array")


def _resign(account: Account, fields: list[cbor.CborValue]) -> bytes:
    """Re-sign a bundle's fields (all but the last) so that only the defect under test is left."""
    content = cbor.encode(fields[:-1])
    return cbor.encode([*fields[:-1], account.identity._sign_internal(LABEL_IDENTITY_BUNDLE,
                                                                      content)])


# --- Bundles -------------------------------------------------------------------------------


@HYBRIDS
@PREKEYS
def test_hybrid_bundle_round_trip(suite: Suite, one_time: tuple[bool, bool]) -> None:
    _, bob, bundle = _parties(suite, one_time)
    data = bundle.to_bytes()
    assert len(_fields(data)) == 14
    assert len(data) <= MAX_HYBRID_BUNDLE_SIZE
    again = PrekeyBundle.from_bytes(data, suite)
    assert again.to_bytes() == data
    kem = again.kem_prekey
    assert kem is not None and kem.one_time is one_time[1]
    assert kem.public_key.to_bytes() == bundle.kem_prekey.public_key.to_bytes()  # type: ignore[union-attr]
    assert len(kem.public_key.to_bytes()) == MLKEM768_PUBLIC_KEY_LEN
    if not one_time[1]:
        # The last-resort KEM prekey is the signed prekey's: same id, null on the wire.
        assert kem.prekey_id == again.signed_prekey.prekey_id
        assert _fields(data)[B_KEM_ID] is None
        assert kem.public_key.to_bytes() == bob.last_resort_kem_prekey.public_key.to_bytes()


@HYBRIDS
def test_account_makes_paired_one_time_bundles(suite: Suite) -> None:
    account = Account.generate(suite)
    bundles = account.new_bundles(3)
    assert account.one_time_prekey_count == account.one_time_kem_prekey_count == 3
    kems = [b.kem_prekey for b in bundles]
    assert all(k is not None and k.one_time for k in kems)
    assert len({k.prekey_id for k in kems if k is not None}) == 3
    assert "KEM" in repr(account)


@HYBRIDS
def test_account_bundles_only_its_own_current_kem_prekeys(suite: Suite) -> None:
    account, other = Account.generate(suite), Account.generate(suite)
    foreign = other.generate_one_time_kem_prekeys(1)[0]
    own = account.generate_one_time_kem_prekeys(1)[0]
    with pytest.raises(UsageError):
        account.bundle(None, foreign)  # same id 0, another key
    with pytest.raises(UsageError):
        account.bundle(None, other.last_resort_kem_prekey)
    stale = account.last_resort_kem_prekey
    account.rotate_signed_prekey()
    with pytest.raises(UsageError):
        account.bundle(None, stale)
    assert account.bundle(None, own).kem_prekey == own
    assert account.bundle().kem_prekey == account.last_resort_kem_prekey != stale
    # A one-time KEM prekey that was used is no longer offered.
    alice = IdentityKeyPair.generate(suite)
    accept(account, initiate(alice, account.bundle(None, own)).initial_message(b"")).commit()
    with pytest.raises(UsageError):
        account.bundle(None, own)


@pytest.mark.parametrize("suite", CLASSICAL, ids=lambda s: s.name)
def test_classical_accounts_have_no_kem_prekeys(suite: Suite) -> None:
    account = Account.generate(suite)
    bundle = account.new_bundles(1)[0]
    assert bundle.kem_prekey is None and len(_fields(bundle.to_bytes())) == 11
    hybrid = next(h for h in HYBRID if _classical_twin(h) is suite)
    kem = Account.generate(hybrid).last_resort_kem_prekey
    with pytest.raises(UsageError):
        account.bundle(None, kem)
    with pytest.raises(UsageError):
        account.generate_one_time_kem_prekeys(1)
    with pytest.raises(UsageError):
        _ = account.last_resort_kem_prekey
    with pytest.raises(UsageError):
        account.identity.sign_kem_prekey(0, kem.public_key, one_time=False)
    # A classical bundle with a KEM prekey attached cannot be built either.
    with pytest.raises(ProtocolError):
        PrekeyBundle(bundle.identity, bundle.signed_prekey, bundle.one_time_prekey,
                     bundle.signature, kem)


@HYBRIDS
def test_stripped_kem_prekey_is_refused_not_downgraded(suite: Suite) -> None:
    """The downgrade: a relay drops the KEM prekey from a hybrid bundle (and could not re-sign
    it, but even a re-signed one is refused): never read as a classical bundle."""
    alice, bob, bundle = _parties(suite)
    fields = _fields(bundle.to_bytes())
    stripped = [*fields[:10], fields[B_SIG]]
    with pytest.raises(ProtocolError, match="KEM prekey"):
        PrekeyBundle.from_bytes(cbor.encode(stripped))
    with pytest.raises(ProtocolError, match="KEM prekey"):
        PrekeyBundle.from_bytes(_resign(bob, stripped), suite)
    # Nor can one be built in memory and handed to the handshake.
    with pytest.raises(ProtocolError):
        PrekeyBundle(bundle.identity, bundle.signed_prekey, bundle.one_time_prekey,
                     bundle.signature)
    with pytest.raises(ProtocolError):
        bob.identity.sign_bundle(bundle.signed_prekey, bundle.one_time_prekey)
    # Relabelled as the classical twin suite: every identity signature binds the suite id.
    classical = _classical_twin(suite)
    stripped[1] = classical.suite_id
    with pytest.raises(InvalidSignature):
        PrekeyBundle.from_bytes(_resign(bob, stripped))
    relabelled = list(fields)
    relabelled[1] = classical.suite_id
    with pytest.raises(LimitExceeded):  # larger than any classical bundle may be
        PrekeyBundle.from_bytes(cbor.encode(relabelled))
    # The initiator still handshakes only with the real bundle.
    assert initiate(alice, bundle).header.kem_ciphertext is not None


@HYBRIDS
def test_classical_bundle_for_hybrid_suite_and_back_refused(suite: Suite) -> None:
    classical = _classical_twin(suite)
    classical_bundle = Account.generate(classical).new_bundles(1)[0]
    hybrid_alice, _, hybrid_bundle = _parties(suite)
    with pytest.raises(ProtocolError, match="suite"):
        PrekeyBundle.from_bytes(classical_bundle.to_bytes(), suite)
    with pytest.raises(ProtocolError, match="suite"):
        PrekeyBundle.from_bytes(hybrid_bundle.to_bytes(), classical)
    with pytest.raises(ProtocolError, match="suite"):
        initiate(hybrid_alice, classical_bundle)
    with pytest.raises(ProtocolError, match="suite"):
        initiate(IdentityKeyPair.generate(classical), hybrid_bundle)


@HYBRIDS
@pytest.mark.parametrize("one_time_kem", [True, False], ids=["one-time", "last-resort"])
def test_badly_signed_kem_prekey_refused(suite: Suite, one_time_kem: bool) -> None:
    _, bob, bundle = _parties(suite, (True, one_time_kem))
    fields = _fields(bundle.to_bytes())
    sig = bytearray(cbor.as_bytes(fields[B_KEM_SIG], "sig"))
    sig[3] ^= 0x08
    bad = list(fields)
    bad[B_KEM_SIG] = bytes(sig)
    with pytest.raises(InvalidSignature):
        PrekeyBundle.from_bytes(_resign(bob, bad))  # bundle signature fine, KEM one bad
    with pytest.raises(InvalidSignature):
        PrekeyBundle.from_bytes(cbor.encode(bad))
    # "Unsigned": a zero signature.
    bad[B_KEM_SIG] = bytes(suite.signature_len)
    with pytest.raises(InvalidSignature):
        PrekeyBundle.from_bytes(_resign(bob, bad))
    # A signature of another kind over the same content: the other KEM label, the signed-
    # prekey label.
    kem = bundle.kem_prekey
    assert kem is not None
    content = cbor.encode([bob.public_identity.signing_key.to_bytes(), kem.prekey_id,
                           kem.public_key.to_bytes()])
    other_label = (LABEL_IDENTITY_LAST_RESORT_KEM_PREKEY if one_time_kem
                   else LABEL_IDENTITY_ONE_TIME_KEM_PREKEY)
    for label in (other_label, LABEL_IDENTITY_SIGNED_PREKEY):
        bad[B_KEM_SIG] = bob.identity._sign_internal(label, content)
        with pytest.raises(InvalidSignature):
            PrekeyBundle.from_bytes(_resign(bob, bad))


@HYBRIDS
def test_kem_prekey_kinds_cannot_be_swapped(suite: Suite) -> None:
    """A one-time KEM prekey presented as the last-resort one (or back) fails its signature."""
    _, bob, bundle = _parties(suite, (True, True))
    kem = bundle.kem_prekey
    assert kem is not None
    fields = _fields(bundle.to_bytes())
    fields[B_KEM_ID] = None
    fields[5] = kem.prekey_id  # signed prekey id made equal to the one-time KEM id
    with pytest.raises(InvalidSignature):
        PrekeyBundle.from_bytes(_resign(bob, fields))
    last_resort = bob.last_resort_kem_prekey
    with pytest.raises(InvalidSignature):
        KemPrekey(last_resort.prekey_id, last_resort.public_key, last_resort.signature,
                  True).verify(bob.public_identity)
    # A last-resort KEM prekey of another signed prekey id: refused before any signature.
    with pytest.raises(ProtocolError, match="signed prekey"):
        PrekeyBundle(bundle.identity, bundle.signed_prekey, None, bundle.signature,
                     KemPrekey(last_resort.prekey_id + 1, last_resort.public_key,
                               last_resort.signature, False))


@HYBRIDS
def test_malformed_kem_key_refused(suite: Suite) -> None:
    _, bob, bundle = _parties(suite)
    fields = _fields(bundle.to_bytes())
    key = cbor.as_bytes(fields[B_KEM_KEY], "key")
    for bad in (key[:-1], key + b"\x00", b""):
        fields[B_KEM_KEY] = bad
        with pytest.raises(DecodeError):
            PrekeyBundle.from_bytes(_resign(bob, fields))
    # FIPS 203's modulus check: a 12-bit coefficient >= q = 3329 (here 0xfff) is no key.
    fields[B_KEM_KEY] = b"\xff\x0f" + key[2:]
    with pytest.raises(InvalidKey):
        PrekeyBundle.from_bytes(_resign(bob, fields))
    fields[B_KEM_KEY] = None
    with pytest.raises(DecodeError):
        PrekeyBundle.from_bytes(_resign(bob, fields))


@HYBRIDS
@pytest.mark.parametrize("one_time_kem", [True, False], ids=["one-time", "last-resort"])
def test_every_bundle_byte_change_is_a_typed_refusal(suite: Suite, one_time_kem: bool) -> None:
    """Hostile bundles: each byte flipped (and each truncation point) gives a RemoteError, never
    a crash and never another valid bundle (there is one valid encoding)."""
    _, _, bundle = _parties(suite, (True, one_time_kem))
    data = bundle.to_bytes()
    for i in range(len(data)):
        for mutated in (data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:], data[:i]):
            with pytest.raises(RemoteError):
                PrekeyBundle.from_bytes(mutated)


@HYBRIDS
def test_hybrid_bundle_size_bound(suite: Suite) -> None:
    _, _, bundle = _parties(suite)
    fields = _fields(bundle.to_bytes())
    fields[B_KEM_KEY] = bytes(MAX_HYBRID_BUNDLE_SIZE)
    with pytest.raises(LimitExceeded):
        PrekeyBundle.from_bytes(cbor.encode(fields))


def test_hybrid_p256_identities_have_one_encoding() -> None:
    """The low-s rule (03) follows the signature scheme: the hybrid P-256 suite signs with
    ECDSA too, so its identity's high-s twin is refused like suite 1's."""
    suite = next(h for h in HYBRID if h.classical.suite_id == 1)
    identity = IdentityKeyPair.generate(suite, DeterministicRandom(b"low s")).public
    fields = _fields(identity.to_bytes())
    sig = cbor.as_bytes(fields[4], "sig")
    fields[4] = sig[:32] + (P256_ORDER - int.from_bytes(sig[32:], "big")).to_bytes(32, "big")
    with pytest.raises(DecodeError, match="low-s"):
        Identity.from_bytes(cbor.encode(fields), suite)


# --- Handshake -------------------------------------------------------------------------------


@HYBRIDS
@PREKEYS
def test_hybrid_handshake_agrees(suite: Suite, one_time: tuple[bool, bool]) -> None:
    alice, bob, bundle = _parties(suite, one_time)
    start = initiate(alice, bundle)
    data = start.initial_message(b"first")
    got = accept(bob, data)
    assert got.shared_secret == start.shared_secret
    assert got.associated_data == start.associated_data
    assert got.peer == alice.public
    assert got.used_one_time_prekey is one_time[0]
    assert got.used_one_time_kem_prekey is one_time[1]
    fields = _fields(data)
    assert data[0] == 0x89 and data[1] == MSG_TYPE_INITIAL and message_type(data) == 0x10
    assert len(cbor.as_bytes(fields[M_KEM_CT], "ct")) == MLKEM768_CIPHERTEXT_LEN
    kem = bundle.kem_prekey
    assert kem is not None
    assert fields[M_KEM_ID] == (kem.prekey_id if one_time[1] else None)
    message = InitialMessage.from_bytes(data)
    assert message.to_bytes() == data
    got.commit()
    assert bob.one_time_prekey_count == 0
    assert bob.one_time_kem_prekey_count == 0


@HYBRIDS
def test_deterministic_and_system_random_initiators_both_handshake(suite: Suite) -> None:
    """With a RandomSource, m comes from it (reproducible, what the vectors use); with the
    system RNG the suites layer's randomised encapsulation is used. Both are accepted."""
    alice, bob, bundle = _parties(suite, (False, False))
    a = initiate(alice, bundle, DeterministicRandom(b"initiator"))
    b = initiate(alice, bundle, DeterministicRandom(b"initiator"))
    assert a.initial_message(b"") == b.initial_message(b"")
    ek = suite.generate_dh(DeterministicRandom(b"initiator"))
    m = DeterministicRandom(b"initiator")
    m(suite.dh_private_len)  # the RNG's first draw made EK (both suites draw 32 bytes)
    assert initiate_with_ephemeral(alice, bundle, ek, m(32)).shared_secret == a.shared_secret
    live = [initiate(alice, bundle) for _ in range(2)]
    assert live[0].header.kem_ciphertext != live[1].header.kem_ciphertext
    for start in (a, *live):
        got = accept(bob, start.initial_message(b""))
        assert got.shared_secret == start.shared_secret


@HYBRIDS
def test_kem_secret_enters_the_key_derivation(suite: Suite) -> None:
    alice, _, bundle = _parties(suite)
    ek = suite.generate_dh(DeterministicRandom(b"ek"))
    a = initiate_with_ephemeral(alice, bundle, ek, bytes(32))
    b = initiate_with_ephemeral(alice, bundle, ek, bytes(31) + b"\x01")
    again = initiate_with_ephemeral(alice, bundle, ek, bytes(32))
    # Same DH values, another encapsulation: another secret, seal and header.
    assert a.shared_secret != b.shared_secret
    assert a.header.kem_ciphertext != b.header.kem_ciphertext
    assert a.header.sealed_identity != b.header.sealed_identity
    assert a.associated_data != b.associated_data
    # Deterministic in (EK, m), for vectors.
    assert (again.shared_secret, again.initial_message(b"")) == (a.shared_secret,
                                                                a.initial_message(b""))
    for bad in (None, bytes(31), bytes(33)):
        with pytest.raises(UsageError):
            initiate_with_ephemeral(alice, bundle, ek, bad)
    classical = _classical_twin(suite)
    c_alice, c_bob = IdentityKeyPair.generate(classical), Account.generate(classical)
    with pytest.raises(UsageError):
        initiate_with_ephemeral(c_alice, c_bob.bundle(), classical.generate_dh(), bytes(32))


@HYBRIDS
def test_bad_kem_ciphertext_refused_and_account_unchanged(suite: Suite) -> None:
    alice, bob, bundle = _parties(suite)
    data = initiate(alice, bundle).initial_message(b"")
    saved = bob.to_bytes()
    fields = _fields(data)
    ct = cbor.as_bytes(fields[M_KEM_CT], "ct")
    for bad_ct, error in ((ct[:-1], DecodeError), (ct + b"\x00", DecodeError),
                          (b"", DecodeError), (None, DecodeError),
                          # Implicit rejection gives an unrelated secret: the seal does not open.
                          (bytes([ct[0] ^ 1]) + ct[1:], AuthenticationError),
                          (ct[:-1] + bytes([ct[-1] ^ 0x80]), AuthenticationError)):
        bad = list(fields)
        bad[M_KEM_CT] = bad_ct
        with pytest.raises(error):
            accept(bob, cbor.encode(bad))
    # The KEM fields missing altogether (a classical-shaped message in a hybrid suite).
    with pytest.raises(DecodeError):
        accept(bob, cbor.encode([*fields[:5], *fields[M_SEALED:]]))
    with pytest.raises(DecodeError):
        InitialMessage.from_bytes(cbor.encode([*fields[:6], *fields[M_SEALED:]]))
    assert bob.to_bytes() == saved
    accept(bob, data).commit()


@HYBRIDS
def test_unknown_consumed_and_retired_kem_prekeys(suite: Suite) -> None:
    alice, bob, bundle = _parties(suite, (False, True))
    data = initiate(alice, bundle).initial_message(b"")
    fields = _fields(data)
    unknown = list(fields)
    unknown[M_KEM_ID] = 4242
    saved = bob.to_bytes()
    with pytest.raises(ProtocolError, match="unknown one-time KEM prekey"):
        accept(bob, cbor.encode(unknown))
    assert bob.to_bytes() == saved
    accept(bob, data).commit()
    # A second message to the consumed one-time KEM prekey: refused before any DH.
    with pytest.raises(ReplayError):
        accept(bob, initiate(IdentityKeyPair.generate(suite), bundle).initial_message(b""))
    # The last-resort KEM prekey retires with its signed prekey.
    last = bob.bundle()
    data = initiate(alice, last).initial_message(b"")
    for _ in range(3):
        bob.rotate_signed_prekey()
    with pytest.raises(ProtocolError, match="retired"):
        accept(bob, data)


@HYBRIDS
@PREKEYS
def test_replayed_hybrid_message_refused(suite: Suite, one_time: tuple[bool, bool]) -> None:
    alice, bob, bundle = _parties(suite, one_time)
    data = initiate(alice, bundle).initial_message(b"")
    first, second = accept(bob, data), accept(bob, data)
    # Nothing is consumed before the commit.
    assert bob.one_time_kem_prekey_count == int(one_time[1])
    first.commit()
    saved = bob.to_bytes()
    with pytest.raises(ReplayError):
        second.commit()
    with pytest.raises(ReplayError):
        accept(bob, data)
    assert bob.to_bytes() == saved
    with pytest.raises(ReplayError):
        accept(Account.from_bytes(saved), data)


@HYBRIDS
def test_hybrid_and_classical_messages_cross_refused(suite: Suite) -> None:
    classical = _classical_twin(suite)
    alice, bob, bundle = _parties(suite)
    c_alice, c_bob = IdentityKeyPair.generate(classical), Account.generate(classical)
    c_bundle = c_bob.new_bundles(1)[0]
    hybrid_message = initiate(alice, bundle).initial_message(b"")
    classical_message = initiate(c_alice, c_bundle).initial_message(b"")
    with pytest.raises(ProtocolError, match="suite"):
        accept(c_bob, hybrid_message)
    with pytest.raises(ProtocolError, match="suite"):
        accept(bob, classical_message)
    # The classical message relabelled with the hybrid suite id lacks the KEM fields.
    fields = _fields(classical_message)
    fields[1] = suite.suite_id
    with pytest.raises(DecodeError):
        accept(bob, cbor.encode(fields))


@HYBRIDS
def test_every_header_byte_change_is_refused(suite: Suite) -> None:
    alice, bob, bundle = _parties(suite, (False, False))
    data = initiate(alice, bundle).initial_message(b"")
    expected = accept(bob, data)
    saved = bob.to_bytes()
    # Every byte outside the ciphertext, and a sample inside it (a KEM ciphertext is 1088 B).
    ct_at = data.index(cbor.as_bytes(_fields(data)[M_KEM_CT], "ct"))
    positions = [i for i in range(len(data))
                 if not ct_at <= i < ct_at + MLKEM768_CIPHERTEXT_LEN or i % 61 == 0]
    for i in positions:
        mutated = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]
        try:
            got = accept(bob, mutated)
        except RemoteError:
            continue
        assert (got.shared_secret, got.associated_data) != (
            expected.shared_secret, expected.associated_data), f"byte {i}"
    assert bob.to_bytes() == saved


@HYBRIDS
def test_hybrid_account_state_round_trip_and_checks(suite: Suite) -> None:
    _, bob, _ = _parties(suite)
    bob.new_bundles(2)
    bob.rotate_signed_prekey()
    data = bob.to_bytes()
    again = Account.from_bytes(data)
    assert again.to_bytes() == data
    assert (again.last_resort_kem_prekey.public_key.to_bytes()
            == bob.last_resort_kem_prekey.public_key.to_bytes())
    for seed in _kem_seeds(bob):
        for text in (repr(bob), repr(again), repr(again._one_time_kem), repr(bob._signed)):
            assert seed.hex() not in text and repr(seed) not in text
    fields = _fields(data)
    # A corrupted last-resort KEM signature does not load.
    signed = cbor.as_list(fields[4], "signed")
    entry = list(cbor.as_list(signed[-1], "entry"))
    sig = bytearray(cbor.as_bytes(entry[6], "sig"))
    sig[0] ^= 1
    entry[6] = bytes(sig)
    bad = list(fields)
    bad[4] = [*signed[:-1], entry]
    with pytest.raises(InvalidSignature):
        Account.from_bytes(cbor.encode(bad))
    # A short KEM seed, and a hybrid state without its KEM part.
    entry = list(cbor.as_list(signed[-1], "entry"))
    entry[5] = cbor.as_bytes(entry[5], "seed")[:-1]
    bad[4] = [*signed[:-1], entry]
    with pytest.raises(DecodeError):
        Account.from_bytes(cbor.encode(bad))
    with pytest.raises(DecodeError):
        Account.from_bytes(cbor.encode(fields[:7]))


def _kem_seeds(account: Account) -> list[bytes]:
    fields = _fields(account.to_bytes())
    seeds = [cbor.as_bytes(cbor.as_list(e, "e")[5], "seed")
             for e in cbor.as_list(fields[4], "signed")]
    seeds += [cbor.as_bytes(cbor.as_list(e, "e")[1], "seed")
              for e in cbor.as_list(fields[8], "one-time")]
    return seeds


@HYBRIDS
def test_hybrid_pairwise_session(suite: Suite) -> None:
    alice, bob, bundle = _parties(suite)
    a, blob = PairwiseSession.initiate(alice, bundle, plaintext=b"hello")
    b, first, peer = PairwiseSession.respond(bob, blob)
    assert first == b"hello" and peer == alice.public
    assert a.decrypt(b.encrypt(b"reply")) == b"reply"
    assert b.decrypt(a.encrypt(b"again")) == b"again"
    restored = PairwiseSession.from_bytes(b.to_bytes())
    assert restored.decrypt(a.encrypt(b"after restore")) == b"after restore"
    with pytest.raises(ReplayError):
        PairwiseSession.respond(bob, blob)


# --- The property: a recorded hybrid handshake survives the loss of every DH key ------------


@dataclass
class _Recording:
    """A recorded session and every DH private key of both sides (the ratchet ones as the
    seeds of the RNGs that drew them), but not the responder's KEM private key."""

    suite: Suite
    bundle: PrekeyBundle
    initiator: IdentityKeyPair
    responder_identity_dh: DhPrivateKey
    signed_prekey: DhPrivateKey
    one_time_prekey: DhPrivateKey
    ephemeral: DhPrivateKey
    initiator_ratchet_seed: bytes
    responder_ratchet_seed: bytes
    traffic: list[tuple[str, bytes]]
    plaintexts: list[bytes]
    kem_private: MlKemPrivateKey | None  # kept from the attacker; for the control run only


def _record(suite: Suite) -> _Recording:
    rng = DeterministicRandom(b"recorded session " + suite.name.encode())
    alice = IdentityKeyPair.generate(suite, rng)
    bob = Account.generate(suite, rng)
    bundle = bob.new_bundles(1, rng)[0]
    state = _fields(bob.to_bytes())
    spk = suite.dh_private_from_bytes(cbor.as_bytes(
        cbor.as_list(cbor.as_list(state[4], "spks")[0], "spk")[1], "spk"))
    opk = suite.dh_private_from_bytes(cbor.as_bytes(
        cbor.as_list(cbor.as_list(state[6], "opks")[0], "opk")[1], "opk"))
    kem_private = None
    if suite.post_quantum:
        kem_private = MlKemPrivateKey.from_seed(cbor.as_bytes(
            cbor.as_list(cbor.as_list(state[8], "kems")[0], "kem")[1], "kem"))
    ek = suite.generate_dh(rng)
    start = initiate_with_ephemeral(alice, bundle, ek,
                                    rng(32) if suite.post_quantum else None)
    seeds = (b"alice ratchet", b"bob ratchet")
    a = DoubleRatchet.initiate(suite, start.shared_secret, start.responder_ratchet_key,
                               start.associated_data, rng=DeterministicRandom(seeds[0]))
    plaintexts = [b"m0: the welcome", b"m1", b"m2", b"r0: reply", b"r1", b"m3 after a DH step"]
    traffic = [("a", start.initial_message(a.encrypt(plaintexts[0]))),
               ("a", a.encrypt(plaintexts[1])), ("a", a.encrypt(plaintexts[2]))]
    pending = accept(bob, traffic[0][1])
    b = DoubleRatchet.respond(suite, pending.shared_secret, pending.own_ratchet_key,
                              pending.associated_data, rng=DeterministicRandom(seeds[1]))
    assert b.decrypt_initial(pending.ratchet_message) == plaintexts[0]
    pending.commit()
    assert [b.decrypt(m) for _, m in traffic[1:]] == plaintexts[1:3]
    traffic += [("b", b.encrypt(plaintexts[3])), ("b", b.encrypt(plaintexts[4]))]
    assert [a.decrypt(m) for _, m in traffic[3:]] == plaintexts[3:5]
    traffic.append(("a", a.encrypt(plaintexts[5])))
    assert b.decrypt(traffic[5][1]) == plaintexts[5]
    return _Recording(suite, bundle, alice, bob.identity.dh_private_key, spk, opk, ek,
                      seeds[0], seeds[1], traffic, plaintexts, kem_private)


def _attack(rec: _Recording, kem_secret_guess: bytes | None) -> list[bytes | None]:
    """The attacker's recomputation of SK from the spec (04) with every DH private key, and the
    recorded traffic decrypted with it (None where a message does not decrypt).

    `kem_secret_guess` stands in for SS, which needs the KEM private key (None: the classical
    derivation, no SS)."""
    suite = rec.suite
    first = InitialMessage.from_bytes(rec.traffic[0][1])
    a_pub, b_pub = rec.initiator.public, rec.bundle.identity
    spk, opk = rec.bundle.signed_prekey, rec.bundle.one_time_prekey
    assert opk is not None
    dh = [rec.initiator.dh_private_key.exchange(spk.public_key),       # DH1
          rec.ephemeral.exchange(b_pub.dh_key),                        # DH2
          rec.ephemeral.exchange(spk.public_key),                      # DH3
          rec.ephemeral.exchange(opk.public_key)]                      # DH4
    transcript: list[cbor.CborEncodable] = [
        a_pub.signing_key.to_bytes(), a_pub.dh_key.to_bytes(), b_pub.signing_key.to_bytes(),
        b_pub.dh_key.to_bytes(), spk.prekey_id, spk.public_key.to_bytes(), opk.prekey_id,
        opk.public_key.to_bytes(), first.ephemeral_key]
    if suite.post_quantum:
        kem = rec.bundle.kem_prekey
        assert kem is not None
        transcript += [first.one_time_kem_prekey_id, kem.public_key.to_bytes(),
                       first.kem_ciphertext]
    sk = suite.derive_secret(b"", b"".join(dh) + (kem_secret_guess or b""),
                             LABEL_HANDSHAKE_SHARED_SECRET, cbor.encode(transcript), 32)
    ad = handshake.associated_data(suite, a_pub, b_pub, first.header())
    # Both ratchets rebuilt with their own DH keys (the seeds), driven in the recorded order.
    a = DoubleRatchet.initiate(suite, sk, spk.public_key, ad,
                               rng=DeterministicRandom(rec.initiator_ratchet_seed))
    b = DoubleRatchet.respond(suite, sk, rec.signed_prekey, ad,
                              rng=DeterministicRandom(rec.responder_ratchet_seed))
    out: list[bytes | None] = []
    for i, (sender, blob) in enumerate(rec.traffic):
        receiver, twin = (b, a) if sender == "a" else (a, b)
        with contextlib.suppress(StateError):  # a ratchet that never decrypted cannot send
            twin.encrypt(b"")  # keeps the sender's RNG (its ratchet keys) in step
        body = first.ratchet_message if i == 0 else blob
        try:
            out.append(receiver.decrypt_initial(body) if i == 0 else receiver.decrypt(body))
        except AuthenticationError:
            out.append(None)
    return out


def _open_seal(rec: _Recording, kem_secret_guess: bytes | None) -> bytes | None:
    """The sealed initiator identity opened with DH3 (and a guess of SS), from spec 04."""
    suite = rec.suite
    first = InitialMessage.from_bytes(rec.traffic[0][1])
    b_pub, spk = rec.bundle.identity, rec.bundle.signed_prekey
    context: list[cbor.CborEncodable] = [b_pub.signing_key.to_bytes(), b_pub.dh_key.to_bytes(),
                                         spk.prekey_id, spk.public_key.to_bytes(),
                                         first.ephemeral_key]
    if suite.post_quantum:
        kem = rec.bundle.kem_prekey
        assert kem is not None
        context += [first.one_time_kem_prekey_id, kem.public_key.to_bytes(),
                    first.kem_ciphertext]
    out = suite.derive_secret(b"", rec.ephemeral.exchange(spk.public_key)
                              + (kem_secret_guess or b""), LABEL_HANDSHAKE_SEAL,
                              cbor.encode(context), suite.aead_key_len + suite.aead_nonce_len)
    try:
        return suite.aead_decrypt(out[:suite.aead_key_len], out[suite.aead_key_len:],
                                  first.sealed_identity, first.seal_aad())
    except AuthenticationError:
        return None


@HYBRIDS
def test_recorded_hybrid_handshake_stays_secret_when_every_dh_key_is_broken(
        suite: Suite) -> None:
    """THE property (issue 11, Done-when): harvest now, break every DH later, still no root
    key; and the same attack on the classical twin suite reads everything."""
    classical = _record(_classical_twin(suite))
    assert _attack(classical, None) == classical.plaintexts
    assert _open_seal(classical, None) == classical.initiator.public.to_bytes()

    hybrid = _record(suite)
    ct = InitialMessage.from_bytes(hybrid.traffic[0][1]).kem_ciphertext
    assert ct is not None and hybrid.kem_private is not None
    # Control: with the one secret the attacker lacks, the same recomputation reads everything,
    # so the failures below come from SS alone and not from a wrong reconstruction.
    true_ss = hybrid.kem_private.decapsulate(ct)
    assert _attack(hybrid, true_ss) == hybrid.plaintexts
    assert _open_seal(hybrid, true_ss) == hybrid.initiator.public.to_bytes()
    # What the attacker can compute without the KEM private key: no SS at all (the classical
    # derivation), fixed guesses, and decapsulation under a KEM key of its own.
    own_kem = MlKemPrivateKey.generate(DeterministicRandom(b"attacker's own KEM key"))
    guesses: list[bytes | None] = [None, bytes(32), b"\xff" * 32, suite.hash(ct)[:32],
                                   own_kem.decapsulate(ct)]
    for guess in guesses:
        assert _attack(hybrid, guess) == [None] * len(hybrid.plaintexts)
        assert _open_seal(hybrid, guess) is None


@HYBRIDS
def test_recorded_hybrid_handshake_bytes_hold_no_dh_only_secret(suite: Suite) -> None:
    """The library's own derivation agrees: with the KEM secret replaced, the responder-side
    key is another one (the DH values alone never determine SK in a hybrid suite)."""
    rec = _record(suite)
    first = InitialMessage.from_bytes(rec.traffic[0][1])
    assert first.kem_ciphertext is not None and rec.kem_private is not None
    true_ss = rec.kem_private.decapsulate(first.kem_ciphertext)
    with pytest.raises(UsageError):
        handshake.shared_secret(suite, [b"dh"], b"transcript")
    assert handshake.shared_secret(suite, [b"dh"], b"t", true_ss) != handshake.shared_secret(
        suite, [b"dh"], b"t", bytes(32))
