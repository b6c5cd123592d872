"""Adversarial review of the client layer (review-client, h3-reviewc).

Each finding (F1-F31) is a test of the behaviour the client should have; each failed on the
code the review read and passes since its fix. Behaviour checked and found right is guarded by
ordinary tests at the end and in test_review_client_guards.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from client_support import KEYS, Inbox, LocalHub, WarpClock, device, until

from triple_ratchet.client import (
    Client,
    DirectMessage,
    GroupJoined,
    GroupMessage,
    MembershipChanged,
    MemoryStore,
    Refused,
    StorageKey,
)
from triple_ratchet.client import client as client_module
from triple_ratchet.client.directory import Invite, open_join_key, open_prekey
from triple_ratchet.client.group import INFO, MEMBERSHIP_HINT, TEXT, Envelope
from triple_ratchet.errors import (
    HubRefused,
    LimitExceeded,
    ProtocolError,
    TripleRatchetError,
    UsageError,
)
from triple_ratchet.group.notice import MembershipHint
from triple_ratchet.hub.access import AccessKey, directory_id
from triple_ratchet.hub.client import HubConnection, MailboxClient
from triple_ratchet.identity import IdentityKeyPair
from triple_ratchet.suites import DEFAULT_SUITE

REPO = Path(__file__).resolve().parent.parent


def run(coro: Any, timeout: float = 60) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


def texts(inbox: Inbox) -> list[tuple[str, str | None]]:
    return [(e.sender.name, e.text) for e in inbox.of(GroupMessage)]  # type: ignore[attr-defined]


def direct(inbox: Inbox) -> list[tuple[str, str | None]]:
    return [(e.sender.name, e.text) for e in inbox.of(DirectMessage)]  # type: ignore[attr-defined]


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


async def _send_envelope(sender: Client, gid: bytes, envelope: Envelope) -> None:
    """What a modified (malicious) member's client can send: any envelope it likes, through
    its own, valid, group session."""
    gs = sender._group_state(gid)
    async with gs.lock:
        out = gs.session.encrypt(envelope.to_bytes(), sender._clock())
        sender._commit(gs, out)
    await sender._flush()


# --- F1 (fixed): one oversized direct message poisons the outbox for good -------------------------


def test_f1_an_oversized_direct_message_does_not_poison_the_outbox(tmp_path: Path) -> None:
    """F1 (fixed by h3-client 7cbdb4e), was: an oversized direct message is committed to the
    outbox, then the hub client's UsageError escapes _flush: every later send raises it and
    the tick loop dies"""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            (alice, bob), inboxes, gid = await _group(tmp_path, hub, ("alice", "bob"))
            try:
                big = os.urandom(300 * 1024)  # under the Double Ratchet's 1 MiB, over the hub's
                with contextlib.suppress(TripleRatchetError):
                    await alice.send_direct(bob.identity, big)  # refusing it is fine
                # ... but nothing else may suffer from it:
                await alice.send_direct(bob.identity, "small")
                await alice.group(gid).send("group still works")
                await until(lambda: ("alice", "small") in direct(inboxes["bob"]), "direct")
                await until(lambda: ("alice", "group still works") in texts(inboxes["bob"]),
                            "group")
                assert all(not t.done() for t in alice._tasks), "a background task died"
            finally:
                await _close([alice, bob], inboxes)

    run(main())


# --- F2 (fixed): the group dedup key ignores the sender -------------------------------------------


def test_f2_a_member_cannot_suppress_another_members_message_by_its_id(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """F2 (fixed by h3-client 7cbdb4e), was: seen is keyed by (group id, message id) only: a
    member who reuses another member's message id suppresses it"""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            (alice, mallory, carol), inboxes, gid = await _group(
                tmp_path, hub, ("alice", "mallory", "carol"))
            try:
                victim_id = os.urandom(16)  # alice's next message id (seen, or raced for)
                await _send_envelope(mallory, gid, Envelope(TEXT, victim_id, "decoy",
                                                            b"decoy"))
                await until(lambda: ("mallory", "decoy") in texts(inboxes["carol"]), "decoy")
                real = client_module._envelope

                def fixed(message: str | bytes) -> Envelope:
                    env = real(message)
                    return Envelope(TEXT, victim_id, env.text, env.data)

                monkeypatch.setattr(client_module, "_envelope", fixed)
                assert await alice.group(gid).send("the real one") == victim_id
                await until(lambda: ("alice", "the real one") in texts(inboxes["mallory"]),
                            "mallory (not deduplicated: his own copy was not delivered)")
                await until(lambda: ("alice", "the real one") in texts(inboxes["carol"]),
                            "alice's message at carol", timeout=5)
            finally:
                await _close([alice, mallory, carol], inboxes)

    run(main())


