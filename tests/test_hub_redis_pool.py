"""The Redis store's connection pool (issue 9, hub item 2): blocking and bounded, sized from
the store URL or a hub option, so store calls beyond the pool wait for a link instead of
failing with "Too many connections"; and a pool that stays exhausted past its timeout is a
visible store failure (INTERNAL to the client, logged and counted), never a silent resync."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from typing import Any

import pytest
from test_hub_support import RedisServer, run_redis

from triple_ratchet.errors import UsageError
from triple_ratchet.hub import frames as f
from triple_ratchet.hub.redis_store import POOL_SIZE, POOL_TIMEOUT, RedisStore, pool_options
from triple_ratchet.hub.server import open_store

pytestmark = pytest.mark.redis
_prefixes = itertools.count()


@pytest.fixture(scope="module")
def redis_server() -> Any:
    with run_redis() as server:
        yield server


def arun(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


def test_pool_size_comes_from_defaults_then_the_url_then_the_option() -> None:
    assert pool_options("redis://h:1/0")["max_connections"] == POOL_SIZE
    assert pool_options("redis://h:1/0")["timeout"] == POOL_TIMEOUT
    url = "redis://h:1/0?max_connections=7&timeout=2.5"
    assert (pool_options(url)["max_connections"], pool_options(url)["timeout"]) == (7, 2.5)
    assert pool_options(url, 9, 1.0)["max_connections"] == 9
    assert pool_options(url, 9, 1.0)["timeout"] == 1.0
    store = open_store("redis://127.0.0.1:1/0?max_connections=5", pool_size=11)
    assert isinstance(store, RedisStore) and store.pool.max_connections == 11
    with pytest.raises(UsageError):
        pool_options("redis://h:1/0", 1)
    with pytest.raises(UsageError):
        pool_options("http://h:1/0")


def test_more_concurrent_store_calls_than_the_pool_wait_instead_of_failing(
        redis_server: RedisServer) -> None:
    """300 concurrent appends and reads through a pool of 4 links: every one succeeds, and
    the store never opened more than 4 links. (The client library's default pool, sized the
    same way by the URL, fails most of them with "Too many connections".)"""

    async def main() -> None:
        store = RedisStore(redis_server.url + "?max_connections=4",
                           prefix=f"pool{next(_prefixes)}:")
        await store.start()
        mailbox = bytes(32)
        await store.create(mailbox, f.Kind.GROUP, False, 1)

        async def one(i: int) -> int:
            result = await store.append(mailbox, i.to_bytes(16, "big"), b"x" * 100, 1 + i)
            await store.read(mailbox, 0, 10, 1 << 20, 1 + i)
            return result.cursor

        cursors = await asyncio.gather(*(one(i) for i in range(300)))
        assert sorted(cursors) == list(range(1, 301))
        pool = store.pool
        assert len(pool._available_connections) + len(pool._in_use_connections) <= 4
        await store.close()

    arun(main())


def test_an_exhausted_pool_is_a_visible_failure_after_its_timeout(
        redis_server: RedisServer) -> None:
    async def main() -> None:
        store = RedisStore(redis_server.url, prefix=f"pool{next(_prefixes)}:", pool_size=2,
                           pool_timeout=0.2)
        await store.start()  # the pub/sub listener holds one of the two links
        held = await store.pool.get_connection()  # and something slow the other
        try:
            with pytest.raises(Exception, match="No connection available"):
                await store.info(bytes(32))
        finally:
            await store.pool.release(held)
        assert await store.info(bytes(32)) is None  # and it recovers
        await store.close()

    arun(main())
