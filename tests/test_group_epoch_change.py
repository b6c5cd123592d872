"""Epoch changes through the DKG ratchet, end to end over an in-memory hub."""

from __future__ import annotations

import pytest
from test_group_support import Net, make_identities

from triple_ratchet.group.events import (
    EpochChanged,
    MessageReceived,
)
from triple_ratchet.group.session import GroupSession
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import ALL_SUITES, DEFAULT_SUITE, Suite

NAMES = "abcdefgh"


def create(n: int, suite: Suite = DEFAULT_SUITE, extra: int = 0) -> Net:
    ids = make_identities(n + extra, suite, seed=b"net")
    net = Net()
    for name, ident in zip(NAMES, ids, strict=False):
        net.identities[name] = ident
    session, sends = GroupSession.create(ids[0], [i.public for i in ids[1:n]], net.now,
                                         rng=DeterministicRandom(b"creator"))
    net.members["a"] = session
    net.send("a", sends)
    net.run()
    return net


def texts(net: Net, name: str) -> list[bytes]:
    return [e.body for e in net.events[name] if isinstance(e, MessageReceived)]


@pytest.mark.parametrize("suite", ALL_SUITES, ids=lambda s: s.name)
def test_create_group_of_three(suite: Suite) -> None:
    net = create(3, suite)
    sessions = [net.members[x] for x in "abc"]
    assert all(s.status == "active" and s.epoch == 1 for s in sessions)
    assert len({s.public_epoch_id for s in sessions}) == 1
    assert len({s.mailbox_id for s in sessions}) == 1
    assert [s.own_index for s in sessions] == [0, 1, 2]
    for name in "abc":
        (changed,) = [e for e in net.events[name] if isinstance(e, EpochChanged)]
        assert changed.public_epoch_id == sessions[0].public_epoch_id
    net.send("b", net.members["b"].encrypt(b"hi from b", net.now))
    net.run()
    assert texts(net, "a") == [b"hi from b"] and texts(net, "c") == [b"hi from b"]