# --- F3 (fixed): any member rewrites the group's name and other members' names --------------------


def test_f3_a_member_cannot_rename_the_group_or_other_members(tmp_path: Path) -> None:
    """F3 (fixed by h3-client 7cbdb4e), was: an INFO envelope is accepted from any member
    and for any identity: a member renames the group and relabels others"""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            (alice, mallory, carol), inboxes, gid = await _group(
                tmp_path, hub, ("alice", "mallory", "carol"))
            try:
                group = carol.group(gid)
                before = {m.identity: m.name for m in group.members}
                assert before[alice.identity] == "alice" and group.name == "g"
                spoof = Envelope(INFO, os.urandom(16), group_name="pwned",
                                 names=((alice.identity, "mallory"),
                                        (mallory.identity, "alice")))
                await _send_envelope(mallory, gid, spoof)
                await _send_envelope(mallory, gid, Envelope(TEXT, os.urandom(16), "x", b"x"))
                await until(lambda: ("mallory", "x") in texts(inboxes["carol"]) or
                            ("alice", "x") in texts(inboxes["carol"]), "mallory's message")
                after = {m.identity: m.name for m in group.members}
                assert after[alice.identity] == "alice", "alice now shows as 'mallory'"
                assert group.name == "g", "the group was renamed by a non-creator"
            finally:
                await _close([alice, mallory, carol], inboxes)

    run(main())


# --- F4 (fixed): the same database opened twice would run one ratchet state twice -----


def test_f4_a_database_opened_twice_is_refused(tmp_path: Path) -> None:
    """F4 (fixed by h3-client fef57ea): two clients on one database would send from one state,
    the same chain keys for different messages; the second opener gets UsageError."""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            (alice, bob), inboxes, _gid = await _group(tmp_path, hub, ("alice", "bob"))
            twin: Client | None = None
            try:
                with pytest.raises(UsageError):
                    twin = await device(tmp_path, "alice", hub)
            finally:
                await _close([alice, bob] + ([twin] if twin else []), inboxes)

    run(main())


# --- F5 (fixed): a direct message was lost, and the inbox reader died, when the lookup failed


def test_f5_a_failed_sender_lookup_loses_no_direct_message(tmp_path: Path) -> None:
    """F5 (fixed by h3-client 9b5e256): a ConnectionError while looking the sender up lost the
    message (already `seen`) and killed the inbox task."""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice, bob = [await device(tmp_path, n, hub) for n in ("alice", "bob")]
            inboxes = {c.name: Inbox(c) for c in (alice, bob)}
            real = alice._one_off
            failing = True

            async def flaky(op: Any, *, retry: bool = True) -> Any:
                if failing:  # the hub dropped the one-off connection mid-call
                    raise ConnectionError("hub connection lost")
                return await real(op, retry=retry)

            alice._one_off = flaky  # type: ignore[method-assign]
            try:
                await bob.send_direct(alice.identity, "first")  # alice does not know bob
                await asyncio.sleep(1.0)
                failing = False
                await bob.send_direct(alice.identity, "second")
                await until(lambda: len(direct(inboxes["alice"])) >= 2, "both messages",
                            timeout=10)
            finally:
                await _close([alice, bob], inboxes)

    run(main())


# --- F6 (fixed): a rate-limited put loses the message ---------------------------------------------


def test_f6_a_rate_limited_put_is_retried_not_dropped(tmp_path: Path) -> None:
    """F6 (fixed by h3-client 7cbdb4e), was: _flush drops an outbox entry on any
    RemoteError, including LIMIT (rate limit, mailbox full), which is transient: the message
    (or an epoch change's record) is lost for good"""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            (alice, bob), inboxes, gid = await _group(tmp_path, hub, ("alice", "bob"))
            conn = alice._group_state(gid).conn
            assert conn is not None
            real = conn.put_entry
            limited = [1]

            async def put_entry(mailbox: bytes, blob: bytes, msg_id: bytes | None = None
                                ) -> Any:
                if limited:
                    limited.pop()
                    raise LimitExceeded("hub refused: rate limited")  # the hub's LIMIT frame
                return await real(mailbox, blob, msg_id)

            conn.put_entry = put_entry  # type: ignore[method-assign]
            try:
                await alice.group(gid).send("rate limited once")
                await until(lambda: ("alice", "rate limited once") in texts(inboxes["bob"]),
                            "the message after the limit", timeout=10)
            finally:
                await _close([alice, bob], inboxes)

    run(main())


