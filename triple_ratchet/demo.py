"""`triple-ratchet demo`: a group exchanging messages through a hub (the README's main job).

Every member is a device with its own identity, group join keys published in the hub's directory,
an inbox connection (for notices) and a group connection (group and control mailboxes) to a real
hub over WebSockets. The demo creates a group (the creator alone as the first committee, notices
to every member's inbox naming one common part the creator posts once in the change's common
mailbox, which each joiner then reads on a one-off connection), exchanges messages, and then —
with `--offline K` members neither reading nor answering — adds a member, removes one and
refreshes the keys; then the offline members come back and catch up epoch by epoch. It checks
that every plaintext reached exactly the members it should have, that the removed member read
nothing sent after its removal, that the offline members caught up, and that nobody was removed
for being offline.

The epoch change of version 2 runs on the hub's clock (60 s minimum epoch age, 10 s announcement
window, 1 h minimum age for a refresh). The local hub therefore runs in this process on a clock
the demo may move forward (`_WarpClock`): a whole epoch change takes a moment of real time. With
`--hub URL` the clock cannot be moved and the changes take their real time.

The library itself does no I/O; this module is the application around it: it moves blobs, keeps
the clock, and saves each state before sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from triple_ratchet.errors import (
    DecodeError,
    HubRefused,
    RemoteError,
    TripleRatchetError,
    UsageError,
)
from triple_ratchet.group.control_log import RETENTION
from triple_ratchet.group.events import (
    CommonOut,
    EpochChanged,
    Event,
    HubClockSkew,
    MessageReceived,
    Outgoing,
    RemovedFromGroup,
)
from triple_ratchet.group.join_keys import JoinKeyring
from triple_ratchet.group.notice import NoticeAssembler, OpenedNotice, open_notice_sealing
from triple_ratchet.group.records import JoinKey
from triple_ratchet.group.session import GroupSession
from triple_ratchet.hub.access import AccessKey, directory_id
from triple_ratchet.hub.client import START, Delivery, MailboxClient, send_to_inbox
from triple_ratchet.hub.frames import Kind
from triple_ratchet.identity import IdentityKeyPair
from triple_ratchet.random import system_random
from triple_ratchet.suites import ALL_SUITES, Suite

PHASE_TIMEOUT = 120.0  # seconds of real time any one phase of the demo may take
TICK_INTERVAL = 0.2  # how often members let their sessions act on the clock
WARP_PER_TICK = 2.0  # hub seconds the local clock moves forward per tick during a change
EPOCH_AGE_WARP = 61.0  # announcements count only 60 s after the epoch began
REFRESH_AGE_WARP = 3_601.0  # a refresh is valid only 1 h after the epoch began
ONE_TIME_JOIN_KEYS = 2


LABEL_DIRECTORY_ENTRY = b"triple-ratchet directory entry"


def _entry_key(suite: Suite, identity: bytes) -> bytes:
    # Contacts learn each other's identity keys out of band; the hub sees only a hash of one
    # (the directory id), so it can read neither the join key nor the identity and inbox it names.
    return suite.expand_label(suite.hash(identity), LABEL_DIRECTORY_ENTRY, b"",
                              suite.aead_key_len)


def _seal_join_key(suite: Suite, identity: bytes, signed_join_key: bytes) -> bytes:
    """A join key as the directory keeps it: encrypted under a key from its identity."""
    nonce = system_random(suite.aead_nonce_len)
    return nonce + suite.aead_encrypt(_entry_key(suite, identity), nonce, signed_join_key,
                                      LABEL_DIRECTORY_ENTRY)


def _open_join_key(suite: Suite, identity: bytes, blob: bytes) -> bytes:
    n = suite.aead_nonce_len
    if len(blob) < n + suite.aead_tag_len:
        raise DecodeError("directory entry too short")
    return suite.aead_decrypt(_entry_key(suite, identity), blob[:n], blob[n:],
                              LABEL_DIRECTORY_ENTRY)


def _suite_named(name: str) -> Suite:
    for suite in ALL_SUITES:
        if suite.name == name:
            return suite
    raise UsageError(f"unknown suite {name!r}; one of {[s.name for s in ALL_SUITES]}")


class _WarpClock:
    """Real time plus an offset the demo moves forward (the local hub and every member read
    this clock, so hub times and member clocks agree)."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.warping = False

    def __call__(self) -> float:
        return time.time() + self.offset

    def warp(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Tally:
    """What the demo measures, shared by every member."""

    blobs_put: int = 0
    bytes_put: int = 0
    rejected: int = 0


class Device:
    """One member's device: join keys, an inbox connection, a group connection, a session."""

    def __init__(self, name: str, suite: Suite, url: str, tally: Tally, state_dir: Path,
                 clock: _WarpClock) -> None:
        self.name = name
        self.suite = suite
        self.url = url
        self.tally = tally
        self.clock = clock
        self.identity = IdentityKeyPair.generate(suite)
        self.public = self.identity.public.to_bytes()
        # The inbox key is independent of the identity key (the hub must not link them).
        self.inbox_key = AccessKey.generate(suite)
        self.inbox = MailboxClient(url)
        self.groups = MailboxClient(url)
        self.keyring = JoinKeyring.empty(suite)
        self.assembler = NoticeAssembler(suite)
        self.session: GroupSession | None = None
        self.received: list[MessageReceived] = []
        self.skews: list[Event] = []  # HubClockSkew reports
        self.epochs: list[EpochChanged] = []
        self.removed = False
        self.online = True
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._quiet = True
        self._access: dict[bytes, AccessKey] = {}
        self._state_path = state_dir / f"{name}.state"
        self._tasks: list[asyncio.Task[None]] = []
        self.changed = asyncio.Event()

    @property
    def epoch(self) -> int:
        if self.session is None or self.session.status != "active":
            return self.epochs[-1].epoch if self.epochs else 0
        return self.session.epoch

    async def start(self) -> None:
        await self.inbox.follow(self.inbox_key, Kind.INBOX)
        self.keyring = self.keyring.generate(
            self.identity, one_time=ONE_TIME_JOIN_KEYS, last_resort=True,
            inbox_id=self.inbox_key.mailbox_id,
            expiry=int(self.clock() * 1000) + RETENTION)
        last_resort, one_time = self.keyring.publishable()
        seal = _seal_join_key
        last_resort = None if last_resort is None else seal(self.suite, self.public, last_resort)
        one_time = tuple(seal(self.suite, self.public, k) for k in one_time)
        # Published on a connection of its own with an owner key of its own.
        publisher = MailboxClient(self.url)
        try:
            await publisher.publish_join_keys(directory_id(self.suite, self.public),
                                              AccessKey.generate(self.suite),
                                              last_resort, one_time)
        finally:
            await publisher.close()
        self._tasks = [asyncio.create_task(self._read_inbox()),
                       asyncio.create_task(self._read_groups()),
                       asyncio.create_task(self._tick())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, TripleRatchetError, ConnectionError):
                await task
        await self.inbox.close()
        await self.groups.close()

    def go_offline(self) -> None:
        """Neither read nor answer: deliveries wait at the hub (and in the client)."""
        self.online = False
        self._resumed.clear()

    def come_back(self) -> None:
        self.online = True
        self._resumed.set()

    # --- the application loop around the sans-IO session ------------------------------------

    async def _read_inbox(self) -> None:
        while True:
            event = await self.inbox.next_event()
            await self._resumed.wait()
            if not isinstance(event, Delivery) or self.session is not None:
                continue
            try:
                # Our current join keys open a notice's first chunk at once (review F5).
                self.assembler = replace(self.assembler, identity=self.public,
                                         keys=tuple(self.keyring.keys()))
                self.assembler, notice = self.assembler.receive(event.blob)
                if notice is None:
                    continue
                opened = open_notice_sealing(self.suite, notice, identity=self.public,
                                             keys=self.keyring.keys())
                common = await self._fetch_common(opened)
                while common is None:  # not posted (whole) yet: wait for it, then read again
                    await asyncio.sleep(TICK_INTERVAL)
                    common = await self._fetch_common(opened)
                start = opened.complete(common)
                self.session, self.keyring = GroupSession.join(self.identity, start,
                                                                 self.keyring)
            except RemoteError:
                self.tally.rejected += 1
                continue
            # R10: a rotation record at once after joining.
            await self._after_step([], self.session.rotate(self.clock()))
            await self.inbox.ack(self.inbox_key.mailbox_id, event.cursor)

    async def _fetch_common(self, opened: OpenedNotice) -> bytes | None:
        """A joiner's second fetch (11.v2.28): the common part its notice names, read from the
        change's common mailbox on a one-off connection (its access key opens it)."""
        key = AccessKey(self.suite, opened.common_mailbox.access_key)
        conn = MailboxClient(self.url)
        try:
            await conn.follow(key, Kind.CONTROL)  # created here if not posted yet
            assembler, after = opened.assembler(), START
            while True:
                batch = await conn.fetch(key.mailbox_id, after)
                for entry in batch.entries:
                    try:
                        assembler, common = assembler.receive(entry.blob)
                    except RemoteError:
                        self.tally.rejected += 1
                        assembler = assembler.reset()
                        continue
                    if common is not None:
                        return common
                if not batch.more or not batch.entries:
                    return None
                after = batch.next_cursor
        finally:
            await conn.close()

    async def _post_common(self, sends: list[CommonOut]) -> None:
        """The common part of a change's notices, once, into its common mailbox (a control
        mailbox this member creates with the access key the session gave)."""
        by_box: dict[bytes, list[CommonOut]] = {}
        for send in sends:
            by_box.setdefault(send.mailbox_id, []).append(send)
        for chunks in by_box.values():
            conn = MailboxClient(self.url)
            try:
                await conn.follow(AccessKey(self.suite, chunks[0].access_key), Kind.CONTROL)
                for send in chunks:
                    await conn.put_entry(send.mailbox_id, send.blob)
                    self.tally.blobs_put += 1
                    self.tally.bytes_put += len(send.blob)
            finally:
                await conn.close()

    async def _read_groups(self) -> None:
        while True:
            try:
                event = await self.groups.next_event()
            except HubRefused as refused:
                # The hub refused a mailbox we follow (the client stopped following it):
                # count it and follow it again at the next step.
                self.tally.rejected += 1
                self._access.pop(refused.mailbox, None)
                continue
            await self._resumed.wait()
            if not isinstance(event, Delivery) or self.session is None:
                continue
            if self.session.status != "active":
                continue
            self._quiet = False
            try:
                # The frame's hub_time tells a live entry from backlog (HubClockSkew, 11.v2.32).
                events, out = self.session.receive(event.blob, self.clock(),
                                                   entry_time=event.t, hub_time=event.hub_time)
            except RemoteError:
                self.tally.rejected += 1  # e.g. a blob for a mailbox we no longer follow
                continue
            await self._after_step(events, out)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_INTERVAL)
            await self._resumed.wait()
            if self.session is None or self.session.status != "active":
                continue
            events: list[Event] = []
            out: list[Outgoing] = []
            if self._quiet:
                # Nothing arrived for a whole tick: every mailbox is read to its end (the
                # session acts in a control mailbox only then, and drops old group ones).
                for box in self.session.mailboxes():
                    more, sends = self.session.caught_up(box, self.clock())
                    events += more
                    out += sends
            self._quiet = True
            more, sends = self.session.tick(self.clock())
            if events or more or out or sends:
                await self._after_step(events + more, out + sends)

    async def encrypt(self, plaintext: bytes) -> None:
        if self.session is None:
            raise UsageError(f"{self.name} is not in a group")
        await self._after_step([], self.session.encrypt(plaintext, self.clock()))

    async def propose(self, *, add: list[JoinKey] | None = None,
                      remove: list[bytes] | None = None, refresh: bool = False) -> None:
        if self.session is None:
            raise UsageError(f"{self.name} is not in a group")
        out = self.session.propose(self.clock(), add=add or [], remove=remove or [],
                                   refresh=refresh)
        await self._after_step([], out)

    async def create_group(self, others: list[Device]) -> None:
        join_keys = [await self.fetch_join_key(o.public) for o in others]
        self.session, out = GroupSession.create(self.identity, join_keys, self.clock())
        await self._after_step([], out)

    async def fetch_join_key(self, identity: bytes) -> JoinKey:
        # A one-off connection: the hub sees a join key taken, not by which member.
        conn = MailboxClient(self.url)
        try:
            found = await conn.take_join_key(directory_id(self.suite, identity))
        finally:
            await conn.close()
        join_key = JoinKey.from_bytes(self.suite, _open_join_key(self.suite, identity,
                                                                 found.join_key))
        if join_key.identity != identity:
            raise UsageError("the directory handed out another member's join key")
        return join_key

    async def _after_step(self, events: list[Event], out: list[Outgoing]) -> None:
        """Record events, store the state durably, follow the session's mailboxes, then send."""
        assert self.session is not None
        for ev in events:
            if isinstance(ev, MessageReceived):
                self.received.append(ev)
            elif isinstance(ev, EpochChanged):
                self.epochs.append(ev)
            elif isinstance(ev, RemovedFromGroup):
                self.removed = True
            elif isinstance(ev, HubClockSkew):
                self.skews.append(ev)
        # The sans-IO rule: the state is stored before anything it produced is sent.
        self._state_path.write_bytes(self.session.to_bytes())
        await self._follow_mailboxes()
        boxes = set(self.session.mailboxes())
        # The notices' common part first: a joiner reads it once its notice came.
        await self._post_common([s for s in out if isinstance(s, CommonOut)])
        for send in out:
            if isinstance(send, CommonOut):
                continue
            if send.mailbox_id in boxes:
                accepted = await self.groups.put_entry(send.mailbox_id, send.blob)
                # The PUT_OK's acceptance time against our clock (11.v2.32).
                self.skews += self.session.put_accepted(send.mailbox_id, accepted.t,
                                                        self.clock())
            else:  # a notice chunk for a joiner's inbox
                try:
                    await send_to_inbox(self.url, send.mailbox_id, send.blob)
                except RemoteError:
                    self.tally.rejected += 1
                    continue
            self.tally.blobs_put += 1
            self.tally.bytes_put += len(send.blob)
        self.changed.set()

    async def _follow_mailboxes(self) -> None:
        assert self.session is not None
        if self.session.status != "active":
            await self.groups.sync({})
            return
        boxes = self.session.mailboxes()
        keys = {}
        for box in boxes:
            if box not in self._access:
                self._access[box] = AccessKey(self.suite, self.session.mailbox_access_key(box))
            keys[box] = self._access[box]
        for box in [b for b in self._access if b not in keys]:
            del self._access[box]
        await self.groups.sync(keys, control=[self.session.control_mailbox_id])


