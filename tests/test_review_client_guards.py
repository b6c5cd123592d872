"""Adversarial review of the client layer (review-client): behaviour checked and found right,
kept as regression guards (the findings are in tests/test_review_client.py)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from client_support import KEYS, Inbox, LocalHub, WarpClock, device, until

from triple_ratchet import cbor
from triple_ratchet.client import (
    Client,
    DirectMessage,
    Gap,
    GroupJoined,
    GroupMessage,
    MemoryStore,
    Passphrase,
    SealedStore,
)
from triple_ratchet.client.directory import open_sealed, seal
from triple_ratchet.errors import AuthenticationError, DecodeError, UsageError
from triple_ratchet.hub.access import AccessKey, directory_id
from triple_ratchet.hub.client import START, HubConnection

REPO = Path(__file__).resolve().parent.parent
FAST = {"memory_kib": 1024, "iterations": 1, "lanes": 1}


def run(coro: Any, timeout: float = 60) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


def texts(inbox: Inbox) -> list[tuple[str, str | None]]:
    return [(e.sender.name, e.text) for e in inbox.of(GroupMessage)]  # type: ignore[attr-defined]


async def _group(tmp_path: Path, hub: LocalHub, names: tuple[str, ...] = ("alice", "bob")
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


# --- the hub replays entries ---------------------------------------------------------------


def test_a_replayed_group_entry_is_dropped_not_delivered_again(tmp_path: Path) -> None:
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            (alice, bob), inboxes, gid = await _group(tmp_path, hub)
            try:
                await alice.group(gid).send("once")
                await until(lambda: ("alice", "once") in texts(inboxes["bob"]), "once")
                # Every entry of the group mailbox appended again (new cursors, new msg ids),
                # as a hub that replays old entries would.
                session = bob._group_state(gid).session
                mailbox = session.mailbox_id
                conn = await HubConnection.connect(hub.url)
                await conn.authenticate(AccessKey(session.suite,
                                                  session.mailbox_access_key(mailbox)))
                batch = await conn.fetch(mailbox, START)
                assert batch.entries
                dropped = bob.dropped
                for entry in batch.entries:
                    await conn.put(mailbox, entry.blob, os.urandom(16))
                await conn.close()
                await until(lambda: bob.dropped >= dropped + len(batch.entries),
                            "the replays dropped")
                await alice.group(gid).send("next")
                await until(lambda: ("alice", "next") in texts(inboxes["bob"]), "next")
                assert texts(inboxes["bob"]) == [("alice", "once"), ("alice", "next")]
            finally:
                await _close([alice, bob], inboxes)

    run(main())


def test_a_hub_that_lost_its_store_is_followed_again_without_refusals(tmp_path: Path) -> None:
    """A hub restarted on an empty store (a new incarnation): the clients carry on."""
    async def main() -> None:
        clock = WarpClock()
        hub = LocalHub(tmp_path / "hub.db", clock)
        await hub.start()
        (alice, bob), inboxes, gid = await _group(tmp_path, hub)
        try:
            await hub.stop()
            for p in tmp_path.glob("hub.db*"):
                p.unlink()
            await hub.start()
            await asyncio.sleep(1.0)
            await alice.group(gid).send("after the hub lost everything")
            await until(lambda: ("alice", "after the hub lost everything")
                        in texts(inboxes["bob"]), "the message")
            assert bob.dropped == 0
        finally:
            await _close([alice, bob], inboxes)
            await hub.stop()

    run(main())


# --- the store's header cannot be downgraded -------------------------------------------------


def test_edited_kdf_parameters_in_the_header_are_refused_and_nothing_is_written() -> None:
    store = MemoryStore()
    SealedStore(store, Passphrase("pw", **FAST))
    header = store.tables["header"][b""]
    f = cbor.decode(header)
    assert f[3] == "argon2id" and f[5] == [1024, 1, 1]
    edits = {
        "weaker memory": (5, [8, 1, 1], AuthenticationError),
        "other salt": (4, b"\x00" * 16, AuthenticationError),
        "no kdf (a storage key)": (3, "key", UsageError),
        "unknown kdf": (3, "pbkdf2", DecodeError),
    }
    for what, (index, value, error) in edits.items():
        edited = list(f)
        edited[index] = value
        store.tables["header"][b""] = cbor.encode(edited)
        before = {t: dict(rows) for t, rows in store.tables.items()}
        with pytest.raises(error):
            SealedStore(store, Passphrase("pw", **FAST))
        assert store.tables == before, what
    store.tables["header"][b""] = header
    SealedStore(store, Passphrase("pw", **FAST))  # the original still opens


def test_the_default_passphrase_kdf_is_memory_hard() -> None:
    default = Passphrase("pw")
    assert (default.memory_kib, default.iterations, default.lanes) == (64 * 1024, 3, 4)


# --- nothing secret at rest, on the receiving side too ------------------------------------------


def test_the_receivers_files_hold_no_plaintext_or_key_while_open(tmp_path: Path) -> None:
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice = await device(tmp_path, "alice", hub)
            bob = await Client.open(tmp_path / "bob.db", hub=hub.url,
                                    passphrase=Passphrase("bob's passphrase", **FAST),
                                    name="bob", clock=clock, tick_interval=0.1)
            inboxes = {c.name: Inbox(c) for c in (alice, bob)}
            try:
                group = await alice.create_group("the secret club", [bob.identity])
                await until(lambda: bool(inboxes["bob"].of(GroupJoined)), "bob joins")
                await group.send("group plaintext 1234")
                await alice.send_direct(bob.identity, "direct plaintext 5678")
                await until(lambda: bool(inboxes["bob"].of(GroupMessage))
                            and bool(inboxes["bob"].of(DirectMessage)), "bob reads")
                acct = bob._account
                needles = {
                    "plaintexts": [b"group plaintext 1234", b"direct plaintext 5678",
                                   b"the secret club"],
                    "passphrase": [b"bob's passphrase"],
                    "storage keys": [bob._store._seal_key, bob._store._row_key],
                    "access keys": [acct.inbox_key, acct.owner_key],
                    "identity private keys": acct.identity._state()[:2],
                    "ids": [bob.identity, alice.identity, group.id, bob._inbox_id],
                    "pairwise state": [s.to_bytes()[-48:] for s in bob._pairwise[alice.identity]],
                }
                # While open: the main file and its -wal/-shm as they are now.
                raw = b"".join(p.read_bytes() for p in tmp_path.glob("bob.db*"))
                assert len(raw) > 10_000
                for what, values in needles.items():
                    for value in values:
                        assert isinstance(value, bytes) and len(value) >= 12
                        assert value not in raw, what
            finally:
                await _close([alice, bob], inboxes)

    run(main())


# --- the debug log ------------------------------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.text: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.text.append(self.format(record))  # with any exception and its traceback


def test_the_whole_libraries_debug_log_carries_no_plaintext_key_or_whole_id(
        tmp_path: Path) -> None:
    records = _Records()
    root = logging.getLogger("triple_ratchet")
    old = root.level
    root.addHandler(records)
    root.setLevel(logging.DEBUG)

    async def main() -> dict[str, list[bytes]]:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            (alice, bob), inboxes, gid = await _group(tmp_path, hub)
            try:
                await alice.group(gid).send("group plaintext 1234")
                await alice.send_direct(bob.identity, "direct plaintext 5678")
                await until(lambda: ("alice", "group plaintext 1234") in texts(inboxes["bob"])
                            and bool(inboxes["bob"].of(DirectMessage)), "bob reads")
                await hub.stop()  # losses, retries and refusals in the log too
                await alice.group(gid).send("while the hub is down")
                await asyncio.sleep(0.5)
                await hub.start()
                await until(lambda: ("alice", "while the hub is down")
                            in texts(inboxes["bob"]), "after the hub is back")
                session = alice._group_state(gid).session
                return {
                    "plaintext": [b"group plaintext 1234", b"direct plaintext 5678"],
                    "keys": [alice._account.inbox_key, alice._account.owner_key,
                             KEYS[str(tmp_path / "alice")].key, alice._store._seal_key,
                             *(session.mailbox_access_key(m).to_bytes()
                               for m in session.mailboxes())],
                    "ids": [alice.identity, bob.identity, gid, *session.mailboxes(),
                            alice._inbox_id, bob._inbox_id],
                }
            finally:
                await _close([alice, bob], inboxes)

    try:
        needles = asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        root.removeHandler(records)
        root.setLevel(old)
    log = "\n".join(records.text)
    assert len(records.text) > 10
    for what, values in needles.items():
        for value in values:
            for form in (value.hex(), repr(value)[2:-1]):
                if what == "plaintext":
                    form = value.decode()
                assert form not in log, what


# --- a hub that hands out another identity's join key -----------------------------------------


def test_a_join_key_of_another_identity_is_refused_and_nothing_is_created(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice, bob, carol = [await device(tmp_path, n, hub)
                                 for n in ("alice", "bob", "carol")]
            real = HubConnection.take_join_key
            bob_dir = directory_id(bob.suite, bob.identity)

            async def swapped(self: HubConnection, directory: bytes) -> Any:
                if directory != directory_id(carol.suite, carol.identity):
                    return await real(self, directory)
                # Bob's join key, sealed again under carol's directory key (anyone can: the
                # key comes from the public identity).
                taken = await real(self, bob_dir)
                plain = open_sealed(bob.suite, bob.identity, taken.join_key)
                return replace(taken, join_key=seal(carol.suite, carol.identity, plain))

            monkeypatch.setattr(HubConnection, "take_join_key", swapped)
            try:
                with pytest.raises(DecodeError):
                    await alice.create_group("g", [bob.identity, carol.identity])
                assert not alice.groups() and not alice._outbox
            finally:
                for c in (alice, bob, carol):
                    await c.close()

    run(main())


# --- asyncio hygiene ---------------------------------------------------------------------------


def test_close_is_idempotent_and_leaves_no_unretrieved_exception(tmp_path: Path) -> None:
    problems: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, ctx: problems.append(str(ctx.get("message"))))
        clock = WarpClock()
        hub = LocalHub(tmp_path / "hub.db", clock)
        await hub.start()
        (alice, bob), inboxes, gid = await _group(tmp_path, hub)
        # The hub goes away with requests in flight: a send, a direct message, the timers.
        sends = [asyncio.create_task(alice.group(gid).send(f"m{i}")) for i in range(3)]
        direct = asyncio.create_task(bob.send_direct(alice.identity, "d"))
        await asyncio.sleep(0)
        await hub.stop()
        await asyncio.sleep(0.5)
        await _close([alice, bob], inboxes)
        await alice.close()  # again: nothing happens
        for task in [*sends, direct]:
            task.cancel()
        await asyncio.gather(*sends, direct, return_exceptions=True)
        gc.collect()
        await asyncio.sleep(0.1)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(main())
        gc.collect()
    problems += [str(w.message) for w in caught if "coroutine" in str(w.message)
                 or "Task" in str(w.message)]
    assert not problems, problems


# --- a process killed with SIGKILL while sending -----------------------------------------------


_CHILD = r"""
import asyncio, sys, time
from triple_ratchet.client import Client, StorageKey

