"""The hub as a real subprocess on 127.0.0.1 with real WebSocket clients: delivery, bad input,
a hub killed mid-stream, slow subscribers, rate limits, the prekey directory, clean shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_hub_support import HubProcess, free_port, hub, start_hub
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from triple_ratchet.errors import (
    AuthenticationError,
    InvalidSignature,
    LimitExceeded,
    ProtocolError,
    UsageError,
)
from triple_ratchet.hub import frames as f
from triple_ratchet.hub.access import AccessKey, AccessProof, directory_id
from triple_ratchet.hub.client import (
    Delivery,
    Gap,
    HubConnection,
    MailboxClient,
    send_to_inbox,
)
from triple_ratchet.hub.server import serve_hub
from triple_ratchet.hub.store import MemoryStore, ReadResult, Retention, Store
from triple_ratchet.suites import DEFAULT_SUITE, X25519_SHA512_XCHACHA20


def arun(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


@pytest.fixture
def sqlite_hub(tmp_path: Path) -> Iterator[HubProcess]:
    with hub(f"sqlite:{tmp_path / 'hub.db'}") as process:
        yield process


async def _drain(client: MailboxClient, n: int, timeout: float = 10) -> list[Delivery]:
    out: list[Delivery] = []
    while len(out) < n:
        event = await client.next_event(timeout)
        assert isinstance(event, Delivery), event
        out.append(event)
    return out


def test_group_and_inbox_round_trip(sqlite_hub: HubProcess) -> None:
    async def main() -> None:
        group = AccessKey.generate(DEFAULT_SUITE)
        inbox = AccessKey.generate(X25519_SHA512_XCHACHA20)
        async with MailboxClient(sqlite_hub.url) as alice, \
                MailboxClient(sqlite_hub.url) as bob, \
                MailboxClient(sqlite_hub.url) as bob_inbox:
            await alice.follow(group)
            await bob.follow(group)
            await bob_inbox.follow(inbox, f.Kind.INBOX)
            with pytest.raises(UsageError, match="another for groups"):
                await bob_inbox.follow(group)  # never on the inbox's connection
            cursors = [await alice.put(group.mailbox_id, b"g%d" % i) for i in range(20)]
            assert cursors == sorted(cursors) and len(set(cursors)) == 20
            for reader in (alice, bob):
                got = await _drain(reader, 20)
                assert [d.blob for d in got] == [b"g%d" % i for i in range(20)]
                assert [d.cursor for d in got] == cursors
            # Anyone may write an inbox without a key; only its owner reads and acks.
            stranger = await HubConnection.connect(sqlite_hub.url)
            ok = await stranger.put(inbox.mailbox_id, b"hello", b"i" * 16)
            again = await stranger.put(inbox.mailbox_id, b"hello", b"i" * 16)
            assert again.duplicate and again.cursor == ok.cursor
            [hello] = await _drain(bob_inbox, 1)
            assert hello.blob == b"hello"
            await bob_inbox.ack(inbox.mailbox_id, hello.cursor)
            batch = await bob_inbox.fetch(inbox.mailbox_id, 0)
            assert batch.entries == ()
            with pytest.raises(AuthenticationError):
                await stranger.fetch(inbox.mailbox_id, 0)
            with pytest.raises(AuthenticationError):
                await stranger.put(group.mailbox_id, b"x", b"j" * 16)
            await stranger.close()

    arun(main())


async def _raw(url: str) -> tuple[ClientConnection, bytes]:
    ws = await connect(url, compression=None, max_size=f.MAX_HUB_FRAME)
    await ws.send(f.encode(f.Hello()))
    challenge = f.decode_hub_frame(await ws.recv())  # type: ignore[arg-type]
    assert isinstance(challenge, f.Challenge)
    return ws, challenge.nonce


async def _answer(ws: ClientConnection) -> f.HubFrame:
    return f.decode_hub_frame(await asyncio.wait_for(ws.recv(), 5))  # type: ignore[arg-type]


async def _closed_with(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code is not None
    return ws.close_code


def test_bad_input_is_refused_and_disturbs_nothing_else(sqlite_hub: HubProcess) -> None:
    async def main() -> None:
        url = sqlite_hub.url
        group = AccessKey.generate(DEFAULT_SUITE)
        bystander = MailboxClient(url)
        await bystander.start()
        await bystander.follow(group)
        first = await bystander.put(group.mailbox_id, b"before")

        # Oversized, malformed, text, and out-of-order frames each close their own connection.
        ws, _ = await _raw(url)
        await ws.send(b"\x05" + bytes(f.MAX_CLIENT_FRAME + 10))
        assert await _closed_with(ws) == 1009
        ws, _ = await _raw(url)
        await ws.send(b"\x05\x00\x01")
        assert await _closed_with(ws) == 1002
        ws, _ = await _raw(url)
        await ws.send("put please")
        assert await _closed_with(ws) == 1003
        ws = await connect(url, compression=None)
        await ws.send(f.encode(f.Fetch(1, group.mailbox_id, bytes(16), 0, 1)))  # no hello
        err = await _answer(ws)
        assert isinstance(err, f.Error) and err.code == f.ErrorCode.MALFORMED
        await _closed_with(ws)
        ws = await connect(url, compression=None)
        await ws.send(f.encode(f.Hello(99)))
        err = await _answer(ws)
        assert isinstance(err, f.Error) and err.code == f.ErrorCode.UNSUPPORTED
        await _closed_with(ws)

        # Refusals that keep the connection: unauthenticated use, bad proofs, forged cursors.
        conn = await HubConnection.connect(url)
        with pytest.raises(AuthenticationError):
            await conn.fetch(group.mailbox_id, 0)
        with pytest.raises(AuthenticationError):
            await conn.subscribe(group.mailbox_id, 0)
        with pytest.raises(AuthenticationError):
            await conn.ack(group.mailbox_id, 0)
        with pytest.raises(AuthenticationError):
            await conn.put(group.mailbox_id, b"spoof", b"s" * 16)
        other = await HubConnection.connect(url)  # a proof made for another connection
        stolen = group.prove(other.challenge.nonce)
        await other.close()
        with pytest.raises(InvalidSignature):
            await conn._ok(lambda req: f.Auth(req, stolen))
        imposter = AccessKey.generate(DEFAULT_SUITE)  # signs, but does not hash to the id
        fake = imposter.prove(conn.challenge.nonce)
        with pytest.raises(InvalidSignature):
            await conn._ok(lambda req: f.Auth(req, AccessProof(
                group.mailbox_id, fake.suite_id, fake.public_key, fake.signature)))
        await conn.authenticate(group)
        head = (await conn.fetch(group.mailbox_id, 0)).next_cursor
        assert head == first
        for forged in (head + 1, 2**64 - 1):
            with pytest.raises(ProtocolError, match="never issued"):
                await conn.fetch(group.mailbox_id, forged)
            with pytest.raises(ProtocolError, match="never issued"):
                await conn.subscribe(group.mailbox_id, forged)
        with pytest.raises(ProtocolError):
            await conn.ack(group.mailbox_id, head)  # group mailboxes are not acknowledged
        # The third bad proof closes this connection, and only this one.
        with pytest.raises(InvalidSignature):
            await conn._ok(lambda req: f.Auth(req, stolen))
        await asyncio.wait_for(conn.wait_closed(), 5)
        assert isinstance(conn.error, InvalidSignature)

        await bystander.put(group.mailbox_id, b"after")
        got = await _drain(bystander, 2)
        assert [d.blob for d in got] == [b"before", b"after"]
        await bystander.close()

    arun(main())


def test_hub_killed_mid_stream_clients_resume_without_loss_or_duplicates(
        tmp_path: Path) -> None:
    port = free_port()
    store = f"sqlite:{tmp_path / 'hub.db'}"
    process = start_hub(store, port)
    n = 300

    async def main() -> None:
        nonlocal process
        url = f"ws://127.0.0.1:{port}"
        group = AccessKey.generate(DEFAULT_SUITE)
        async with MailboxClient(url) as writer, MailboxClient(url) as reader:
            await writer.follow(group)
            await reader.follow(group)

            async def produce() -> None:
                for i in range(n):
                    await writer.put(group.mailbox_id, b"m%04d" % i)

            producer = asyncio.create_task(produce())
            got = await _drain(reader, 80)
            process.kill()  # SIGKILL: no goodbye, puts in flight
            await asyncio.sleep(0.3)
            process = await asyncio.to_thread(start_hub, store, port)
            got += await _drain(reader, n - 80, timeout=20)
            await producer
            assert [d.blob for d in got] == [b"m%04d" % i for i in range(n)]
            assert len({d.cursor for d in got}) == n
            assert reader.reconnects >= 1 and writer.reconnects >= 1
            with pytest.raises(TimeoutError):
                await reader.next_event(0.3)  # and nothing more

    try:
        arun(main())
    finally:
        process.stop()


def test_slow_subscriber_gets_resync_not_silent_loss(sqlite_hub: HubProcess) -> None:
    async def main() -> None:
        group = AccessKey.generate(DEFAULT_SUITE)
        blob = os.urandom(60_000)
        n = 300  # 18 MB: more than the hub's live queue plus every socket buffer
        writer = await HubConnection.connect(sqlite_hub.url)
        await writer.authenticate(group)
        await writer.create(group.mailbox_id, f.Kind.GROUP)
        ws, nonce = await _raw(sqlite_hub.url)
        await ws.send(f.encode(f.Auth(1, group.prove(nonce))))
        assert isinstance(await _answer(ws), f.Ok)
        await ws.send(f.encode(f.Subscribe(2, group.mailbox_id, bytes(16), 0)))
        assert isinstance(await _answer(ws), f.Ok)
        for i in range(n):  # the subscriber reads nothing meanwhile
            await writer.put(group.mailbox_id, i.to_bytes(4, "big") + blob, os.urandom(16))
        cursors: list[int] = []
        resync = None
        while resync is None:
            frame = await _answer(ws)
            if isinstance(frame, f.Resync):
                resync = frame
            else:
                assert isinstance(frame, f.Push) and not frame.fell_behind
                cursors += [e.cursor for e in frame.entries]
        assert resync.cursor == (cursors[-1] if cursors else 0)
        assert len(cursors) < n
        # Fetching from the resync cursor returns exactly the rest.
        after, req = resync.cursor, 10
        while True:
            await ws.send(f.encode(f.Fetch(req, group.mailbox_id, writer.challenge.incarnation,
                                           after, 256)))
            batch = await _answer(ws)
            assert isinstance(batch, f.Batch)
            cursors += [e.cursor for e in batch.entries]
            after, req = batch.next_cursor, req + 1
            if not batch.more:
                break
        assert cursors == list(range(1, n + 1))
        await ws.close()
        await writer.close()

    arun(main())


def test_client_that_reads_slowly_still_gets_everything_once(sqlite_hub: HubProcess) -> None:
    async def main() -> None:
        group = AccessKey.generate(DEFAULT_SUITE)
        async with MailboxClient(sqlite_hub.url) as writer, \
                MailboxClient(sqlite_hub.url, max_events=8) as reader:
            await reader.follow(group)
            await writer.add_key(group)
            for i in range(200):
                await writer.put(group.mailbox_id, b"s%d" % i)
            got = await _drain(reader, 200)
            assert [d.blob for d in got] == [b"s%d" % i for i in range(200)]
            assert reader.resyncs >= 1  # it did fall out of live pushes, and lost nothing

    arun(main())


def test_open_inbox_writes_are_rate_limited(sqlite_hub: HubProcess) -> None:
    async def main() -> None:
        inbox = AccessKey.generate(DEFAULT_SUITE)
        owner = await HubConnection.connect(sqlite_hub.url)
        await owner.authenticate(inbox)
        await owner.create(inbox.mailbox_id, f.Kind.INBOX)
        spammer = await HubConnection.connect(sqlite_hub.url)
        accepted = refused = 0
        for i in range(150):
            try:
                await spammer.put(inbox.mailbox_id, b"spam", i.to_bytes(16, "big"))
                accepted += 1
            except LimitExceeded:
                refused += 1
        assert 90 <= accepted <= 110 and refused > 0  # a burst of 100 per connection
        # The owner writes under the generous authenticated-write bucket (100/s, burst 1000),
        # and the spammer's connection still works.
        for i in range(150):
            await owner.put(inbox.mailbox_id, b"own", (1000 + i).to_bytes(16, "big"))
        with pytest.raises(ProtocolError):
            await spammer.take_bundle(bytes(32))  # a different refusal, same connection
        for conn in (owner, spammer):
            await conn.close()

    arun(main())


def test_prekey_directory_over_the_wire(sqlite_hub: HubProcess) -> None:
    async def main() -> None:
        identity = DEFAULT_SUITE.generate_signing().public_key().to_bytes()
        directory = directory_id(DEFAULT_SUITE, identity)
        owner = AccessKey.generate(DEFAULT_SUITE)
        async with MailboxClient(sqlite_hub.url) as publisher:
            await publisher.publish_bundle(directory, owner, b"signed bundle", (b"otk1", b"otk2"))
            fetcher = await HubConnection.connect(sqlite_hub.url)
            taken = [await fetcher.take_bundle(directory) for _ in range(3)]
            assert [t.prekey for t in taken] == [b"otk1", b"otk2", None]
            assert {t.bundle for t in taken} == {b"signed bundle"}
            squatter = AccessKey.generate(DEFAULT_SUITE)
            await fetcher.authenticate(squatter)
            with pytest.raises(ProtocolError, match="another access key"):
                await fetcher.publish(directory, squatter.mailbox_id, b"evil")
            with pytest.raises(AuthenticationError):
                await fetcher.publish(directory, owner.mailbox_id, b"evil")
            await fetcher.close()

    arun(main())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_shuts_down_cleanly(tmp_path: Path, sig: int) -> None:
    process = start_hub(f"sqlite:{tmp_path / 'hub.db'}")

    async def main() -> None:
        conn = await HubConnection.connect(process.url)
        process.proc.send_signal(sig)
        await asyncio.wait_for(conn.wait_closed(), 10)

    arun(main())
    assert process.stop(sig) == 0
    assert process.proc.stderr is not None
    err = process.proc.stderr.read()
    assert "Traceback" not in err and "hub stopped" in err


# --- in-process hub with small limits (same server code, real sockets) -----------------------


async def _in_process(store: Store) -> tuple[str, asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve_hub("127.0.0.1", 0, store, stop=stop,
                                         ready=bound.set_result))
    return f"ws://127.0.0.1:{await bound}", stop, task


def test_trimmed_entries_are_reported_as_a_gap_and_sync_follows_a_session() -> None:
    async def main() -> None:
        url, stop, task = await _in_process(MemoryStore(Retention(group_max_count=5)))
        old, new = AccessKey.generate(DEFAULT_SUITE), AccessKey.generate(DEFAULT_SUITE)
        async with MailboxClient(url) as writer, MailboxClient(url) as reader:
            await writer.follow(old)
            for i in range(10):
                await writer.put(old.mailbox_id, b"t%d" % i)
            await reader.sync({old.mailbox_id: old})
            gap = await reader.next_event(5)
            assert gap == Gap(old.mailbox_id, 0)
            got = await _drain(reader, 5)
            assert [d.blob for d in got] == [b"t%d" % i for i in range(5, 10)]
            # The session moved to a new epoch: follow the new mailbox, drop the old one.
            await reader.sync({new.mailbox_id: new}, pinned=[new.mailbox_id])
            await writer.add_key(new)
            await writer.put(old.mailbox_id, b"old")
            await writer.put(new.mailbox_id, b"new")
            [d] = await _drain(reader, 1)
            assert (d.mailbox, d.blob) == (new.mailbox_id, b"new")
            assert await reader.fetch(new.mailbox_id, 0)  # still opened on this connection
            with pytest.raises(UsageError):
                await reader.sync({new.mailbox_id: old})
        stop.set()
        await task

    arun(main())


class _FailingReads(MemoryStore):
    """A store whose reads fail (as a lost Redis link would) until `healthy` is set."""

    healthy = False

    async def read(self, mailbox: bytes, after: int, limit: int, max_bytes: int,
                   now_ms: int) -> ReadResult:
        if not self.healthy:
            raise RuntimeError("backend down")
        return await super().read(mailbox, after, limit, max_bytes, now_ms)


def test_store_failure_is_an_internal_error_and_the_connection_survives() -> None:
    async def main() -> None:
        store = _FailingReads()
        url, stop, task = await _in_process(store)
        group = AccessKey.generate(DEFAULT_SUITE)
        conn = await HubConnection.connect(url)
        await conn.authenticate(group)
        await conn.create(group.mailbox_id, f.Kind.GROUP)
        await conn.put(group.mailbox_id, b"x", bytes(16))
        with pytest.raises(ConnectionError, match="hub failed"):
            await conn.fetch(group.mailbox_id, 0)
        store.healthy = True
        batch = await conn.fetch(group.mailbox_id, 0)
        assert [e.blob for e in batch.entries] == [b"x"]
        await conn.close()
        stop.set()
        await task

    arun(main())


def test_many_members_each_with_an_inbox_and_a_group_connection(sqlite_hub: HubProcess) -> None:
    """The shape a demo drives: every member has two clients, one per connection kind."""

    async def main() -> None:
        n = 12
        group = AccessKey.generate(DEFAULT_SUITE)
        inboxes = [AccessKey.generate(X25519_SHA512_XCHACHA20) for _ in range(n)]
        groups = [MailboxClient(sqlite_hub.url) for _ in range(n)]
        boxes = [MailboxClient(sqlite_hub.url) for _ in range(n)]
        for g, b, inbox in zip(groups, boxes, inboxes, strict=True):
            await g.start()
            await b.start()
            await g.sync({group.mailbox_id: group})
            await b.follow(inbox, f.Kind.INBOX)

        async def member(i: int) -> None:
            await groups[i].put(group.mailbox_id, b"hello from %d" % i)
            # Writes to someone else's inbox go on a connection of their own (spec 10.1).
            await send_to_inbox(sqlite_hub.url, inboxes[(i + 1) % n].mailbox_id,
                                b"dm to %d" % ((i + 1) % n))

        await asyncio.gather(*(member(i) for i in range(n)))
        orders = []
        for i in range(n):
            got = await _drain(groups[i], n)
            orders.append([d.cursor for d in got])
            assert {d.blob for d in got} == {b"hello from %d" % j for j in range(n)}
            [dm] = await _drain(boxes[i], 1)
            assert dm.blob == b"dm to %d" % i
        assert all(order == orders[0] for order in orders)  # one order for every reader
        for client in groups + boxes:
            await client.close()

    arun(main())


def test_store_urls() -> None:
    from triple_ratchet.hub.redis_store import RedisStore
    from triple_ratchet.hub.server import open_store

    assert isinstance(open_store("memory:"), MemoryStore)
    assert isinstance(open_store("redis://127.0.0.1:1/0"), RedisStore)  # connects at start()
    for bad in ("sqlite:", "ftp://example", "", "memory"):
        with pytest.raises(UsageError):
            open_store(bad)


def test_client_waits_for_a_hub_that_starts_later(tmp_path: Path) -> None:
    port = free_port()
    processes: list[HubProcess] = []

    async def main() -> None:
        group = AccessKey.generate(DEFAULT_SUITE)
        client = MailboxClient(f"ws://127.0.0.1:{port}", retry_timeout=15)
        following = asyncio.create_task(client.follow(group))  # no start(): calls start it
        await asyncio.sleep(0.3)
        assert not following.done()
        processes.append(await asyncio.to_thread(start_hub, f"sqlite:{tmp_path / 'h.db'}", port))
        await following
        await client.put(group.mailbox_id, b"late")
        [d] = await _drain(client, 1)
        assert d.blob == b"late"
        await client.close()

    try:
        arun(main())
    finally:
        for process in processes:
            process.stop()
