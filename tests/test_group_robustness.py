"""Malformed input during epoch changes, secrets out of reprs, DKG material deleted."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_group_epoch_change import create

from triple_ratchet.errors import DecodeError, ProtocolError, RemoteError
from triple_ratchet.group.proposal import SignedProposal
from triple_ratchet.group.session import GroupSession
from triple_ratchet.group.welcome import Welcome


def _in_round3() -> tuple[object, object]:
    net = create(3)
    net.send("a", net.members["a"].propose(net.now))
    for name in "abc":
        net.read(name, net.members[name].mailbox_id)
    box = net.members["a"].mailboxes()[-1]
    for _ in range(2):  # announcements, then round 1
        for name in "abc":
            net.read(name, box)
    return net, box


def test_dkg_material_is_deleted_at_activation() -> None:
    net, _box = _in_round3()
    a = net.members["a"]  # type: ignore[attr-defined]
    attempt = a._s.attempt
    assert attempt is not None and attempt.phase.value == "round3"
    secrets = [attempt.seed, *attempt.payloads, attempt.init_secret,
               attempt.proposal.proposal.attempt_secret, attempt.dkg_secret().to_bytes()]
    assert all(s in a.to_bytes() for s in secrets[:2])  # held while the attempt runs
    net.run()  # type: ignore[attr-defined]
    assert a.epoch == 2 and a._s.attempt is None
    state = a.to_bytes()
    assert not any(s in state for s in secrets)


def test_no_secret_in_reprs_during_an_attempt() -> None:
    net, _ = _in_round3()
    a = net.members["a"]  # type: ignore[attr-defined]
    attempt = a._s.attempt
    assert attempt is not None
    secrets = [attempt.seed, attempt.init_secret, attempt.proposal.proposal.attempt_secret,
               *attempt.payloads]
    welcome = Welcome(attempt.proposal, attempt.previous_roster, attempt.init_secret)
    texts = [repr(a), repr(attempt), repr(attempt.proposal), repr(attempt.proposal.proposal),
             repr(welcome), repr(a._s)]
    for text in texts:
        for s in secrets:
            assert s.hex() not in text and repr(s) not in text


def test_malformed_attempt_blobs_are_rejected_and_change_nothing() -> None:
    net, box = _in_round3()
    b = net.members["b"]  # type: ignore[attr-defined]
    blob = net.hub.logs[box][0]  # type: ignore[attr-defined]
    before = b.to_bytes()
    bad = [blob[:10], blob[:-1], blob + b"\x00", bytes(len(blob))]
    flipped = bytearray(blob)
    flipped[-5] ^= 1
    bad.append(bytes(flipped))
    for x in bad:
        with pytest.raises(RemoteError):
            b.receive(x, net.now, entry_time=net.now_ms)  # type: ignore[attr-defined]
        assert b.to_bytes() == before


def test_welcome_must_come_from_the_proposer_and_add_us() -> None:
    net = create(3, extra=2)
    net.send("a", net.members["a"].propose(net.now, add=[net.identities["d"].public]))
    net.step()
    (_recipient, welcome, _) = net.pending_welcomes.pop()
    d, e = net.identities["d"], net.identities["e"]
    with pytest.raises(ProtocolError):
        GroupSession.join(d, welcome, net.identities["b"].public, net.now)  # not the proposer
    with pytest.raises(ProtocolError):
        GroupSession.join(e, welcome, net.identities["a"].public, net.now)  # not added
    with pytest.raises(DecodeError):
        GroupSession.join(d, welcome[:-3], net.identities["a"].public, net.now)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_proposal_decoder_is_strict(data: st.DataObject) -> None:
    net = create(2)
    sends = net.members["a"].propose(net.now)
    assert sends
    own = net.members["a"]._s.own_proposal
    assert own is not None
    good = own[1]
    cut = data.draw(st.integers(0, len(good) - 1))
    with pytest.raises(RemoteError):
        SignedProposal.from_bytes(good[:cut])
    i = data.draw(st.integers(0, len(good) - 1))
    mutated = bytearray(good)
    mutated[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(RemoteError):  # any change breaks the encoding or the signature
        SignedProposal.from_bytes(bytes(mutated))


def _mid_attempt_state() -> tuple[bytes, object]:
    net, _ = _in_round3()
    b = net.members["b"]  # type: ignore[attr-defined]
    return b.to_bytes(), net.identities["b"]  # type: ignore[attr-defined]


_STATE, _IDENTITY = _mid_attempt_state()


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_corrupted_saved_state_is_a_typed_error(data: st.DataObject) -> None:
    from triple_ratchet.errors import TripleRatchetError
    mutated = bytearray(_STATE)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(mutated) - 1))
        mutated[i] = data.draw(st.integers(0, 255))
    try:
        restored = GroupSession.from_bytes(bytes(mutated), _IDENTITY)  # type: ignore[arg-type]
    except TripleRatchetError:
        return
    assert restored.to_bytes() == bytes(mutated)  # accepted only if canonical


@settings(max_examples=80, deadline=None)
@given(blob=st.binary(max_size=600))
def test_random_blobs_are_remote_errors(blob: bytes) -> None:
    session = GroupSession.from_bytes(_STATE, _IDENTITY)  # type: ignore[arg-type]
    with pytest.raises(RemoteError):
        session.receive(blob, 1_700_000_000.0, entry_time=1_700_000_000_000)
    assert session.to_bytes() == _STATE


def test_group_abort_carries_the_largest_section7_evidence() -> None:
    from triple_ratchet.dkg.abort import MAX_ABORT_SIZE
    from triple_ratchet.dkg.ed25519 import Point, Scalar
    from triple_ratchet.group.attempt_mailbox import ABORT_EQUIVOCATION, Abort
    from triple_ratchet.random import DeterministicRandom

    rng = DeterministicRandom(b"abort")
    d = Scalar.random_nonzero(rng)
    evidence = bytes(MAX_ABORT_SIZE)  # e.g. a round-1 equivocation at n = t = 64 is ~16 KB
    abort = Abort.sign(d, b"s" * 32, 2, ABORT_EQUIVOCATION, (3,), evidence, rng)
    again = Abort.from_bytes(abort.to_bytes())
    again.verify(Point.base_mul(d), b"s" * 32)
    assert again.evidence == evidence
    with pytest.raises(RemoteError):
        Abort.from_bytes(Abort.sign(d, b"s" * 32, 2, ABORT_EQUIVOCATION, (3,),
                                    bytes(MAX_ABORT_SIZE + 1), rng).to_bytes())
