"""The client across restarts: reopen from the database (an offline member catches up), a crash
between the commit and the send (the outbox re-sends, the hub keeps the blob once, the peer
reads it once), and a hub that restarts under connected clients."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from pathlib import Path
from typing import Any

from client_support import Inbox, LocalHub, WarpClock, device, until

from triple_ratchet.client import (
    Client,
    ConnectionChanged,
    ConnectionState,
    GroupJoined,
    GroupMessage,
)
from triple_ratchet.hub.access import AccessKey
from triple_ratchet.hub.client import START, HubConnection

EPOCH_AGE = 61.0


def run(coro: Any, timeout: float = 90) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


def texts(inbox: Inbox) -> list[tuple[str, str | None]]:
    return [(e.sender.name, e.text) for e in inbox.of(GroupMessage)]  # type: ignore[attr-defined]


async def _group_of_three(tmp_path: Path, hub: LocalHub
                          ) -> tuple[list[Client], dict[str, Inbox], bytes]:
    clients = [await device(tmp_path, n, hub) for n in ("alice", "bob", "carol")]
    inboxes = {c.name: Inbox(c) for c in clients}
    group = await clients[0].create_group("g", [clients[1].identity, clients[2].identity])
    await until(lambda: all(inboxes[n].of(GroupJoined) for n in ("bob", "carol")), "joins")
    return clients, inboxes, group.id


async def _close(clients: list[Client], inboxes: dict[str, Inbox]) -> None:
    for i in inboxes.values():
        await i.stop()
    for c in clients:
        await c.close()


def test_restart_from_the_database_and_an_offline_member_catches_up(tmp_path: Path) -> None:
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            (alice, bob, carol), inboxes, gid = await _group_of_three(tmp_path, hub)
            try:
                await alice.group(gid).send("one")
                await until(lambda: ("alice", "one") in texts(inboxes["carol"]), "one")
                # carol goes away; alice and bob go on through an epoch change (add dave).
                await inboxes["carol"].stop()
                await carol.close()
                dave = await device(tmp_path, "dave", hub)
                inboxes["dave"] = Inbox(dave)
                await alice.group(gid).send("two")
                clock.warp(EPOCH_AGE)
                await alice.group(gid).add(dave.identity)
                await until(lambda: bob.group(gid).epoch >= 2 and alice.group(gid).epoch >= 2
                            and bool(inboxes["dave"].of(GroupJoined)), "epoch 2", warp=clock)
                await bob.group(gid).send("three")
                # bob restarts from his file: nothing is delivered twice, he goes on.
                await inboxes["bob"].stop()
                seen_by_bob = texts(inboxes["bob"])
                await bob.close()
                bob = await device(tmp_path, "bob", hub)
                inboxes["bob"] = Inbox(bob)
                await alice.group(gid).send("four")
                await until(lambda: ("alice", "four") in texts(inboxes["bob"]), "four to bob")
                assert bob.group(gid).epoch == 2
                # carol comes back and catches up, each message once, into the same epoch.
                carol = await device(tmp_path, "carol", hub)
                inboxes["carol"] = Inbox(carol)
                want = [("alice", "two"), ("bob", "three"), ("alice", "four")]
                await until(lambda: all(m in texts(inboxes["carol"]) for m in want),
                            "carol catches up", warp=clock)
                await asyncio.sleep(0.5)
                got = texts(inboxes["carol"])
                assert sorted(got) == sorted(want)
                assert carol.group(gid).epoch_id == alice.group(gid).epoch_id
                assert texts(inboxes["bob"]) == [("alice", "four")]
                assert ("alice", "one") in seen_by_bob
                await carol.group(gid).send("back")
                await until(lambda: all(("carol", "back") in texts(inboxes[n])
                                        for n in ("alice", "bob", "dave")), "carol's message")
                await _close([alice, bob, carol, dave], inboxes)
            except BaseException:
                with contextlib.suppress(Exception):
                    await _close([alice, bob, carol], inboxes)
                raise

    run(main(), 120)


async def _hub_copies(hub: LocalHub, client: Client, gid: bytes, mailbox: bytes,
                      blob: bytes) -> int:
    """How many entries of `mailbox` at the hub are `blob` (read as a member would)."""
    session = client._group_state(gid).session
    key = AccessKey(session.suite, session.mailbox_access_key(mailbox))
    conn = await HubConnection.connect(hub.url)
    try:
        await conn.authenticate(key)
        copies, after = 0, START
        while True:
            batch = await conn.fetch(mailbox, after)
            copies += sum(1 for e in batch.entries if e.blob == blob)
            if not batch.more:
                return copies
            after = batch.next_cursor
    finally:
        await conn.close()


def test_crash_between_commit_and_send_resends_exactly_once(tmp_path: Path) -> None:
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            (alice, bob, carol), inboxes, gid = await _group_of_three(tmp_path, hub)
            try:
                # 1. Crash after the commit, before the send: nothing reached the hub.
                async def crash() -> None:
                    pass

                alice._flush = crash  # type: ignore[method-assign]
                await alice.group(gid).send("not sent yet")
                (pending,) = alice._outbox.values()
                assert await _hub_copies(hub, alice, gid, pending.mailbox, pending.blob) == 0
                await inboxes["alice"].stop()
                await alice.close()
                alice = await device(tmp_path, "alice", hub)  # the outbox is sent on open
                inboxes["alice"] = Inbox(alice)
                await until(lambda: ("alice", "not sent yet") in texts(inboxes["bob"]),
                            "the re-sent message")
                assert await _hub_copies(hub, alice, gid, pending.mailbox, pending.blob) == 1
                assert not alice._outbox

                # 2. Crash after the send, before the outbox entry was deleted: sent again
                # with the same message id, the hub keeps it once, bob reads it once.
                async def send_only() -> None:
                    for out in list(alice._outbox.values()):
                        await alice._put(out)

                alice._flush = send_only  # type: ignore[method-assign]
                await alice.group(gid).send("sent twice")
                (sent,) = alice._outbox.values()
                await until(lambda: ("alice", "sent twice") in texts(inboxes["carol"]),
                            "the first send")
                await inboxes["alice"].stop()
                await alice.close()
                alice = await device(tmp_path, "alice", hub)
                inboxes["alice"] = Inbox(alice)
                await until(lambda: not alice._outbox, "the outbox drained")
                await alice.group(gid).send("after")
                await until(lambda: ("alice", "after") in texts(inboxes["bob"]), "after")
                assert await _hub_copies(hub, alice, gid, sent.mailbox, sent.blob) == 1
                for n in ("bob", "carol"):
                    got = texts(inboxes[n])
                    assert got.count(("alice", "sent twice")) == 1
                    assert got.count(("alice", "not sent yet")) == 1
            finally:
                await _close([alice, bob, carol], inboxes)

    run(main())


def test_hub_restart_reconnects_and_nothing_is_lost(tmp_path: Path) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        unretrieved: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: unretrieved.append(context))
        clock = WarpClock()
        hub = LocalHub(tmp_path / "hub.db", clock)
        await hub.start()
        (alice, bob, carol), inboxes, gid = await _group_of_three(tmp_path, hub)
        try:
            await until(lambda: alice.connection is ConnectionState.CONNECTED, "connected")
            # The hub goes away with requests in flight (a send waiting for its PUT_OK).
            send = asyncio.create_task(alice.group(gid).send("while the hub restarts"))
            await hub.stop()
            await until(lambda: alice.connection is ConnectionState.CONNECTING,
                        "alice sees the hub gone")
            await asyncio.sleep(0.3)
            await hub.start()  # same port, same database
            await send
            await until(lambda: all(("alice", "while the hub restarts") in texts(inboxes[n])
                                    for n in ("bob", "carol")), "delivery after the restart")
            await bob.group(gid).send("and back")
            await until(lambda: ("bob", "and back") in texts(inboxes["alice"]), "bob's reply")
            await until(lambda: alice.connection is ConnectionState.CONNECTED, "reconnected")
            await asyncio.sleep(0.2)
            states = [e.state for e in inboxes["alice"].of(ConnectionChanged)]  # type: ignore[attr-defined]
            assert ConnectionState.CONNECTING in states
            assert states[-1] is ConnectionState.CONNECTED
            for n in ("bob", "carol"):
                got = texts(inboxes[n])
                assert len(got) == len(set(got))
        finally:
            await _close([alice, bob, carol], inboxes)
            await hub.stop()
        gc.collect()
        await asyncio.sleep(0)
        assert not [c for c in unretrieved if "never retrieved" in str(c.get("message"))]

    run(main())


def test_a_client_opens_without_a_hub_and_joins_in_when_it_comes(tmp_path: Path) -> None:
    async def main() -> None:
        clock = WarpClock()
        hub = LocalHub(tmp_path / "hub.db", clock)
        await hub.start()
        alice = await device(tmp_path, "alice", hub)
        await hub.stop()  # the port is known; nothing listens on it now
        bob = await device(tmp_path, "bob", hub)  # opens offline: a new account, unpublished
        events = Inbox(bob)
        try:
            assert bob.connection is not ConnectionState.CONNECTED
            await hub.start()
            await until(lambda: bob.connection is ConnectionState.CONNECTED, "bob connects")
            await until(lambda: not bob._publish_due, "bob's entry published")
            group = await alice.create_group("late", [bob.identity])
            await until(lambda: bool(events.of(GroupJoined)), "bob joins")
            await group.send("welcome")
            await until(lambda: ("alice", "welcome") in texts(events), "the message")
        finally:
            await events.stop()
            await bob.close()
            await alice.close()
            await hub.stop()

    run(main())
