"""An in-memory hub with its own clock and members driving GroupSession through it: every blob
goes through a mailbox, every entry gets the hub's acceptance time, members read their mailboxes
in hub order and say when they have read one to its end (`caught_up`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from triple_ratchet.errors import RemoteError
from triple_ratchet.group.events import Event, Outgoing
from triple_ratchet.group.join_keys import JoinKeyring
from triple_ratchet.group.notice import (
    JoinStart,
    NoticeAssembler,
    OpenedNotice,
    open_notice_sealing,
)
from triple_ratchet.group.records import JoinKey, RecordKeys
from triple_ratchet.group.session import GroupSession
from triple_ratchet.identity import IdentityKeyPair
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import DEFAULT_SUITE, Suite

T_START = 1_800_000_000_000


class Hub:
    def __init__(self) -> None:
        self.t = T_START
        self.boxes: dict[bytes, list[tuple[bytes, int]]] = {}

    def post(self, outs: list[Outgoing]) -> None:
        for o in outs:
            self.t += 1
            self.boxes.setdefault(o.mailbox_id, []).append((o.blob, self.t))

    def advance(self, ms: int) -> None:
        self.t += ms

    @property
    def now(self) -> float:
        return self.t / 1000


@dataclass
class Node:
    name: str
    identity: IdentityKeyPair
    rng: DeterministicRandom
    keyring: JoinKeyring
    inbox: bytes
    session: GroupSession | None = None
    cursors: dict[bytes, int] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    online: bool = True
    assembler: NoticeAssembler | None = None
    opened: OpenedNotice | None = None  # a notice whose common part is still being read
    reload: bool = False  # save and load the session after every step
    skew_ms: int = 0  # this member's clock minus the hub's

    def now(self, hub: Hub) -> float:
        return (hub.t + self.skew_ms) / 1000

    def _reloaded(self) -> None:
        if self.reload and self.session is not None:
            data = self.session.to_bytes()
            self.session = GroupSession.from_bytes(data, self.identity, rng=self.rng)
            assert self.session.to_bytes() == data

    @property
    def id(self) -> bytes:
        return self.identity.public.to_bytes()

    def take_join_key(self) -> JoinKey:
        """What the hub directory hands out: one of our one-time keys."""
        held = next(h for h in self.keyring.held if h.one_time)
        return held.join_key

    def messages(self) -> list[bytes]:
        from triple_ratchet.group.events import MessageReceived
        return [e.body for e in self.events if isinstance(e, MessageReceived)]

    def pump(self, hub: Hub) -> bool:
        """Read every mailbox to its end (and the inbox while not in a group). True if
        anything was read."""
        if not self.online:
            return False
        progressed = False
        if self.session is None:
            return self._read_inbox(hub)
        seen_boxes: set[bytes] = set()
        while True:
            boxes = [b for b in self.session.mailboxes() if b not in seen_boxes]
            if not boxes:
                break
            # Control mailbox first, as catch-up reads each epoch's change, then group boxes.
            box = boxes[0] if len(boxes) == 1 else self._next_box(boxes)
            entries = hub.boxes.get(box, [])
            start = self.cursors.get(box, 0)
            for blob, t in entries[start:]:
                self.cursors[box] = self.cursors.get(box, 0) + 1
                progressed = True
                try:
                    events, out = self.session.receive(blob, self.now(hub), entry_time=t,
                                                       hub_time=hub.t)
                except RemoteError as exc:
                    self.events.append(_Raised(type(exc).__name__, str(exc)))
                    continue
                self.events += events
                hub.post(out)
                self._reloaded()
                if box not in self.session.mailboxes():
                    break  # the epoch changed under us: read the new mailboxes
            if box in self.session.mailboxes() and self.cursors.get(box, 0) >= len(
                    hub.boxes.get(box, [])):
                events, out = self.session.caught_up(box, self.now(hub))
                self.events += events
                hub.post(out)
                self._reloaded()
                seen_boxes.add(box)
            if self.session.status not in ("active", "removed"):
                break  # a removed session still reads its last epoch's group mailbox
        return progressed

    def _next_box(self, boxes: list[bytes]) -> bytes:
        assert self.session is not None
        s = self.session
        if s.status == "removed":  # no current epoch: its old epochs' group mailboxes, in order
            return boxes[0]
        # Old epochs' group mailboxes first (catch-up reads epoch e fully before e+1's
        # messages), then the current control mailbox, then the current group mailbox.
        old = [b for b in boxes if b not in (s.mailbox_id, s.control_mailbox_id)]
        if old:
            return old[0]
        if s.control_mailbox_id in boxes:
            return s.control_mailbox_id
        return boxes[0]

    def _read_common(self, hub: Hub) -> bool:
        """The second fetch of a joiner (11.v2.28): the common part its notice names, read
        whole from the change's common mailbox; join once it is there."""
        assert self.opened is not None
        assembler = self.opened.assembler()
        for blob, _ in hub.boxes.get(self.opened.common_mailbox.mailbox_id, []):
            try:
                assembler, common = assembler.receive(blob)
            except RemoteError as exc:
                self.events.append(_Raised(type(exc).__name__, str(exc)))
                assembler = assembler.reset()
                continue
            if common is None:
                continue
            start_ = self.opened.complete(common)
            self.opened = None
            self.session, self.keyring = GroupSession.join(self.identity, start_,
                                                             self.keyring, rng=self.rng)
            hub.post(self.session.rotate(hub.now))
            return True
        return False

    def _read_inbox(self, hub: Hub) -> bool:
        if self.opened is not None:
            return self._read_common(hub)
        entries = hub.boxes.get(self.inbox, [])
        start = self.cursors.get(self.inbox, 0)
        if self.assembler is None:
            self.assembler = NoticeAssembler(self.identity.suite)
        for blob, _ in entries[start:]:
            self.cursors[self.inbox] = self.cursors.get(self.inbox, 0) + 1
            self.assembler = replace(self.assembler, identity=self.id,
                                     keys=tuple(self.keyring.keys()))
            self.assembler, notice = self.assembler.receive(blob)
            if notice is None:
                continue
            self.opened = open_notice_sealing(self.identity.suite, notice, identity=self.id,
                                              keys=self.keyring.keys())
            self._read_common(hub)
            return True
        return start < len(entries)


