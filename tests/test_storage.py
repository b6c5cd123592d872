"""Sealed saved states: any change to a stored state is detected, not loaded as another state."""

from __future__ import annotations

import pytest

from triple_ratchet.errors import AuthenticationError, DecodeError, UsageError
from triple_ratchet.identity import Account
from triple_ratchet.pairwise import PairwiseSession
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.storage import generate_storage_key, open_state, seal_state
from triple_ratchet.suites import CLASSICAL_SUITES


@pytest.mark.parametrize("suite", CLASSICAL_SUITES, ids=lambda s: s.name)
def test_every_flipped_byte_of_a_sealed_session_state_is_detected(suite) -> None:
    rng = DeterministicRandom(b"storage")
    alice, bob = Account.generate(suite, rng), Account.generate(suite, rng)
    session, first = PairwiseSession.initiate(alice.identity, bob.bundle(), rng, plaintext=b"hi")
    state = session.to_bytes()
    key = generate_storage_key(rng)
    sealed = seal_state(key, state, rng)
    restored = PairwiseSession.from_bytes(open_state(key, sealed))
    assert restored.to_bytes() == state
    for i in range(len(sealed)):
        flipped = bytearray(sealed)
        flipped[i] ^= 0x01
        with pytest.raises((AuthenticationError, DecodeError)):
            open_state(key, bytes(flipped))
    with pytest.raises(AuthenticationError):
        open_state(generate_storage_key(rng), sealed)
    for cut in (0, 1, 25, 40, len(sealed) - 1):
        with pytest.raises((AuthenticationError, DecodeError)):
            open_state(key, sealed[:cut])
    assert first  # the session produced its first message before it was saved


def test_seals_of_one_state_differ_and_keys_are_checked() -> None:
    rng = DeterministicRandom(b"nonces")
    key = generate_storage_key(rng)
    assert seal_state(key, b"state", rng) != seal_state(key, b"state", rng)
    with pytest.raises(UsageError):
        seal_state(key[:31], b"state")
    with pytest.raises(UsageError):
        open_state(key + b"x", seal_state(key, b"state", rng))
