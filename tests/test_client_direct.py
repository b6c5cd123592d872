"""One-to-one messages over the pairwise Double Ratchet: started from the directory, each
message once with its sender, across a restart, and when both sides start at once."""

from __future__ import annotations

import asyncio
import os
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


def test_a_group_sessions_pairwise_payloads_reach_the_peers_session(tmp_path: Path) -> None:
    """The transport of what a group session hands the app for one peer (a rejoin request, a
    repaired sealing): over the pairwise session, into the peer's group session, which judges
    it (here: junk, refused by the session, counted, nothing else disturbed)."""
    from triple_ratchet.client import GroupJoined, GroupMessage
    from triple_ratchet.client.group import REJOIN_REQUEST, REPAIRED_SEALING, Envelope

    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice, bob = [await device(tmp_path, n, hub) for n in ("alice", "bob")]
            events = Inbox(bob)
            try:
                group = await alice.create_group("g", [bob.identity])
                await until(lambda: bool(events.of(GroupJoined)), "bob joins")
                calls: list[str] = []
                session = bob._group_state(group.id).session
                real_request, real_repaired = (session.on_rejoin_request,
                                               session.on_repaired_sealing)

                def on_request(data: bytes, peer: Any, now: float) -> Any:
                    calls.append("request")
                    return real_request(data, peer, now)

                def on_repaired(data: bytes, peer: Any, now: float) -> Any:
                    calls.append("repaired")
                    return real_repaired(data, peer, now)

                session.on_rejoin_request = on_request  # type: ignore[method-assign]
                session.on_repaired_sealing = on_repaired  # type: ignore[method-assign]
                dropped = bob.dropped
                for kind in (REJOIN_REQUEST, REPAIRED_SEALING):
                    envelope = Envelope(kind, os.urandom(16), data=b"junk", group_id=group.id)
                    await alice._encrypt_direct(bob.identity, envelope.to_bytes())
                    await alice._flush()
                await until(lambda: calls == ["request", "repaired"], "both payloads")
                await until(lambda: bob.dropped == dropped + 1, "the junk sealing refused")
                await group.send("still fine")
                await until(lambda: bool(events.of(GroupMessage)), "a message after")
            finally:
                await events.stop()
                await bob.close()
                await alice.close()

    run(main())


def test_a_member_whose_notice_was_lost_gets_back_in_through_a_hint(tmp_path: Path) -> None:
    """Bob's notice is lost: he holds no session of the group. Alice sends him a membership
    hint over their pairwise session; his client keeps a pending rejoin and asks back in; Alice
    proposes his resume, the epoch change applies it, and Bob starts from the resume notice
    (11.v2.31) and reads and writes in the group."""
    from triple_ratchet.client import GroupJoined, GroupMessage

    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice, bob, carol = [await device(tmp_path, n, hub) for n in ("alice", "bob", "carol")]
            inboxes = {c.name: Inbox(c) for c in (alice, bob, carol)}
            lost: list[bytes] = []
            real_join = bob._join

            async def lose_first(notice: bytes, keys: Any) -> None:
                if not lost:
                    lost.append(notice)
                    return
                await real_join(notice, keys)

            bob._join = lose_first  # type: ignore[method-assign]
            try:
                group = await alice.create_group("g", [bob.identity, carol.identity])
                await until(lambda: bool(inboxes["carol"].of(GroupJoined)) and bool(lost),
                            "carol joins, bob's notice lost")
                assert not bob.groups()
                await bob.add_contact(alice.invite())  # a hint is taken only from someone known
                clock.warp(61.0)
                await group.offer_rejoin(bob.identity)
                await until(lambda: bool(bob.groups()) and bob.group(group.id).epoch >= 2,
                            "bob back in", warp=clock, timeout=60)
                assert bob.group(group.id).epoch_id == alice.group(group.id).epoch_id
                await until(lambda: bool(inboxes["bob"].of(GroupJoined)), "bob's GroupJoined")
                await group.send("welcome back")
                await until(lambda: bool(inboxes["bob"].of(GroupMessage)), "bob reads")
                await bob.group(group.id).send("thanks")
                await until(lambda: any(e.text == "thanks"  # type: ignore[attr-defined]
                                        for e in inboxes["carol"].of(GroupMessage)), "carol")
                assert not bob._rejoins
            finally:
                for i in inboxes.values():
                    await i.stop()
                for c in (alice, bob, carol):
                    await c.close()

    run(main(), 90)