async def main(url, db, key, offset, gid, count, prefix):
    client = await Client.open(db, hub=url, key=StorageKey(bytes.fromhex(key)), name="alice",
                               clock=lambda: time.time() + offset, tick_interval=0.1)
    group = client.group(bytes.fromhex(gid))
    for i in range(count):
        await group.send(f"{prefix}{i}")
        print(i, flush=True)
    await asyncio.sleep(60)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5],
                 int(sys.argv[6]), sys.argv[7]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_while_sending_loses_no_committed_message_and_repeats_none(
        tmp_path: Path) -> None:
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            (alice, bob), inboxes, gid = await _group(tmp_path, hub)
            await inboxes["alice"].stop()
            await alice.close()
            key = KEYS[str(tmp_path / "alice")].key.hex()
            committed: list[str] = []
            for run_no in range(2):  # killed twice, at different points
                child = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", _CHILD, hub.url, str(tmp_path / "alice.db"), key,
                    str(clock.offset), gid.hex(), "40", f"r{run_no}m",
                    stdout=asyncio.subprocess.PIPE,
                    env={**os.environ, "PYTHONPATH": str(REPO)})
                assert child.stdout is not None
                printed = -1
                while printed < 5 + 7 * run_no:
                    line = await asyncio.wait_for(child.stdout.readline(), 30)
                    assert line, "the child ended early"
                    printed = int(line)
                child.send_signal(signal.SIGKILL)
                await child.wait()
                # every send up to here returned: committed
                committed += [f"r{run_no}m{i}" for i in range(printed + 1)]
            alice = await device(tmp_path, "alice", hub)
            inboxes["alice"] = Inbox(alice)
            try:
                await alice.group(gid).send("after")
                await until(lambda: ("alice", "after") in texts(inboxes["bob"]), "after")
                got = [t for _, t in texts(inboxes["bob"])]
                assert len(got) == len(set(got)), "a message delivered twice"
                for text in committed:
                    assert text in got, f"{text} was committed and is lost"
                assert bob.dropped == 0, "an entry bob could not read (a reused chain key?)"
                assert not inboxes["bob"].of(Gap)
            finally:
                await _close([alice, bob], inboxes)

    run(main(), 90)
