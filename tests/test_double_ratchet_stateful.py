"""Two Double Ratchet parties under random interleavings (hypothesis stateful tests).

Sends both ways, deliveries in any order, drops, duplicates, and serialize/restore at random
points. With roomy limits every delivered message decrypts exactly once to its plaintext; with
tiny limits a delivery may also fail with a typed error (skip limit, eviction), but never yields a
wrong plaintext or a second decryption, and a failure never changes the state.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from triple_ratchet.double_ratchet import DoubleRatchet, Limits
from triple_ratchet.errors import (
    AuthenticationError,
    LimitExceeded,
    RemoteError,
    ReplayError,
    StateError,
)
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import CLASSICAL_SUITES, Suite

SECRET = b"\x42" * 32
AD = b"stateful"
PARTIES = ("alice", "bob")


class _Message:
    __slots__ = ("blob", "plaintext", "receiver")

    def __init__(self, receiver: str, plaintext: bytes, blob: bytes) -> None:
        self.receiver = receiver
        self.plaintext = plaintext
        self.blob = blob

    def __repr__(self) -> str:
        return f"<{self.plaintext!r} to {self.receiver}>"


class TwoParties(RuleBasedStateMachine):
    suite: Suite = CLASSICAL_SUITES[0]
    limits: Limits = Limits(max_skipped_chains=1000)  # nothing is ever evicted
    strict: bool = True  # every delivery must succeed

    def __init__(self) -> None:
        super().__init__()
        rng = DeterministicRandom(b"stateful setup")
        bob_key = self.suite.generate_dh(rng)
        self.parties = {
            "alice": DoubleRatchet.initiate(self.suite, SECRET, bob_key.public_key(), AD,
                                            rng=DeterministicRandom(b"alice"),
                                            limits=self.limits),
            "bob": DoubleRatchet.respond(self.suite, SECRET, bob_key, AD, limits=self.limits,
                                         rng=DeterministicRandom(b"bob")),
        }
        self.counter = 0
        self.in_flight: list[_Message] = []
        self.delivered: list[_Message] = []
        self.decrypted: set[bytes] = set()

    def _expect_failure(self, party: DoubleRatchet, blob: bytes,
                        errors: type[Exception] | tuple[type[Exception], ...]) -> None:
        before = party.to_bytes()
        with pytest.raises(errors):
            party.decrypt(blob)
        assert party.to_bytes() == before

    @rule(sender=st.sampled_from(PARTIES), size=st.integers(0, 40))
    def send(self, sender: str, size: int) -> None:
        party = self.parties[sender]
        receiver = "bob" if sender == "alice" else "alice"
        plaintext = b"%s #%d " % (sender.encode(), self.counter) + bytes(size)
        self.counter += 1
        if not party.can_send:
            # Bob before his first decrypt: a typed error and no change.
            before = party.to_bytes()
            with pytest.raises(StateError):
                party.encrypt(plaintext)
            assert party.to_bytes() == before
            return
        self.in_flight.append(_Message(receiver, plaintext, party.encrypt(plaintext)))

    @precondition(lambda self: self.in_flight)
    @rule(index=st.integers(0, 1000))
    def deliver(self, index: int) -> None:
        message = self.in_flight[index % len(self.in_flight)]
        party = self.parties[message.receiver]
        if self.strict:
            plaintext = party.decrypt(message.blob)
        else:
            before = party.to_bytes()
            try:
                plaintext = party.decrypt(message.blob)
            except (LimitExceeded, ReplayError, AuthenticationError):
                # Too far ahead (may work later), or its key was evicted: typed, no change.
                assert party.to_bytes() == before
                return
        assert plaintext == message.plaintext
        assert message.plaintext not in self.decrypted
        self.decrypted.add(message.plaintext)
        self.in_flight.remove(message)
        self.delivered.append(message)

    @precondition(lambda self: self.in_flight)
    @rule(index=st.integers(0, 1000))
    def drop(self, index: int) -> None:
        del self.in_flight[index % len(self.in_flight)]

    @precondition(lambda self: self.delivered)
    @rule(index=st.integers(0, 1000))
    def duplicate(self, index: int) -> None:
        message = self.delivered[index % len(self.delivered)]
        self._expect_failure(self.parties[message.receiver], message.blob,
                             (ReplayError, AuthenticationError))

    @precondition(lambda self: self.in_flight)
    @rule(index=st.integers(0, 1000), position=st.integers(0, 200), bit=st.integers(0, 7))
    def tamper(self, index: int, position: int, bit: int) -> None:
        message = self.in_flight[index % len(self.in_flight)]
        blob = bytearray(message.blob)
        blob[position % len(blob)] ^= 1 << bit
        self._expect_failure(self.parties[message.receiver], bytes(blob), RemoteError)

    @rule(who=st.sampled_from(PARTIES))
    def save_and_restore(self, who: str) -> None:
        data = self.parties[who].to_bytes()
        restored = DoubleRatchet.from_bytes(
            data, rng=DeterministicRandom(b"restored %d" % self.counter))
        assert restored.to_bytes() == data
        self.parties[who] = restored

    @invariant()
    def bounded(self) -> None:
        for party in self.parties.values():
            assert party.skipped_key_count <= self.limits.max_skipped_keys


class TwoPartiesTinyLimits(TwoParties):
    limits = Limits(max_skip=3, max_skipped_keys=4, max_skipped_chains=2)
    strict = False


class TwoPartiesX25519(TwoParties):
    suite = CLASSICAL_SUITES[1]


_FAST = settings(max_examples=50, stateful_step_count=40, deadline=None)
# Long runs: bounded in CI; TRIPLE_RATCHET_FUZZ=long runs the local campaign.
_SLOW = settings(max_examples=2000 if os.environ.get("TRIPLE_RATCHET_FUZZ") == "long" else 100,
                 stateful_step_count=60, deadline=None)

TestTwoParties = TwoParties.TestCase
TestTwoParties.settings = _FAST
TestTwoPartiesTinyLimits = TwoPartiesTinyLimits.TestCase
TestTwoPartiesTinyLimits.settings = _FAST
TestTwoPartiesX25519 = TwoPartiesX25519.TestCase
TestTwoPartiesX25519.settings = settings(max_examples=25, stateful_step_count=40, deadline=None)


class _Slow(TwoParties):
    pass


class _SlowTiny(TwoPartiesTinyLimits):
    pass


TestTwoPartiesSlow = pytest.mark.slow(_Slow.TestCase)
TestTwoPartiesSlow.settings = _SLOW
TestTwoPartiesTinyLimitsSlow = pytest.mark.slow(_SlowTiny.TestCase)
TestTwoPartiesTinyLimitsSlow.settings = _SLOW