async def _until(devices: list[Device], done: Callable[[], bool], what: str,
                 timeout: float = PHASE_TIMEOUT) -> float:
    """Wait until `done()`; return the seconds it took. Raises TimeoutError naming `what`."""
    start = time.perf_counter()
    deadline = start + timeout
    while not done():
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise TimeoutError(f"demo: timed out waiting for {what}")
        for d in devices:
            d.changed.clear()
        waits = [asyncio.create_task(d.changed.wait()) for d in devices]
        await asyncio.wait(waits, timeout=min(remaining, 0.2),
                           return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
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


async def _exchange(senders: list[Device], readers: list[Device], count: int, tag: str,
                    report: Report, late: list[Device] | None = None) -> list[bytes]:
    """`count` messages round-robin from `senders`; wait until every reader has each one.
    `late` members are in the group but offline: they get the messages when they are back
    (the bodies are returned to check that)."""
    expected: dict[bytes, set[str]] = {}
    base = {d.name: len(d.received) for d in readers}
    start = time.perf_counter()
    bodies = []
    for k in range(count):
        sender = senders[k % len(senders)]
        body = f"{tag} #{k} from {sender.name}".encode()
        await sender.encrypt(body)
        bodies.append(body)
        expected[body] = {d.name for d in readers if d is not sender}
        _progress(f"{tag}: sent", k + 1, count)

    def delivered() -> int:
        return sum(len(d.received) - base[d.name] for d in readers)

    want = sum(len(v) for v in expected.values())
    shown = -1

    def all_in() -> bool:
        nonlocal shown
        now_delivered = min(delivered(), want)
        if now_delivered != shown:
            shown = now_delivered
            _progress(f"{tag}: delivered", now_delivered, want)
        return now_delivered >= want

    await _until(readers, all_in, f"{tag} deliveries")
    elapsed = time.perf_counter() - start
    got: dict[bytes, set[str]] = {body: set() for body in expected}
    for d in readers:
        for m in d.received[base[d.name]:]:
            if m.body not in got or d.name in got[m.body]:
                raise AssertionError(f"{d.name} got an unexpected or duplicate message")
            got[m.body].add(d.name)
    if got != expected:
        raise AssertionError(f"{tag}: some plaintexts did not reach every member")
    report.messages_sent += count
    report.deliveries += want
    report.exchange_seconds += elapsed
    h = hashlib.sha256(report.proof.encode())
    for body in sorted(expected):
        h.update(body + b"".join(n.encode() for n in sorted(expected[body])))
    report.proof = h.hexdigest()
    return bodies if late else []


async def _change(clock: _WarpClock, devices: list[Device], done: Callable[[], bool],
                  what: str) -> float:
    """Wait for an epoch change, moving the local hub's clock forward meanwhile (no-op for a
    remote hub, whose clock is its own)."""
    async def warp() -> None:
        while True:
            await asyncio.sleep(TICK_INTERVAL / 2)
            if clock.warping:
                clock.warp(WARP_PER_TICK / 2)

    task = asyncio.create_task(warp())
    try:
        return await _until(devices, done, what)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _run(members: int, messages: int, offline: int, url: str, suite: Suite,
               state_dir: Path, clock: _WarpClock) -> Report:
    report = Report(suite.name, members, offline)
    tally = Tally()
    devices = [Device(f"member-{i}", suite, url, tally, state_dir, clock)
               for i in range(members)]
    newcomer = Device(f"member-{members}", suite, url, tally, state_dir, clock)
    everyone = [*devices, newcomer]
    for d in everyone:
        await d.start()
    try:
        creator = devices[0]
        print(f"creating a group of {members} ({suite.name}): notices to every member...",
              file=sys.stderr)
        started = time.perf_counter()
        await creator.create_group(devices[1:])
        await _until(devices, lambda: all(d.epoch >= 1 for d in devices), "epoch 1")
        report.epochs.append((f"create: {members} members", time.perf_counter() - started))

        await _exchange(devices, devices, messages, "group chat", report)

        leaver = devices[1]
        away = devices[len(devices) - offline:] if offline else []
        for d in away:
            d.go_offline()
        online = [d for d in devices if d not in away]
        if away:
            print(f"{len(away)} member(s) offline from now on: "
                  f"{', '.join(d.name for d in away)}", file=sys.stderr)
        missed: list[bytes] = []

        print(f"adding {newcomer.name}...", file=sys.stderr)
        clock.warp(EPOCH_AGE_WARP)
        await creator.propose(add=[await creator.fetch_join_key(newcomer.public)])
        group = [*online, newcomer]
        t = await _change(clock, group, lambda: all(d.epoch >= 2 for d in group),
                          "epoch 2 (add)")
        report.epochs.append((f"add one: {members + 1} members", t))
        missed += await _exchange(group, group, max(1, messages // 5), "after add", report,
                                  late=away)

        print(f"removing {leaver.name}...", file=sys.stderr)
        clock.warp(EPOCH_AGE_WARP)
        await creator.propose(remove=[leaver.public])
        stay = [d for d in group if d is not leaver]
        t = await _change(clock, group,
                          lambda: leaver.removed and all(d.epoch >= 3 for d in stay),
                          "epoch 3 (remove)")
        report.epochs.append((f"remove one: {len(stay) + len(away)} members", t))
        before = len(leaver.received)
        missed += await _exchange(stay, stay, max(1, messages // 5), "after remove", report,
                                  late=away)

        print("refreshing the group's keys...", file=sys.stderr)
        clock.warp(REFRESH_AGE_WARP)
        await creator.propose(refresh=True)
        t = await _change(clock, stay, lambda: all(d.epoch >= 4 for d in stay),
                          "epoch 4 (refresh)")
        report.epochs.append((f"refresh: {len(stay) + len(away)} members", t))
        missed += await _exchange(stay, stay, max(1, messages // 5), "after refresh", report,
                                  late=away)

        if away:
            print(f"bringing {len(away)} offline member(s) back...", file=sys.stderr)
            for d in away:
                d.come_back()
            base = {d.name: {m.body for m in d.received} for d in away}

            def caught_up() -> bool:
                return all(d.epoch >= 4 and set(missed) <= {m.body for m in d.received}
                           for d in away)

            t = await _change(clock, [*stay, *away], caught_up, "offline members' catch-up")
            report.epochs.append((f"catch-up: {len(away)} back", t))
            for d in away:
                assert d.session is not None
                got = [m.body for m in d.received if m.body not in base[d.name]]
                if sorted(got) != sorted(missed):
                    raise AssertionError(f"{d.name} missed or duplicated messages on return")
                if d.session.public_epoch_id != creator.session.public_epoch_id:  # type: ignore[union-attr]
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
            await d.stop()
    return report


async def _with_local_hub(db: Path, clock: _WarpClock,
                          body: Callable[[str], object]) -> Report:
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
        result = body(url)
        assert asyncio.iscoroutine(result)
        report: Report = await result
        return report
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

        def body(url: str) -> object:
            return _run(members, messages, offline, url, suite, tmpdir, clock)

        try:
            if hub_url is None:
                report = asyncio.run(_with_local_hub(db, clock, body))
            else:
                report = asyncio.run(_run(members, messages, offline, hub_url, suite, tmpdir,
                                          clock))
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
