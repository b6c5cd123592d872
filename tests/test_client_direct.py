"""One-to-one messages over the pairwise Double Ratchet: started from the directory, each
message once with its sender, across a restart, and when both sides start at once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from client_support import Inbox, LocalHub, WarpClock, device, until

from triple_ratchet.client import DirectMessage


def run(coro: Any, timeout: float = 60) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


def direct(inbox: Inbox) -> list[tuple[str, str | None]]:
    return [(e.sender.name, e.text) for e in inbox.of(DirectMessage)]  # type: ignore[attr-defined]


def test_direct_messages_both_ways_across_a_restart(tmp_path: Path) -> None:
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice, bob = [await device(tmp_path, n, hub) for n in ("alice", "bob")]
            inboxes = {c.name: Inbox(c) for c in (alice, bob)}
            try:
                await alice.send_direct(bob.identity, "hello bob")
                await until(lambda: direct(inboxes["bob"]) == [("alice", "hello bob")], "first")
                await bob.send_direct(alice.identity, b"raw bytes")
                await until(lambda: bool(inboxes["alice"].of(DirectMessage)), "reply")
                reply = inboxes["alice"].of(DirectMessage)[0]
                assert (reply.sender.name, reply.text, reply.data) == (  # type: ignore[attr-defined]
                    "bob", None, b"raw bytes")
                await inboxes["bob"].stop()
                await bob.close()
                for k in range(3):  # while bob is offline
                    await alice.send_direct(bob.identity, f"more {k}")
                bob = await device(tmp_path, "bob", hub)  # restart: no message twice
                inboxes["bob"] = Inbox(bob)
                await until(lambda: len(direct(inboxes["bob"])) >= 3, "after the restart")
                await bob.send_direct(alice.identity, "back")
                await until(lambda: ("bob", "back") in direct(inboxes["alice"]), "back")
                await asyncio.sleep(0.3)
                assert direct(inboxes["bob"]) == [("alice", f"more {k}") for k in range(3)]
            finally:
                for i in inboxes.values():
                    await i.stop()
                for c in (alice, bob):
                    await c.close()

    run(main())


def test_both_sides_start_a_session_at_once(tmp_path: Path) -> None:
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice, bob = [await device(tmp_path, n, hub) for n in ("alice", "bob")]
            inboxes = {c.name: Inbox(c) for c in (alice, bob)}
            try:
                await asyncio.gather(alice.send_direct(bob.identity, "a1"),
                                     bob.send_direct(alice.identity, "b1"))
                await until(lambda: direct(inboxes["alice"]) == [("bob", "b1")]
                            and direct(inboxes["bob"]) == [("alice", "a1")], "crossing")
                for k in range(2):
                    await alice.send_direct(bob.identity, f"a{k + 2}")
                    await until(lambda k=k: ("alice", f"a{k + 2}") in direct(inboxes["bob"]),
                                "alice again")
                    await bob.send_direct(alice.identity, f"b{k + 2}")
                    await until(lambda k=k: ("bob", f"b{k + 2}") in direct(inboxes["alice"]),
                                "bob again")
                assert alice.dropped == bob.dropped == 0
            finally:
                for i in inboxes.values():
                    await i.stop()
                for c in (alice, bob):
                    await c.close()

    run(main())
