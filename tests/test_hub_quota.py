"""Per-connection quotas on authenticated work (spec 10.8, 10.12): creating new mailboxes,
keeping pinned ones alive, and writing with a proof. A connection over a quota gets LIMIT for
that request only: it stays usable, opens existing mailboxes, and other connections are
unaffected. Against the in-process hub with tightened quotas and a hand-driven clock, the real
hub subprocess with the default numbers, and each store's atomic `may_create` step."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from test_hub_support import HubProcess, RedisServer, hub, run_redis
from websockets.asyncio.server import serve

from triple_ratchet.errors import AuthenticationError, LimitExceeded, ProtocolError
from triple_ratchet.hub import frames as f
from triple_ratchet.hub.access import AccessKey
from triple_ratchet.hub.client import Delivery, HubConnection, MailboxClient
from triple_ratchet.hub.redis_store import RedisStore
from triple_ratchet.hub.server import (
    AUTH_WRITE_BURST,
    MAX_CREATES_PER_CONNECTION,
    MAX_PINNED_PER_CONNECTION,
    Hub,
    HubConfig,
    RateLimit,
)
from triple_ratchet.hub.sqlite_store import SqliteStore
from triple_ratchet.hub.store import MemoryStore, Store
from triple_ratchet.suites import DEFAULT_SUITE

_prefixes = itertools.count()


def arun(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


class Clock:
    """The hub's clock, moved by hand so refills are exact."""

    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@asynccontextmanager
async def in_process(config: HubConfig, clock: Clock) -> AsyncIterator[tuple[str, Store]]:
    store = MemoryStore()
    hub_ = Hub(store, config, clock=clock)
    async with serve(hub_.handle, "127.0.0.1", 0, compression=None,
                     max_size=f.MAX_CLIENT_FRAME) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}", store


async def opened(url: str, *keys: AccessKey) -> HubConnection:
    conn = await HubConnection.connect(url)
    for key in keys:
        await conn.authenticate(key)
    return conn


def keys(n: int) -> list[AccessKey]:
    return [AccessKey.generate(DEFAULT_SUITE) for _ in range(n)]


# --- Mailbox creation quota ------------------------------------------------------------------


def test_creation_quota_refuses_only_new_mailboxes_and_refills() -> None:
    config = HubConfig(creates=RateLimit(rate=0.1, burst=3.0))  # 3, then one per 10 s

    async def main() -> None:
        clock = Clock()
        async with in_process(config, clock) as (url, store):
            mine, extra, theirs = keys(3), keys(3), keys(1)[0]
            a = await opened(url, *mine, *extra, theirs)
            b = await opened(url, theirs, *extra)
            for key in mine:
                await a.create(key.mailbox_id, f.Kind.GROUP)
            with pytest.raises(LimitExceeded, match="creation quota"):
                await a.create(extra[0].mailbox_id, f.Kind.GROUP)
            assert await store.info(extra[0].mailbox_id) is None  # refused means not created
            # Opening existing mailboxes still works and costs nothing: a re-create of its own,
            # and one another connection created.
            await a.create(mine[0].mailbox_id, f.Kind.GROUP)
            await b.create(theirs.mailbox_id, f.Kind.GROUP)
            await a.create(theirs.mailbox_id, f.Kind.GROUP)
            # A kind conflict is still a kind conflict, not a quota refusal.
            with pytest.raises(ProtocolError):
                await a.create(mine[1].mailbox_id, f.Kind.INBOX)
            # The connection keeps working for everything else.
            put = await a.put(theirs.mailbox_id, b"still here", bytes(16))
            batch = await b.fetch(theirs.mailbox_id, 0)
            assert [e.cursor for e in batch.entries] == [put.cursor]
            await a.subscribe(mine[0].mailbox_id, 0)
            # Another connection has its own quota.
            await b.create(extra[0].mailbox_id, f.Kind.GROUP)
            # After the refill interval exactly one more new mailbox fits.
            clock.t += 10.0
            await a.create(extra[1].mailbox_id, f.Kind.GROUP)
            with pytest.raises(LimitExceeded):
                await a.create(extra[2].mailbox_id, f.Kind.GROUP)
            for conn in (a, b):
                await conn.close()

    arun(main())


