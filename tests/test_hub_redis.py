"""Two hub processes sharing one real redis-server: one total order, pushes across hubs, and a
hub killed mid-stream while the other keeps writing."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest
from test_hub_support import RedisServer, free_port, hub, run_redis, start_hub

from triple_ratchet.hub.access import AccessKey
from triple_ratchet.hub.client import Delivery, MailboxClient
from triple_ratchet.suites import DEFAULT_SUITE

pytestmark = pytest.mark.redis


def arun(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with run_redis() as server:
        yield server


async def _drain(client: MailboxClient, n: int, timeout: float = 10) -> list[Delivery]:
    out: list[Delivery] = []
    while len(out) < n:
        event = await client.next_event(timeout)
        assert isinstance(event, Delivery), event
        out.append(event)
    return out


def test_put_through_one_hub_reaches_subscriber_on_the_other(redis_server: RedisServer) -> None:
    with hub(redis_server.url) as hub_a, hub(redis_server.url) as hub_b:
        async def main() -> None:
            group = AccessKey.generate(DEFAULT_SUITE)
            async with MailboxClient(hub_a.url) as on_a, MailboxClient(hub_b.url) as on_b:
                await on_a.follow(group)
                await on_b.follow(group)

                async def write(client: MailboxClient, tag: bytes) -> None:
                    for i in range(50):
                        await client.put(group.mailbox_id, tag + b"%d" % i)

                await asyncio.gather(write(on_a, b"a"), write(on_b, b"b"))
                seen_a = await _drain(on_a, 100)
                seen_b = await _drain(on_b, 100)
                # Both readers see one order, whichever hub they use, and each writer's own
                # messages in the order it sent them.
                assert [(d.cursor, d.blob) for d in seen_a] == [(d.cursor, d.blob)
                                                                 for d in seen_b]
                assert [d.cursor for d in seen_a] == list(range(1, 101))
                for tag in (b"a", b"b"):
                    mine = [d.blob for d in seen_a if d.blob.startswith(tag)]
                    assert mine == [tag + b"%d" % i for i in range(50)]

        arun(main())


def test_one_hub_killed_while_the_other_keeps_writing(redis_server: RedisServer) -> None:
    port = free_port()
    hub_a = start_hub(redis_server.url, port)
    n = 200

    async def main() -> None:
        nonlocal hub_a
        group = AccessKey.generate(DEFAULT_SUITE)
        with hub(redis_server.url) as hub_b:
            async with MailboxClient(f"ws://127.0.0.1:{port}") as reader, \
                    MailboxClient(hub_b.url) as writer:
                await reader.follow(group)
                await writer.add_key(group)

                async def produce() -> None:
                    for i in range(n):
                        await writer.put(group.mailbox_id, b"r%d" % i)
                        await asyncio.sleep(0.001)

                producer = asyncio.create_task(produce())
                got = await _drain(reader, 40)
                hub_a.kill()
                await asyncio.sleep(0.2)
                hub_a = await asyncio.to_thread(start_hub, redis_server.url, port)
                got += await _drain(reader, n - 40, timeout=20)
                await producer
                assert [d.blob for d in got] == [b"r%d" % i for i in range(n)]
                assert reader.reconnects >= 1

    try:
        arun(main())
    finally:
        hub_a.stop()


def test_missing_redis_server_fails_under_ci_and_skips_otherwise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import test_hub_support

    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required under CI"):
        test_hub_support.redis_server_binary()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        test_hub_support.redis_server_binary()


def test_lost_pubsub_link_loses_no_push(redis_server: RedisServer) -> None:
    """Redis pub/sub is at-most-once: after its link drops, a hub wakes every subscription to
    re-read the stream, so a message published meanwhile still arrives."""
    import redis

    with hub(redis_server.url) as hub_a, hub(redis_server.url) as hub_b:
        async def main() -> None:
            group = AccessKey.generate(DEFAULT_SUITE)
            async with MailboxClient(hub_a.url) as reader, MailboxClient(hub_b.url) as writer:
                await reader.follow(group)
                await writer.add_key(group)
                await writer.put(group.mailbox_id, b"first")
                assert [d.blob for d in await _drain(reader, 1)] == [b"first"]
                admin = redis.Redis(host="127.0.0.1", port=redis_server.port)
                killed = admin.client_kill_filter(_type="pubsub")
                admin.close()
                assert killed >= 2  # both hubs' listeners
                await writer.put(group.mailbox_id, b"during")  # no hub is listening now
                assert [d.blob for d in await _drain(reader, 1, timeout=5)] == [b"during"]

        arun(main())
