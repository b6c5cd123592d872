"""Helpers for the group tests.

`make_group` builds members of one epoch straight from the key schedule: the epoch's inputs
(init secret, transcript hash, payloads) come from a seeded RNG instead of a DKG run, because
those tests exercise the message layer, which only sees the key schedule's outputs.
`Hub` is an in-memory relay with one order per mailbox and a cursor per reader, and `Net`
drives real sessions through it (the epoch-change tests run the real DKG this way).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from triple_ratchet.errors import RemoteError
from triple_ratchet.group.epoch import EpochState, Member
from triple_ratchet.group.events import Event, Outgoing, WelcomeOut
from triple_ratchet.group.key_schedule import PAYLOAD_LEN, TRANSCRIPT_HASH_LEN, derive_epoch
from triple_ratchet.group.session import ACTIVE, GroupSession, Send, _State
from triple_ratchet.identity import IdentityKeyPair
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import DEFAULT_SUITE, Suite

GROUP_ID = b"G" * 16
T0 = 1_700_000_000.0
T0_MS = int(T0 * 1000)  # the hub's acceptance time of entries read at T0


def make_identities(n: int, suite: Suite = DEFAULT_SUITE, seed: bytes = b"ids"
                    ) -> list[IdentityKeyPair]:
    rng = DeterministicRandom(seed)
    return [IdentityKeyPair.generate(suite, rng) for _ in range(n)]


def make_group(n: int, suite: Suite = DEFAULT_SUITE, seed: bytes = b"group",
               group_id: bytes = GROUP_ID, epoch: int = 1,
               ) -> tuple[list[GroupSession], list[IdentityKeyPair]]:
    rng = DeterministicRandom(seed)
    secrets = derive_epoch(suite, rng(suite.hash_len), rng(TRANSCRIPT_HASH_LEN),
                           [rng(PAYLOAD_LEN) for _ in range(n)])
    identities = make_identities(n, suite, seed)
    epoch_keys = [suite.generate_signing(rng) for _ in range(n)]
    roster = [Member(i.public.to_bytes(), k.public_key().to_bytes())
              for i, k in zip(identities, epoch_keys, strict=True)]
    sessions = [
        GroupSession(identities[i], _State(
            suite.suite_id, ACTIVE, epoch_started_ms=int(T0 * 1000),
            epoch=EpochState.from_secrets(secrets, group_id=group_id, epoch=epoch,
                                          roster=roster, own_index=i,
                                          signing_key=epoch_keys[i])),
                     rng=DeterministicRandom(seed + bytes([i])))
        for i in range(n)
    ]
    return sessions, identities


@dataclass
class Hub:
    """One append-only log per mailbox; every reader has its own cursor in each.

    Each entry gets the hub's acceptance time (Unix ms, never decreasing within a mailbox):
    `now_ms` when it is appended, which `Net` keeps at its clock."""

    logs: dict[bytes, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    times: dict[bytes, list[int]] = field(default_factory=lambda: defaultdict(list))
    cursors: dict[tuple[str, bytes], int] = field(default_factory=lambda: defaultdict(int))
    now_ms: int = int(T0 * 1000)

    def append(self, mailbox: bytes, blob: bytes, at_ms: int | None = None) -> None:
        times = self.times[mailbox]
        t = self.now_ms if at_ms is None else at_ms
        self.logs[mailbox].append(blob)
        times.append(max(t, times[-1]) if times else t)

    def entry_time(self, mailbox: bytes, index: int) -> int:
        return self.times[mailbox][index]

    def unread(self, reader: str, mailbox: bytes) -> list[bytes]:
        return [blob for blob, _ in self.unread_timed(reader, mailbox)]

    def unread_timed(self, reader: str, mailbox: bytes) -> list[tuple[bytes, int]]:
        log = self.logs[mailbox]
        start = self.cursors[(reader, mailbox)]
        self.cursors[(reader, mailbox)] = len(log)
        return list(zip(log[start:], self.times[mailbox][start:], strict=True))


@dataclass
class Net:
    """Moves every outgoing blob to its mailbox and welcomes to the joiner (in process)."""

    hub: Hub = field(default_factory=Hub)
    members: dict[str, GroupSession] = field(default_factory=dict)
    identities: dict[str, IdentityKeyPair] = field(default_factory=dict)
    events: dict[str, list[Event]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[RemoteError]] = field(default_factory=lambda: defaultdict(list))
    now: float = 1_700_000_000.0
    pending_welcomes: list[tuple[bytes, bytes, bytes]] = field(default_factory=list)
    strict: bool = True

    @property
    def now_ms(self) -> int:
        return int(self.now * 1000)

    def send(self, sender: str, sends: list[Send]) -> None:
        for s in sends:
            if isinstance(s, Outgoing):
                self.hub.append(s.mailbox_id, s.blob, self.now_ms)
            elif isinstance(s, WelcomeOut):
                me = self.identities[sender].public.to_bytes()
                self.pending_welcomes.append((s.recipient, s.welcome, me))

    def deliver_welcomes(self) -> None:
        """In a real app the welcome travels in a PairwiseSession; see test_group_pairwise."""
        from triple_ratchet.identity import Identity
        while self.pending_welcomes:
            recipient, welcome, welcomer = self.pending_welcomes.pop(0)
            for name, ident in self.identities.items():
                if ident.public.to_bytes() == recipient:
                    session, events, sends = GroupSession.join(
                        ident, welcome, Identity.from_bytes(welcomer), self.now,
                        rng=DeterministicRandom(b"join" + name.encode()))
                    self.members[name] = session
                    self.events[name] += events
                    self.send(name, sends)

    def step(self) -> bool:
        """Let every member read every unread blob once; True if anything was read."""
        self.deliver_welcomes()
        moved = False
        for name, session in list(self.members.items()):
            for box in session.mailboxes():
                while (session.status != "ended" and box in session.mailboxes()
                       and self.hub.cursors[(name, box)] < len(self.hub.logs[box])):
                    at = self.hub.cursors[(name, box)]
                    blob, entry_time = self.hub.logs[box][at], self.hub.entry_time(box, at)
                    self.hub.cursors[(name, box)] += 1
                    moved = True
                    try:
                        events, sends = session.receive(blob, self.now, entry_time=entry_time)
                    except RemoteError as exc:
                        if self.strict:
                            raise
                        self.errors[name].append(exc)
                        continue
                    self.events[name] += events
                    self.send(name, sends)
        return moved

    def read(self, name: str, mailbox: bytes) -> None:
        """Let one member read one mailbox's unread blobs."""
        session = self.members[name]
        for blob, entry_time in self.hub.unread_timed(name, mailbox):
            try:
                events, sends = session.receive(blob, self.now, entry_time=entry_time)
            except RemoteError as exc:
                if self.strict:
                    raise
                self.errors[name].append(exc)
                continue
            self.events[name] += events
            self.send(name, sends)

    def reload(self) -> None:
        """Replace every session by a copy restored from its serialized state (exactly)."""
        for name, session in self.members.items():
            data = session.to_bytes()
            copy = GroupSession.from_bytes(data, self.identities[name], rng=session._rng)
            assert copy.to_bytes() == data
            self.members[name] = copy

    def run(self, limit: int = 200) -> None:
        for _ in range(limit):
            if not self.step():
                return
        raise AssertionError("network did not settle")

    def tick(self, seconds: float) -> None:
        self.now += seconds
        self.hub.now_ms = self.now_ms
        for name, session in self.members.items():
            if session.status == "ended":
                continue
            events, sends = session.tick(self.now)
            self.events[name] += events
            self.send(name, sends)
