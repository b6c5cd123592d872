"""The client layer on the post-quantum hybrid suites: an account's saved state (its published
join keys and prekeys carry ML-KEM keys of over a kilobyte) reopens, and a group and a one-to-one
session work after the reopen."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from client_support import Inbox, LocalHub, WarpClock, device, until

from triple_ratchet.client import DirectMessage, GroupJoined, GroupMessage
from triple_ratchet.suites import HYBRID_SUITES, Suite


@pytest.mark.parametrize("suite", HYBRID_SUITES, ids=lambda s: s.name)
def test_a_hybrid_account_reopens_and_talks(tmp_path: Path, suite: Suite) -> None:
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice = await device(tmp_path, "alice", hub, suite=suite)
            bob = await device(tmp_path, "bob", hub, suite=suite)
            # Reopen both from their files: the saved account holds the hybrid keys it published.
            await alice.close()
            await bob.close()
            alice = await device(tmp_path, "alice", hub)
            bob = await device(tmp_path, "bob", hub)
            assert alice.suite is suite and bob.suite is suite
            inbox = Inbox(bob)
            try:
                group = await alice.create_group("pq", [bob.identity])
                await until(lambda: bool(inbox.of(GroupJoined)), "bob joins", warp=clock)
                await group.send("hello")
                await alice.send_direct(bob.identity, "one to one")
                await until(lambda: bool(inbox.of(GroupMessage)) and bool(inbox.of(DirectMessage)),
                            "messages")
                assert [e.text for e in inbox.of(GroupMessage)] == ["hello"]  # type: ignore[attr-defined]
                assert [e.text for e in inbox.of(DirectMessage)] == ["one to one"]  # type: ignore[attr-defined]
            finally:
                await inbox.stop()
                await alice.close()
                await bob.close()

    asyncio.run(asyncio.wait_for(main(), 120))
