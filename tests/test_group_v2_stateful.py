"""Hypothesis stateful test of version 2: a group through an in-memory hub where members go
offline and come back at random while others talk, add, remove and refresh. Nobody is removed
for being offline; whoever comes back catches up epoch by epoch into the same epoch as everyone
and has read every message of every epoch it was a member of."""

from __future__ import annotations

from group_v2_sim import Hub, Node, create, make_node, settle
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from triple_ratchet.group.events import MessageReceived, RemovedFromGroup


class OfflineGroup(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.hub = Hub()
        self.nodes = [make_node(n) for n in "ABC"]
        self.spare = [make_node(n) for n in "DEFG"]
        create(self.hub, self.nodes[0], self.nodes[1:])
        settle(self.hub, self.nodes)
        # body -> names expected to read it (members of the sender's epoch but the sender)
        self.expected: dict[bytes, set[str]] = {}
        self.counter = 0
        self.removed: set[str] = set()

    def _active(self) -> list[Node]:
        return [n for n in self.nodes if n.session is not None
                and n.session.status == "active" and n.name not in self.removed]

    def _online(self) -> list[Node]:
        return [n for n in self._active() if n.online]

    def _settle(self) -> None:
        settle(self.hub, self.nodes + self.spare)

    @rule(data=st.data())
    def send(self, data: st.DataObject) -> None:
        online = self._online()
        if not online:
            return
        sender = data.draw(st.sampled_from(online))
        assert sender.session is not None
        self.counter += 1
        body = b"m%d from %s" % (self.counter, sender.name.encode())
        roster = set(sender.session.roster)
        self.expected[body] = {n.name for n in self.nodes if n.id in roster} - {sender.name}
        self.hub.post(sender.session.encrypt(body, self.hub.now))
        self._settle()

    @rule(data=st.data())
    def go_offline(self, data: st.DataObject) -> None:
        online = self._online()
        if len(online) <= 1:
            return  # someone must stay to drive changes
        data.draw(st.sampled_from(online)).online = False

    @rule(data=st.data())
    def come_back(self, data: st.DataObject) -> None:
        away = [n for n in self._active() if not n.online]
        if away:
            data.draw(st.sampled_from(away)).online = True
            self._settle()

    def _proposer(self, data: st.DataObject) -> Node | None:
        online = self._online()
        if not online:
            return None
        node = data.draw(st.sampled_from(online))
        assert node.session is not None
        log = node.session.control_log
        if any(p.identity == node.id for p in log.pending) or log.attempt is not None:
            return None  # one change at a time keeps the model simple
        return node

    @precondition(lambda self: bool(self.spare))
    @rule(data=st.data())
    def add(self, data: st.DataObject) -> None:
        proposer = self._proposer(data)
        if proposer is None or proposer.session is None:
            return
        joiner = self.spare.pop(0)
        self.nodes.append(joiner)
        self.hub.advance(61_000)
        self.hub.post(proposer.session.propose(self.hub.now, add=[joiner.take_join_key()]))
        self._settle()

    @precondition(lambda self: len(self.spare) >= 2)
    @rule(data=st.data())
    def two_adds_at_once(self, data: st.DataObject) -> None:
        """Two members add at once: one decides the change, the other is carried into the
        next epoch and applied there (its notice names a proposal of the earlier epoch)."""
        first = self._proposer(data)
        second = self._proposer(data)
        if first is None or second is None or first is second:
            return
        assert first.session is not None and second.session is not None
        joiners = [self.spare.pop(0), self.spare.pop(0)]
        self.nodes += joiners
        self.hub.advance(61_000)
        self.hub.post(first.session.propose(self.hub.now, add=[joiners[0].take_join_key()]))
        self.hub.post(second.session.propose(self.hub.now, add=[joiners[1].take_join_key()]))
        self._settle()

    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        proposer = self._proposer(data)
        if proposer is None or proposer.session is None:
            return
        others = [n for n in self._active() if n is not proposer]
        if len(others) < 2:
            return
        subject = data.draw(st.sampled_from(others))
        self.removed.add(subject.name)
        self.hub.advance(61_000)
        self.hub.post(proposer.session.propose(self.hub.now, remove=[subject.id]))
        self._settle()

    @rule(data=st.data())
    def refresh(self, data: st.DataObject) -> None:
        proposer = self._proposer(data)
        if proposer is None or proposer.session is None:
            return
        self.hub.advance(3_601_000)
        self.hub.post(proposer.session.propose(self.hub.now, refresh=True))
        self._settle()

    @invariant()
    def online_members_agree(self) -> None:
        online = self._online()
        ids = {n.session.public_epoch_id for n in online if n.session is not None}
        assert len(ids) <= 1, "online members are in different epochs"

    @invariant()
    def nobody_is_removed_for_being_offline(self) -> None:
        for n in self.nodes:
            if any(isinstance(e, RemovedFromGroup) for e in n.events):
                assert n.name in self.removed

    def teardown(self) -> None:
        for n in self.nodes:
            n.online = True
        self._settle()
        active = self._active()
        ids = {n.session.public_epoch_id for n in active if n.session is not None}
        assert len(ids) == 1, "after everyone is back, one epoch for all"
        for n in active:
            got = [e.body for e in n.events if isinstance(e, MessageReceived)]
            assert len(got) == len(set(got)), f"{n.name} read a message twice"
            want = {b for b, readers in self.expected.items() if n.name in readers}
            assert want <= set(got), f"{n.name} missed messages after catching up"


OfflineGroup.TestCase.settings = settings(max_examples=15, stateful_step_count=15,
                                          deadline=None)
TestOfflineGroup = OfflineGroup.TestCase
