"""PairwiseSession: the one-to-one recipe on top of the handshake and the Double Ratchet."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triple_ratchet import cbor
from triple_ratchet.errors import (
    AuthenticationError,
    DecodeError,
    ProtocolError,
    RemoteError,
    ReplayError,
    StateError,
    UnsupportedError,
)
from triple_ratchet.handshake import MSG_TYPE_INITIAL
from triple_ratchet.identity import Account, IdentityKeyPair, PrekeyBundle, safety_number
from triple_ratchet.pairwise import MSG_TYPE_PAIRWISE, PairwiseSession, message_type
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import CLASSICAL_SUITES, Suite

SUITES = pytest.mark.parametrize("suite", CLASSICAL_SUITES, ids=lambda s: s.name)
OPK = pytest.mark.parametrize("with_opk", [True, False], ids=["opk", "no-opk"])


def _parties(suite: Suite, with_opk: bool = True) -> tuple[IdentityKeyPair, Account,
                                                           PrekeyBundle]:
    rng = DeterministicRandom(b"pairwise test" + suite.name.encode())
    alice = IdentityKeyPair.generate(suite, rng)
    bob = Account.generate(suite, rng)
    bundle = bob.new_bundles(1, rng)[0] if with_opk else bob.bundle()
    return alice, bob, bundle


def _pair(suite: Suite, with_opk: bool = True
          ) -> tuple[PairwiseSession, PairwiseSession, Account]:
    alice, bob, bundle = _parties(suite, with_opk)
    a, blob = PairwiseSession.initiate(alice, bundle, plaintext=b"hello")
    b, plaintext, peer = PairwiseSession.respond(bob, blob)
    assert plaintext == b"hello"
    assert peer == alice.public
    return a, b, bob


@SUITES
@OPK
def test_round_trip(suite: Suite, with_opk: bool) -> None:
    a, b, _ = _pair(suite, with_opk)
    assert a.peer_identity == b.own_identity and b.peer_identity == a.own_identity
    assert b.can_send
    for i in range(5):
        assert a.decrypt(b.encrypt(b"b%d" % i)) == b"b%d" % i
        assert b.decrypt(a.encrypt(b"a%d" % i)) == b"a%d" % i
    # Several in a row from one side, delivered out of order.
    blobs = [a.encrypt(bytes([i]) * 10) for i in range(4)]
    for i in (2, 0, 3, 1):
        assert b.decrypt(blobs[i]) == bytes([i]) * 10


@SUITES
def test_initiator_can_send_before_any_reply(suite: Suite) -> None:
    alice, bob, bundle = _parties(suite)
    a, blob = PairwiseSession.initiate(alice, bundle)
    second = a.encrypt(b"second")
    b, first, _ = PairwiseSession.respond(bob, blob)
    assert first == b""
    assert b.decrypt(second) == b"second"


@SUITES
def test_safety_number_matches_on_both_sides(suite: Suite) -> None:
    a, b, _ = _pair(suite)
    assert a.safety_number == b.safety_number
    assert a.safety_number == safety_number(a.own_identity, a.peer_identity)


@SUITES
def test_state_round_trip_mid_conversation(suite: Suite) -> None:
    a, b, _ = _pair(suite)
    pending = a.encrypt(b"in flight")
    a2 = PairwiseSession.from_bytes(a.to_bytes())
    b2 = PairwiseSession.from_bytes(b.to_bytes())
    assert a2.to_bytes() == a.to_bytes() and b2.to_bytes() == b.to_bytes()
    assert b2.decrypt(pending) == b"in flight"
    assert a2.decrypt(b2.encrypt(b"reply")) == b"reply"
    assert a2.peer_identity == a.peer_identity


@SUITES
def test_failed_decrypt_leaves_state_unchanged(suite: Suite) -> None:
    a, b, _ = _pair(suite)
    blob = a.encrypt(b"payload")
    before = b.to_bytes()
    for i in range(len(blob)):
        mutated = blob[:i] + bytes([blob[i] ^ 0x20]) + blob[i + 1:]
        with pytest.raises(RemoteError):
            b.decrypt(mutated)
        assert b.to_bytes() == before, f"state changed by a bad byte {i}"
    with pytest.raises(RemoteError):
        b.decrypt(blob[:-1])
    assert b.decrypt(blob) == b"payload"
    with pytest.raises(ReplayError):
        b.decrypt(blob)


@SUITES
@OPK
def test_tampered_first_message_leaves_account_unchanged(suite: Suite, with_opk: bool) -> None:
    alice, bob, bundle = _parties(suite, with_opk)
    _, blob = PairwiseSession.initiate(alice, bundle, plaintext=b"secret hello")
    saved = bob.to_bytes()
    for i in range(len(blob)):
        mutated = blob[:i] + bytes([blob[i] ^ 0x01]) + blob[i + 1:]
        with pytest.raises(RemoteError):
            PairwiseSession.respond(bob, mutated)
    assert bob.to_bytes() == saved
    _, plaintext, _ = PairwiseSession.respond(bob, blob)
    assert plaintext == b"secret hello"
    assert bob.to_bytes() != saved
    with pytest.raises(ReplayError):
        PairwiseSession.respond(bob, blob)


@SUITES
def test_forged_initiator_cannot_complete(suite: Suite) -> None:
    """Sealing someone else's identity without their DH key fails at the first ratchet
    message: DH1 binds the initiator's DH identity key into the shared secret."""
    alice, bob, bundle = _parties(suite)
    mallory = IdentityKeyPair.generate(suite)
    forged = IdentityKeyPair(suite, mallory._signing_key, mallory.dh_private_key,
                             mallory.public.dh_key_signature)
    # Mallory claims Alice's public identity but only has her own DH secret.
    object.__setattr__(forged, "_public", alice.public)
    _, blob = PairwiseSession.initiate(forged, bundle, plaintext=b"it is alice")
    saved = bob.to_bytes()
    with pytest.raises(AuthenticationError):
        PairwiseSession.respond(bob, blob)
    assert bob.to_bytes() == saved


