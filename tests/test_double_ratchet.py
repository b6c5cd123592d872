"""Double Ratchet (header-encrypted): unit tests, failure atomicity, FS/PCS, limits, tampering."""

from __future__ import annotations

import pytest

from triple_ratchet import cbor
from triple_ratchet.double_ratchet import (
    DEFAULT_LIMITS,
    DoubleRatchet,
    Limits,
    initial_keys,
    kdf_chain,
    kdf_root,
    message_overhead,
)
from triple_ratchet.errors import (
    AuthenticationError,
    DecodeError,
    LimitExceeded,
    ProtocolError,
    RemoteError,
    ReplayError,
    StateError,
    UnsupportedError,
    UsageError,
)
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import CLASSICAL_SUITES, DEFAULT_SUITE, Suite

SECRET = bytes(range(32))
AD = b"test associated data"


def pair(suite: Suite = DEFAULT_SUITE, limits: Limits = DEFAULT_LIMITS, seed: bytes = b"pair",
         ad: bytes = AD) -> tuple[DoubleRatchet, DoubleRatchet]:
    rng = DeterministicRandom(seed)
    bob_key = suite.generate_dh(rng)
    alice = DoubleRatchet.initiate(suite, SECRET, bob_key.public_key(), ad, rng=rng,
                                   limits=limits)
    bob = DoubleRatchet.respond(suite, SECRET, bob_key, ad, limits=limits, rng=rng)
    return alice, bob


def expect_unchanged(party: DoubleRatchet, message: bytes, error: type[Exception]) -> None:
    before = party.to_bytes()
    with pytest.raises(error):
        party.decrypt(message)
    assert party.to_bytes() == before


@pytest.fixture(params=CLASSICAL_SUITES, ids=lambda s: s.name)
def suite(request: pytest.FixtureRequest) -> Suite:
    s: Suite = request.param
    return s


# --- Basic operation ------------------------------------------------------------------------


def test_round_trip_both_ways(suite: Suite) -> None:
    alice, bob = pair(suite)
    for i in range(3):
        m = alice.encrypt(b"a%d" % i)
        assert len(m) == len(b"a0") + message_overhead(suite)
        assert bob.decrypt(m) == b"a%d" % i
        r = bob.encrypt(b"b%d" % i)
        assert alice.decrypt(r) == b"b%d" % i


def test_empty_and_large_plaintext(suite: Suite) -> None:
    alice, bob = pair(suite)
    assert bob.decrypt(alice.encrypt(b"")) == b""
    big = bytes(range(256)) * 400
    assert bob.decrypt(alice.encrypt(big)) == big


def test_responder_cannot_send_first() -> None:
    alice, bob = pair()
    assert alice.can_send and not bob.can_send
    with pytest.raises(StateError):
        bob.encrypt(b"x")
    bob.decrypt(alice.encrypt(b"hello"))
    assert bob.can_send


def test_out_of_order_within_and_across_chains(suite: Suite) -> None:
    alice, bob = pair(suite)
    a = [alice.encrypt(b"a%d" % i) for i in range(5)]
    assert bob.decrypt(a[3]) == b"a3"
    b0 = bob.encrypt(b"b0")
    assert alice.decrypt(b0) == b"b0"
    a2 = [alice.encrypt(b"c%d" % i) for i in range(3)]  # new chain after Alice's DH step
    assert bob.decrypt(a2[2]) == b"c2"          # Bob ratchets; keeps a0,a1,a2,a4 and c0,c1
    assert bob.skipped_key_count == 6
    for i in (4, 0, 2, 1):
        assert bob.decrypt(a[i]) == b"a%d" % i
    assert bob.decrypt(a2[0]) == b"c0"
    assert bob.decrypt(a2[1]) == b"c1"
    assert bob.skipped_key_count == 0
    assert bob.to_bytes().endswith(b"\x80")  # the skipped list is empty: keys really dropped


def test_wrong_associated_data_fails() -> None:
    alice, _ = pair(ad=b"one")
    _, bob = pair(ad=b"two")
    expect_unchanged(bob, alice.encrypt(b"x"), AuthenticationError)


def test_wrong_shared_secret_fails() -> None:
    rng = DeterministicRandom(b"k")
    bob_key = DEFAULT_SUITE.generate_dh(rng)
    alice = DoubleRatchet.initiate(DEFAULT_SUITE, SECRET, bob_key.public_key(), AD, rng=rng)
    bob = DoubleRatchet.respond(DEFAULT_SUITE, bytes(32), bob_key, AD)
    expect_unchanged(bob, alice.encrypt(b"x"), AuthenticationError)


