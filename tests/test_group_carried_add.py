"""An add carried into the next epoch reaches its joiner (11.v2.17, 11.v2.28).

Two members each propose an add in the same epoch: the first decides the change, the second is
carried into the next epoch and applied by its attempt. Its entry is of the earlier epoch, so the
committee member that sends the joiner's notice, and the joiner that checks it, must take an
applied proposal carried from e-1. Before the fix the notice sender raised on every retry (its
session wedged at the earlier epoch) and the joiner never got a notice."""

from __future__ import annotations

import pytest
from group_v2_sim import Hub, _Raised, create, make_node, settle

from triple_ratchet.suites import CLASSICAL_SUITES, Suite


@pytest.mark.parametrize("suite", CLASSICAL_SUITES, ids=lambda s: s.name)
def test_two_adds_in_one_epoch_both_join_and_nobody_wedges(suite: Suite) -> None:
    hub = Hub()
    a, b = make_node("A", suite), make_node("B", suite)
    create(hub, a, [b])
    settle(hub, [a, b])
    c, d = make_node("C", suite), make_node("D", suite)
    assert a.session is not None and b.session is not None
    hub.post(a.session.propose(hub.now, add=[c.take_join_key()]))
    hub.post(b.session.propose(hub.now, add=[d.take_join_key()]))
    settle(hub, [a, b, c, d], rounds=600)
    nodes = (a, b, c, d)
    assert all(n.session is not None for n in nodes), "every joiner got its notice"
    sessions = [n.session for n in nodes]
    assert {s.epoch for s in sessions if s} == {3}
    assert len({s.public_epoch_id for s in sessions if s}) == 1
    assert all(len(s.roster) == 4 for s in sessions if s)
    assert not [e for n in nodes for e in n.events if isinstance(e, _Raised)]
    assert d.session is not None
    hub.post(d.session.encrypt(b"hello from D", hub.now))
    settle(hub, list(nodes))
    assert all(n.messages()[-1:] == [b"hello from D"] for n in (a, b, c))
