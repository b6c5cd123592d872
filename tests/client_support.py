"""An in-process hub on SQLite with a clock the test moves, for the client tests (as demo.py's
local hub: the epoch change of version 2 runs on hub time, 60 s minimum epoch age)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from websockets.asyncio.server import Server, serve

from triple_ratchet.client import Client, Event, StorageKey
from triple_ratchet.hub.frames import MAX_CLIENT_FRAME
from triple_ratchet.hub.server import Hub, HubConfig, RateLimit, open_store
from triple_ratchet.hub.store import Store

TICK = 0.1


class WarpClock:
    """Real time plus an offset the test moves forward (hub and clients read it)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def warp(self, seconds: float) -> None:
        self.offset += seconds


class LocalHub:
    """`async with LocalHub(db, clock) as hub:` serves on hub.url; `stop()`/`start()` again on
    the same port and database (a hub restart)."""

    def __init__(self, db: Path, clock: WarpClock) -> None:
        self.db = db
        self.clock = clock
        self.port = 0
        self._server: Server | None = None
        self._store: Store | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._store = open_store(f"sqlite:{self.db}")
        await self._store.start()
        hub = Hub(self._store, HubConfig(idle_unauthenticated=10**9, idle_unsubscribed=10**9,
                                         proofs=RateLimit(1000.0, 1000.0),
                                         authenticated_writes=RateLimit(10_000.0, 10_000.0),
                                         creates=RateLimit(1000.0, 1000.0),
                                         publishes=RateLimit(1000.0, 1000.0)),
                  clock=self.clock)
        self._server = await serve(hub.handle, "127.0.0.1", self.port, compression=None,
                                   max_size=MAX_CLIENT_FRAME, max_queue=16,
                                   process_request=hub.process_request)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None
        if self._store is not None:
            await self._store.close()
            self._store = None

    async def __aenter__(self) -> LocalHub:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


KEYS: dict[str, StorageKey] = {}


async def device(tmp: Path, name: str, hub: LocalHub, **kw: object) -> Client:
    """A client with its own SQLite file and storage key (kept per name, so it reopens)."""
    key = KEYS.setdefault(str(tmp / name), StorageKey.generate())
    return await Client.open(tmp / f"{name}.db", hub=hub.url, key=key, name=name,
                             clock=hub.clock, tick_interval=TICK, retry_timeout=10.0,
                             **kw)  # type: ignore[arg-type]


class Inbox:
    """Collects a client's events in the background."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.events: list[Event] = []
        self._task = asyncio.create_task(self._run())
        self.changed = asyncio.Event()

    async def _run(self) -> None:
        async for event in self.client.events():
            self.events.append(event)
            self.changed.set()

    def of(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def until(done: Callable[[], bool], what: str, timeout: float = 30.0,
                warp: WarpClock | None = None) -> None:
    """Wait until `done()`, moving `warp` forward meanwhile (an epoch change needs hub time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(TICK / 2)
        if warp is not None:
            warp.warp(1.0)