def test_pinned_quota_counts_live_pinned_mailboxes_of_this_connection() -> None:
    config = HubConfig(max_pinned=2)

    async def main() -> None:
        async with in_process(config, Clock()) as (url, store):
            p = keys(5)
            group = keys(1)[0]
            a = await opened(url, *p, group)
            other = await opened(url, *p)
            await a.create(p[0].mailbox_id, f.Kind.GROUP, pinned=True)
            await a.create(p[1].mailbox_id, f.Kind.GROUP, pinned=True)
            with pytest.raises(LimitExceeded, match="pinned"):
                await a.create(p[2].mailbox_id, f.Kind.GROUP, pinned=True)
            assert await store.info(p[2].mailbox_id) is None
            # Unpinned creation, and opening a pinned mailbox someone else made, still work.
            await a.create(group.mailbox_id, f.Kind.GROUP)
            await other.create(p[3].mailbox_id, f.Kind.GROUP, pinned=True)
            await a.create(p[3].mailbox_id, f.Kind.GROUP, pinned=True)
            # Unpinning one of its own frees a place.
            await a.unpin(p[0].mailbox_id)
            await a.create(p[2].mailbox_id, f.Kind.GROUP, pinned=True)
            with pytest.raises(LimitExceeded, match="pinned"):
                await a.create(p[4].mailbox_id, f.Kind.GROUP, pinned=True)
            # So does another member unpinning it (the hub asks the store at the cap).
            await other.unpin(p[1].mailbox_id)
            await a.create(p[4].mailbox_id, f.Kind.GROUP, pinned=True)
            info = await store.info(p[4].mailbox_id)
            assert info is not None and info.pinned
            for conn in (a, other):
                await conn.close()

    arun(main())


def test_mailbox_client_reports_the_creation_limit_and_keeps_working() -> None:
    config = HubConfig(creates=RateLimit(rate=0.0, burst=1.0))

    async def main() -> None:
        async with in_process(config, Clock()) as (url, _):
            first, second, shared = keys(3)
            async with MailboxClient(url) as client, MailboxClient(url) as peer:
                await client.follow(first)
                with pytest.raises(LimitExceeded):
                    await client.follow(second)
                await peer.follow(shared)  # exists now; opening it is free
                await client.follow(shared)
                cursor = await client.put(first.mailbox_id, b"one")
                event = await client.next_event(5)
                assert event == Delivery(first.mailbox_id, cursor, b"one", 10**9, 10**9)
                await peer.put(shared.mailbox_id, b"two")
                event = await client.next_event(5)
                assert isinstance(event, Delivery) and event.blob == b"two"
                assert client.reconnects == 0  # the refusal did not cost the connection

    arun(main())


# --- Authenticated write quota ---------------------------------------------------------------


def test_authenticated_writes_are_metered_per_connection() -> None:
    config = HubConfig(authenticated_writes=RateLimit(rate=2.0, burst=5.0))

    async def main() -> None:
        clock = Clock()
        async with in_process(config, clock) as (url, _):
            group, inbox = keys(2)
            a = await opened(url, group)
            b = await opened(url, group)
            owner = await opened(url, inbox)
            await a.create(group.mailbox_id, f.Kind.GROUP)
            await owner.create(inbox.mailbox_id, f.Kind.INBOX)
            for i in range(5):
                await a.put(group.mailbox_id, b"g", i.to_bytes(16, "big"))
            with pytest.raises(LimitExceeded, match="write rate"):
                await a.put(group.mailbox_id, b"g", (99).to_bytes(16, "big"))
            # Others write the same mailbox; the limited connection still reads, and its
            # open writes to someone's inbox use the separate open-write bucket.
            await b.put(group.mailbox_id, b"from b", b"b" * 16)
            batch = await a.fetch(group.mailbox_id, 0)
            assert [e.blob for e in batch.entries] == [b"g"] * 5 + [b"from b"]
            await a.put(inbox.mailbox_id, b"hello", bytes(16))
            # An owner writing its own inbox is metered like any authenticated write.
            for i in range(5):
                await owner.put(inbox.mailbox_id, b"note", (100 + i).to_bytes(16, "big"))
            with pytest.raises(LimitExceeded):
                await owner.put(inbox.mailbox_id, b"note", (200).to_bytes(16, "big"))
            # Tokens come back at the configured rate: one second gives two writes.
            clock.t += 1.0
            await a.put(group.mailbox_id, b"later", b"L" * 16)
            await a.put(group.mailbox_id, b"later", b"M" * 16)
            with pytest.raises(LimitExceeded):
                await a.put(group.mailbox_id, b"later", b"N" * 16)
            # An unauthenticated write to a group mailbox is still refused as before.
            stranger = await opened(url)
            with pytest.raises(AuthenticationError):
                await stranger.put(group.mailbox_id, b"x", bytes(16))
            for conn in (a, b, owner, stranger):
                await conn.close()

    arun(main())


