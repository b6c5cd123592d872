"""Tests for the fixes of review-client F27..F31 (h3-clientfix); copied from h3-reviewc's
tests/test_review_client.py without their xfail markers (see /work/wt/NOTES-client.md)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from client_support import KEYS, Inbox, LocalHub, WarpClock, device, until

from triple_ratchet.client import Client, DirectMessage, GroupJoined, GroupMessage
from triple_ratchet.client import client as client_module
from triple_ratchet.errors import HubRefused, LimitExceeded
from triple_ratchet.hub import client as hub_client
from triple_ratchet.hub.access import directory_id
from triple_ratchet.hub.client import HubConnection, MailboxClient

REPO = Path(__file__).resolve().parent.parent


def run(coro: Any, timeout: float = 60) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


def texts(inbox: Inbox) -> list[tuple[str, str | None]]:
    return [(e.sender.name, e.text) for e in inbox.of(GroupMessage)]  # type: ignore[attr-defined]


async def _group(tmp_path: Path, hub: LocalHub, names: tuple[str, ...] = ("alice", "bob", "carol")
                 ) -> tuple[list[Client], dict[str, Inbox], bytes]:
    clients = [await device(tmp_path, n, hub) for n in names]
    inboxes = {c.name: Inbox(c) for c in clients}
    group = await clients[0].create_group("g", [c.identity for c in clients[1:]])
    await until(lambda: all(inboxes[n].of(GroupJoined) for n in names[1:]), "joins")
    return clients, inboxes, group.id


async def _close(clients: list[Client], inboxes: dict[str, Inbox]) -> None:
    for i in inboxes.values():
        await i.stop()
    for c in clients:
        await c.close()



async def _stalling_invite(mallory: Client, victim: Client) -> None:
    """A group notice for `victim` whose change's common part is never posted."""
    real_flush = mallory._flush

    async def no_flush() -> None:
        pass

    mallory._flush = no_flush  # type: ignore[method-assign]
    mallory._flush_wanted = asyncio.Event()  # the flushing task waits on the old one
    await mallory.create_group("stall", [victim.identity])
    for seq, out in list(mallory._outbox.items()):
        if out.kind != client_module.OUT_INBOX:
            del mallory._outbox[seq]
    await real_flush()
    mallory._flush = real_flush  # type: ignore[method-assign]


# --- F29 (after the F11 fix): a batch lost on the way is never replaced ---------------------


def test_f29_a_batch_lost_on_the_way_is_replaced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            real = HubConnection.publish
            lost = [1]

            async def lost_on_the_way(self: HubConnection, *args: Any, **kw: Any) -> None:
                if lost:
                    lost.pop()  # the connection dropped before the hub got the request
                    raise ConnectionError("hub connection lost")
                await real(self, *args, **kw)

            monkeypatch.setattr(HubConnection, "publish", lost_on_the_way)
            alice = await device(tmp_path, "alice", hub)  # a new account: its first publish
            monkeypatch.setattr(HubConnection, "publish", real)
            try:
                assert not lost, "the fault was not injected"
                await until(lambda: not alice._publish_due, "the publish retried")
                clock.warp(2 * 24 * 3600.0)  # two days: the daily republish ran too
                await asyncio.sleep(1.0)
                conn = await HubConnection.connect(hub.url)
                taken = await conn.take_bundle(directory_id(alice.suite, alice.identity))
                jk = await conn.take_join_key(directory_id(alice.suite, alice.identity))
                await conn.close()
                assert taken.prekey is not None, "no one-time prekey on the hub, ever"
                assert not jk.last_resort, "no one-time join key on the hub, ever"
            finally:
                await alice.close()

    run(main())


