"""The X3DH-style handshake: key agreement, sealed identity, prekey use and replays."""

from __future__ import annotations

import pytest

from triple_ratchet import cbor, handshake
from triple_ratchet.errors import (
    AuthenticationError,
    DecodeError,
    InvalidKey,
    ProtocolError,
    RemoteError,
    ReplayError,
    UnsupportedError,
    UsageError,
)
from triple_ratchet.handshake import (
    MSG_TYPE_INITIAL,
    InitialMessage,
    accept,
    initiate,
    initiate_with_ephemeral,
    sealed_identity_length,
)
from triple_ratchet.identity import Account, IdentityKeyPair, PrekeyBundle
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import (
    CLASSICAL_SUITES,
    HYBRID_SUITES,
    X25519_SHA512_XCHACHA20,
    Suite,
)

SUITES = pytest.mark.parametrize("suite", CLASSICAL_SUITES, ids=lambda s: s.name)
OPK = pytest.mark.parametrize("with_opk", [True, False], ids=["opk", "no-opk"])
# The sealed identity is the initial message's second-to-last element in every suite (spec 04).
SEALED = -2


def _parties(suite: Suite, with_opk: bool = True) -> tuple[IdentityKeyPair, Account,
                                                           PrekeyBundle]:
    rng = DeterministicRandom(b"handshake test" + suite.name.encode())
    alice = IdentityKeyPair.generate(suite, rng)
    bob = Account.generate(suite, rng)
    bundle = bob.new_bundles(1, rng)[0] if with_opk else bob.bundle()
    return alice, bob, bundle


@SUITES
@OPK
def test_both_sides_agree(suite: Suite, with_opk: bool) -> None:
    alice, bob, bundle = _parties(suite, with_opk)
    start = initiate(alice, bundle)
    data = start.initial_message(b"first ratchet message")
    got = accept(bob, data)
    assert got.shared_secret == start.shared_secret
    assert len(got.shared_secret) == handshake.SHARED_SECRET_LEN
    assert got.associated_data == start.associated_data
    assert got.peer == alice.public
    assert start.peer == bob.public_identity
    assert got.ratchet_message == b"first ratchet message"
    assert got.used_one_time_prekey is with_opk
    assert got.own_ratchet_key.public_key() == start.responder_ratchet_key


@SUITES
def test_one_time_prekey_changes_the_secret(suite: Suite) -> None:
    alice, bob, bundle = _parties(suite)
    ek = suite.generate_dh()
    m = bytes(32) if suite.post_quantum else None  # a hybrid suite's KEM randomness
    with_opk = initiate_with_ephemeral(alice, bundle, ek, m)
    without = initiate_with_ephemeral(alice, bob.bundle(), ek, m)
    assert with_opk.shared_secret != without.shared_secret
    assert with_opk.associated_data != without.associated_data


@SUITES
def test_fresh_ephemeral_each_time(suite: Suite) -> None:
    alice, _, bundle = _parties(suite)
    a, b = initiate(alice, bundle), initiate(alice, bundle)
    assert a.header.ephemeral_key != b.header.ephemeral_key
    assert a.shared_secret != b.shared_secret


@SUITES
@OPK
def test_initiator_identity_is_sealed(suite: Suite, with_opk: bool) -> None:
    alice, bob, bundle = _parties(suite, with_opk)
    data = initiate(alice, bundle).initial_message(b"")
    for public in (alice.public.signing_key.to_bytes(), alice.public.dh_key.to_bytes(),
                   alice.public.dh_key_signature, alice.public.to_bytes()):
        assert public not in data
        # Not even a recognisable fragment of it.
        assert public[1:17] not in data
    fields = cbor.as_list(cbor.decode(data), "message")
    assert len(cbor.as_bytes(fields[SEALED], "sealed")) == sealed_identity_length(suite)
    assert accept(bob, data).peer == alice.public


@SUITES
def test_one_time_prekey_used_once(suite: Suite) -> None:
    alice, bob, bundle = _parties(suite)
    data = initiate(alice, bundle).initial_message(b"m")
    accept(bob, data).commit()
    assert bob.one_time_prekey_count == 0
    saved = bob.to_bytes()
    with pytest.raises(ReplayError):
        accept(bob, data)
    # Another initiator using the same (consumed) bundle is refused as well.
    other = IdentityKeyPair.generate(suite)
    with pytest.raises(ReplayError):
        accept(bob, initiate(other, bundle).initial_message(b"m"))
    assert bob.to_bytes() == saved