# --- The default numbers, on the real hub subprocess -----------------------------------------


@pytest.fixture
def sqlite_hub(tmp_path: Path) -> Iterator[HubProcess]:
    with hub(f"sqlite:{tmp_path / 'hub.db'}") as process:
        yield process


def test_default_quotas_on_the_real_hub(sqlite_hub: HubProcess) -> None:
    assert (MAX_CREATES_PER_CONNECTION, MAX_PINNED_PER_CONNECTION) == (64, 4)

    async def main() -> None:
        url = sqlite_hub.url
        boxes = keys(MAX_CREATES_PER_CONNECTION + 1)
        a = await opened(url, *boxes)
        for key in boxes[:-1]:
            await a.create(key.mailbox_id, f.Kind.GROUP)
        with pytest.raises(LimitExceeded):
            await a.create(boxes[-1].mailbox_id, f.Kind.GROUP)
        for key in boxes[:3]:  # existing ones still open
            await a.create(key.mailbox_id, f.Kind.GROUP)
        # A fresh connection (a member reconnecting) has a fresh quota.
        pins = keys(MAX_PINNED_PER_CONNECTION + 1)
        b = await opened(url, *pins, boxes[-1])
        await b.create(boxes[-1].mailbox_id, f.Kind.GROUP)
        for key in pins[:-1]:
            await b.create(key.mailbox_id, f.Kind.GROUP, pinned=True)
        with pytest.raises(LimitExceeded, match="pinned"):
            await b.create(pins[-1].mailbox_id, f.Kind.GROUP, pinned=True)
        # A burst of authenticated writes far beyond what a member sends passes.
        n = int(AUTH_WRITE_BURST) // 2
        cursors = [(await a.put(boxes[0].mailbox_id, b"busy", i.to_bytes(16, "big"))).cursor
                   for i in range(n)]
        assert cursors == list(range(1, n + 1))
        for conn in (a, b):
            await conn.close()

    arun(main())


# --- The stores' atomic may_create step ------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with run_redis() as server:
        yield server


def test_store_create_reports_creation_and_refuses_new_without_quota(
        store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if store_kind == "memory":
        store: Store = MemoryStore()
    elif store_kind == "sqlite":
        store = SqliteStore(tmp_path / "q.db")
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        store = RedisStore(server.url, prefix=f"quota{next(_prefixes)}:")
    a, b = bytes([1]) * 32, bytes([2]) * 32

    async def main() -> None:
        await store.start()
        try:
            assert await store.create(a, f.Kind.GROUP, True, 0) is True
            assert await store.create(a, f.Kind.GROUP, False, 0) is False
            assert await store.create(a, f.Kind.GROUP, False, 0, may_create=False) is False
            with pytest.raises(ProtocolError):
                await store.create(a, f.Kind.INBOX, False, 0, may_create=False)
            with pytest.raises(LimitExceeded):
                await store.create(b, f.Kind.INBOX, False, 0, may_create=False)
            assert await store.info(b) is None
            info = await store.info(a)
            assert info is not None and info.pinned  # the first creation's pin stays
        finally:
            await store.close()

    arun(main())