# --- F7 (fixed): events() never ends after close --------------------------------------------------


def test_f7_events_ends_after_close(tmp_path: Path) -> None:
    """F7 (fixed by h3-client 7cbdb4e), was: events() waits forever after close(): an app's
    `async for event in client.events()` loop never ends"""
    async def main() -> None:
        client = await Client.open(None, hub="ws://127.0.0.1:9", key=StorageKey.generate(),
                                   store=MemoryStore(), name="x", tick_interval=0.05,
                                   retry_timeout=0.1)
        seen: list[object] = []

        async def consume() -> None:
            async for event in client.events():
                seen.append(event)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.1)
        await client.close()
        try:
            await asyncio.wait_for(task, 2)
        finally:
            task.cancel()

    run(main())


# --- F8 (fixed): calls after close are untyped errors and change the in-memory state --------------


def test_f8_send_after_close_is_a_usage_error(tmp_path: Path) -> None:
    """F8 (fixed by h3-client 7cbdb4e), was: group.send after close() advances the in-memory
    session, then raises sqlite3.ProgrammingError (not a triple_ratchet error)"""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            (alice, bob), inboxes, gid = await _group(tmp_path, hub, ("alice", "bob"))
            await _close([alice, bob], inboxes)
            with pytest.raises(UsageError):
                await alice.group(gid).send("after close")

    run(main())


# --- F9 (fixed): the account's access keys in its repr --------------------------------------------


def test_f9_no_secret_in_the_account_repr() -> None:
    """F9 (fixed by h3-client 7cbdb4e), was: _Account is a plain dataclass: its repr (a
    traceback with locals, a debugger, an error reporter) shows the inbox and
    directory-owner signing keys"""
    async def main() -> None:
        client = await Client.open(None, hub="ws://127.0.0.1:9", key=StorageKey.generate(),
                                   store=MemoryStore(), name="x", retry_timeout=0.1)
        try:
            acct = client._account
            text = repr(acct) + repr(client._groups) + repr(client._outbox)
            for secret in (acct.inbox_key, acct.owner_key):
                assert secret.hex() not in text and repr(secret) not in text
        finally:
            await client.close()

    run(main())


# --- F10 (fixed): terminal control characters in names --------------------------------------------


def test_f10_names_from_peers_carry_no_control_characters(tmp_path: Path) -> None:
    """F10 (fixed by h3-client 7cbdb4e), was: display and group names from the directory,
    invites and INFO envelopes may carry terminal escapes / bidi overrides; the client
    passes them to the app as is"""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            evil = "\x1b]0;owned\x07\x1b[2J\u202eecila"
            alice = await device(tmp_path, "alice", hub)
            mallory = await Client.open(tmp_path / "m.db", hub=hub.url,
                                        key=StorageKey.generate(), name=evil, clock=clock,
                                        tick_interval=0.1, retry_timeout=5)
            try:
                contact = await alice.add_contact(mallory.invite())
                assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or ch == "\u202e"
                               for ch in contact.name), repr(contact.name)
            finally:
                await alice.close()
                await mallory.close()

    run(main())



# --- F11 (fixed): a publish whose answer was lost is sent again: one-time keys handed out twice ---


