"""The hub clients never lose a refusal (issue 9, hub item 3): what `MailboxClient` does in the
background for a followed mailbox (a resync's fetch, re-opening after a reconnect) and the hub
refuses reaches the application as `HubRefused` from `next_event`, while the other mailboxes
carry on; and a connection lost with requests in flight leaves no unretrieved exception."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from triple_ratchet.errors import HubRefused, ProtocolError, RemoteError
from triple_ratchet.hub import frames as f
from triple_ratchet.hub.access import AccessKey
from triple_ratchet.hub.client import Delivery, HubConnection, MailboxClient
from triple_ratchet.hub.server import Hub, HubConfig
from triple_ratchet.hub.store import MailboxInfo, MemoryStore, ReadResult
from triple_ratchet.suites import DEFAULT_SUITE


def arun(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


class _LosingStore(MemoryStore):
    """A store that "lost" the history of the mailboxes in `lost` (as a Redis restarted
    without persistence would): reads after a cursor it issued are refused, and its head
    reads as 0."""

    def __init__(self) -> None:
        super().__init__()
        self.lost: set[bytes] = set()

    async def read(self, mailbox: bytes, after: int, limit: int, max_bytes: int,
                   now_ms: int) -> ReadResult:
        if mailbox in self.lost and after > 0:
            raise ProtocolError("cursor was never issued")
        return await super().read(mailbox, after, limit, max_bytes, now_ms)

    async def info(self, mailbox: bytes) -> MailboxInfo | None:
        info = await super().info(mailbox)
        if info is not None and mailbox in self.lost:
            return MailboxInfo(info.kind, info.pinned, 0, 0)
        return info


@asynccontextmanager
async def in_process(store: MemoryStore,
                     config: HubConfig | None = None) -> AsyncIterator[tuple[str, Hub]]:
    hub_ = Hub(store, config)
    async with serve(hub_.handle, "127.0.0.1", 0, compression=None,
                     max_size=f.MAX_CLIENT_FRAME) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", hub_


async def delivered(client: MailboxClient, mailbox: bytes, blob: bytes) -> None:
    event = await client.next_event(5)
    assert isinstance(event, Delivery) and (event.mailbox, event.blob) == (mailbox, blob), event


def test_a_refused_resync_reaches_the_app_and_the_other_mailboxes_carry_on() -> None:
    async def main() -> None:
        store = _LosingStore()
        async with in_process(store) as (url, _):
            a, b = AccessKey.generate(DEFAULT_SUITE), AccessKey.generate(DEFAULT_SUITE)
            async with MailboxClient(url) as reader, MailboxClient(url) as writer:
                for key in (a, b):
                    await reader.follow(key)
                    await writer.add_key(key)
                await writer.put(a.mailbox_id, b"a1")
                await delivered(reader, a.mailbox_id, b"a1")
                store.lost.add(a.mailbox_id)
                await writer.put(a.mailbox_id, b"a2")  # the push read is refused: RESYNC
                with pytest.raises(HubRefused, match="never issued") as caught:
                    await reader.next_event(5)
                refused = caught.value
                assert refused.mailbox == a.mailbox_id and refused.cursor == 1
                assert isinstance(refused.refusal, ProtocolError)
                assert refused.__cause__ is refused.refusal
                assert isinstance(refused, RemoteError)
                with pytest.raises(KeyError):
                    reader.cursor(a.mailbox_id)  # no longer followed
                await writer.put(b.mailbox_id, b"b1")
                await delivered(reader, b.mailbox_id, b"b1")
                # The app may follow it again once it has dealt with the cause.
                store.lost.clear()
                await reader.follow(a, after=refused.cursor, incarnation=refused.incarnation)
                await delivered(reader, a.mailbox_id, b"a2")

    arun(main())


def test_a_refused_reopen_after_a_reconnect_drops_only_that_mailbox() -> None:
    async def main() -> None:
        store = _LosingStore()
        async with in_process(store) as (url, hub_):
            a, b = AccessKey.generate(DEFAULT_SUITE), AccessKey.generate(DEFAULT_SUITE)
            async with MailboxClient(url) as reader, MailboxClient(url) as writer:
                for key in (a, b):
                    await reader.follow(key)
                    await writer.add_key(key)
                await writer.put(a.mailbox_id, b"a1")
                await delivered(reader, a.mailbox_id, b"a1")
                store.lost.add(a.mailbox_id)
                for conn in list(hub_.connections):  # the hub restarts, in effect
                    await conn.ws.close(1001)
                with pytest.raises(HubRefused, match="never issued") as caught:
                    await reader.next_event(10)
                assert caught.value.mailbox == a.mailbox_id
                await writer.put(b.mailbox_id, b"b1")
                await delivered(reader, b.mailbox_id, b"b1")
                assert reader.reconnects >= 1

    arun(main())


def test_a_client_over_the_connection_limit_waits_for_a_free_slot() -> None:
    """A LIMIT about the connection (the hub's connection limits) means "busy": the resilient
    client retries instead of failing for good."""

    async def main() -> None:
        async with in_process(MemoryStore(),
                              HubConfig(max_connections_per_address=1)) as (url, _):
            first = await HubConnection.connect(url)
            with pytest.raises(ConnectionError, match="busy"):
                await HubConnection.connect(url)
            key = AccessKey.generate(DEFAULT_SUITE)
            client = MailboxClient(url)
            follow = asyncio.create_task(client.follow(key))
            await asyncio.sleep(0.5)
            assert not follow.done()
            await first.close()
            await asyncio.wait_for(follow, 10)
            await client.put(key.mailbox_id, b"in")
            await delivered(client, key.mailbox_id, b"in")
            await client.close()

    arun(main())


async def _dies_after(frames: int, ws: ServerConnection) -> None:
    """A hub that takes HELLO, reads a few frames and then drops the connection."""
    await ws.recv()
    await ws.send(f.encode(f.Challenge(f.PROTOCOL_VERSION, bytes(32), f.MAX_BLOB_SIZE,
                                  bytes(f.INCARNATION_LEN))))
    for _ in range(frames):
        await ws.recv()
    assert ws.transport is not None
    ws.transport.abort()


def test_a_connection_lost_with_requests_in_flight_leaves_no_unretrieved_exception() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        seen: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: seen.append(context))
        mailbox = AccessKey.generate(DEFAULT_SUITE).mailbox_id
        for frames in (0, 3, 20):
            async with serve(lambda ws, n=frames: _dies_after(n, ws), "127.0.0.1", 0,
                             compression=None, max_size=None) as server:
                url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
                conn = await HubConnection.connect(url)
                blob = bytes(200_000)  # big enough that sends wait for the socket to drain
                results = await asyncio.gather(
                    *(conn.put(mailbox, blob, i.to_bytes(16, "big")) for i in range(60)),
                    return_exceptions=True)
                assert all(isinstance(r, ConnectionError) for r in results), results
                await conn.close()
        del results
        gc.collect()
        await asyncio.sleep(0.1)
        assert not seen, [c.get("message") for c in seen]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        arun(main())
