"""Every hub store against the same semantics: explicit cases, then a stateful property test of
SQLite and Redis against the in-memory model (same operations, same results, same errors)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from test_hub_support import RedisServer, run_redis

from triple_ratchet.errors import LimitExceeded, ProtocolError, UsageError
from triple_ratchet.hub.frames import Entry, Kind
from triple_ratchet.hub.redis_store import RedisStore
from triple_ratchet.hub.sqlite_store import SqliteStore
from triple_ratchet.hub.store import MemoryStore, Retention, Store

SMALL = Retention(group_max_count=4, group_max_age_ms=20_000, pinned_max_count=6,
                  inbox_max_count=5, dedup_ttl_ms=30_000, max_prekeys=5)
A, B, C = (bytes([i]) * 32 for i in (1, 2, 3))
_prefixes = itertools.count()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with run_redis() as server:
        yield server


StoreFactory = Callable[[Retention], Store]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    if request.param == "memory":
        return MemoryStore
    if request.param == "sqlite":
        return lambda r: SqliteStore(tmp_path / f"hub{next(_prefixes)}.db", r)
    server: RedisServer = request.getfixturevalue("redis_server")
    return lambda r: RedisStore(server.url, r, prefix=f"t{next(_prefixes)}:")


def with_store(body: Callable[[Store], Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """A sync test (no asyncio plugin here) running `body` on a fresh store of each kind."""

    def test(make_store: StoreFactory) -> None:
        async def main() -> None:
            s = make_store(SMALL)
            await s.start()
            try:
                await body(s)
            finally:
                await s.close()

        asyncio.run(main())

    test.__doc__ = body.__doc__
    return test


async def _group_retention_exact(store: Store) -> None:
    await store.create(A, Kind.GROUP, False, 0)
    for i in range(6):
        assert (await store.append(A, bytes([i]) * 16, b"m%d" % i, 1000 * i)).cursor == i + 1
    res = await store.read(A, 0, 10, 10_000, 5000)
    assert [e.cursor for e in res.entries] == [3, 4, 5, 6]  # newest four, exactly
    assert res.fell_behind and not res.more and res.next_cursor == 6
    res = await store.read(A, 2, 10, 10_000, 5000)
    assert not res.fell_behind and len(res.entries) == 4
    # Entries of t=2000 and 3000 are 20 s old at 23 000: gone; t=4000 stays.
    res = await store.read(A, 2, 10, 10_000, 23_000)
    assert [e.cursor for e in res.entries] == [5, 6] and res.fell_behind
    # Everything expired: the reader is told and moves to the head.
    res = await store.read(A, 4, 10, 10_000, 60_000)
    assert res.entries == () and res.fell_behind and res.next_cursor == 6
    info = await store.info(A)
    assert info is not None and (info.head, info.trimmed) == (6, 6)


async def _pinned_mailbox_kept_until_unpinned(store: Store) -> None:
    await store.create(A, Kind.GROUP, True, 0)
    await store.create(A, Kind.GROUP, False, 0)  # later creators cannot change the pin
    for i in range(6):
        await store.append(A, bytes([i]) * 16, b"x", i)
    with pytest.raises(LimitExceeded):
        await store.append(A, b"z" * 16, b"x", 7)
    res = await store.read(A, 0, 10, 10_000, 10**9)  # long after: still all there
    assert [e.cursor for e in res.entries] == [1, 2, 3, 4, 5, 6] and not res.fell_behind
    await store.unpin(A, 10)
    res = await store.read(A, 0, 10, 10_000, 11)
    assert [e.cursor for e in res.entries] == [3, 4, 5, 6] and res.fell_behind


async def _inbox_ack_deletes_and_capacity(store: Store) -> None:
    await store.create(B, Kind.INBOX, False, 0)
    for i in range(5):
        await store.append(B, bytes([i]) * 16, b"i%d" % i, 10**12)  # never trimmed by age
    with pytest.raises(LimitExceeded, match="full"):
        await store.append(B, b"q" * 16, b"x", 0)
    await store.ack(B, 3)
    res = await store.read(B, 3, 10, 10_000, 0)
    assert [e.blob for e in res.entries] == [b"i3", b"i4"] and not res.fell_behind
    assert (await store.read(B, 0, 10, 10_000, 0)).fell_behind
    assert (await store.append(B, b"q" * 16, b"x", 0)).cursor == 6
    with pytest.raises(ProtocolError, match="never issued"):
        await store.ack(B, 7)
    with pytest.raises(ProtocolError, match="never issued"):
        await store.read(B, 7, 1, 100, 0)
    await store.create(A, Kind.GROUP, False, 0)
    with pytest.raises(ProtocolError, match="inboxes"):
        await store.ack(A, 0)
    with pytest.raises(ProtocolError, match="another kind"):
        await store.create(B, Kind.GROUP, False, 0)
    with pytest.raises(ProtocolError, match="pinned"):
        await store.create(C, Kind.INBOX, True, 0)
    with pytest.raises(ProtocolError, match="no such"):
        await store.append(C, bytes(16), b"x", 0)


async def _dedup_outlives_trimming_then_expires(store: Store) -> None:
    await store.create(A, Kind.GROUP, False, 0)
    first = await store.append(A, b"d" * 16, b"one", 0)
    for i in range(5):
        await store.append(A, bytes([i]) * 16, b"x", 1)
    again = await store.append(A, b"d" * 16, b"one", 2)  # trimmed, still deduplicated
    assert again.cursor == first.cursor and again.duplicate
    later = await store.append(A, b"d" * 16, b"one", 30_001)
    assert not later.duplicate and later.cursor == 7


async def _reads_respect_limit_and_bytes(store: Store) -> None:
    await store.create(B, Kind.INBOX, False, 0)
    for i in range(4):
        await store.append(B, bytes([i]) * 16, b"%d" % i * 10, 0)
    res = await store.read(B, 0, 2, 10_000, 0)
    assert [e.cursor for e in res.entries] == [1, 2] and res.more
    res = await store.read(B, 0, 10, 15, 0)  # one 10-byte entry fits, two do not
    assert res.entries == (Entry(1, b"0" * 10),) and res.more and res.next_cursor == 1
    res = await store.read(B, 0, 10, 1, 0)  # at least one entry always
    assert len(res.entries) == 1


async def _prekeys_handed_out_once(store: Store) -> None:
    with pytest.raises(ProtocolError):
        await store.take_bundle(C)
    await store.publish(C, A, b"bundle1", (b"p1", b"p2"))
    with pytest.raises(ProtocolError, match="another access key"):
        await store.publish(C, B, b"evil", (b"p3",))
    await store.publish(C, A, b"bundle2", (b"p3",))
    with pytest.raises(LimitExceeded):
        await store.publish(C, A, b"bundle2", (b"q",) * 3)
    taken = [await store.take_bundle(C) for _ in range(4)]
    assert [t.prekey for t in taken] == [b"p1", b"p2", b"p3", None]
    assert [t.remaining for t in taken] == [2, 1, 0, 0]
    assert all(t.bundle == b"bundle2" for t in taken)


async def _listeners_hear_new_entries_only(store: Store) -> None:
    heard: list[bytes | None] = []
    store.add_listener(heard.append)
    await store.create(A, Kind.GROUP, False, 0)
    await store.append(A, b"1" * 16, b"x", 0)
    await store.append(A, b"1" * 16, b"x", 0)  # duplicate: no news
    await asyncio.sleep(0.05)  # Redis also reports through pub/sub
    assert heard.count(A) >= 1
    assert set(heard) <= {A, None}


test_group_retention_exact = with_store(_group_retention_exact)
test_pinned_mailbox_kept_until_unpinned = with_store(_pinned_mailbox_kept_until_unpinned)
test_inbox_ack_deletes_and_capacity = with_store(_inbox_ack_deletes_and_capacity)
test_dedup_outlives_trimming_then_expires = with_store(_dedup_outlives_trimming_then_expires)
test_reads_respect_limit_and_bytes = with_store(_reads_respect_limit_and_bytes)
test_prekeys_handed_out_once = with_store(_prekeys_handed_out_once)
test_listeners_hear_new_entries_only = with_store(_listeners_hear_new_entries_only)


# --- stateful: every store behaves like the model ------------------------------------------

MAILBOXES = st.sampled_from([A, B, C])
MSG_IDS = st.sampled_from([bytes([i]) * 16 for i in range(12)])


def _outcome(loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
    try:
        return ("ok", loop.run_until_complete(coro))
    except (ProtocolError, LimitExceeded) as exc:
        return (type(exc).__name__, str(exc))


def machine_for(make: Callable[[], Store]) -> type[RuleBasedStateMachine]:
    class StoreMatchesModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.model = MemoryStore(SMALL)
            self.real = make()
            self.loop.run_until_complete(self.real.start())
            self.now = 1_000_000

        def both(self, op: Callable[[Store], Any]) -> Any:
            expected = _outcome(self.loop, op(self.model))
            actual = _outcome(self.loop, op(self.real))
            assert actual == expected
            return expected

        @initialize(kinds=st.lists(st.sampled_from([(Kind.GROUP, False), (Kind.GROUP, True),
                                                    (Kind.INBOX, False), None]),
                                   min_size=3, max_size=3))
        def setup(self, kinds: list[tuple[Kind, bool] | None]) -> None:
            for mbx, kind in zip((A, B, C), kinds, strict=True):
                if kind is not None:
                    self.create(mbx, *kind)

        @rule(mbx=MAILBOXES, kind=st.sampled_from(Kind), pinned=st.booleans())
        def create(self, mbx: bytes, kind: Kind, pinned: bool) -> None:
            self.both(lambda s: s.create(mbx, kind, pinned, self.now))

        @rule(mbx=MAILBOXES)
        def unpin(self, mbx: bytes) -> None:
            self.both(lambda s: s.unpin(mbx, self.now))

        @rule(mbx=MAILBOXES, msg_id=MSG_IDS, blob=st.binary(min_size=1, max_size=8))
        def append(self, mbx: bytes, msg_id: bytes, blob: bytes) -> None:
            self.both(lambda s: s.append(mbx, msg_id, blob, self.now))

        @rule(mbx=MAILBOXES, first=st.integers(0, 11), count=st.integers(1, 7))
        def append_burst(self, mbx: bytes, first: int, count: int) -> None:
            for i in range(first, first + count):
                self.append(mbx, bytes([i % 12]) * 16, b"b%d" % i)

        @rule(mbx=MAILBOXES, after=st.integers(0, 30), limit=st.integers(1, 5),
              max_bytes=st.sampled_from([1, 9, 1000]))
        def read(self, mbx: bytes, after: int, limit: int, max_bytes: int) -> None:
            self.both(lambda s: s.read(mbx, after, limit, max_bytes, self.now))

        @rule(mbx=MAILBOXES, cursor=st.integers(0, 30))
        def ack(self, mbx: bytes, cursor: int) -> None:
            self.both(lambda s: s.ack(mbx, cursor))

        @rule(dt=st.sampled_from([0, 1, 999, 5_000, 19_999, 20_000, 30_000, 31_000]))
        def advance(self, dt: int) -> None:
            self.now += dt

        @rule(directory=st.sampled_from([A, B]), owner=st.sampled_from([A, C]),
              bundle=st.binary(min_size=1, max_size=4),
              prekeys=st.lists(st.binary(min_size=1, max_size=3), max_size=3))
        def publish(self, directory: bytes, owner: bytes, bundle: bytes,
                    prekeys: list[bytes]) -> None:
            self.both(lambda s: s.publish(directory, owner, bundle, tuple(prekeys)))

        @rule(directory=st.sampled_from([A, B]))
        def take(self, directory: bytes) -> None:
            self.both(lambda s: s.take_bundle(directory))

        @invariant()
        def same_info(self) -> None:
            for mbx in (A, B, C):
                run = self.loop.run_until_complete
                assert run(self.real.info(mbx)) == run(self.model.info(mbx))

        def teardown(self) -> None:
            self.loop.run_until_complete(self.real.close())
            self.loop.close()

    return StoreMatchesModel


def test_sqlite_store_matches_model(tmp_path: Path) -> None:
    counter = itertools.count()
    machine = machine_for(lambda: SqliteStore(tmp_path / f"s{next(counter)}.db", SMALL))
    run_machine(machine, 60)


@pytest.mark.redis
def test_redis_store_matches_model(redis_server: RedisServer) -> None:
    machine = machine_for(
        lambda: RedisStore(redis_server.url, SMALL, prefix=f"m{next(_prefixes)}:"))
    run_machine(machine, 40)


def run_machine(machine: type[RuleBasedStateMachine], examples: int) -> None:
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(
        machine, settings=settings(max_examples=examples, stateful_step_count=40, deadline=None))


def test_one_hub_process_per_sqlite_file(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "one.db")
    with pytest.raises(UsageError, match="another hub process"):
        SqliteStore(tmp_path / "one.db")
    asyncio.run(first.close())
    asyncio.run(SqliteStore(tmp_path / "one.db").close())  # free again once closed
