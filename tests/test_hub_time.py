"""Hub time, store incarnation, control mailboxes and the join-key directory through a running hub
(spec 10.2, 10.3, 10.5, 10.6): what a client sees on the wire and from `MailboxClient`.

Against the in-process hub with a hand-driven clock and a memory store that can "lose its data"
(a new incarnation, every mailbox gone), as a Redis without durable persistence does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
from test_hub_quota import Clock
from websockets.asyncio.server import serve

from triple_ratchet.errors import LimitExceeded, ProtocolError
from triple_ratchet.hub import frames as f
from triple_ratchet.hub.access import AccessKey
from triple_ratchet.hub.client import Delivery, Gap, HubConnection, MailboxClient
from triple_ratchet.hub.server import Hub, HubConfig, RateLimit
from triple_ratchet.hub.store import MemoryStore, Retention
from triple_ratchet.suites import DEFAULT_SUITE


def arun(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


class LosableStore(MemoryStore):
    """A memory store that can lose everything, as a restarted Redis without persistence."""

    def lose_everything(self, new_incarnation: bytes) -> None:
        self._mailboxes.clear()
        self._dedup.clear()
        self._dedup_order.clear()
        self.incarnation = new_incarnation


@asynccontextmanager
async def in_process(store: MemoryStore, clock: Clock,
                     config: HubConfig | None = None) -> AsyncIterator[str]:
    hub_ = Hub(store, config, clock=clock)
    async with serve(hub_.handle, "127.0.0.1", 0, compression=None,
                     max_size=f.MAX_CLIENT_FRAME) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def key() -> AccessKey:
    return AccessKey.generate(DEFAULT_SUITE)


async def deliveries(client: MailboxClient, n: int) -> list[Delivery | Gap]:
    return [await client.next_event(5) for _ in range(n)]


def test_every_entry_carries_its_acceptance_time_and_the_hub_time() -> None:
    clock = Clock()
    store = MemoryStore()

    async def main() -> None:
        async with in_process(store, clock) as url:
            group = key()
            async with MailboxClient(url) as reader, MailboxClient(url) as writer:
                await reader.follow(group)
                await writer.add_key(group)
                first = await writer.put_entry(group.mailbox_id, b"one")
                assert (first.cursor, first.t, first.duplicate) == (1, 10**9, False)
                clock.t -= 5  # this hub's clock goes back 5 s: the mailbox's time does not
                second = await writer.put_entry(group.mailbox_id, b"two")
                assert second.t == 10**9
                again = await writer.put_entry(group.mailbox_id, b"two", b"m" * 16)
                clock.t += 20
                dup = await writer.put_entry(group.mailbox_id, b"two", b"m" * 16)
                assert dup.duplicate and dup.t == again.t == 10**9
                live = await deliveries(reader, 3)
                assert [(d.cursor, d.t) for d in live if isinstance(d, Delivery)] == [
                    (1, 10**9), (2, 10**9), (3, 10**9)]
                # Fetched later, the same times, and the hub's clock of now.
                batch = await reader.fetch(group.mailbox_id, 0)
                assert [e.t for e in batch.entries] == [10**9] * 3
                assert batch.hub_time == 10**9 + 15_000
                assert batch.incarnation == store.incarnation

    arun(main())


def test_a_cursor_of_a_lost_history_gets_a_gap_never_silence() -> None:
    """Issue 9 item 4: the store loses its data and new entries reuse cursors 1, 2, 3...; a
    reader coming back with cursor 3 of the old history gets a gap report and every entry of the
    new one, and so does a reader that stayed subscribed."""
    clock = Clock()
    store = LosableStore()
    old = store.incarnation

    async def main() -> None:
        async with in_process(store, clock) as url:
            group = key()
            async with MailboxClient(url) as live, MailboxClient(url) as writer:
                await live.follow(group)
                await writer.follow(group)
                for i in range(3):
                    await writer.put(group.mailbox_id, b"old %d" % i)
                await deliveries(live, 3)
                assert (live.cursor(group.mailbox_id), live.incarnation(group.mailbox_id)) == (
                    3, old)
                store.lose_everything(b"N" * 16)
                await store.create(group.mailbox_id, f.Kind.GROUP, False, 0)
                for i in range(5):
                    await writer.put(group.mailbox_id, b"new %d" % i)
                # The subscribed reader: a gap, then the new history from its start.
                events = await deliveries(live, 6)
                assert events[0] == Gap(group.mailbox_id, 3, history_changed=True)
                assert [e.blob for e in events[1:] if isinstance(e, Delivery)] == [
                    b"new %d" % i for i in range(5)]
                assert live.incarnation(group.mailbox_id) == b"N" * 16
            # A reader returning with its saved cursor of the old history.
            async with MailboxClient(url) as back:
                with pytest.raises(Exception, match="incarnation"):
                    await back.follow(group, after=3)
                await back.follow(group, after=3, incarnation=old)
                events = await deliveries(back, 6)
                assert events[0] == Gap(group.mailbox_id, 3, history_changed=True)
                assert [e.cursor for e in events[1:] if isinstance(e, Delivery)] == [1, 2, 3, 4, 5]
            # On the wire: FETCH with the old history's cursor reads from the start, fell_behind;
            # an ACK of an old cursor is refused.
            conn = await HubConnection.connect(url)
            try:
                assert conn.challenge.incarnation == b"N" * 16
                await conn.authenticate(group)
                batch = await conn.fetch(group.mailbox_id, 3, incarnation=old)
                assert batch.fell_behind and [e.cursor for e in batch.entries] == [1, 2, 3, 4, 5]
                assert batch.incarnation == b"N" * 16
                same = await conn.fetch(group.mailbox_id, 3)
                assert not same.fell_behind and [e.cursor for e in same.entries] == [4, 5]
                inbox = key()
                await conn.authenticate(inbox)
                await conn.create(inbox.mailbox_id, f.Kind.INBOX)
                with pytest.raises(ProtocolError, match="another store history"):
                    await conn.ack(inbox.mailbox_id, 1, incarnation=old)
            finally:
                await conn.close()

    arun(main())


def test_control_mailboxes_through_the_hub() -> None:
    """A control mailbox needs a proof to read and write, is never acknowledged, and one
    MailboxClient follows control and group mailboxes together (never with an inbox)."""
    clock = Clock()
    store = MemoryStore(Retention(control_max_age_ms=60_000))

    async def main() -> None:
        async with in_process(store, clock) as url:
            group, control, inbox = key(), key(), key()
            async with MailboxClient(url) as member:
                await member.sync({group.mailbox_id: group, control.mailbox_id: control},
                                  control=[control.mailbox_id])
                info = await store.info(control.mailbox_id)
                assert info is not None and info.kind == f.Kind.CONTROL
                with pytest.raises(Exception, match="another for groups"):
                    await member.follow(inbox, f.Kind.INBOX)
                await member.put(control.mailbox_id, b"proposal")
                event = await member.next_event(5)
                assert isinstance(event, Delivery) and event.t == 10**9
            stranger = await HubConnection.connect(url)
            try:
                with pytest.raises(Exception, match="not authenticated"):
                    await stranger.put(control.mailbox_id, b"x", bytes(16))
                await stranger.authenticate(control)
                with pytest.raises(ProtocolError, match="inboxes"):
                    await stranger.ack(control.mailbox_id, 1)
                clock.t += 61
                batch = await stranger.fetch(control.mailbox_id, 0)
                assert batch.entries == () and batch.fell_behind  # kept by age only
            finally:
                await stranger.close()

    arun(main())


def test_join_keys_through_the_hub_and_publish_limits() -> None:
    clock = Clock()
    store = MemoryStore(Retention(max_directories_per_owner=1))
    config = HubConfig(publishes=RateLimit(rate=0.0, burst=4.0))

    async def main() -> None:
        async with in_process(store, clock, config) as url:
            owner = key()
            directory, other = b"d" * 32, b"e" * 32
            async with MailboxClient(url) as account, MailboxClient(url) as adder:
                await account.publish_join_keys(directory, owner, b"last resort",
                                                (b"one-time 1", b"one-time 2"))
                taken = [await adder.take_join_key(directory) for _ in range(4)]
                assert [(t.join_key, t.last_resort, t.remaining) for t in taken] == [
                    (b"one-time 1", False, 1), (b"one-time 2", False, 0),
                    (b"last resort", True, 0), (b"last resort", True, 0)]
                await account.publish_bundle(directory, owner, b"bundle", (b"otk",))
                with pytest.raises(LimitExceeded, match="too many directory entries"):
                    await account.publish_bundle(other, owner, b"bundle")
                await account.publish_join_keys(directory, owner, None, (b"one-time 3",))
                # Four publishes spent the connection's bucket (no refill here).
                with pytest.raises(LimitExceeded, match="publishes rate limited"):
                    await account.publish_join_keys(directory, owner, None, (b"x",))
                assert (await adder.take_join_key(directory)).join_key == b"one-time 3"
                with pytest.raises(ProtocolError, match="no such directory"):
                    await adder.take_join_key(other)

    arun(main())
