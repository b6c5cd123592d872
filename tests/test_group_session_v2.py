"""GroupSession version 2 end to end through an in-memory hub (tests/group_v2_sim.py)."""

from __future__ import annotations

from group_v2_sim import Hub, create, make_node, settle


def test_create_join_and_talk() -> None:
    hub = Hub()
    a, b, c = (make_node(n) for n in "ABC")
    create(hub, a, [b, c])
    settle(hub, [a, b, c])
    assert b.session is not None and c.session is not None and a.session is not None
    assert a.session.epoch == b.session.epoch == c.session.epoch
    assert a.session.public_epoch_id == b.session.public_epoch_id == c.session.public_epoch_id
    hub.post(a.session.encrypt(b"hello v2", hub.now))
    settle(hub, [a, b, c])
    assert b.messages() == [b"hello v2"] and c.messages() == [b"hello v2"]


def test_add_remove_refresh_with_a_member_offline_then_catch_up() -> None:
    hub = Hub()
    a, b, c, d, e = (make_node(n) for n in "ABCDE")
    create(hub, a, [b, c, e])
    settle(hub, [a, b, c, e])
    assert a.session and b.session and c.session and e.session
    hub.post(a.session.encrypt(b"epoch 1", hub.now))
    settle(hub, [a, b, c, e])
    c.online = False
    # An add while C is offline.
    hub.advance(61_000)
    hub.post(b.session.propose(hub.now, add=[d.take_join_key()]))
    settle(hub, [a, b, c, d, e])
    assert d.session is not None, "the joiner got its notice"
    assert a.session.epoch == 2 and d.session.epoch == 2
    assert a.session.public_epoch_id == d.session.public_epoch_id
    hub.post(d.session.encrypt(b"hi from D", hub.now))
    settle(hub, [a, b, c, d, e])
    assert a.messages()[-1] == b"hi from D"
    # A remove while C is offline.
    hub.advance(61_000)
    hub.post(a.session.propose(hub.now, remove=[e.id]))
    settle(hub, [a, b, c, d, e])
    assert e.session is not None and e.session.status == "removed"
    assert a.session.epoch == 3 and e.id not in a.session.roster
    assert c.id in a.session.roster  # nobody is removed for being offline
    hub.post(b.session.encrypt(b"epoch 3", hub.now))
    settle(hub, [a, b, c, d, e])
    # A refresh while C is offline.
    hub.advance(3_601_000)
    hub.post(d.session.propose(hub.now, refresh=True))
    settle(hub, [a, b, c, d, e])
    assert a.session.epoch == 4 == d.session.epoch
    hub.post(a.session.encrypt(b"epoch 4", hub.now))
    settle(hub, [a, b, c, d, e])
    # C comes back: it reads each epoch's control mailbox to its commit and each group mailbox.
    assert c.session.epoch == 1
    c.online = True
    settle(hub, [a, b, c, d, e])
    assert c.session.epoch == 4
    assert c.session.public_epoch_id == a.session.public_epoch_id
    assert c.messages() == [b"epoch 1", b"hi from D", b"epoch 3", b"epoch 4"]
    hub.post(c.session.encrypt(b"back", hub.now))
    settle(hub, [a, b, c, d, e])
    assert a.messages()[-1] == b"back" and d.messages()[-1] == b"back"
