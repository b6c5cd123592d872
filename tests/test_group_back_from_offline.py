"""A member back from offline reads its control mailbox to the end before it posts anything there
(spec 11.v2.29): a clock that jumped says nothing about what the mailbox holds now, and an entry
read as backlog (11.v2.32) means the caller has not read the mailbox to its end yet."""

from __future__ import annotations

import pytest
from group_v2_sim import Hub, Node, create, make_node, settle

WEEK_MS = 7 * 24 * 3_600_000


def _group() -> tuple[Hub, Node, Node, Node, Node]:
    hub = Hub()
    a, b, c, d = (make_node(n) for n in "ABCD")
    create(hub, a, [b, c])
    settle(hub, [a, b, c])
    assert a.session is not None and b.session is not None and c.session is not None
    return hub, a, b, c, d


def _posted_into(hub: Hub, box: bytes, since: int) -> int:
    return len(hub.boxes.get(box, [])) - since


@pytest.mark.parametrize("until", ["announcement due", "deadline pending"])
def test_a_clock_that_jumped_a_week_posts_nothing_before_the_backlog_is_read(until: str) -> None:
    """C reads epoch 1's control mailbox into a run (its announcement jitter, or the ANNOUNCE
    phase's deadline, pending), goes offline while A and B decide the epoch (excluding C from
    the committee if it was on it), and comes back a week later: its first `tick` is on stale
    knowledge and must post nothing (no announcement, no TICK), nor anything while it reads."""
    hub, a, b, c, d = _group()
    assert a.session is not None and c.session is not None
    control_1 = c.session.control_mailbox_id
    hub.post(a.session.propose(hub.now, add=[d.take_join_key()]))
    if until == "announcement due":
        c.pump(hub)
        assert c.session._s.run.announce_at_ms is not None and not c.session._s.run.announced
    else:
        for _ in range(40):
            for n in (a, b, c):
                n.pump(hub)
            if c.session.control_log.run.phase != "waiting":
                break
            hub.advance(500)
        assert c.session.control_log.run.phase == "announce"
    c.online = False
    settle(hub, [a, b, c, d], rounds=2000, quiet_rounds=400)
    assert a.session.epoch == 2 and c.session.epoch == 1
    decided = len(hub.boxes[control_1])
    hub.advance(WEEK_MS)
    _, out = c.session.tick(c.now(hub))
    assert [o for o in out if o.mailbox_id == control_1] == []
    hub.post(out)
    c.online = True
    settle(hub, [a, b, c, d])
    assert c.session.epoch == 2
    assert len(hub.boxes[control_1]) == decided


def _in_epoch_2() -> tuple[Hub, Node, Node]:
    """A, B, C and D in epoch 2, every record applied (no rotation pending), C caught up."""
    hub, a, b, c, d = _group()
    assert a.session is not None
    hub.post(a.session.propose(hub.now, add=[d.take_join_key()]))
    settle(hub, [a, b, c, d], rounds=2000, quiet_rounds=400)
    assert b.session is not None and c.session is not None
    assert c.session.epoch == 2 and c.session.control_mailbox_id in c.session._s.caught_up
    return hub, b, c


def test_an_entry_read_as_backlog_stops_acting_until_caught_up_again() -> None:
    """C had read epoch 2's control mailbox to its end, then was offline eight days (its record
    is now due for rotation, 11.v2.29). The first entry it reads back is backlog: it must not
    rotate on reading it (more may follow in the mailbox), only once `caught_up` says the end."""
    hub, b, c = _in_epoch_2()
    assert b.session is not None and c.session is not None
    control_2 = c.session.control_mailbox_id
    c.online = False
    hub.post(b.session.rotate(hub.now))
    entry, t = hub.boxes[control_2][-1]
    hub.advance(WEEK_MS + 24 * 3_600_000)
    _, out = c.session.receive(entry, c.now(hub), entry_time=t, hub_time=hub.t)
    assert out == []
    _, out = c.session.tick(c.now(hub))
    assert out == []
    _, out = c.session.caught_up(control_2, c.now(hub))
    assert [o.mailbox_id for o in out] == [control_2]  # the rotation record, now


def test_a_live_entry_keeps_the_member_acting() -> None:
    """The same entry delivered live (hub_time − t within SKEW_MAX) keeps the mark: an online
    member acts on what it reads without waiting for another `caught_up`."""
    hub, b, c = _in_epoch_2()
    assert b.session is not None and c.session is not None
    control_2 = c.session.control_mailbox_id
    hub.advance(WEEK_MS + 24 * 3_600_000)
    hub.post(b.session.rotate(hub.now))
    entry, t = hub.boxes[control_2][-1]
    _, out = c.session.receive(entry, c.now(hub), entry_time=t, hub_time=hub.t)
    assert [o.mailbox_id for o in out] == [control_2]
