"""Loading a saved group session (issue 9, items 12, 13 and 15): hostile or corrupted saved
states are refused quickly, with a decode error, and never load into a state a later call
would trip over."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from test_group_epoch_change import create

from triple_ratchet import cbor
from triple_ratchet.errors import DecodeError, LimitExceeded, UsageError
from triple_ratchet.group.session import (
    ACTIVE,
    JOINING,
    MAX_STATE_LEN,
    STATE_FORMAT,
    STATE_VERSION,
    GroupSession,
)
from triple_ratchet.identity import IdentityKeyPair
from triple_ratchet.random import DeterministicRandom


def _array_of_empty_arrays(size: int) -> bytes:
    n = size - 5
    return b"\x9a" + n.to_bytes(4, "big") + b"\x80" * n


def _identity() -> IdentityKeyPair:
    net = create(3)
    return net.identities["a"]


def _saved_with(state: list[cbor.CborEncodable], raw: dict[int, bytes]) -> bytes:
    """A saved session whose state fields are `state`, except `raw[i]`: encoded CBOR as is."""
    fields = b"".join(raw[i] if i in raw else cbor.encode(v) for i, v in enumerate(state))
    return (b"\x83" + cbor.encode(STATE_FORMAT) + cbor.encode(STATE_VERSION)
            + bytes([0x80 + len(state)]) + fields)


def _mid_change_state() -> tuple[bytes, IdentityKeyPair]:
    """a's state with an epoch, a grace epoch, an attempt, a queued proposal and messages."""
    net = create(3)
    for k in range(3):
        net.send("b", net.members["b"].encrypt(b"m%d" % k, net.now))
    net.run()
    net.send("b", net.members["b"].propose(net.now))
    net.run()
    net.send("c", net.members["c"].propose(net.now))
    net.step()
    a = net.members["a"]
    assert a.epoch == 2 and a._s.grace and a._s.attempt is not None
    return a.to_bytes(), net.identities["a"]


@pytest.mark.parametrize("where", ["top level", "epoch state", "attempt", "held"])
def test_a_4_mib_array_of_empty_arrays_is_refused_in_well_under_a_second(where: str) -> None:
    """Issue 9 item 12: the old decoder built every item (3-5 s, ~330 MB) before checking the
    shape. Each level of a saved state now has its own item budget, charged at the array's
    header, so such an array is refused before it is built, wherever it sits."""
    identity = _identity()
    big = _array_of_empty_arrays(4 * 1024 * 1024 - 64)
    if where == "top level":
        data = big
    else:
        fields: list[cbor.CborEncodable] = [
            identity.suite.suite_id, ACTIVE, None, [], None, [], [], [], None, [], 0, 0, 0, 0,
            False, []]
        raw = {}
        if where == "epoch state":
            fields[2] = big
        elif where == "attempt":
            fields[1], fields[4] = JOINING, big
        else:
            raw[9] = big  # the held plaintexts: a list at the session level
        data = _saved_with(fields, raw)
    assert len(data) <= MAX_STATE_LEN
    start = time.perf_counter()
    with pytest.raises(DecodeError):
        GroupSession.from_bytes(data, identity)
    assert time.perf_counter() - start < 0.25


def test_a_saved_state_over_the_size_bound_is_refused_before_decoding() -> None:
    with pytest.raises(LimitExceeded):
        GroupSession.from_bytes(b"\x00" * (MAX_STATE_LEN + 1), _identity())


def test_active_without_an_epoch_is_refused_at_load() -> None:
    """Issue 9 item 15: it loaded, and encrypt() then hit an AssertionError."""
    net = create(3)
    a = net.members["a"]
    broken = GroupSession(net.identities["a"], replace(a._s, status=ACTIVE, epoch=None,
                                                       grace=(), own_proposal=None))
    with pytest.raises(DecodeError, match="active session without an epoch"):
        GroupSession.from_bytes(broken.to_bytes(), net.identities["a"])
    joining = GroupSession(net.identities["a"], replace(a._s, status=JOINING, grace=()))
    with pytest.raises(DecodeError, match="joining"):
        GroupSession.from_bytes(joining.to_bytes(), net.identities["a"])


def test_every_single_byte_corruption_loads_or_is_a_decode_error() -> None:
    """Issue 9 item 13: about 440 corruptions raised UsageError (our own roster entry damaged
    read as "identity does not match"), others InvalidSignature or LimitExceeded. Corrupted
    saved state is a DecodeError; only an intact state given another identity is a
    UsageError. (Corrupted secret bytes cannot be detected here: sealing the saved state,
    `storage.seal_state`, is what authenticates it.)"""
    data, identity = _mid_change_state()
    outcomes: dict[str, int] = {}
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x01 if i % 2 else 0x80
        try:
            GroupSession.from_bytes(bytes(bad), identity)
            kind = "loaded"
        except DecodeError:
            kind = "DecodeError"
        except Exception as exc:  # any other outcome is the failure reported
            kind = f"{type(exc).__name__}: {exc}"
        outcomes[kind] = outcomes.get(kind, 0) + 1
    assert set(outcomes) <= {"loaded", "DecodeError"}, outcomes
    assert outcomes["DecodeError"] > len(data) // 4


def test_another_identity_with_an_intact_state_is_a_usage_error() -> None:
    data, identity = _mid_change_state()
    other = IdentityKeyPair.generate(identity.suite, DeterministicRandom(b"someone else"))
    with pytest.raises(UsageError, match="identity"):
        GroupSession.from_bytes(data, other)


def test_a_saved_state_round_trips_exactly() -> None:
    data, identity = _mid_change_state()
    assert GroupSession.from_bytes(data, identity).to_bytes() == data


def test_a_saved_state_is_bytes_like_and_anything_else_is_a_usage_error() -> None:
    data, identity = _mid_change_state()
    assert GroupSession.from_bytes(bytearray(data), identity).to_bytes() == data
    assert GroupSession.from_bytes(memoryview(data), identity).to_bytes() == data  # type: ignore[arg-type]
    for bad in (None, "state", 3, [data]):
        with pytest.raises(UsageError, match="bytes"):
            GroupSession.from_bytes(bad, identity)  # type: ignore[arg-type]


def test_a_joining_state_given_another_identity_is_a_usage_error() -> None:
    """Before its first epoch a session has no roster entry to compare: its slot in the running
    attempt's signed roster is what must be ours (it loaded with any identity before). Another
    member's identity cannot be told from a damaged own index there: a DecodeError."""
    from test_group_support import make_identities

    me, other, third, outsider = make_identities(4, seed=b"joining")
    session, _ = GroupSession.create(me, [other.public, third.public], 1_700_000_000.0,
                                     rng=DeterministicRandom(b"creator"))
    assert session.status == JOINING
    data = session.to_bytes()
    assert GroupSession.from_bytes(data, me).to_bytes() == data
    with pytest.raises(UsageError, match="slot"):
        GroupSession.from_bytes(data, outsider)
    with pytest.raises(DecodeError, match="slot"):
        GroupSession.from_bytes(data, other)
