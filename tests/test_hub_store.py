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
                  inbox_max_count=5, dedup_ttl_ms=30_000, max_prekeys=5,
                  control_max_age_ms=25_000, control_max_count=7, max_join_keys=4,
                  max_directories_per_owner=2, directory_ttl_ms=35_000)
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


def with_store(body: Callable[[Store], Coroutine[Any, Any, None]],
               retention: Retention = SMALL) -> Callable[..., None]:
    """A sync test (no asyncio plugin here) running `body` on a fresh store of each kind."""

    def test(make_store: StoreFactory) -> None:
        async def main() -> None:
            s = make_store(retention)
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
    assert res.entries == (Entry(1, 0, b"0" * 10),) and res.more and res.next_cursor == 1
    res = await store.read(B, 0, 10, 1, 0)  # at least one entry always
    assert len(res.entries) == 1


async def _prekeys_handed_out_once(store: Store) -> None:
    with pytest.raises(ProtocolError):
        await store.take_bundle(C, 0)
    await store.publish(C, A, b"bundle1", (b"p1", b"p2"), 0)
    with pytest.raises(ProtocolError, match="another access key"):
        await store.publish(C, B, b"evil", (b"p3",), 0)
    await store.publish(C, A, b"bundle2", (b"p3",), 0)
    with pytest.raises(LimitExceeded):
        await store.publish(C, A, b"bundle2", (b"q",) * 3, 0)
    taken = [await store.take_bundle(C, 0) for _ in range(4)]
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


async def _times_never_decrease_and_duplicates_keep_theirs(store: Store) -> None:
    await store.create(A, Kind.GROUP, False, 0)
    first = await store.append(A, b"1" * 16, b"a", 10_000)
    slow = await store.append(A, b"2" * 16, b"b", 4_000)  # a hub whose clock is behind
    later = await store.append(A, b"3" * 16, b"c", 12_000)
    assert [first.t, slow.t, later.t] == [10_000, 10_000, 12_000]
    again = await store.append(A, b"2" * 16, b"b", 13_000)
    assert (again.cursor, again.t, again.duplicate) == (2, 10_000, True)
    res = await store.read(A, 0, 10, 10_000, 13_000)
    assert [(e.cursor, e.t) for e in res.entries] == [(1, 10_000), (2, 10_000), (3, 12_000)]
    # Times are per mailbox: another mailbox starts from its own clock reading.
    await store.create(B, Kind.INBOX, False, 0)
    assert (await store.append(B, b"1" * 16, b"x", 5)).t == 5
    # The last time survives trimming: an emptied mailbox still never goes back.
    for i in range(4, 9):
        await store.append(A, bytes([i]) * 16, b"x", 12_000)
    assert (await store.read(A, 0, 10, 10_000, 100_000)).entries == ()
    assert (await store.append(A, b"9" * 16, b"y", 11_000)).t == 12_000


async def _control_mailbox_kept_by_age_only(store: Store) -> None:
    await store.create(C, Kind.CONTROL, False, 0)
    with pytest.raises(ProtocolError, match="pinned"):
        await store.create(B, Kind.CONTROL, True, 0)
    for i in range(7):  # more than group_max_count (4): none trimmed by count
        await store.append(C, bytes([i]) * 16, b"c%d" % i, 1000 * i)
    with pytest.raises(LimitExceeded, match="control mailbox is full"):
        await store.append(C, b"z" * 16, b"x", 7000)
    res = await store.read(C, 0, 10, 10_000, 24_999)
    assert [e.cursor for e in res.entries] == list(range(1, 8)) and not res.fell_behind
    res = await store.read(C, 0, 10, 10_000, 26_000)  # control_max_age 25 s: t=0, 1000 gone
    assert [e.cursor for e in res.entries] == [3, 4, 5, 6, 7] and res.fell_behind
    assert (await store.append(C, b"z" * 16, b"x", 26_000)).cursor == 8  # room again
    with pytest.raises(ProtocolError, match="inboxes"):
        await store.ack(C, 1)


async def _group_mailbox_by_age_only(store: Store) -> None:
    await store.create(A, Kind.GROUP, False, 0)
    for i in range(12):
        await store.append(A, bytes([i]) * 16, b"g", i)
    res = await store.read(A, 0, 20, 10_000, 100)
    assert len(res.entries) == 12 and not res.fell_behind
    res = await store.read(A, 0, 20, 10_000, 20_005)  # t <= 5 are 20 s old
    assert [e.cursor for e in res.entries] == list(range(7, 13)) and res.fell_behind