@dataclass(frozen=True)
class _Raised(Event):
    error: str
    detail: str


def make_node(name: str, suite: Suite = DEFAULT_SUITE) -> Node:
    rng = DeterministicRandom(b"node " + name.encode())
    identity = IdentityKeyPair.generate(suite, rng)
    inbox = rng(32)
    keyring = JoinKeyring.empty(suite).generate(identity, one_time=2, last_resort=True,
                                                inbox_id=inbox, expiry=T_START + 10**10,
                                                rng=rng)
    return Node(name, identity, rng, keyring, inbox)


def settle(hub: Hub, nodes: list[Node], *, rounds: int = 200, step_ms: int = 1_000,
           quiet_rounds: int = 80) -> None:
    """Let the online nodes read and act until nothing moves for a while, advancing the hub
    clock `step_ms` per quiet round (deadlines and jitter pass on hub time)."""
    quiet = 0
    for _ in range(rounds):
        moved = False
        for n in nodes:
            moved |= n.pump(hub)
        if moved:  # entries read (and what caught_up posted): not quiet
            quiet = 0
        else:
            hub.advance(step_ms)
            for n in nodes:
                if n.online and n.session is not None and n.session.status == "active":
                    events, out = n.session.tick(n.now(hub))
                    n.events += events
                    hub.post(out)
                    moved |= bool(out)
            quiet = 0 if moved else quiet + 1
            if quiet > quiet_rounds:
                return


def common_at(hub: Hub, opened: OpenedNotice) -> bytes:
    """The common part a notice names, read whole from its common mailbox at `hub`."""
    assembler = opened.assembler()
    for blob, _ in hub.boxes.get(opened.common_mailbox.mailbox_id, []):
        assembler, common = assembler.receive(blob)
        if common is not None:
            return common
    raise AssertionError("the common part is not (whole) at the hub")


def open_from_hub(hub: Hub, suite: Suite, notice: bytes, *, identity: bytes,
                  keys: Sequence[RecordKeys]) -> JoinStart:
    """`open_notice` with the common part read from the change's common mailbox at `hub`."""
    opened = open_notice_sealing(suite, notice, identity=identity, keys=keys)
    return opened.complete(common_at(hub, opened))


def create(hub: Hub, creator: Node, others: list[Node]) -> None:
    creator.session, out = GroupSession.create(
        creator.identity, [o.take_join_key() for o in others], hub.now,
        group_id=b"sim group", rng=creator.rng)
    hub.post(out)