@SUITES
def test_message_routing(suite: Suite) -> None:
    alice, bob, bundle = _parties(suite)
    a, blob = PairwiseSession.initiate(alice, bundle)
    assert message_type(blob) == MSG_TYPE_INITIAL
    b, _, _ = PairwiseSession.respond(bob, blob)
    message = a.encrypt(b"x")
    assert message_type(message) == MSG_TYPE_PAIRWISE
    with pytest.raises(UnsupportedError):
        message_type(b"\x82\x05")
    with pytest.raises(DecodeError):
        message_type(b"\x87\x11")  # a known type with the wrong number of fields
    with pytest.raises(DecodeError):
        message_type(b"\x41\x10")  # not an array
    with pytest.raises(ProtocolError):
        b.decrypt(blob)
    with pytest.raises(DecodeError):
        b.decrypt(cbor.encode([MSG_TYPE_PAIRWISE]))


@SUITES
def test_responder_sessions_are_independent(suite: Suite) -> None:
    alice, bob, bundle = _parties(suite, with_opk=False)
    carol = IdentityKeyPair.generate(suite)
    a, blob_a = PairwiseSession.initiate(alice, bundle, plaintext=b"from alice")
    c, blob_c = PairwiseSession.initiate(carol, bundle, plaintext=b"from carol")
    ba, pa, peer_a = PairwiseSession.respond(bob, blob_a)
    bc, pc, peer_c = PairwiseSession.respond(bob, blob_c)
    assert (pa, pc) == (b"from alice", b"from carol")
    assert peer_a == alice.public and peer_c == carol.public
    with pytest.raises(AuthenticationError):
        bc.decrypt(a.encrypt(b"for bob via alice's session"))
    assert c.decrypt(bc.encrypt(b"ok")) == b"ok"
    assert ba.safety_number != bc.safety_number


@SUITES
def test_responder_state_cannot_send_before_accept(suite: Suite) -> None:
    # Sessions made by respond() can always send; the DR's own guard covers misuse below it.
    a, b, _ = _pair(suite)
    assert a.can_send and b.can_send
    from triple_ratchet.double_ratchet import DoubleRatchet
    dr = DoubleRatchet.respond(suite, bytes(32), suite.generate_dh(), b"ad")
    with pytest.raises(StateError):
        PairwiseSession(a.own_identity, a.peer_identity, dr).encrypt(b"x")


@SUITES
def test_no_secret_in_repr(suite: Suite) -> None:
    a, b, _ = _pair(suite)
    state = a.to_bytes()
    fields = cbor.as_list(cbor.decode(state), "state")
    dr_state = cbor.as_list(cbor.decode(cbor.as_bytes(fields[3], "dr")), "dr")
    secrets = [v for v in dr_state if isinstance(v, bytes) and len(v) >= 16]
    assert secrets
    for text in (repr(a), str(a), repr(b)):
        for secret in secrets:
            if secret in (a.own_identity.dh_key.to_bytes(),):
                continue
            assert secret.hex()[:16] not in text


@settings(max_examples=25, deadline=None)
@given(data=st.data(), suite=st.sampled_from(CLASSICAL_SUITES))
def test_random_interleavings_reordering_and_duplicates(data: st.DataObject,
                                                         suite: Suite) -> None:
    a, b, _ = _pair(suite)
    sessions = {"a": a, "b": b}
    in_flight: dict[str, list[tuple[bytes, bytes]]] = {"a": [], "b": []}  # to the named side
    delivered: list[tuple[str, bytes]] = []
    for step in range(data.draw(st.integers(1, 25), label="steps")):
        action = data.draw(st.sampled_from(["send_a", "send_b", "deliver", "duplicate"]))
        if action.startswith("send"):
            sender = action[-1]
            receiver = "b" if sender == "a" else "a"
            plaintext = b"%s%d" % (sender.encode(), step)
            in_flight[receiver].append((sessions[sender].encrypt(plaintext), plaintext))
        elif action == "deliver":
            receiver = data.draw(st.sampled_from(["a", "b"]))
            if in_flight[receiver]:
                i = data.draw(st.integers(0, len(in_flight[receiver]) - 1))
                blob, plaintext = in_flight[receiver].pop(i)
                assert sessions[receiver].decrypt(blob) == plaintext
                delivered.append((receiver, blob))
        elif delivered:
            receiver, blob = data.draw(st.sampled_from(delivered))
            before = sessions[receiver].to_bytes()
            # ReplayError while the chain's header key is held; once a DH step dropped it, the
            # header no longer opens at all (AuthenticationError). Either way: refused, no change.
            with pytest.raises((ReplayError, AuthenticationError)):
                sessions[receiver].decrypt(blob)
            assert sessions[receiver].to_bytes() == before
    for receiver, queue in in_flight.items():
        for blob, plaintext in reversed(queue):
            assert sessions[receiver].decrypt(blob) == plaintext