def test_usage_errors() -> None:
    with pytest.raises(UsageError):
        DoubleRatchet.initiate(DEFAULT_SUITE, b"short", DEFAULT_SUITE.generate_dh().public_key(),
                               AD)
    with pytest.raises(UsageError):
        DoubleRatchet()
    with pytest.raises(UsageError):
        Limits(max_skip=10, max_skipped_keys=5)
    with pytest.raises(UsageError):
        Limits(max_skip=-1)
    with pytest.raises(UsageError):
        Limits(max_skip=20_000, max_skipped_keys=20_001)  # a state must fit CBOR's limits
    with pytest.raises(UsageError):
        Limits(max_skipped_chains=1001)
    alice, _ = pair(limits=Limits(max_message_size=200))
    with pytest.raises(UsageError):
        alice.encrypt(bytes(200))


# --- Serialization and repr ---------------------------------------------------------------


def test_state_round_trip_is_exact(suite: Suite) -> None:
    alice, bob = pair(suite)
    held = [alice.encrypt(b"%d" % i) for i in range(4)]
    bob.decrypt(held[3])
    for party in (alice, bob):
        data = party.to_bytes()
        restored = DoubleRatchet.from_bytes(data, rng=DeterministicRandom(b"r"))
        assert restored.to_bytes() == data
    bob2 = DoubleRatchet.from_bytes(bob.to_bytes())
    assert bob2.decrypt(held[1]) == b"1"
    assert alice.decrypt(bob2.encrypt(b"back")) == b"back"


def test_from_bytes_rejects_malformed_state() -> None:
    alice, bob = pair()
    bob.decrypt(alice.encrypt(b"x"))
    fields = cbor.decode(bob.to_bytes())
    assert isinstance(fields, list)
    bad_variants = []
    replacements: list[tuple[int, cbor.CborValue]] = [
        (0, 2), (1, 0x7777), (6, b"short"), (13, -1), (16, [[b"x", []]]), (9, None),
        (5, b"\x04" + bytes(64)),
    ]
    for index, value in replacements:
        variant = list(fields)
        variant[index] = value
        bad_variants.append(cbor.encode(variant))
    bad_variants.append(cbor.encode(fields[:-1]))
    bad_variants.append(bob.to_bytes()[:-1])
    for data in bad_variants:
        with pytest.raises(RemoteError):
            DoubleRatchet.from_bytes(data)


def test_no_secret_in_repr(suite: Suite) -> None:
    alice, bob = pair(suite)
    bob.decrypt(alice.encrypt(b"x"))
    text = repr(bob) + str(bob) + repr(alice)
    rk, hka, nhkb = initial_keys(suite, SECRET, AD)
    for secret in (rk, hka, nhkb, SECRET):
        assert secret.hex() not in text
        assert repr(secret) not in text
    assert "redacted" in text


# --- Failure atomicity and typed errors -------------------------------------------------


def test_replay_is_typed_and_changes_nothing(suite: Suite) -> None:
    alice, bob = pair(suite)
    m0, m1 = alice.encrypt(b"0"), alice.encrypt(b"1")
    bob.decrypt(m1)
    bob.decrypt(m0)  # from the skipped store
    expect_unchanged(bob, m1, ReplayError)  # current chain, number below Nr
    expect_unchanged(bob, m0, ReplayError)
    reply = bob.encrypt(b"r")
    alice.decrypt(reply)
    expect_unchanged(alice, reply, ReplayError)  # the message that made Alice ratchet


def test_replay_from_fully_consumed_old_chain_is_authentication_error() -> None:
    alice, bob = pair()
    m0 = alice.encrypt(b"0")
    bob.decrypt(m0)
    alice.decrypt(bob.encrypt(b"r"))
    bob.decrypt(alice.encrypt(b"new chain"))
    # Bob no longer holds the header key of Alice's first chain (nothing was skipped in it).
    expect_unchanged(bob, m0, AuthenticationError)


def test_every_single_byte_flip_is_rejected_without_change(suite: Suite) -> None:
    alice, bob = pair(suite)
    bob.decrypt(alice.encrypt(b"warm up"))
    alice.decrypt(bob.encrypt(b"reply"))
    message = alice.encrypt(b"tamper with me")  # a DH-ratchet message for Bob
    for i in range(len(message)):
        tampered = bytearray(message)
        tampered[i] ^= 0x01
        expect_unchanged(bob, bytes(tampered), RemoteError)
    assert bob.decrypt(message) == b"tamper with me"


