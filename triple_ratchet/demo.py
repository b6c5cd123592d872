"""`triple-ratchet demo`: a group exchanging messages through a hub (the README's main job).

Every member is a `Client` of the client layer (`triple_ratchet.client`) with a database file of
its own in a temporary directory: the client publishes the member's join keys in the hub's
encrypted directory, follows its inbox and its groups' mailboxes, saves every state before it
sends, and ticks the sessions. The demo creates a group, exchanges messages, and then — with
`--offline K` members' clients closed — adds a member, removes one and refreshes the keys; then
the offline members open their databases again and catch up epoch by epoch. It checks that
every plaintext reached exactly the members it should have, that the removed member read nothing
sent after its removal, that the offline members caught up, and that nobody was removed for
being offline.

The epoch change of version 2 runs on the hub's clock (60 s minimum epoch age, 10 s announcement
window, 1 h minimum age for a refresh). The local hub therefore runs in this process on a clock
the demo moves forward (`_WarpClock`), and every client reads the same clock (`clock=`): a whole
epoch change takes a moment of real time. With `--hub URL` the clock cannot be moved: the
changes take their real time and the refresh (1 h) is left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triple_ratchet.client import (
    Client,
    Group,
    GroupJoined,
    GroupMessage,
    RemovedFromGroup,
    StorageKey,
)
from triple_ratchet.errors import UsageError
from triple_ratchet.suites import ALL_SUITES, Suite

PHASE_TIMEOUT = 120.0  # seconds of real time any one phase of the demo may take
POLL_INTERVAL = 0.05  # how often the demo looks whether a phase is done
# How often each client ticks its sessions: often, since the local clock runs ten times as fast
# during a change and announcements must land within the change's 10 s window.
TICK_INTERVAL = 0.1
WARP_INTERVAL = 0.1  # how often the local clock moves forward during a change...
WARP_STEP = 1.0  # ...and by how many hub seconds
EPOCH_AGE_WARP = 61.0  # announcements count only 60 s after the epoch began
REFRESH_AGE_WARP = 3_601.0  # a refresh is valid only 1 h after the epoch began


def _suite_named(name: str) -> Suite:
    for suite in ALL_SUITES:
        if suite.name == name:
            return suite
    raise UsageError(f"unknown suite {name!r}; one of {[s.name for s in ALL_SUITES]}")


class _WarpClock:
    """Real time plus an offset the demo moves forward (the local hub and every client read
    this clock, so hub times and member clocks agree). A remote hub's clock is its own: then
    the offset stays 0."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.warping = False

    def __call__(self) -> float:
        return time.time() + self.offset

    def warp(self, seconds: float) -> None:
        if self.warping:
            self.offset += seconds


class Member:
    """One member: a client on its own database file, and what it received."""

    def __init__(self, name: str, path: Path, url: str, suite: Suite, clock: _WarpClock
                 ) -> None:
        self.name = name
        self.path = path
        self.url = url
        self.suite = suite
        self.clock = clock
        # The storage key a real app keeps in the platform keystore (no KDF per open).
        self.key = StorageKey.generate()
        self.client: Client | None = None
        self.identity = b""
        self.group_id: bytes | None = None
        self.received: list[str] = []
        self.removed = False
        self._events: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Open (or open again) this member's database and read its events."""
        self.client = await Client.open(self.path, hub=self.url, key=self.key, name=self.name,
                                        suite=self.suite, clock=self.clock,
                                        tick_interval=TICK_INTERVAL)
        self.identity = self.client.identity
        self._events = asyncio.create_task(self._read(self.client))

    async def close(self) -> None:
        """Go offline: the client closes; what is sent meanwhile waits at the hub."""
        if self._events is not None:
            self._events.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._events
            self._events = None
        if self.client is not None:
            await self.client.close()
            self.client = None

    async def _read(self, client: Client) -> None:
        async for event in client.events():
            if isinstance(event, GroupMessage) and event.text is not None:
                self.received.append(event.text)
            elif isinstance(event, GroupJoined):
                self.group_id = _group_id(event.group)
            elif isinstance(event, RemovedFromGroup):
                self.removed = True

    @property
    def online(self) -> bool:
        return self.client is not None

    @property
    def group(self) -> Group:
        if self.client is None or self.group_id is None:
            raise UsageError(f"{self.name} is not in a group")
        return self.client.group(self.group_id)

    @property
    def epoch(self) -> int:
        if self.removed or self.client is None or self.group_id is None:
            return 0
        return self.group.epoch


