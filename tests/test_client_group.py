"""The client layer over a real hub: create, send, receive once with the right sender; add and
remove through epoch changes; restart from the database; the outbox after a crash."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest
from client_support import Inbox, LocalHub, WarpClock, device, until

from triple_ratchet.client import (
    EpochChanged,
    GroupJoined,
    GroupMessage,
    MembershipChanged,
    Refused,
    RemovedFromGroup,
)
from triple_ratchet.client.client import OUT_INBOX, _Out
from triple_ratchet.errors import HubRefused
from triple_ratchet.hub.access import AccessKey
from triple_ratchet.hub.client import HubConnection

EPOCH_AGE = 61.0


def run(coro: object, timeout: float = 90) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


def texts(inbox: Inbox) -> list[tuple[str, str | None]]:
    return [(e.sender.name, e.text) for e in inbox.of(GroupMessage)]  # type: ignore[attr-defined]


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_create_send_receive_exactly_once(tmp_path: Path) -> None:
    records = Records()
    logger = logging.getLogger("triple_ratchet.client")
    logger.addHandler(records)
    logger.setLevel(logging.DEBUG)

    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice, bob, carol = [await device(tmp_path, n, hub) for n in ("alice", "bob", "carol")]
            inboxes = {c.name: Inbox(c) for c in (alice, bob, carol)}
            try:
                group = await alice.create_group("friends", [bob.identity, carol.identity])
                await until(lambda: all(i.of(GroupJoined) for n, i in inboxes.items()
                                        if n != "alice"), "joins")
                joined = inboxes["bob"].of(GroupJoined)[0]
                assert joined.group.name == "friends"  # type: ignore[attr-defined]
                assert joined.inviter.name == "alice"  # type: ignore[attr-defined]
                await group.send("hi from alice")
                bob_group = bob.group(group.id)
                await until(lambda: bob_group.epoch >= 1, "bob in epoch 1")
                await bob_group.send("hi from bob")
                await until(lambda: len(texts(inboxes["carol"])) == 2, "carol's messages")
                await until(lambda: len(texts(inboxes["alice"])) == 1, "alice's message")
                await until(lambda: len(texts(inboxes["bob"])) == 1, "bob's message")
                await asyncio.sleep(0.5)
                assert sorted(texts(inboxes["carol"])) == [("alice", "hi from alice"),
                                                           ("bob", "hi from bob")]
                assert texts(inboxes["alice"]) == [("bob", "hi from bob")]
                assert texts(inboxes["bob"]) == [("alice", "hi from alice")]
                assert {m.name for m in group.members} == {"alice", "bob", "carol"}
                # The debug log says what happened, never a plaintext, a blob or a whole id.
                session = alice._group_state(group.id).session
                secrets = ["hi from", group.id.hex(), session.mailbox_id.hex()[:16],
                           alice._account.identity.public.to_bytes().hex()[:16]]
                assert any("created group" in line for line in records.lines)
                assert not [line for line in records.lines for x in secrets if x in line]
            finally:
                for i in inboxes.values():
                    await i.stop()
                for c in (alice, bob, carol):
                    await c.close()

    try:
        run(main())
    finally:
        logger.removeHandler(records)
        logger.setLevel(logging.NOTSET)


def test_add_and_remove_through_epoch_changes(tmp_path: Path) -> None:
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            names = ("alice", "bob", "carol", "dave")
            alice, bob, carol, dave = [await device(tmp_path, n, hub) for n in names]
            clients = (alice, bob, carol, dave)
            inboxes = {c.name: Inbox(c) for c in clients}
            try:
                group = await alice.create_group("friends", [bob.identity, carol.identity])
                await until(lambda: all(inboxes[n].of(GroupJoined) for n in ("bob", "carol")),
                            "joins")
                clock.warp(EPOCH_AGE)
                await group.add(dave.identity)
                await until(lambda: bool(inboxes["dave"].of(GroupJoined))
                            and all(c.group(group.id).epoch >= 2 for c in (alice, bob, carol)),
                            "epoch 2 (add dave)", warp=clock)
                changed = inboxes["bob"].of(MembershipChanged)[-1]
                assert [m.name for m in changed.added] == ["dave"]  # type: ignore[attr-defined]
                assert changed.proposer.name == "alice"  # type: ignore[attr-defined]
                assert inboxes["dave"].of(GroupJoined)[0].inviter.name == "alice"  # type: ignore[attr-defined]
                dave_group = dave.group(group.id)
                await until(lambda: {m.name for m in dave_group.members} == set(names),
                            "dave learns the names")
                assert dave_group.name == "friends"
                await dave.group(group.id).send("dave here")
                await until(lambda: all(("dave", "dave here") in texts(inboxes[n])
                                        for n in ("alice", "bob", "carol")), "dave's message")

                clock.warp(EPOCH_AGE)
                await group.remove(carol.identity)
                await until(lambda: bool(inboxes["carol"].of(RemovedFromGroup))
                            and all(c.group(group.id).epoch >= 3 for c in (alice, bob, dave)),
                            "epoch 3 (remove carol)", warp=clock)
                before = len(texts(inboxes["carol"]))
                await bob.group(group.id).send("after carol left")
                await until(lambda: all(("bob", "after carol left") in texts(inboxes[n])
                                        for n in ("alice", "dave")), "message after removal")
                await asyncio.sleep(0.5)
                assert len(texts(inboxes["carol"])) == before  # the removed member reads nothing
                assert not carol.group(group.id).active
                epochs = [e.epoch for e in inboxes["alice"].of(EpochChanged)]  # type: ignore[attr-defined]
                assert epochs == [2, 3]
                for n in ("alice", "bob", "dave"):  # each message exactly once
                    got = texts(inboxes[n])
                    assert len(got) == len(set(got))
                ids = {c.group(group.id).epoch_id for c in (alice, bob, dave)}
                assert len(ids) == 1
            finally:
                for i in inboxes.values():
                    await i.stop()
                for c in clients:
                    await c.close()

    run(main(), 120)


def test_forged_entries_are_dropped_and_hub_refusals_are_their_own_events(
        tmp_path: Path) -> None:
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice, bob = [await device(tmp_path, n, hub) for n in ("alice", "bob")]
            inboxes = {c.name: Inbox(c) for c in (alice, bob)}
            try:
                group = await alice.create_group("g", [bob.identity])
                await until(lambda: bool(inboxes["bob"].of(GroupJoined)), "bob joins")
                # Junk in the group mailbox from someone holding its access key.
                session = bob._group_state(group.id).session
                mailbox = session.mailbox_id
                conn = await HubConnection.connect(hub.url)
                await conn.authenticate(AccessKey(session.suite,
                                                  session.mailbox_access_key(mailbox)))
                for junk in (b"\x00" * 40, session.to_bytes()[:300]):
                    await conn.put(mailbox, junk, os.urandom(16))
                await conn.close()
                await until(lambda: bob.dropped >= 2, "junk dropped")
                assert not inboxes["bob"].of(Refused)
                # A put the hub refuses (an inbox that does not exist) is a Refused event.
                with bob._store.transaction() as tx:
                    bad = _Out(bob._next_seq, os.urandom(16), OUT_INBOX, group.id,
                               os.urandom(32), b"x" * 64)
                    tx.put("outbox", bad.seq.to_bytes(8, "big"), bad.to_bytes())
                bob._outbox[bad.seq] = bad
                await until(lambda: bool(inboxes["bob"].of(Refused)), "the refusal")
                refused = inboxes["bob"].of(Refused)[0]
                assert isinstance(refused.error, HubRefused)  # type: ignore[attr-defined]
                assert bob.refused == 1 and bob.dropped == 2 and not bob._outbox
                await group.send("still fine")
                await until(lambda: ("alice", "still fine") in texts(inboxes["bob"]), "message")
            finally:
                for i in inboxes.values():
                    await i.stop()
                for c in (alice, bob):
                    await c.close()

    run(main())


def test_a_joiner_whose_info_never_comes_still_hears_it_joined(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from triple_ratchet.client import client as client_module
    from triple_ratchet.client.group import INFO, Envelope
    from triple_ratchet.errors import DecodeError

    real = Envelope.from_bytes

    def no_info(data: bytes) -> Envelope:
        envelope = real(data)
        if envelope.kind == INFO:
            raise DecodeError("lost")
        return envelope

    monkeypatch.setattr(client_module, "INFO_WAIT", 0.5)
    monkeypatch.setattr(client_module.Envelope, "from_bytes", staticmethod(no_info))

    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice, bob = [await device(tmp_path, n, hub) for n in ("alice", "bob")]
            events = Inbox(bob)
            try:
                await alice.create_group("g", [bob.identity])
                await until(lambda: bool(events.of(GroupJoined)), "GroupJoined without info")
                joined = events.of(GroupJoined)[0]
                assert joined.inviter.name == "alice"  # type: ignore[attr-defined]
                assert joined.group.name == ""  # type: ignore[attr-defined]
            finally:
                await events.stop()
                await bob.close()
                await alice.close()

    run(main())