def test_every_byte_flip_on_current_chain_and_skipped_paths(suite: Suite) -> None:
    alice, bob = pair(suite)
    bob.decrypt(alice.encrypt(b"0"))
    held = alice.encrypt(b"held")           # will be a skipped key
    steady = alice.encrypt(b"steady")       # current chain, skips `held`
    for message in (steady, held):
        for i in range(len(message)):
            tampered = bytearray(message)
            tampered[i] ^= 0x80
            expect_unchanged(bob, bytes(tampered), RemoteError)
        assert bob.decrypt(message) in (b"steady", b"held")


def test_malformed_messages() -> None:
    alice, bob = pair()
    message = alice.encrypt(b"x")
    expect_unchanged(bob, message[:40], DecodeError)
    expect_unchanged(bob, b"", DecodeError)
    expect_unchanged(bob, b"\x02" + message[1:], UnsupportedError)
    expect_unchanged(bob, message + b"\x00", AuthenticationError)
    expect_unchanged(bob, message[:-1], AuthenticationError)
    small_alice, small_bob = pair(limits=Limits(max_message_size=300))
    expect_unchanged(small_bob, bytes(301), LimitExceeded)
    with pytest.raises(UsageError):
        bob.decrypt(bytearray(message))  # type: ignore[arg-type]
    assert small_bob.decrypt(small_alice.encrypt(b"fits")) == b"fits"


def test_body_tamper_after_authentic_header_on_every_path() -> None:
    alice, bob = pair()
    held = [alice.encrypt(b"%d" % i) for i in range(3)]

    def flip_last(m: bytes) -> bytes:
        return m[:-1] + bytes([m[-1] ^ 1])

    expect_unchanged(bob, flip_last(held[2]), AuthenticationError)  # new-chain path
    bob.decrypt(held[2])
    expect_unchanged(bob, flip_last(held[0]), AuthenticationError)  # skipped path
    m3 = alice.encrypt(b"3")
    expect_unchanged(bob, flip_last(m3), AuthenticationError)  # current-chain path
    assert [bob.decrypt(m) for m in (held[0], held[1], m3)] == [b"0", b"1", b"3"]


# --- Limits -------------------------------------------------------------------------------


def test_max_skip_in_current_chain() -> None:
    limits = Limits(max_skip=3, max_skipped_keys=10)
    alice, bob = pair(limits=limits)
    bob.decrypt(alice.encrypt(b"first"))
    ms = [alice.encrypt(b"%d" % i) for i in range(6)]
    expect_unchanged(bob, ms[4], LimitExceeded)  # would skip 4 keys (Nr=1 .. 4)
    assert bob.decrypt(ms[3]) == b"3"  # skips exactly 3
    assert bob.decrypt(ms[4]) == b"4"


def test_max_skip_in_new_chain_and_previous_chain() -> None:
    limits = Limits(max_skip=2, max_skipped_keys=10)
    alice, bob = pair(limits=limits)
    ms = [alice.encrypt(b"%d" % i) for i in range(4)]
    expect_unchanged(bob, ms[3], LimitExceeded)  # N=3 in a new chain
    bob.decrypt(ms[0])
    alice.decrypt(bob.encrypt(b"r"))
    m_new = alice.encrypt(b"new")  # PN=4: 1..3 of the old chain are missing (3 > 2)
    # The new chain is accepted anyway (refusing it would end the session for good); only
    # max_skip keys of the old chain are derived and kept, the rest is given up.
    assert bob.decrypt(m_new) == b"new"
    assert bob.skipped_key_count == 2
    expect_unchanged(bob, ms[3], ReplayError)
    assert bob.decrypt(ms[1]) == b"1"
    assert bob.decrypt(ms[2]) == b"2"


def test_total_skipped_keys_evict_oldest() -> None:
    limits = Limits(max_skip=5, max_skipped_keys=6)
    alice, bob = pair(limits=limits)
    a = [alice.encrypt(b"a%d" % i) for i in range(6)]
    bob.decrypt(a[5])  # skipped a0..a4 (5 keys)
    alice.decrypt(bob.encrypt(b"r"))
    c = [alice.encrypt(b"c%d" % i) for i in range(3)]
    bob.decrypt(c[2])  # adds c0, c1: 7 > 6, so a0 (the oldest) is evicted
    assert bob.skipped_key_count == 6
    expect_unchanged(bob, a[0], ReplayError)
    assert bob.decrypt(a[1]) == b"a1"
    assert bob.decrypt(c[0]) == b"c0"