def test_f11_one_time_keys_are_never_published_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """F11 (fixed by h3-client 7cbdb4e), was: _publish retries the whole publish (_one_off)
    when the hub's answer is lost, and only then marks the one-time prekeys/join keys
    published: they are on the hub twice, handed out twice"""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            real = HubConnection.publish_join_keys
            lost = [1]

            async def answer_lost(self: HubConnection, *args: Any, **kw: Any) -> None:
                await real(self, *args, **kw)  # the hub applied it ...
                if lost:
                    lost.pop()  # ... and the connection dropped before its OK came back
                    raise ConnectionError("hub connection lost")

            monkeypatch.setattr(HubConnection, "publish_join_keys", answer_lost)
            alice = await device(tmp_path, "alice", hub)
            monkeypatch.setattr(HubConnection, "publish_join_keys", real)
            try:
                assert not lost, "the fault was not injected"
                # open() found the publish failed; the timer publishes again.
                await until(lambda: not alice._publish_due, "the publish retried")
                directory = directory_id(alice.suite, alice.identity)
                conn = await HubConnection.connect(hub.url)
                prekeys, join_keys = [], []
                for _ in range(30):
                    taken = await conn.take_bundle(directory)
                    if taken.prekey is not None:  # compared opened (a fix may re-seal)
                        prekeys.append(open_prekey(alice.suite, alice.identity,
                                                   taken.prekey).to_bytes())
                    jk = await conn.take_join_key(directory)
                    if not jk.last_resort:
                        join_keys.append(open_join_key(alice.suite, alice.identity,
                                                       jk.join_key).receive_key)
                await conn.close()
                assert prekeys and join_keys
                twice = len(prekeys) - len(set(prekeys)), len(join_keys) - len(set(join_keys))
                assert twice == (0, 0), f"(prekeys, join keys) handed out twice: {twice}"
            finally:
                await alice.close()

    run(main())


# --- F12 (fixed): a hub connection that gave up (a protocol failure) is never replaced ------------


def test_f12_a_failed_group_connection_is_replaced(tmp_path: Path) -> None:
    """F12 (fixed by h3-client 7cbdb4e), was: when a group's MailboxClient gives up (a frame
    the hub client cannot read: it fails for good), _read_group retries next_event every
    tick forever; the group is dead until a restart, silently"""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            (alice, bob), inboxes, gid = await _group(tmp_path, hub, ("alice", "bob"))
            try:
                conn = bob._group_state(gid).conn
                assert conn is not None
                # What happens when the hub (or a proxy) sends one frame the hub client
                # cannot read: the connection ends with that error and MailboxClient gives up.
                live = conn._conn
                assert live is not None
                live.error = ProtocolError("hub sent a second challenge")
                await live.close()
                await until(lambda: conn._failure is not None, "the hub client gave up")
                await alice.group(gid).send("after the failure")
                await until(lambda: ("alice", "after the failure") in texts(inboxes["bob"]),
                            "bob reads again", timeout=10)
            finally:
                await _close([alice, bob], inboxes)

    run(main())


# --- F13 (fixed): looking someone up spends their one-time prekeys, and nobody refills them -------


def test_f13_lookups_do_not_exhaust_one_time_prekeys(tmp_path: Path) -> None:
    """F13 (fixed by h3-client 7cbdb4e), was: add_contact/_learn use TAKE_BUNDLE, which
    removes a one-time prekey from the hub; the owner refills only when it holds < 5 (it
    never learns the hub ran out): later sessions start without one"""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice, bob = [await device(tmp_path, n, hub) for n in ("alice", "bob")]
            try:
                for _ in range(client_module.ONE_TIME_PREKEYS):  # ten people add alice
                    await bob.add_contact(alice.invite())
                await asyncio.sleep(1.0)  # ten of alice's ticks
                conn = await HubConnection.connect(hub.url)
                taken = await conn.take_bundle(directory_id(alice.suite, alice.identity))
                await conn.close()
                assert taken.prekey is not None, "the next correspondent gets no one-time prekey"
            finally:
                await alice.close()
                await bob.close()

    run(main())


# --- F14: a restored backup sends again with message keys already used -------------------------


def test_f14_a_restored_backup_never_reuses_a_message_key(tmp_path: Path) -> None:
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            (alice, bob), inboxes, gid = await _group(tmp_path, hub, ("alice", "bob"))
            try:
                await inboxes["alice"].stop()
                await alice.close()
                backup = {p.name: p.read_bytes() for p in tmp_path.glob("alice.db*")}
                alice = await device(tmp_path, "alice", hub)
                for i in range(3):
                    await alice.group(gid).send(f"m{i}")
                await until(lambda: ("alice", "m2") in texts(inboxes["bob"]), "m2")
                await alice.close()
                for p in tmp_path.glob("alice.db*"):
                    p.unlink()
                for name, data in backup.items():  # the user restores the phone's backup
                    (tmp_path / name).write_bytes(data)
                alice = await device(tmp_path, "alice", hub)
                inboxes["alice"] = Inbox(alice)
                await asyncio.sleep(1.0)  # it reads its mailboxes (its own m0..m2 among them)
                dropped = bob.dropped
                with contextlib.suppress(TripleRatchetError):  # refusing to send is right
                    await alice.group(gid).send("after the restore")
                await asyncio.sleep(1.0)
                assert bob.dropped == dropped, "a blob under an already used message key"
            finally:
                await _close([alice, bob], inboxes)

    run(main())