@SUITES
def test_replay_without_one_time_prekey_rejected(suite: Suite) -> None:
    alice, bob, bundle = _parties(suite, with_opk=False)
    data = initiate(alice, bundle).initial_message(b"m")
    accept(bob, data).commit()
    saved = bob.to_bytes()
    with pytest.raises(ReplayError):
        accept(bob, data)
    assert bob.to_bytes() == saved
    # The cache survives a save and restore.
    with pytest.raises(ReplayError):
        accept(Account.from_bytes(saved), data)
    # A fresh handshake on the same bundle still works.
    accept(bob, initiate(alice, bundle).initial_message(b"m")).commit()


@SUITES
@OPK
def test_two_pending_acceptances_commit_once(suite: Suite, with_opk: bool) -> None:
    alice, bob, bundle = _parties(suite, with_opk)
    data = initiate(alice, bundle).initial_message(b"m")
    first, second = accept(bob, data), accept(bob, data)
    first.commit()
    saved = bob.to_bytes()
    with pytest.raises(ReplayError):
        second.commit()
    assert bob.to_bytes() == saved
    with pytest.raises(UsageError):
        first.commit()


@SUITES
@OPK
def test_accept_does_not_touch_the_account(suite: Suite, with_opk: bool) -> None:
    alice, bob, bundle = _parties(suite, with_opk)
    saved = bob.to_bytes()
    accept(bob, initiate(alice, bundle).initial_message(b"m"))
    assert bob.to_bytes() == saved


@SUITES
def test_cheap_checks_come_before_any_dh(suite: Suite) -> None:
    alice, bob, bundle = _parties(suite)
    data = initiate(alice, bundle).initial_message(b"m")
    accept(bob, data).commit()
    fields = cbor.as_list(cbor.decode(data), "message")
    # An invalid ephemeral key in a message whose prekey is consumed: the replay is found first.
    fields[2] = bytes(suite.dh_public_len)
    with pytest.raises(ReplayError):
        accept(bob, cbor.encode(fields))
    fields[3] = 999  # unknown signed prekey: found before the ephemeral key is looked at
    with pytest.raises(ProtocolError, match="unknown signed prekey"):
        accept(bob, cbor.encode(fields))


@SUITES
def test_unknown_and_retired_prekeys(suite: Suite) -> None:
    alice, bob, bundle = _parties(suite)
    data = initiate(alice, bundle).initial_message(b"m")
    fields = cbor.as_list(cbor.decode(data), "message")
    fields[4] = 12345
    with pytest.raises(ProtocolError, match="unknown one-time prekey"):
        accept(bob, cbor.encode(fields))
    for _ in range(3):
        bob.rotate_signed_prekey()
    with pytest.raises(ProtocolError, match="retired"):
        accept(bob, data)


@SUITES
def test_wrong_suite_rejected(suite: Suite) -> None:
    other = next(s for s in CLASSICAL_SUITES if s is not suite)
    alice, _, bundle = _parties(suite)
    data = initiate(alice, bundle).initial_message(b"m")
    with pytest.raises(ProtocolError, match="suite"):
        accept(Account.generate(other), data)
    with pytest.raises(ProtocolError, match="suite"):
        initiate(IdentityKeyPair.generate(other), bundle)
    fields = cbor.as_list(cbor.decode(data), "message")
    fields[1] = 0x7777
    with pytest.raises(UnsupportedError):
        accept(Account.generate(suite), cbor.encode(fields))


@SUITES
@OPK
def test_every_single_byte_change_is_rejected_and_store_unchanged(suite: Suite,
                                                                  with_opk: bool) -> None:
    alice, bob, bundle = _parties(suite, with_opk)
    # The ratchet message is opaque here (pairwise tests cover it): change only the header.
    data = initiate(alice, bundle).initial_message(b"")
    saved = bob.to_bytes()
    expected = accept(bob, data)
    for i in range(len(data)):
        mutated = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]
        try:
            got = accept(bob, mutated)
        except RemoteError:
            continue
        # A change that still parses must not give the same session keys.
        assert (got.shared_secret, got.associated_data) != (
            expected.shared_secret, expected.associated_data), f"byte {i}"
    assert bob.to_bytes() == saved
    accept(bob, data).commit()