def test_skipped_chain_limit_evicts_oldest_chain() -> None:
    limits = Limits(max_skip=10, max_skipped_keys=50, max_skipped_chains=2)
    alice, bob = pair(limits=limits)
    held = []
    for round_ in range(3):
        held.append(alice.encrypt(b"held %d" % round_))
        bob.decrypt(alice.encrypt(b"seen %d" % round_))
        alice.decrypt(bob.encrypt(b"reply %d" % round_))
    # The next message makes Bob store a third chain's worth; the first one is evicted.
    bob.decrypt(alice.encrypt(b"trigger"))
    assert bob.skipped_key_count == 2
    # Alice's first chain's header key is gone entirely, so the header opens under nothing.
    expect_unchanged(bob, held[0], AuthenticationError)
    assert bob.decrypt(held[1]) == b"held 1"
    assert bob.decrypt(held[2]) == b"held 2"


# --- Deleted keys are gone from the state ------------------------------------------------


def _state_fields(party: DoubleRatchet) -> list[cbor.CborValue]:
    fields = cbor.decode(party.to_bytes())
    assert isinstance(fields, list)
    return fields


def test_used_skipped_key_is_removed_from_state(suite: Suite) -> None:
    alice, bob = pair(suite)
    m0, m1 = alice.encrypt(b"0"), alice.encrypt(b"1")
    bob.decrypt(m1)
    chains = _state_fields(bob)[16]
    hka = initial_keys(suite, SECRET, AD)[1]
    # One chain (Alice's first, under HKa) holding one key, for N = 0.
    assert isinstance(chains, list) and len(chains) == 1
    hk, entries = cbor.as_list(chains[0], "chain", 2)
    n, mk = cbor.as_list(cbor.as_list(entries, "entries", 1)[0], "entry", 2)
    assert hk == hka and n == 0
    assert isinstance(mk, bytes) and len(mk) == suite.aead_key_len
    assert mk in bob.to_bytes()
    bob.decrypt(m0)
    assert mk not in bob.to_bytes()
    assert _state_fields(bob)[16] == []


def test_old_chain_keys_and_prekey_leave_the_state(suite: Suite) -> None:
    rng = DeterministicRandom(b"prekey")
    spk = suite.generate_dh(rng)
    alice = DoubleRatchet.initiate(suite, SECRET, spk.public_key(), AD, rng=rng)
    bob = DoubleRatchet.respond(suite, SECRET, spk, AD, rng=rng)
    assert spk.to_bytes() in bob.to_bytes()
    bob.decrypt(alice.encrypt(b"first"))
    assert spk.to_bytes() not in bob.to_bytes()  # the signed prekey's secret is dropped
    old = _state_fields(bob)
    bob.decrypt(alice.encrypt(b"second"))
    alice.decrypt(bob.encrypt(b"reply"))
    bob.decrypt(alice.encrypt(b"third"))
    state = bob.to_bytes()
    for index in (6, 7, 8):  # RK, CKs, CKr of the earlier state
        value = old[index]
        assert isinstance(value, bytes) and value not in state


# --- Forward secrecy and post-compromise security -----------------------------------------


def test_forward_secrecy_captured_state_cannot_reread(suite: Suite) -> None:
    alice, bob = pair(suite)
    consumed = []
    for i in range(3):
        m = alice.encrypt(b"a%d" % i)
        bob.decrypt(m)
        consumed.append(m)
        alice.decrypt(bob.encrypt(b"b%d" % i))
    held = alice.encrypt(b"held")
    later = alice.encrypt(b"later")
    bob.decrypt(later)
    consumed.append(later)
    captured_bob = DoubleRatchet.from_bytes(bob.to_bytes())
    for m in consumed:
        with pytest.raises((ReplayError, AuthenticationError)):
            captured_bob.decrypt(m)
    assert captured_bob.decrypt(held) == b"held"  # only the unconsumed one


def test_post_compromise_security(suite: Suite) -> None:
    alice, bob = pair(suite)
    bob.decrypt(alice.encrypt(b"hello"))
    alice.decrypt(bob.encrypt(b"hi"))
    compromised = bob.to_bytes()  # the attacker copies Bob's whole state here
    # A DH ratchet round trip: Alice sends on a new key, Bob replies on a fresh key of his own.
    before = alice.encrypt(b"before healing")
    bob.decrypt(before)
    alice.decrypt(bob.encrypt(b"fresh key"))
    healed = [alice.encrypt(b"secret %d" % i) for i in range(3)]
    # The stale copy decrypts none of the new messages, whether or not it saw the one before
    # (which it can read: Alice sent it before Bob's fresh key reached her).
    for m in healed:
        stale = DoubleRatchet.from_bytes(compromised)
        with pytest.raises(AuthenticationError):
            stale.decrypt(m)
        stale = DoubleRatchet.from_bytes(compromised)
        assert stale.decrypt(before) == b"before healing"
        with pytest.raises(AuthenticationError):
            stale.decrypt(m)
    assert [bob.decrypt(m) for m in healed] == [b"secret 0", b"secret 1", b"secret 2"]