# --- F15 (fixed): one notice whose common part never comes stalls the whole inbox for two minutes


def test_f15_a_notice_without_its_common_part_does_not_stall_the_inbox(tmp_path: Path) -> None:
    """F15 (fixed by h3-client 8613a48), was: _read_inbox awaits _fetch_common inline (up to
    COMMON_WAIT = 120 s): anyone who takes one of our join keys can stall our inbox (direct
    messages, invitations) for two minutes per notice"""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice, bob, mallory = [await device(tmp_path, n, hub)
                                   for n in ("alice", "bob", "mallory")]
            inboxes = {c.name: Inbox(c) for c in (alice, bob)}
            real_flush = mallory._flush

            async def no_flush() -> None:
                pass

            try:
                # Mallory (anyone: join keys are public) invites alice, and posts only the
                # notice, never the change's common part.
                mallory._flush = no_flush  # type: ignore[method-assign]
                await mallory.create_group("stall", [alice.identity])
                for seq, out in list(mallory._outbox.items()):
                    if out.kind != client_module.OUT_INBOX:
                        del mallory._outbox[seq]
                await real_flush()
                await asyncio.sleep(1.0)  # alice is waiting for the common part now
                await bob.send_direct(alice.identity, "are you there?")
                await until(lambda: ("bob", "are you there?") in direct(inboxes["alice"]),
                            "bob's message at alice", timeout=8)
            finally:
                await _close([alice, bob, mallory], inboxes)

    run(main())


# --- F16 (fixed): in a call the app makes, a hub refusal and a forged answer are the same error


def test_f16_a_hub_refusal_in_a_call_is_told_apart_from_a_forged_answer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """F16 (fixed by h3-client 8613a48), was: add_contact/send_direct/create_group raise the
    hub's refusal as ProtocolError/AuthenticationError/..., the very types a forged or
    corrupted directory answer raises: the app cannot tell them apart (issue 10: refusals
    are HubRefused and kin)"""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice = await device(tmp_path, "alice", hub)
            stranger = StorageKey.generate()  # never opened: no directory entry
            nobody = await Client.open(None, hub="ws://127.0.0.1:9", key=stranger,
                                       store=MemoryStore(), retry_timeout=0.1)
            await nobody.close()
            try:
                with pytest.raises(TripleRatchetError) as refused:
                    await alice.add_contact(nobody.identity)  # the hub: no such entry
                real = HubConnection.take_bundle

                async def forged(self: HubConnection, directory: bytes) -> Any:
                    taken = await real(self, directory)
                    return replace(taken, bundle=os.urandom(len(taken.bundle)))

                bob = await device(tmp_path, "bob", hub)
                monkeypatch.setattr(HubConnection, "take_bundle", forged)
                with pytest.raises(TripleRatchetError) as forgery:
                    await alice.add_contact(bob.identity)  # a hub that forges the entry
                monkeypatch.setattr(HubConnection, "take_bundle", real)
                await bob.close()
                assert isinstance(refused.value, HubRefused), type(refused.value)
                assert not isinstance(forgery.value, HubRefused), type(forgery.value)
            finally:
                await alice.close()

    run(main())


# --- F17 (fixed): a refused directory publish is silent (e.g. the entry was squatted) -------------


def test_f17_a_refused_directory_publish_is_reported(tmp_path: Path) -> None:
    """F17 (fixed by h3-client 8613a48), was: when the hub refuses our directory publish
    (another owner took the entry after it expired), _republish retries every tick forever
    and the app hears nothing: nobody can find the account"""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice = await device(tmp_path, "alice", hub)
            identity, suite = alice.identity, alice.suite
            await alice.close()
            clock.warp(31 * 24 * 3600.0)  # a month away: the entry expired at the hub
            squatter = AccessKey(suite, suite.generate_signing())
            conn = await HubConnection.connect(hub.url)
            await conn.authenticate(squatter)
            await conn.publish(directory_id(suite, identity), squatter.mailbox_id,
                               os.urandom(200))
            await conn.close()
            alice = await device(tmp_path, "alice", hub)
            inbox = Inbox(alice)
            try:
                await until(lambda: bool(inbox.of(Refused)), "the refusal reported", timeout=5)
            finally:
                await inbox.stop()
                await alice.close()

    run(main())