def test_f29_a_lost_batch_is_replaced_at_the_next_tick_not_the_next_day(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The join-key request lost (the prekeys went through): the retry publishes the rest, and a
    fresh join-key batch follows at the next tick, with no clock warp."""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            real = HubConnection.publish_join_keys
            lost = [1]

            async def lost_on_the_way(self: HubConnection, *args: Any, **kw: Any) -> None:
                if lost:
                    lost.pop()
                    raise ConnectionError("hub connection lost")
                await real(self, *args, **kw)

            monkeypatch.setattr(HubConnection, "publish_join_keys", lost_on_the_way)
            alice = await device(tmp_path, "alice", hub)
            monkeypatch.setattr(HubConnection, "publish_join_keys", real)
            try:
                assert not lost, "the fault was not injected"
                await until(lambda: not alice._publish_due, "the fresh batch published")
                conn = await HubConnection.connect(hub.url)
                jk = await conn.take_join_key(directory_id(alice.suite, alice.identity))
                await conn.close()
                assert not jk.last_resort, "the lost join-key batch was not replaced"
                unconfirmed = set(alice._unconfirmed_join)
                assert len(unconfirmed) == 4  # the lost batch: held, not counted
                await alice.close()
                alice = await device(tmp_path, "alice", hub)  # the record survives a restart
                assert alice._unconfirmed_join == unconfirmed
                offered = [h for h in alice._keyring.held
                           if h.one_time and h.join_key.receive_key not in unconfirmed]
                assert len(offered) == 4, "a restart published yet another batch"
            finally:
                await alice.close()

    run(main())


# --- F27 (after the F20 fix): close() still waits without bound on each hub client's close -------


def test_f27_close_is_bounded_even_if_a_hub_client_does_not_close(tmp_path: Path) -> None:
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            (alice, bob), inboxes, gid = await _group(tmp_path, hub, ("alice", "bob"))
            conn = alice._group_state(gid).conn
            assert conn is not None
            real_close = conn.close

            async def stuck() -> None:
                # MailboxClient.close awaits its supervisor after one cancel: a supervisor that
                # lost it (Python 3.11's wait_for, in connect() or a reopen's request) goes
                # back to `await conn.wait_closed()` on a live connection.
                await asyncio.Event().wait()

            conn.close = stuck  # type: ignore[method-assign]
            await inboxes["alice"].stop()
            loop = asyncio.get_running_loop()
            start = loop.time()
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(alice.close(), 10)
                assert loop.time() - start < 6, "close() hung on a hub client"
            finally:
                await real_close()
                await _close([bob], {"bob": inboxes["bob"]})

    run(main())


def test_f27_mailbox_client_close_cancels_until_done(monkeypatch: pytest.MonkeyPatch) -> None:
    """MailboxClient.close: a supervisor that loses one cancellation is cancelled again, and one
    that never stops is abandoned at CLOSE_TIMEOUT (it used to await it after one cancel)."""
    monkeypatch.setattr(hub_client, "CLOSE_TIMEOUT", 1.0)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ended: list[str] = []

        async def loses_one_cancel() -> None:
            # lost (e.g. wait_for's result raced the cancel): back to waiting
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
            try:
                await asyncio.Event().wait()
            finally:
                ended.append("stopped")

        released = asyncio.Event()

        async def never_stops() -> None:
            while not released.is_set():
                with contextlib.suppress(asyncio.CancelledError):
                    await released.wait()

        for body, bound in ((loses_one_cancel, 0.9), (never_stops, 2.0)):
            mc = MailboxClient("ws://127.0.0.1:9")
            mc._supervisor = asyncio.create_task(body())
            await asyncio.sleep(0)
            start = loop.time()
            await asyncio.wait_for(mc.close(), 10)
            assert loop.time() - start < bound, body.__name__
            if body is never_stops:
                assert not mc._supervisor.done()
                released.set()
                await mc._supervisor
        assert ended == ["stopped"]

    run(main())


# --- F30 (after the F21 fix): notices overtake the common part the LIMIT holds back -------------


def test_f30_notices_never_overtake_their_common_part(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "COMMON_WAIT", 2.0, raising=False)  # 30 s: scaled

    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice, bob = [await device(tmp_path, n, hub) for n in ("alice", "bob")]
            inboxes = {c.name: Inbox(c) for c in (alice, bob)}
            real_put = alice._put
            loop = asyncio.get_running_loop()
            limited_until = loop.time() + 4.0  # the hub's create rate limit, for four seconds

            async def put(out: Any) -> None:
                if out.kind == client_module.OUT_COMMON and loop.time() < limited_until:
                    limit = LimitExceeded("hub refused: rate limited")
                    raise HubRefused(str(limit), out.mailbox, 0, limit)
                await real_put(out)

            alice._put = put  # type: ignore[method-assign]
            try:
                await alice.create_group("g", [bob.identity])
                await until(lambda: bool(inboxes["bob"].of(GroupJoined)), "bob joins",
                            timeout=15)
            finally:
                await _close([alice, bob], inboxes)

    run(main())


# --- F28 (after the F26 fix): a real invitation that finds the waiting list full is lost ---------


def test_f28_a_real_invitation_is_not_lost_behind_waiting_notices(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "MAX_JOINS", 2, raising=False)  # 32 in the code: scaled
    monkeypatch.setattr(client_module, "COMMON_WAIT", 2.0, raising=False)  # down

    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice, bob, mallory = [await device(tmp_path, n, hub)
                                   for n in ("alice", "bob", "mallory")]
            inboxes = {c.name: Inbox(c) for c in (alice, bob)}
            try:
                for _ in range(2):
                    await _stalling_invite(mallory, alice)
                await asyncio.sleep(0.5)  # alice's waiting list is full
                group = await bob.create_group("real", [alice.identity])
                await until(lambda: any(e.group.id == group.id  # type: ignore[attr-defined]
                                        for e in inboxes["alice"].of(GroupJoined)),
                            "alice joins bob's group", timeout=10)
            finally:
                await _close([alice, bob, mallory], inboxes)

    run(main())


# --- F31: a receiver killed mid-backlog loses every message committed but not yet taken ---------


_READER = r"""
import asyncio, sys, time
from triple_ratchet.client import Client, GroupMessage, StorageKey

async def main(url, db, key, offset):
    client = await Client.open(db, hub=url, key=StorageKey(bytes.fromhex(key)), name="bob",
                               clock=lambda: time.time() + offset, tick_interval=0.1)
    async for event in client.events():
        if isinstance(event, GroupMessage):
            await asyncio.sleep(0.05)  # the app stores / shows it
            print(event.text, flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
"""


def test_f31_a_receiver_killed_mid_backlog_loses_no_message(tmp_path: Path) -> None:
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            (alice, bob), inboxes, gid = await _group(tmp_path, hub, ("alice", "bob"))
            await inboxes["bob"].stop()
            await bob.close()
            for i in range(60):  # a backlog for bob (back from a day offline)
                await alice.group(gid).send(f"m{i}")
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _READER, hub.url, str(tmp_path / "bob.db"),
                KEYS[str(tmp_path / "bob")].key.hex(), str(clock.offset),
                stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
            assert child.stdout is not None
            before: list[str] = []
            while len(before) < 10:
                line = await asyncio.wait_for(child.stdout.readline(), 30)
                assert line, "the reader ended early"
                before.append(line.decode().strip())
            child.send_signal(signal.SIGKILL)  # the phone's OS kills the app
            rest, _ = await child.communicate()
            before += rest.decode().split()
            bob = await device(tmp_path, "bob", hub)
            inboxes["bob"] = Inbox(bob)
            try:
                await alice.group(gid).send("last")
                await until(lambda: ("alice", "last") in texts(inboxes["bob"]), "last")
                got = before + [t for _, t in texts(inboxes["bob"])]
                missing = [f"m{i}" for i in range(60) if f"m{i}" not in got]
                assert len(got) - len(set(got)) <= 1  # at most the one in hand, again
                assert missing == [], f"{len(missing)} messages lost: {missing[:5]}..."
            finally:
                await _close([alice, bob], inboxes)

    run(main(), 90)


def direct(inbox: Inbox) -> list[str | None]:
    return [e.text for e in inbox.of(DirectMessage)]  # type: ignore[attr-defined]


async def _crash(client: Client) -> None:
    """The process dies: no close() (nothing released), only the loops and sockets stop."""
    client._closed = True
    tasks = [*client._tasks, *client._joins,
             *(gs.reader for gs in client._groups.values() if gs.reader)]
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks, timeout=2)
    for conn in [client._inbox, *(gs.conn for gs in client._groups.values() if gs.conn)]:
        await conn.close()
    client._store.close()


def test_f31_next_event_direct_messages_exactly_once_across_a_crash_and_a_close(
        tmp_path: Path) -> None:
    """next_event(): the message in hand at a crash is given again, the ones taken before it
    are not, and those never taken come after the restart; after a clean close() nothing comes
    twice."""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice, bob = [await device(tmp_path, n, hub) for n in ("alice", "bob")]
            await bob.close()
            for i in range(5):
                await alice.send_direct(bob.identity, f"d{i}")
            bob = await device(tmp_path, "bob", hub)
            taken: list[str | None] = []
            while len(taken) < 2:
                event = await bob.next_event(timeout=20)
                if isinstance(event, DirectMessage):
                    taken.append(event.text)
            assert taken == ["d0", "d1"]
            await _crash(bob)  # d1 is in hand: the app may not have stored it
            bob = await device(tmp_path, "bob", hub)
            inbox = Inbox(bob)
            try:
                await until(lambda: direct(inbox)[-1:] == ["d4"], "the rest")
                assert direct(inbox) == ["d1", "d2", "d3", "d4"]
            finally:
                await inbox.stop()
                await bob.close()
            bob = await device(tmp_path, "bob", hub)
            inbox = Inbox(bob)
            try:
                await alice.send_direct(bob.identity, "last")
                await until(lambda: "last" in direct(inbox), "last")
                assert direct(inbox) == ["last"], "a message came twice after a clean close"
            finally:
                await inbox.stop()
                await _close([alice, bob], {})

    run(main())
