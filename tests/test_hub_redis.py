"""Two hub processes sharing one real redis-server: one total order, pushes across hubs, and a
hub killed mid-stream while the other keeps writing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_hub_support import RedisServer, free_port, hub, run_redis, start_hub

from triple_ratchet.hub.access import AccessKey
from triple_ratchet.hub.client import Delivery, Gap, MailboxClient
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
                assert [(d.cursor, d.blob, d.t) for d in seen_a] == [(d.cursor, d.blob, d.t)
                                                                       for d in seen_b]
                # One acceptance time per entry for every reader, never decreasing.
                assert [d.t for d in seen_a] == sorted(d.t for d in seen_a)
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


def _redis_with_snapshots(port: int, directory: Path, *extra: str) -> subprocess.Popen[bytes]:
    from test_hub_support import redis_server_binary

    proc = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir",
         str(directory), "--dbfilename", "dump.rdb", "--save", "", "--protected-mode", "yes",
         *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    deadline = time.monotonic() + 10
    while True:
        try:
            client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
            client.ping()
            client.close()
            return proc
        except redis.exceptions.BusyLoadingError:
            time.sleep(0.05)
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)


def test_redis_back_from_a_snapshot_gives_a_gap_not_reused_cursors(tmp_path: Path) -> None:
    """Issue 9 item 4, end to end: Redis restarts from an RDB snapshot older than entries a
    reader already read; new entries then reuse those cursors. The reader, back with its saved
    cursor, gets a gap report and the whole new history, not a silent skip."""
    import redis

    port = free_port()
    proc = _redis_with_snapshots(port, tmp_path)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        with hub(url) as the_hub:
            async def main() -> None:
                nonlocal proc
                group = AccessKey.generate(DEFAULT_SUITE)
                async with MailboxClient(the_hub.url) as writer:
                    await writer.follow(group)
                    async with MailboxClient(the_hub.url) as reader:
                        await reader.follow(group)
                        for i in range(3):
                            await writer.put(group.mailbox_id, b"kept %d" % i)
                        await _drain(reader, 3)
                        admin = redis.Redis(host="127.0.0.1", port=port)
                        admin.save()  # the snapshot holds entries 1..3
                        for i in range(2):
                            await writer.put(group.mailbox_id, b"lost %d" % i)
                        await _drain(reader, 2)
                        saved = (reader.cursor(group.mailbox_id),
                                 reader.incarnation(group.mailbox_id))
                        assert saved[0] == 5
                    with contextlib.suppress(redis.exceptions.ConnectionError):
                        admin.shutdown(nosave=True)
                    admin.close()
                    proc.wait(10)
                    proc = await asyncio.to_thread(_redis_with_snapshots, port, tmp_path)
                    for i in range(3):  # cursors 4, 5, 6 again
                        await writer.put(group.mailbox_id, b"new %d" % i)
                async with MailboxClient(the_hub.url) as back:
                    await back.follow(group, after=saved[0], incarnation=saved[1])
                    events: list[Any] = [await back.next_event(10) for _ in range(7)]
                assert events[0] == Gap(group.mailbox_id, 5, history_changed=True)
                assert [e.blob for e in events[1:]] == [
                    b"kept 0", b"kept 1", b"kept 2", b"new 0", b"new 1", b"new 2"]

            arun(main())
    finally:
        proc.terminate()
        proc.wait(10)


def test_redis_with_durable_persistence_keeps_its_history(tmp_path: Path) -> None:
    """With `appendonly yes` and `appendfsync always` no acknowledged write can be lost, so a
    restart keeps the incarnation (and every reader's cursor stays valid)."""
    import redis

    from triple_ratchet.hub.frames import Kind
    from triple_ratchet.hub.redis_store import RedisStore

    port = free_port()
    durable = ("--appendonly", "yes", "--appendfsync", "always")
    proc = _redis_with_snapshots(port, tmp_path, *durable)
    url = f"redis://127.0.0.1:{port}/0"

    async def history() -> tuple[bytes, int]:
        store = RedisStore(url)
        await store.start()
        try:
            await store.create(b"m" * 32, Kind.GROUP, False, 0)
            head = (await store.append(b"m" * 32, os.urandom(16), b"x", 0)).cursor
            return store.incarnation, head
        finally:
            await store.close()

    try:
        before = asyncio.run(history())
        admin = redis.Redis(host="127.0.0.1", port=port)
        with contextlib.suppress(redis.exceptions.ConnectionError):
            admin.shutdown()
        admin.close()
        proc.wait(10)
        proc = _redis_with_snapshots(port, tmp_path, *durable)
        after = asyncio.run(history())
        assert after == (before[0], before[1] + 1)
    finally:
        proc.terminate()
        proc.wait(10)