async def _join_keys_handed_out_once_then_last_resort(store: Store) -> None:
    with pytest.raises(ProtocolError, match="no such directory"):
        await store.take_join_key(C, 0)
    await store.publish_join_keys(C, A, None, (b"j1", b"j2"), 0)
    with pytest.raises(ProtocolError, match="no such directory"):
        await store.take_bundle(C, 0)  # join keys alone publish no bundle
    with pytest.raises(ProtocolError, match="another access key"):
        await store.publish_join_keys(C, B, b"evil", (), 0)
    with pytest.raises(LimitExceeded, match="join keys"):
        await store.publish_join_keys(C, A, None, (b"q",) * 3, 0)
    await store.publish_join_keys(C, A, b"last", (b"j3",), 0)
    await store.publish(C, A, b"bundle", (b"p1",), 0)  # one owner for both lists
    taken = [await store.take_join_key(C, 0) for _ in range(5)]
    assert [(t.join_key, t.last_resort, t.remaining) for t in taken] == [
        (b"j1", False, 2), (b"j2", False, 1), (b"j3", False, 0), (b"last", True, 0),
        (b"last", True, 0)]
    await store.publish_join_keys(C, A, b"newer", (), 0)
    assert (await store.take_join_key(C, 0)).join_key == b"newer"
    assert (await store.take_bundle(C, 0)).prekey == b"p1"
    await store.publish(A, B, b"bundle", (), 0)
    with pytest.raises(ProtocolError, match="no join key"):
        await store.take_join_key(A, 0)


async def _directory_owner_cap_and_expiry(store: Store) -> None:
    await store.publish(A, C, b"one", (), 0)
    await store.publish_join_keys(B, C, b"two", (), 1000)
    with pytest.raises(LimitExceeded, match="too many directory entries"):
        await store.publish(C, C, b"three", (), 1000)  # cap: 2 per owner
    await store.publish(A, C, b"one again", (), 2000)  # an entry it holds: always fine
    # A publish keeps an entry alive for 35 s; B (last published at 1000) expires at 36 000.
    assert (await store.take_join_key(B, 35_999)).join_key == b"two"
    with pytest.raises(ProtocolError, match="no such directory"):
        await store.take_join_key(B, 36_000)
    await store.publish(C, C, b"three", (), 36_000)  # B's place is free again
    await store.publish(B, A, b"squatted id freed", (), 36_000)  # and so is its id
    assert (await store.take_bundle(B, 36_000)).bundle == b"squatted id freed"
    assert (await store.take_bundle(A, 36_999)).bundle == b"one again"


async def _incarnation_is_sixteen_bytes(store: Store) -> None:
    assert len(store.incarnation) == 16 and store.incarnation != bytes(16)


test_times_never_decrease_and_duplicates_keep_theirs = with_store(
    _times_never_decrease_and_duplicates_keep_theirs)
test_control_mailbox_kept_by_age_only = with_store(_control_mailbox_kept_by_age_only)
test_group_mailbox_by_age_only = with_store(
    _group_mailbox_by_age_only, Retention(group_max_count=None, group_max_age_ms=20_000))
test_join_keys_handed_out_once_then_last_resort = with_store(
    _join_keys_handed_out_once_then_last_resort)
test_directory_owner_cap_and_expiry = with_store(_directory_owner_cap_and_expiry)
test_incarnation_is_sixteen_bytes = with_store(_incarnation_is_sixteen_bytes)
test_group_retention_exact = with_store(_group_retention_exact)
test_pinned_mailbox_kept_until_unpinned = with_store(_pinned_mailbox_kept_until_unpinned)
test_inbox_ack_deletes_and_capacity = with_store(_inbox_ack_deletes_and_capacity)
test_dedup_outlives_trimming_then_expires = with_store(_dedup_outlives_trimming_then_expires)
test_reads_respect_limit_and_bytes = with_store(_reads_respect_limit_and_bytes)
test_prekeys_handed_out_once = with_store(_prekeys_handed_out_once)
test_listeners_hear_new_entries_only = with_store(_listeners_hear_new_entries_only)


# --- stateful: every store behaves like the model ------------------------------------------

MAILBOXES = st.sampled_from([A, B, C])
DIRECTORIES = st.sampled_from([A, B, C])
MSG_IDS = st.sampled_from([bytes([i]) * 16 for i in range(12)])