# --- F18 (fixed): caught_up while entries wait, unread, in the hub client's queue -----------------


def test_f18_caught_up_is_never_reported_with_unread_entries(tmp_path: Path) -> None:
    """F18 (fixed by h3-client 8613a48), was: 'quiet' only says no entry was taken from the
    hub client for a tick; when the reader is busy (a slow flush) entries wait in
    MailboxClient's queue and caught_up is reported anyway"""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            (alice, bob), inboxes, gid = await _group(tmp_path, hub, ("alice", "bob"))
            gs = bob._group_state(gid)
            conn = gs.conn
            assert conn is not None
            real_flush, real_caught_up = bob._flush, gs.session.caught_up
            violations: list[int] = []

            async def slow_flush() -> None:  # a slow hub on bob's side
                await asyncio.sleep(0.5)
                await real_flush()

            def caught_up(mailbox: bytes, now: float) -> Any:
                waiting = [e for e in list(conn._events._queue)  # type: ignore[attr-defined]
                           if e is not None and getattr(e, "mailbox", None) == mailbox]
                if waiting:
                    violations.append(len(waiting))
                return real_caught_up(mailbox, now)

            bob._flush = slow_flush  # type: ignore[method-assign]
            gs.session.caught_up = caught_up  # type: ignore[method-assign]
            try:
                for i in range(4):
                    await alice.group(gid).send(f"m{i}")
                await until(lambda: ("alice", "m3") in texts(inboxes["bob"]), "m3", timeout=20)
                assert not violations, f"caught_up with {violations} entries unread"
            finally:
                bob._flush = real_flush  # type: ignore[method-assign]
                await _close([alice, bob], inboxes)

    run(main())


# --- F19 (fixed): a member names someone before they are added ------------------------------------


def test_f19_a_member_cannot_name_someone_before_they_are_added(tmp_path: Path) -> None:
    """F19 (fixed by h3-client 50866d2), was: _take_info accepts any member's name for an
    identity not yet in the roster, and the adder's own INFO cannot replace it: a member who
    names Dave first decides what others see when Bob adds him"""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            (alice, mallory, carol, bob), inboxes, gid = await _group(
                tmp_path, hub, ("alice", "mallory", "carol", "bob"))
            dave = await device(tmp_path, "dave", hub)
            inboxes["dave"] = Inbox(dave)
            try:
                await _send_envelope(mallory, gid, Envelope(
                    INFO, os.urandom(16), names=((dave.identity, "alice"),)))
                await _send_envelope(mallory, gid, Envelope(TEXT, os.urandom(16), "x", b"x"))
                await until(lambda: ("mallory", "x") in texts(inboxes["carol"]), "mallory's info")
                clock.warp(61.0)
                await bob.group(gid).add(dave.identity)  # carol's inviter is alice, not bob
                await until(lambda: bool(inboxes["carol"].of(MembershipChanged)),
                            "epoch 2 at carol", warp=clock)
                changed = inboxes["carol"].of(MembershipChanged)[-1]
                added = [m.name for m in changed.added]  # type: ignore[attr-defined]
                assert added == ["dave"], f"carol is told bob added {added}"
            finally:
                await _close([alice, mallory, carol, bob, dave], inboxes)

    run(main(), 90)


# --- F20 (fixed): close() waits forever for a reader that lost one cancellation -------------------


def test_f20_close_returns_even_if_a_reader_lost_its_cancellation(tmp_path: Path) -> None:
    """F20 (fixed by h3-client 50866d2), was: close() cancels each task once and awaits it
    without a bound (swallowing its own cancellation meanwhile); a reader that lost the
    cancel (3.11's wait_for race in HubConnection._call) goes back to next_event() and
    close() never returns"""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            (alice, bob), inboxes, gid = await _group(tmp_path, hub, ("alice", "bob"))
            conn = alice._group_state(gid).conn
            assert conn is not None
            real = conn.next_event

            async def lost_once(timeout: float | None = None) -> Any:
                try:
                    return await real(timeout)
                except asyncio.CancelledError:
                    # Python 3.11's asyncio.wait_for returns the answer when the request
                    # completes in the loop iteration the task is cancelled in: the cancel
                    # is lost and the reader loops back (seen for real with 5 members).
                    return await real(timeout)

            conn.next_event = lost_once  # type: ignore[method-assign]
            await bob.group(gid).send("x")  # alice's reader comes back to next_event
            await until(lambda: ("bob", "x") in texts(inboxes["alice"]), "x")
            await asyncio.sleep(0.2)
            await inboxes["alice"].stop()
            loop = asyncio.get_running_loop()
            start = loop.time()
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(alice.close(), 8)
                assert loop.time() - start < 3, "close() hung"
            finally:
                await _close([bob], {"bob": inboxes["bob"]})

    run(main())


