"""Tests for the fixes of review-client F27, F29 and F31 beyond the review's own tests (those are
in tests/test_review_client.py): a lost batch replaced at the next tick, a hub client whose
tasks lose a cancellation still closes, direct messages exactly once across a crash."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from client_support import Inbox, LocalHub, WarpClock, device, until

from triple_ratchet.client import Client, DirectMessage
from triple_ratchet.hub import client as hub_client
from triple_ratchet.hub.access import directory_id
from triple_ratchet.hub.client import HubConnection, MailboxClient


def run(coro: Any, timeout: float = 60) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))






async def _close(clients: list[Client], inboxes: dict[str, Inbox]) -> None:
    for i in inboxes.values():
        await i.stop()
    for c in clients:
        await c.close()





# --- F29 (after the F11 fix): a batch lost on the way is never replaced ---------------------




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




# --- F28 (after the F26 fix): a real invitation that finds the waiting list full is lost ---------




# --- F31: a receiver killed mid-backlog loses every message committed but not yet taken ---------






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