@SUITES
def test_sealed_identity_tampering_is_authentication_error(suite: Suite) -> None:
    alice, bob, bundle = _parties(suite)
    data = initiate(alice, bundle).initial_message(b"")
    fields = cbor.as_list(cbor.decode(data), "message")
    sealed = bytearray(cbor.as_bytes(fields[SEALED], "sealed"))
    sealed[0] ^= 1
    fields[SEALED] = bytes(sealed)
    with pytest.raises(AuthenticationError):
        accept(bob, cbor.encode(fields))
    fields[SEALED] = bytes(sealed[:-1])
    with pytest.raises(DecodeError):
        accept(bob, cbor.encode(fields))


def test_low_order_ephemeral_rejected() -> None:
    suite = X25519_SHA512_XCHACHA20
    alice, bob, bundle = _parties(suite)
    data = initiate(alice, bundle).initial_message(b"")
    fields = cbor.as_list(cbor.decode(data), "message")
    fields[2] = bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")
    with pytest.raises(InvalidKey):
        accept(bob, cbor.encode(fields))


@SUITES
def test_session_with_oneself_refused(suite: Suite) -> None:
    _, bob, bundle = _parties(suite)
    with pytest.raises(UsageError):
        initiate(bob.identity, bundle)


@SUITES
def test_initial_message_encoding(suite: Suite) -> None:
    alice, _, bundle = _parties(suite)
    start = initiate(alice, bundle)
    data = start.initial_message(b"ratchet")
    message = InitialMessage.from_bytes(data)
    assert message.to_bytes() == data
    # A 7-element array (9 with a hybrid suite's KEM prekey id and ciphertext) of type 0x10.
    assert data[0] == (0x89 if suite.post_quantum else 0x87) and data[1] == MSG_TYPE_INITIAL
    assert message.one_time_prekey_id == bundle.one_time_prekey.prekey_id  # type: ignore[union-attr]
    assert message.ratchet_message == b"ratchet"
    assert start.associated_data == handshake.associated_data(
        suite, alice.public, bundle.identity, message.header())


@SUITES
def test_no_secret_in_repr(suite: Suite) -> None:
    alice, bob, bundle = _parties(suite)
    start = initiate(alice, bundle)
    got = accept(bob, start.initial_message(b""))
    for text in (repr(start), str(start), repr(got), str(got)):
        assert start.shared_secret.hex()[:16] not in text
        assert repr(start.shared_secret) not in text
        assert got.own_ratchet_key.to_bytes().hex()[:16] not in text


def test_vectors_file_verifies_and_is_reproducible() -> None:
    import json
    from pathlib import Path

    from triple_ratchet.testvectors import handshake as handshake_vectors
    from triple_ratchet.testvectors import verify_document

    path = Path(__file__).resolve().parents[1] / "vectors" / handshake_vectors.FILE
    doc = json.loads(path.read_text())
    results = list(verify_document(doc))
    assert results and all(r.status == "passed" for r in results), results
    errors = {c["error"]["type"] for c in doc["cases"] if "error" in c}
    assert {"ReplayError", "ProtocolError", "InvalidSignature"} <= errors
    assert {c["suite"] for c in doc["cases"]} == {s.name for s in (*CLASSICAL_SUITES,
                                                                   *HYBRID_SUITES)}
    assert handshake_vectors.generate()[handshake_vectors.FILE] == doc


def test_vectors_detect_a_wrong_output() -> None:
    import json
    from pathlib import Path

    from triple_ratchet.testvectors import handshake as handshake_vectors
    from triple_ratchet.testvectors import verify_document

    path = Path(__file__).resolve().parents[1] / "vectors" / handshake_vectors.FILE
    doc = json.loads(path.read_text())
    case = next(c for c in doc["cases"] if "outputs" in c)
    secret = bytearray(bytes.fromhex(case["outputs"]["shared_secret"]))
    secret[0] ^= 1
    case["outputs"]["shared_secret"] = secret.hex()
    assert [r.status for r in verify_document(doc)].count("failed") == 1