# --- KDFs ---------------------------------------------------------------------------------


def test_kdfs_are_distinct_and_deterministic(suite: Suite) -> None:
    rk, hka, nhkb = initial_keys(suite, SECRET, AD)
    assert len({rk, hka, nhkb}) == 3 and len(rk) == suite.hash_len
    assert initial_keys(suite, SECRET, b"other") != (rk, hka, nhkb)
    rk2, ck, nhk = kdf_root(suite, rk, b"\x01" * 32)
    assert len({rk2, ck, nhk, rk}) == 4
    ck2, mk = kdf_chain(suite, ck)
    assert ck2 != ck and len(mk) == suite.aead_key_len and mk != ck2[:len(mk)]


def test_protocol_errors_on_authentic_but_wrong_headers() -> None:
    # Simulate a peer that breaks the protocol by building messages by hand from its state.
    alice, bob = pair()
    bob.decrypt(alice.encrypt(b"0"))
    alice.decrypt(bob.encrypt(b"r"))
    # Bob receives a new-chain message whose PN claims fewer messages than Bob already got.
    alice_pn_lie = DoubleRatchet.from_bytes(alice.to_bytes())
    fields = cbor.decode(alice_pn_lie.to_bytes())
    assert isinstance(fields, list)
    fields[15] = 0  # PN := 0, but Bob has received 1 message of the previous chain
    liar = DoubleRatchet.from_bytes(cbor.encode(fields))
    expect_unchanged(bob, liar.encrypt(b"x"), ProtocolError)


def test_sending_chain_exhaustion_keeps_counters_32_bit() -> None:
    alice, _ = pair()
    fields = cbor.decode(alice.to_bytes())
    assert isinstance(fields, list)
    fields[13] = 2**32 - 2
    almost = DoubleRatchet.from_bytes(cbor.encode(fields))
    last = almost.encrypt(b"last")  # N = 2^32 - 2 is still sendable...
    assert len(last) > 0
    before = almost.to_bytes()
    with pytest.raises(StateError):  # ...and nothing after it
        almost.encrypt(b"one more")
    assert almost.to_bytes() == before
    fields[13] = 2**32
    with pytest.raises(DecodeError):
        DoubleRatchet.from_bytes(cbor.encode(fields))


def test_keys_of_another_suite_are_refused() -> None:
    p256, x25519 = CLASSICAL_SUITES
    with pytest.raises(RemoteError):  # InvalidKey: not a P-256 encoding
        DoubleRatchet.initiate(p256, SECRET, x25519.generate_dh().public_key(), AD)
    with pytest.raises(UsageError):
        DoubleRatchet.respond(p256, SECRET, x25519.generate_dh(), AD)


def test_spam_costs_at_most_two_plus_chain_limit_trial_decryptions(
        monkeypatch: pytest.MonkeyPatch) -> None:
    limits = Limits(max_skip=10, max_skipped_keys=50, max_skipped_chains=2)
    alice, bob = pair(limits=limits)
    for round_ in range(3):  # leave skipped keys in three of Alice's chains (two are kept)
        alice.encrypt(b"lost")
        bob.decrypt(alice.encrypt(b"seen %d" % round_))
        alice.decrypt(bob.encrypt(b"reply"))
    bob.decrypt(alice.encrypt(b"a chain without losses"))  # so neither old chain is current
    assert bob.skipped_key_count == 2
    calls: list[bytes] = []
    real = DEFAULT_SUITE.aead_decrypt

    def counting(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        calls.append(key)
        return real(key, nonce, ciphertext, aad)

    monkeypatch.setattr(DEFAULT_SUITE, "aead_decrypt", counting)
    spam = b"\x01" + DeterministicRandom(b"spam")(200)
    expect_unchanged(bob, spam, AuthenticationError)
    assert len(calls) == 2 + limits.max_skipped_chains  # HKr, two old chains, NHKr
    assert len(set(calls)) == len(calls)
    calls.clear()
    expect_unchanged(bob, spam[:50], DecodeError)  # no cryptography before the cheap checks
    expect_unchanged(bob, b"\x07" + spam[1:], UnsupportedError)
    assert calls == []
