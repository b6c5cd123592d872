"""Issue 10, item 4: a saved group session loaded with another identity is refused with a typed
error (`UsageError`), whatever the session's status, and nothing is produced or changed; and
`MembershipChanged.reason` carries what its docstring says ("added" / "removed")."""

from __future__ import annotations

import pytest
from group_v2_sim import Hub, Node, create, make_node, settle

from triple_ratchet.errors import DecodeError, UsageError
from triple_ratchet.group.events import MembershipChanged
from triple_ratchet.group.session import GroupSession
from triple_ratchet.suites import CLASSICAL_SUITES, DEFAULT_SUITE


def _s(node: Node) -> GroupSession:
    assert node.session is not None
    return node.session


def _refused_for_everyone_else(saved: bytes, owner: Node, others: list[Node]) -> None:
    for other in others:
        with pytest.raises(UsageError, match="another member"):
            GroupSession.from_bytes(saved, other.identity)
    again = GroupSession.from_bytes(saved, owner.identity)  # the owner still loads it
    assert again.to_bytes() == saved


def test_an_active_members_state_is_refused_to_every_other_identity() -> None:
    hub = Hub()
    a, b, c = (make_node(n) for n in "ABC")
    outsider = make_node("X")
    create(hub, a, [b, c])
    settle(hub, [a, b, c])
    for owner, others in ((a, [b, c, outsider]), (b, [a, c, outsider]), (c, [a, b, outsider])):
        saved = _s(owner).to_bytes()
        _refused_for_everyone_else(saved, owner, others)
        assert _s(owner).to_bytes() == saved


def test_a_removed_members_state_is_refused_to_another_identity() -> None:
    hub = Hub()
    a, b, c = (make_node(n) for n in "ABC")
    create(hub, a, [b, c])
    settle(hub, [a, b, c])
    hub.post(_s(a).propose(hub.now, remove=[c.id]))
    settle(hub, [a, b, c])
    assert _s(c).status == "removed"
    _refused_for_everyone_else(_s(c).to_bytes(), c, [a, b, make_node("X")])


def test_an_identity_of_another_suite_is_refused() -> None:
    hub = Hub()
    a, b = make_node("A"), make_node("B")
    create(hub, a, [b])
    settle(hub, [a, b])
    other_suite = next(s for s in CLASSICAL_SUITES if s.suite_id != DEFAULT_SUITE.suite_id)
    with pytest.raises(DecodeError, match="another suite"):
        GroupSession.from_bytes(_s(a).to_bytes(), make_node("Y", other_suite).identity)


def test_membership_changed_reason_is_added_or_removed() -> None:
    hub = Hub()
    a, b, c, d = (make_node(n) for n in "ABCD")
    create(hub, a, [b, c])
    settle(hub, [a, b, c, d])
    hub.post(_s(a).propose(hub.now, add=[d.take_join_key()]))
    settle(hub, [a, b, c, d])
    hub.post(_s(b).propose(hub.now, remove=[c.id]))
    settle(hub, [a, b, c, d])
    hub.post(_s(a).propose(hub.now, refresh=True))
    settle(hub, [a, b, c, d])
    changes = [e for e in b.events if isinstance(e, MembershipChanged)]
    assert [(e.reason, e.added, e.removed) for e in changes] == [
        ("added", (d.id,), ()), ("removed", (), (c.id,))]  # a refresh changes no roster
    assert changes[0].proposer == a.id and changes[1].proposer == b.id



def test_removed_from_group_names_who_proposed_it() -> None:
    from triple_ratchet.group.events import RemovedFromGroup

    hub = Hub()
    a, b, c = (make_node(n) for n in "ABC")
    create(hub, a, [b, c])
    settle(hub, [a, b, c])
    hub.post(_s(b).propose(hub.now, remove=[c.id]))
    settle(hub, [a, b, c])
    (gone,) = [e for e in c.events if isinstance(e, RemovedFromGroup)]
    assert gone.proposer == b.id and gone.reason == "removed"
