"""Tests for the fixes of review-client F27..F31 (h3-clientfix); copied from h3-reviewc's
tests/test_review_client.py without their xfail markers (see /work/wt/NOTES-client.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from client_support import Inbox, LocalHub, WarpClock, device, until

from triple_ratchet.client import Client, GroupJoined, GroupMessage
from triple_ratchet.client import client as client_module
from triple_ratchet.hub.access import directory_id
from triple_ratchet.hub.client import HubConnection

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
                assert not alice._unconfirmed_join - {
                    h.join_key.receive_key for h in alice._keyring.held}
            finally:
                await alice.close()

    run(main())