def _group_id(group: Group | bytes) -> bytes:
    return group if isinstance(group, bytes) else group.id


async def _until(done: Callable[[], bool], what: str, timeout: float = PHASE_TIMEOUT) -> float:
    """Wait until `done()`; return the seconds it took. Raises TimeoutError naming `what`."""
    start = time.perf_counter()
    while not done():
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"demo: timed out waiting for {what}")
        await asyncio.sleep(POLL_INTERVAL)
    return time.perf_counter() - start


def _progress(label: str, done: int, total: int) -> None:
    """A progress bar on a terminal; elsewhere (logs, CI) only the finished line."""
    if not sys.stderr.isatty() and done < total:
        return
    width = 30
    filled = width * done // max(total, 1)
    end = "\n" if done >= total else ""
    prefix = "\r" if sys.stderr.isatty() else ""
    print(f"{prefix}  {label:<28} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}",
          end=end, file=sys.stderr, flush=True)


@dataclass
class Report:
    suite: str
    members: int
    offline: int
    epochs: list[tuple[str, float]] = field(default_factory=list)
    messages_sent: int = 0
    deliveries: int = 0
    exchange_seconds: float = 0.0
    proof: str = ""
    removed_read_nothing: bool = False
    offline_caught_up: bool = False
    removed_for_offline: int = 0
    hub_entries: int | None = None
    hub_bytes: int | None = None


async def _exchange(senders: list[Member], readers: list[Member], count: int, tag: str,
                    report: Report, late: list[Member] | None = None) -> list[str]:
    """`count` messages round-robin from `senders`; wait until every reader has each one.
    `late` members are in the group but offline: they get the messages when they are back
    (the bodies are returned to check that)."""
    expected: dict[str, set[str]] = {}
    base = {d.name: len(d.received) for d in readers}
    start = time.perf_counter()
    bodies = []
    for k in range(count):
        sender = senders[k % len(senders)]
        body = f"{tag} #{k} from {sender.name}"
        await sender.group.send(body)
        bodies.append(body)
        expected[body] = {d.name for d in readers if d is not sender}
        _progress(f"{tag}: sent", k + 1, count)

    want = sum(len(v) for v in expected.values())
    shown = -1

    def all_in() -> bool:
        nonlocal shown
        delivered = min(sum(len(d.received) - base[d.name] for d in readers), want)
        if delivered != shown:
            shown = delivered
            _progress(f"{tag}: delivered", delivered, want)
        return delivered >= want

    await _until(all_in, f"{tag} deliveries")
    elapsed = time.perf_counter() - start
    got: dict[str, set[str]] = {body: set() for body in expected}
    for d in readers:
        for body in d.received[base[d.name]:]:
            if body not in got or d.name in got[body]:
                raise AssertionError(f"{d.name} got an unexpected or duplicate message")
            got[body].add(d.name)
    if got != expected:
        raise AssertionError(f"{tag}: some plaintexts did not reach every member")
    report.messages_sent += count
    report.deliveries += want
    report.exchange_seconds += elapsed
    h = hashlib.sha256(report.proof.encode())
    for body in sorted(expected):
        h.update(body.encode() + b"".join(n.encode() for n in sorted(expected[body])))
    report.proof = h.hexdigest()
    return bodies if late else []