# --- F21, F22 (fixed): an entry the hub's LIMIT holds back ----------------------------------------


def test_f21_an_entry_held_back_by_limit_does_not_block_the_others(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """F21 (fixed by h3-client 1136f28), was: _flush returns at the first entry the hub's
    LIMIT holds back: one full inbox (anyone can fill one) or one rate-limited mailbox stops
    every other entry, in every group"""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            (alice, bob), inboxes, gid = await _group(tmp_path, hub, ("alice", "bob"))
            full = os.urandom(32)  # someone's inbox, full (LIMIT) for as long as this test
            real_put = HubConnection.put

            async def put(self: HubConnection, mailbox: bytes, blob: bytes,
                          msg_id: bytes) -> Any:
                if mailbox == full:
                    raise LimitExceeded("hub refused: mailbox full")
                return await real_put(self, mailbox, blob, msg_id)

            monkeypatch.setattr(HubConnection, "put", put)
            monkeypatch.setattr(client_module, "LIMIT_TRIES", 10**6, raising=False)  # held back
            try:
                with alice._store.transaction() as tx:  # a notice for that inbox, first in line
                    held = client_module._Out(alice._next_seq, os.urandom(16),
                                              client_module.OUT_INBOX, gid, full, b"n" * 64)
                    tx.put("outbox", held.seq.to_bytes(8, "big"), held.to_bytes())
                alice._next_seq += 1
                alice._outbox[held.seq] = held
                await alice.group(gid).send("not held back")
                await until(lambda: ("alice", "not held back") in texts(inboxes["bob"]),
                            "the group message", timeout=5)
            finally:
                await _close([alice, bob], inboxes)

    run(main())


def test_f22_a_burst_during_a_rate_limit_loses_nothing(tmp_path: Path) -> None:
    """F22 (fixed by h3-client 1136f28), was: LIMIT_TRIES counts flushes, not ticks: every
    send and every entry read flushes, so a burst during a rate limit (when a limit happens)
    uses the 60 tries up in a moment and the message is dropped"""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            (alice, bob), inboxes, gid = await _group(tmp_path, hub, ("alice", "bob"))
            conn = alice._group_state(gid).conn
            assert conn is not None
            real = conn.put_entry
            loop = asyncio.get_running_loop()
            limited_until = loop.time() + 2.0  # the hub's rate limit, for two seconds

            async def put_entry(mailbox: bytes, blob: bytes, msg_id: bytes | None = None
                                ) -> Any:
                if loop.time() < limited_until:
                    raise LimitExceeded("hub refused: rate limited")
                return await real(mailbox, blob, msg_id)

            conn.put_entry = put_entry  # type: ignore[method-assign]
            try:
                for i in range(70):  # a burst (a paste, a bot, a reconnect's catch-up)
                    await alice.group(gid).send(f"m{i}")
                await until(lambda: ("alice", "m69") in texts(inboxes["bob"]), "m69",
                            timeout=15)
                got = [t for _, t in texts(inboxes["bob"])]
                assert [f"m{i}" for i in range(70) if f"m{i}" not in got] == []
                assert not inboxes["alice"].of(Refused)
            finally:
                await _close([alice, bob], inboxes)

    run(main())


# --- F23 (fixed): any stranger makes us keep pending rejoins, without bound or end ----------------


def test_f23_hints_from_a_stranger_cannot_pile_up_pending_rejoins(tmp_path: Path) -> None:
    """F23 (fixed by h3-client 50866d2), was: a membership hint from anyone with a pairwise
    session (anyone: it starts from our directory) stores a PendingRejoin per group id,
    never expired, each tried on every notice: unbounded"""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice, mallory = [await device(tmp_path, n, hub) for n in ("alice", "mallory")]
            inboxes = {"alice": Inbox(alice)}
            try:
                for _ in range(40):  # hints for groups that do not exist
                    gid = os.urandom(32)
                    hint = MembershipHint(alice.suite, gid, os.urandom(32), 1).to_bytes()
                    await mallory._encrypt_direct(alice.identity, Envelope(
                        MEMBERSHIP_HINT, os.urandom(16), data=hint, group_id=gid).to_bytes())
                await mallory._flush()
                await asyncio.sleep(2.0)
                assert len(alice._rejoins) <= 8, f"{len(alice._rejoins)} pending rejoins"
            finally:
                await _close([alice, mallory], inboxes)

    run(main())


# --- F24 (fixed): a commit that fails (disk full) loses the entry it was for ----------------------


def test_f24_a_failed_commit_loses_no_message(tmp_path: Path) -> None:
    """F24 (fixed by h3-client c3e78a6), was: when the store cannot commit a step (disk
    full), the reader counts the entry dropped but keeps the session the failed step
    advanced in memory: the next commit saves it past the entry, whose message is never
    delivered"""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            (alice, bob), inboxes, gid = await _group(tmp_path, hub, ("alice", "bob"))
            await asyncio.sleep(0.5)  # the joins' own entries are read by now
            real, real_deliver = alice._commit, alice._deliver
            full = [1]
            delivering = [False]

            def commit(gs: Any, out: Any, *args: Any, **kw: Any) -> None:
                if full and delivering[0]:
                    full.pop()  # the disk is full for one transaction (it rolls back whole)
                    raise sqlite3.OperationalError("database or disk is full")
                real(gs, out, *args, **kw)

            async def deliver(gs: Any, d: Any) -> None:
                delivering[0] = True
                try:
                    await real_deliver(gs, d)
                finally:
                    delivering[0] = False

            alice._commit = commit  # type: ignore[method-assign]
            alice._deliver = deliver  # type: ignore[method-assign]
            try:
                await bob.group(gid).send("m1")
                await asyncio.sleep(0.5)
                await bob.group(gid).send("m2")
                await until(lambda: ("bob", "m2") in texts(inboxes["alice"]), "m2")
                await until(lambda: ("bob", "m1") in texts(inboxes["alice"]), "m1", timeout=5)
            finally:
                await _close([alice, bob], inboxes)

    run(main())


# --- F25 (fixed): direction marks and line separators stay in names -------------------------------


def test_f25_names_carry_no_direction_marks_or_line_separators() -> None:
    """F25 (fixed by h3-client 50866d2), was: clean_name drops Cc and the bidi
    overrides/isolates, not the direction marks (U+200E/200F/061C, which reorder what is
    around them) nor the line/paragraph separators (U+2028/2029)"""
    identity = IdentityKeyPair.generate(DEFAULT_SUITE).public.to_bytes()
    evil = "ali\u200fce\u200e \u061c(admin)\u2028\u2029bob"
    name = Invite.parse(str(Invite(identity, evil))).name
    assert not set(name) & set("\u200e\u200f\u061c\u2028\u2029"), repr(name)
    assert "\U0001f468\u200d\U0001f469" in Invite.parse(str(Invite(  # ZWJ emoji stay whole
        identity, "\U0001f468\u200d\U0001f469"))).name


# --- F26 (fixed): four stalled notices hold every join slot ---------------------------------------


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


def test_f26_stalled_notices_do_not_hold_up_a_real_invitation(tmp_path: Path) -> None:
    """F26 (fixed by h3-client c3e78a6), was: joins run in tasks now, but at most 4 at once
    (_join_slots), each held up to COMMON_WAIT: four stalled notices (join keys are public)
    keep every real invitation waiting two minutes, and the inbox is not acknowledged
    meanwhile"""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice, bob = [await device(tmp_path, n, hub) for n in ("alice", "bob")]
            strangers = [await device(tmp_path, f"m{i}", hub) for i in range(4)]
            inboxes = {c.name: Inbox(c) for c in (alice, bob)}
            try:
                for mallory in strangers:
                    await _stalling_invite(mallory, alice)
                await asyncio.sleep(1.0)  # alice waits for four common parts now
                group = await bob.create_group("real", [alice.identity])
                await until(lambda: any(e.group.id == group.id  # type: ignore[attr-defined]
                                        for e in inboxes["alice"].of(GroupJoined)),
                            "alice joins bob's group", timeout=8)
            finally:
                await _close([alice, bob, *strangers], inboxes)

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

__all__: list[str] = []
_ = (Refused, MailboxClient, logging)
