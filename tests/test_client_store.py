"""The client's store: transactions commit whole or not at all, every value is sealed (the raw
file holds no key, state, plaintext or id), a wrong key changes nothing, and a changed, moved or
foreign row is refused with a typed error."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from client_support import Inbox, LocalHub, WarpClock, device, until

from triple_ratchet.client import (
    Client,
    GroupJoined,
    GroupMessage,
    MemoryStore,
    Passphrase,
    SealedStore,
    SQLiteStore,
    StorageKey,
)
from triple_ratchet.client.directory import Invite
from triple_ratchet.errors import AuthenticationError, DecodeError, UsageError

FAST = {"memory_kib": 1024, "iterations": 1, "lanes": 1}  # Argon2id kept cheap for tests


def run(coro: Any, timeout: float = 60) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_transaction_commits_whole_or_not_at_all(tmp_path: Path, kind: str) -> None:
    store = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "s.db")
    with store.transaction() as tx:
        tx.put("t", b"a", b"1")
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.put("t", b"a", b"2")
        tx.put("t", b"b", b"3")
        assert tx.get("t", b"a") == b"2"  # reads see the transaction's writes
        raise RuntimeError("crash inside the step")
    with store.transaction() as tx:
        assert tx.items("t") == [(b"a", b"1")]
    store.close()


def _rows(path: Path) -> list[tuple[bytes, bytes]]:
    raw = SQLiteStore(path)
    with raw.transaction() as tx:
        rows = tx.items("header") + tx.items("account")
    raw.close()
    return rows


def _files(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.parent.glob(path.name + "*")))


def test_wrong_passphrase_is_an_authentication_error_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    sealed = SealedStore(SQLiteStore(path), Passphrase("correct horse", **FAST))
    with sealed.transaction() as tx:
        tx.put("account", b"self", b"secret state")
    sealed.close()
    before = _rows(path)
    for wrong, error in ((Passphrase("wrong horse", **FAST), AuthenticationError),
                         (StorageKey.generate(), UsageError)):  # made with a passphrase
        raw = SQLiteStore(path)
        with pytest.raises(error):
            SealedStore(raw, wrong)
        raw.close()
    assert _rows(path) == before
    again = SealedStore(SQLiteStore(path), Passphrase("correct horse"))  # recorded parameters
    with again.transaction() as tx:
        assert tx.get("account", b"self") == b"secret state"
    again.close()


def test_changed_moved_or_foreign_rows_are_refused(tmp_path: Path) -> None:
    key = StorageKey.generate()
    mine = SealedStore(MemoryStore(), key)
    other = SealedStore(MemoryStore(), key)  # same storage key, another store
    for s in (mine, other):
        with s.transaction() as tx:
            tx.put("groups", b"g1", b"state one")
            tx.put("groups", b"g2", b"state two")
    raw = mine.store.tables["groups"]  # type: ignore[attr-defined]
    id1, id2 = mine.row_id("groups", b"g1"), mine.row_id("groups", b"g2")

    def refused() -> None:
        with pytest.raises(AuthenticationError), mine.transaction() as tx:
            tx.items("groups")

    good = dict(raw)
    raw[id1] = bytes([raw[id1][0]]) + bytes([raw[id1][1] ^ 1]) + raw[id1][2:]  # a flipped bit
    refused()
    raw.update(good)
    raw[id1] = good[id2]  # one group's state under another's id
    refused()
    raw.update(good)
    raw[id1] = other.store.tables["groups"][other.row_id("groups", b"g1")]  # type: ignore[attr-defined]
    refused()  # copied from another store (another account), even under the same key
    raw.update(good)
    with mine.transaction() as tx:
        assert tx.get("groups", b"g1") == b"state one"


def test_a_corrupted_header_or_a_non_store_file_is_a_typed_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(DecodeError):
        SQLiteStore(junk)
    store = MemoryStore()
    with store.transaction() as tx:
        tx.put("header", b"", b"\x83\x01\x02\x03")
    with pytest.raises(DecodeError):
        SealedStore(store, StorageKey.generate())


def test_the_raw_file_holds_no_secret_and_no_id(tmp_path: Path) -> None:
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice = await Client.open(tmp_path / "alice.db", hub=hub.url,
                                      passphrase=Passphrase("pw", **FAST), name="alice",
                                      clock=clock, tick_interval=0.1)
            bob = await device(tmp_path, "bob", hub)
            bob_events = Inbox(bob)
            group = await alice.create_group("secret club", [bob.identity])
            await until(lambda: bool(bob_events.of(GroupJoined)), "bob joins")
            await group.send("the plaintext")
            await until(lambda: bool(bob_events.of(GroupMessage)), "bob reads")
            state = alice._group_state(group.id)
            needles = {
                "identity private keys": alice._account.identity._state()[:2],
                "session state": [state.session.to_bytes()[-64:]],
                "identity": [alice.identity],
                "group id": [group.id],
                "mailbox ids": list(state.session.mailboxes()),
                "plaintext": [b"the plaintext", b"secret club"],
                "keyring": [alice._keyring.to_bytes()[-64:]],
            }
            await bob_events.stop()
            await bob.close()
            await alice.close()
            before = _rows(tmp_path / "alice.db")
            with pytest.raises(AuthenticationError):
                await Client.open(tmp_path / "alice.db", hub=hub.url, passphrase="wrong pw")
            assert _rows(tmp_path / "alice.db") == before
            again = await Client.open(tmp_path / "alice.db", hub=hub.url, passphrase="pw",
                                      clock=clock)
            assert again.name == "alice" and again.group(group.id).name == "secret club"
            await again.close()
        raw = _files(tmp_path / "alice.db")
        assert len(raw) > 10_000
        for what, values in needles.items():
            for value in values:
                assert isinstance(value, bytes) and value not in raw, what

    run(main())


def test_invites_contacts_and_safety_numbers(tmp_path: Path) -> None:
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice = await device(tmp_path, "alice", hub)
            bob = await Client.open(None, hub=hub.url, key=StorageKey.generate(), name="bob",
                                    store=MemoryStore(), clock=clock, tick_interval=0.1)
            try:
                invite = bob.invite()
                assert invite.startswith("tr1:") and len(invite) < 400
                assert Invite.parse(invite) == Invite(bob.identity, "bob")
                contact = await alice.add_contact(invite)
                assert (contact.identity, contact.name) == (bob.identity, "bob")
                assert alice.safety_number(bob.identity) == bob.safety_number(alice.identity)
                assert alice.safety_number(bob.identity).count(" ") == 11
                for bad in ("tr1:!!!", "tr2:" + invite[4:], invite[:-8]):
                    with pytest.raises((UsageError, DecodeError)):
                        await alice.add_contact(bad)
            finally:
                await alice.close()
                await bob.close()

    run(main())


def test_directory_entries_hide_the_identity_and_inbox_from_the_hub() -> None:
    from triple_ratchet.client.directory import ContactEntry, open_join_key, seal_join_key
    from triple_ratchet.group.join_keys import JoinKeyring
    from triple_ratchet.identity import Account, IdentityKeyPair
    from triple_ratchet.suites import DEFAULT_SUITE

    suite = DEFAULT_SUITE
    me, other = IdentityKeyPair.generate(suite), IdentityKeyPair.generate(suite)
    identity = me.public.to_bytes()
    inbox = bytes(range(32))
    ring = JoinKeyring.empty(suite).generate(me, one_time=1, last_resort=False, inbox_id=inbox,
                                             expiry=2**40)
    signed = ring.publishable()[1][0]
    sealed = seal_join_key(suite, identity, signed)
    assert inbox not in sealed and me.public.signing_key.to_bytes() not in sealed
    assert open_join_key(suite, identity, sealed).to_bytes() == signed
    with pytest.raises(AuthenticationError):  # looked up under another identity
        open_join_key(suite, other.public.to_bytes(), sealed)
    forged = seal_join_key(suite, other.public.to_bytes(), signed)  # names another identity
    with pytest.raises(DecodeError):
        open_join_key(suite, other.public.to_bytes(), forged)
    entry = ContactEntry("a display name", inbox, Account.from_identity(me).bundle()).seal(suite)
    assert inbox not in entry and b"a display name" not in entry
    assert ContactEntry.open(suite, identity, entry).inbox_id == inbox


def test_a_group_state_of_another_member_is_refused(tmp_path: Path) -> None:
    from client_support import KEYS

    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice, bob = [await device(tmp_path, n, hub) for n in ("alice", "bob")]
            events = Inbox(bob)
            await alice.create_group("g", [bob.identity])
            await until(lambda: bool(events.of(GroupJoined)), "bob joins")
            await events.stop()
            await bob.close()
            await alice.close()
            # Someone holding alice's storage key puts bob's group state in alice's store.
            bob_store = SealedStore(SQLiteStore(tmp_path / "bob.db"), KEYS[str(tmp_path / "bob")])
            with bob_store.transaction() as tx:
                (gid, row), = tx.items("groups")
            bob_store.close()
            alice_store = SealedStore(SQLiteStore(tmp_path / "alice.db"),
                                      KEYS[str(tmp_path / "alice")])
            with alice_store.transaction() as tx:
                tx.put("groups", gid, row)
            alice_store.close()
            with pytest.raises(UsageError, match="another member"):
                await device(tmp_path, "alice", hub)

    run(main())


def test_one_process_per_store_file(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path / "s.db")
    with first.transaction() as tx:
        tx.put("t", b"k", b"v")
    with pytest.raises(UsageError, match="another process"):
        SQLiteStore(tmp_path / "s.db")
    first.close()
    again = SQLiteStore(tmp_path / "s.db")
    with again.transaction() as tx:
        assert tx.get("t", b"k") == b"v"
    again.close()


def test_names_from_peers_are_cleaned_of_controls_and_bidi_overrides() -> None:
    from triple_ratchet.client.group import INFO, Envelope
    from triple_ratchet.identity import IdentityKeyPair
    from triple_ratchet.suites import DEFAULT_SUITE

    evil = "\x1b]0;owned\x07\x1b[2J\u202eecila\u2066"
    identity = IdentityKeyPair.generate(DEFAULT_SUITE).public.to_bytes()
    assert Invite.parse(str(Invite(identity, evil))).name == "]0;owned[2Jecila"
    info = Envelope(INFO, bytes(16), group_name=evil, names=((identity, evil),)).to_bytes()
    decoded = Envelope.from_bytes(info)
    assert decoded.group_name == decoded.names[0][1] == "]0;owned[2Jecila"


def test_after_close_events_end_and_calls_are_usage_errors(tmp_path: Path) -> None:
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice, bob = [await device(tmp_path, n, hub) for n in ("alice", "bob")]
            group = await alice.create_group("g", [bob.identity])
            await bob.close()
            await alice.close()
            seen = [event async for event in alice.events()]  # ends
            assert all(not isinstance(e, GroupMessage) for e in seen)
            for call in (group.send("late"), alice.send_direct(bob.identity, "late"),
                         alice.create_group("h", [bob.identity]), alice.add_contact(bob.invite())):
                with pytest.raises(UsageError, match="closed"):
                    await call

    run(main())