async def _change(clock: _WarpClock, done: Callable[[], bool], what: str) -> float:
    """Wait for an epoch change, moving the local hub's clock forward meanwhile (no-op for a
    remote hub, whose clock is its own)."""
    async def warp() -> None:
        while True:
            await asyncio.sleep(WARP_INTERVAL)
            clock.warp(WARP_STEP)

    task = asyncio.create_task(warp())
    try:
        return await _until(done, what)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _run(members: int, messages: int, offline: int, url: str, suite: Suite,
               state_dir: Path, clock: _WarpClock) -> Report:
    report = Report(suite.name, members, offline)
    devices = [Member(f"member-{i}", state_dir / f"member-{i}.db", url, suite, clock)
               for i in range(members + 1)]
    devices, newcomer = devices[:-1], devices[-1]
    everyone = [*devices, newcomer]
    try:
        for d in everyone:
            await d.open()
        creator = devices[0]
        print(f"creating a group of {members} ({suite.name}): notices to every member...",
              file=sys.stderr)
        started = time.perf_counter()
        for d in devices[1:]:  # contacts from their invites (what an app gets out of band)
            await _client(creator).add_contact(_client(d).invite())
        group = await _client(creator).create_group("demo", [d.identity for d in devices[1:]])
        creator.group_id = group.id
        await _until(lambda: all(d.epoch >= 1 for d in devices), "epoch 1")
        report.epochs.append((f"create: {members} members", time.perf_counter() - started))

        await _exchange(devices, devices, messages, "group chat", report)

        leaver = devices[1]
        away = devices[len(devices) - offline:] if offline else []
        for d in away:
            await d.close()
        online = [d for d in devices if d not in away]
        if away:
            print(f"{len(away)} member(s) offline from now on: "
                  f"{', '.join(d.name for d in away)}", file=sys.stderr)
        missed: list[str] = []

        print(f"adding {newcomer.name}...", file=sys.stderr)
        clock.warp(EPOCH_AGE_WARP)
        contact = await _client(creator).add_contact(_client(newcomer).invite())
        await creator.group.add(contact.identity)
        in_group = [*online, newcomer]
        t = await _change(clock, lambda: all(d.epoch >= 2 for d in in_group), "epoch 2 (add)")
        report.epochs.append((f"add one: {members + 1} members", t))
        missed += await _exchange(in_group, in_group, max(1, messages // 5), "after add",
                                  report, late=away)

        print(f"removing {leaver.name}...", file=sys.stderr)
        clock.warp(EPOCH_AGE_WARP)
        await creator.group.remove(leaver.identity)
        stay = [d for d in in_group if d is not leaver]
        t = await _change(clock, lambda: leaver.removed and all(d.epoch >= 3 for d in stay),
                          "epoch 3 (remove)")
        report.epochs.append((f"remove one: {len(stay) + len(away)} members", t))
        before = len(leaver.received)
        missed += await _exchange(stay, stay, max(1, messages // 5), "after remove", report,
                                  late=away)

        last_epoch = 3
        if clock.warping:  # a refresh needs the epoch an hour old: only on the local clock
            print("refreshing the group's keys...", file=sys.stderr)
            clock.warp(REFRESH_AGE_WARP)
            await creator.group.refresh()
            t = await _change(clock, lambda: all(d.epoch >= 4 for d in stay),
                              "epoch 4 (refresh)")
            report.epochs.append((f"refresh: {len(stay) + len(away)} members", t))
            missed += await _exchange(stay, stay, max(1, messages // 5), "after refresh",
                                      report, late=away)
            last_epoch = 4

        if away:
            print(f"bringing {len(away)} offline member(s) back...", file=sys.stderr)
            base = {d.name: set(d.received) for d in away}
            for d in away:
                await d.open()

            def caught_up() -> bool:
                return all(d.epoch >= last_epoch and set(missed) <= set(d.received)
                           for d in away)

            t = await _change(clock, caught_up, "offline members' catch-up")
            report.epochs.append((f"catch-up: {len(away)} back", t))
            for d in away:
                got = [body for body in d.received if body not in base[d.name]]
                if sorted(got) != sorted(missed):
                    raise AssertionError(f"{d.name} missed or duplicated messages on return")
                if d.group.epoch_id != creator.group.epoch_id:
                    raise AssertionError(f"{d.name} caught up into another epoch")
            report.removed_for_offline = sum(1 for d in away if d.removed)
            await _exchange([*stay, *away], [*stay, *away], max(1, messages // 5),
                            "after return", report)
        report.offline_caught_up = True
        await asyncio.sleep(0.2)  # give any stray delivery to the removed member time to land
        report.removed_read_nothing = len(leaver.received) == before
        if not report.removed_read_nothing:
            raise AssertionError("the removed member decrypted a message of a later epoch")
    finally:
        for d in everyone:
            with contextlib.suppress(Exception):
                await d.close()
    return report


def _client(member: Member) -> Client:
    if member.client is None:
        raise UsageError(f"{member.name} is offline")
    return member.client


async def _with_local_hub(db: Path, clock: _WarpClock,
                          body: Callable[[str], Coroutine[Any, Any, Report]]) -> Report:
    """A hub in this process on the SQLite store, reading `clock`."""
    from websockets.asyncio.server import serve

    from triple_ratchet.hub.frames import MAX_CLIENT_FRAME
    from triple_ratchet.hub.server import Hub, HubConfig, RateLimit, open_store

    store = open_store(f"sqlite:{db}")
    await store.start()
    # The demo moves the clock forward by minutes: idle bounds and proof rates would read
    # that as every connection idling or proving too fast.
    hub = Hub(store, HubConfig(idle_unauthenticated=10**9, idle_unsubscribed=10**9,
                               proofs=RateLimit(1000.0, 1000.0),
                               authenticated_writes=RateLimit(10_000.0, 10_000.0),
                               creates=RateLimit(1000.0, 1000.0)), clock=clock)
    server = await serve(hub.handle, "127.0.0.1", 0, compression=None,
                         max_size=MAX_CLIENT_FRAME, max_queue=16,
                         process_request=hub.process_request)
    try:
        port = server.sockets[0].getsockname()[1]
        url = f"ws://127.0.0.1:{port}"
        print(f"local hub on {url} (SQLite store {db})", file=sys.stderr)
        clock.warping = True
        return await body(url)
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5)
        await store.close()


def _hub_usage(db: Path) -> tuple[int, int]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        n, size = con.execute("SELECT count(*), coalesce(sum(length(blob)), 0) FROM entries"
                              ).fetchone()
    return int(n), int(size)


def run_demo(*, members: int, messages: int, hub_url: str | None, suite_name: str,
             offline: int = 0) -> int:
    if members < 2:
        raise UsageError("a group needs at least 2 members")
    if messages < 1:
        raise UsageError("send at least one message")
    if offline < 0 or (offline and offline > members - 2):
        raise UsageError("--offline must leave the creator and the member to remove online "
                         f"(at most {max(0, members - 2)} here)")
    suite = _suite_named(suite_name)
    clock = _WarpClock()
    with tempfile.TemporaryDirectory(prefix="triple-ratchet-demo-") as tmp:
        tmpdir = Path(tmp)
        db = tmpdir / "hub.sqlite3"

        def body(url: str) -> Coroutine[Any, Any, Report]:
            return _run(members, messages, offline, url, suite, tmpdir, clock)

        try:
            if hub_url is None:
                report = asyncio.run(_with_local_hub(db, clock, body))
            else:
                report = asyncio.run(body(hub_url))
        except (TimeoutError, AssertionError) as exc:
            print(f"demo FAILED: {exc}", file=sys.stderr)
            return 1
        if hub_url is None:
            report.hub_entries, report.hub_bytes = _hub_usage(db)
    _print_report(report)
    return 0


def _print_report(r: Report) -> None:
    print(f"\nTriple Ratchet demo — suite {r.suite}, {r.members} members, "
          f"{r.offline} offline through the changes")
    for what, seconds in r.epochs:
        print(f"  epoch change, {what:<22} {seconds * 1000:8.1f} ms")
    rate = r.deliveries / r.exchange_seconds if r.exchange_seconds else 0.0
    print(f"  group messages: {r.messages_sent} sent, {r.deliveries} deliveries "
          f"in {r.exchange_seconds:.2f} s ({rate:.0f} deliveries/s, through the hub)")
    if r.hub_bytes is not None:
        print(f"  hub stored: {r.hub_entries} blobs, {r.hub_bytes} bytes (opaque, padded)")
    print("  every plaintext reached exactly the members it was sent to, once: yes")
    print(f"  removed member decrypted nothing after its removal: "
          f"{'yes' if r.removed_read_nothing else 'NO'}")
    print(f"offline members caught up: {'yes' if r.offline_caught_up else 'no'}")
    print(f"removed for being offline: {r.removed_for_offline}")
    print(f"  delivery proof (SHA-256 over every message and its recipients): {r.proof}")


__all__ = ["run_demo"]