def _outcome(loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
    try:
        return ("ok", loop.run_until_complete(coro))
    except (ProtocolError, LimitExceeded) as exc:
        return (type(exc).__name__, str(exc))


def machine_for(make: Callable[[], Callable[[], Store]]) -> type[RuleBasedStateMachine]:
    """`make()` gives a fresh place for a store's data and returns how to open a store on it
    (again and again: reopening must keep the data and the incarnation)."""

    class StoreMatchesModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.model = MemoryStore(SMALL)
            self.open = make()
            self.real = self.open()
            self.loop.run_until_complete(self.real.start())
            self.incarnation = self.real.incarnation
            self.now = 1_000_000
            self.skewed = 1 << 64  # message ids no other rule uses

        @rule()
        def reopen(self) -> None:
            """A hub restarts on the same store: same data, same history."""
            self.loop.run_until_complete(self.real.close())
            self.real = self.open()
            self.loop.run_until_complete(self.real.start())
            assert self.real.incarnation == self.incarnation

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

        @rule(mbx=MAILBOXES, dt=st.sampled_from([1, 1_000, 40_000]))
        def skewed_append(self, mbx: bytes, dt: int) -> None:
            """Another hub whose clock is behind appends: entry times still never decrease.
            (Fresh message ids: dedup expiry is judged on one clock that never goes back.)"""
            self.skewed += 1
            msg_id = self.skewed.to_bytes(16, "big")
            self.both(lambda s: s.append(mbx, msg_id, b"s", self.now - dt))

        @rule(directory=DIRECTORIES, owner=st.sampled_from([A, C]),
              bundle=st.binary(min_size=1, max_size=4),
              prekeys=st.lists(st.binary(min_size=1, max_size=3), max_size=3))
        def publish(self, directory: bytes, owner: bytes, bundle: bytes,
                    prekeys: list[bytes]) -> None:
            self.both(lambda s: s.publish(directory, owner, bundle, tuple(prekeys), self.now))

        @rule(directory=DIRECTORIES)
        def take(self, directory: bytes) -> None:
            self.both(lambda s: s.take_bundle(directory, self.now))

        @rule(directory=DIRECTORIES, owner=st.sampled_from([A, C]),
              last_resort=st.none() | st.binary(min_size=1, max_size=3),
              join_keys=st.lists(st.binary(min_size=1, max_size=3), max_size=3))
        def publish_join_keys(self, directory: bytes, owner: bytes, last_resort: bytes | None,
                              join_keys: list[bytes]) -> None:
            self.both(lambda s: s.publish_join_keys(directory, owner, last_resort,
                                                    tuple(join_keys), self.now))

        @rule(directory=DIRECTORIES)
        def take_join_key(self, directory: bytes) -> None:
            self.both(lambda s: s.take_join_key(directory, self.now))

        @invariant()
        def times_never_decrease(self) -> None:
            run = self.loop.run_until_complete
            for mbx in (A, B, C):
                try:
                    res = run(self.real.read(mbx, 0, 50, 10**6, self.now))
                    model = run(self.model.read(mbx, 0, 50, 10**6, self.now))
                except ProtocolError:
                    continue
                assert res == model
                times = [e.t for e in res.entries]
                assert times == sorted(times)

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

    def place() -> Callable[[], Store]:
        path = tmp_path / f"s{next(counter)}.db"
        return lambda: SqliteStore(path, SMALL)

    run_machine(machine_for(place), 60)


@pytest.mark.redis
def test_redis_store_matches_model(redis_server: RedisServer) -> None:
    def place() -> Callable[[], Store]:
        prefix = f"m{next(_prefixes)}:"
        return lambda: RedisStore(redis_server.url, SMALL, prefix=prefix)

    run_machine(machine_for(place), 40)


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


def test_sqlite_incarnation_lives_with_the_file(tmp_path: Path) -> None:
    async def incarnation(path: Path) -> bytes:
        store = SqliteStore(path)
        await store.close()
        return store.incarnation

    first = asyncio.run(incarnation(tmp_path / "a.db"))
    assert asyncio.run(incarnation(tmp_path / "a.db")) == first  # reopened: same history
    assert asyncio.run(incarnation(tmp_path / "b.db")) != first  # a new file: a new one


def test_sqlite_refuses_a_file_of_another_layout(tmp_path: Path) -> None:
    import sqlite3

    db = sqlite3.connect(tmp_path / "old.db")
    db.execute("CREATE TABLE mailboxes (id BLOB PRIMARY KEY) WITHOUT ROWID")
    db.commit()
    db.close()
    with pytest.raises(UsageError, match="another hub layout"):
        SqliteStore(tmp_path / "old.db")


def test_sqlite_one_kib_prekeys_take_no_overflow_page_each(tmp_path: Path) -> None:
    """Issue 9 item 5: in the old `WITHOUT ROWID` table 1,000 prekeys of 1 KiB took 4.7 MB
    (an overflow page each); as rowid rows they take ~1.4 MB."""
    import os

    async def main() -> None:
        store = SqliteStore(tmp_path / "size.db")
        for i in range(5):
            await store.publish(A, B, b"bundle", tuple(os.urandom(1024) for _ in range(200)), i)
        await store.close()

    asyncio.run(main())
    assert os.path.getsize(tmp_path / "size.db") + _wal_size(tmp_path / "size.db") < 1_700_000


def _wal_size(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


@pytest.mark.redis
def test_redis_incarnation_shared_and_renewed(redis_server: RedisServer) -> None:
    """Two hubs on one Redis see one history; a Redis that lost its data, or restarted without
    durable persistence, begins a new one, and an operation in the old history fails (the
    client retries in the new one) instead of reusing cursors."""
    import redis

    prefix = f"inc{next(_prefixes)}:"

    async def main() -> None:
        a = RedisStore(redis_server.url, SMALL, prefix=prefix)
        b = RedisStore(redis_server.url, SMALL, prefix=prefix)
        await a.start()
        await b.start()
        try:
            assert a.incarnation == b.incarnation and len(a.incarnation) == 16
            first = a.incarnation
            await a.create(A, Kind.GROUP, False, 0)
            await a.append(A, b"1" * 16, b"x", 0)
            admin = redis.Redis(host="127.0.0.1", port=redis_server.port)
            for key in admin.scan_iter(f"{prefix}*"):  # the data is lost
                admin.delete(key)
            with pytest.raises(ConnectionError, match="new store history"):
                await b.create(A, Kind.GROUP, False, 0)
            assert b.incarnation != first
            with pytest.raises(ConnectionError):
                await a.read(A, 0, 10, 1000, 0)  # a learns it too, on its next call
            assert a.incarnation == b.incarnation
            await a.create(A, Kind.GROUP, False, 0)
            assert (await b.append(A, b"2" * 16, b"y", 0)).cursor == 1
            # A restart seen as a new run_id (here: a foreign one written in) without durable
            # persistence: the next hub to check begins a new history.
            second = a.incarnation
            admin.hset(f"{prefix}incarnation", "run_id", "another redis process")
            admin.close()
            c = RedisStore(redis_server.url, SMALL, prefix=prefix)
            await c.start()
            assert c.incarnation not in (first, second)
            await c.close()
            with pytest.raises(ConnectionError):
                await a.append(A, b"3" * 16, b"z", 0)
            assert (await a.append(A, b"3" * 16, b"z", 0)).cursor == 2
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


@pytest.mark.redis
def test_two_hubs_on_one_redis_give_monotone_times(redis_server: RedisServer) -> None:
    """Two hubs (stores) with clocks 5 s apart append to one mailbox at once: cursor order and
    time order agree, and both read the same times."""
    prefix = f"two{next(_prefixes)}:"

    async def main() -> None:
        fast = RedisStore(redis_server.url, Retention(), prefix=prefix)
        slow = RedisStore(redis_server.url, Retention(), prefix=prefix)
        await fast.start()
        await slow.start()
        try:
            await fast.create(A, Kind.GROUP, False, 0)
            base = 1_700_000_000_000

            async def write(store: Store, skew: int, tag: int) -> None:
                for i in range(40):
                    await store.append(A, bytes([tag, i]) * 8, b"%d" % i, base + skew + i)

            await asyncio.gather(write(fast, 5_000, 1), write(slow, 0, 2))
            seen_fast = await fast.read(A, 0, 100, 10**6, base)
            seen_slow = await slow.read(A, 0, 100, 10**6, base)
            assert seen_fast == seen_slow and len(seen_fast.entries) == 80
            times = [e.t for e in seen_fast.entries]
            assert times == sorted(times) and times[-1] == base + 5_039
        finally:
            await fast.close()
            await slow.close()

    asyncio.run(main())


def test_default_retention_is_by_age_only_for_thirty_days() -> None:
    """Issue 8 item 4 / spec 10.2: group and control mailboxes are kept RETENTION (30 days) by
    age, never trimmed by count by default (a member catching up after a month reads every
    message and every entry of each epoch it missed)."""
    thirty_days = 30 * 24 * 3600 * 1000
    r = Retention()
    assert r.group_max_count is None
    assert r.group_max_age_ms == thirty_days == r.control_max_age_ms
