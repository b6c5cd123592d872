"""A state restored from an older copy (a backup, a rolled-back store row) that reads its own
later messages (review-client F14): the group layer says so with `StaleStateError`, only for a
message that authenticates as ours (anyone in the epoch can write our index), and the client
stops sending in that group and asks to rejoin (spec 09 §9.6, spec 15.1/15.2)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from client_support import Inbox, LocalHub, WarpClock, device, until
from group_v2_sim import Hub, create, make_node, settle

from triple_ratchet.client import GroupJoined, GroupMessage, RejoinNeeded
from triple_ratchet.errors import ProtocolError, StaleStateError, StateError, TripleRatchetError
from triple_ratchet.group.epoch import EpochState, Member
from triple_ratchet.group.key_schedule import derive_epoch_v2
from triple_ratchet.group.message_path import encrypt_v2, parse_v2, receive_v2
from triple_ratchet.group.records import RecordKeys
from triple_ratchet.group.sender_chain import MAX_FORWARD, SendingChain
from triple_ratchet.group.session import GroupSession
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import ALL_SUITES, DEFAULT_SUITE, Suite

T = 1_700_000_000_000


def _epoch(n: int, suite: Suite = DEFAULT_SUITE) -> tuple[list[EpochState], list[RecordKeys]]:
    rng = DeterministicRandom(b"stale state")
    keys = [RecordKeys.generate(suite, rng) for _ in range(n)]
    roster = [Member(b"member-%d" % i, k.signing_public) for i, k in enumerate(keys)]
    secrets = derive_epoch_v2(suite, rng(suite.hash_len), suite.hash(b"group context"), n)
    return [EpochState.from_secrets_v2(secrets, group_id=b"group", epoch=1, roster=roster,
                                       own_index=i, signing_key=k.signing_key)
            for i, k in enumerate(keys)], keys


def _send(state: EpochState, text: bytes) -> tuple[bytes, EpochState]:
    out, new = encrypt_v2(state, text, DeterministicRandom(text))
    return out.blob, new


def _recv(state: EpochState, blob: bytes) -> object:
    return receive_v2(state, parse_v2(state, blob), T, T)


# --- the group layer ------------------------------------------------------------------------


@pytest.mark.parametrize("suite", ALL_SUITES, ids=lambda s: s.name)
def test_an_old_copy_reading_its_own_later_message_is_told_it_is_stale(suite: Suite) -> None:
    (alice, _bob), _ = _epoch(2, suite)
    backup = alice  # immutable: the state as a backup holds it
    later = alice
    blobs = []
    for text in (b"m0", b"m1", b"m2"):
        blob, later = _send(later, text)
        blobs.append(blob)
    before = backup.to_bytes()
    for blob in blobs:  # each of the later copy's messages
        with pytest.raises(StaleStateError, match="old copy"):
            _recv(backup, blob)
        assert backup.to_bytes() == before
    # The copy that sent them ignores them as echoes.
    for blob in blobs:
        assert _recv(later, blob) == ([], later)


def test_a_forged_message_claiming_our_index_is_not_taken_for_staleness() -> None:
    (alice, bob), keys = _epoch(2)
    before = alice.to_bytes()
    # Bob holds the epoch's secrets: he derives Alice's chain and writes her index, signing with
    # his own key (the chain and AEAD are right, the signature is not hers).
    as_alice = replace(alice, signing_key=keys[1].signing_key.to_bytes(), signer=None)
    for generation in (0, 5):
        forged = replace(as_alice, sending=_advanced(as_alice.sending, generation))
        blob, _ = _send(forged, b"forged")
        with pytest.raises(ProtocolError) as raised:
            _recv(alice, blob)
        assert not isinstance(raised.value, StaleStateError)
        assert alice.to_bytes() == before
    # A chain Bob made up under Alice's index, at a high generation.
    made_up = replace(bob, own_index=0, sending=SendingChain(bytes(alice.suite.hash_len), 900))
    blob, _ = _send(made_up, b"made up")
    with pytest.raises(ProtocolError) as raised:
        _recv(alice, blob)
    assert not isinstance(raised.value, StaleStateError)
    assert alice.to_bytes() == before


def test_an_authentic_own_message_past_the_forward_bound_is_not_opened() -> None:
    (alice, _bob), _ = _epoch(2)
    later = replace(alice, sending=_advanced(alice.sending, MAX_FORWARD + 1))
    blob, _ = _send(later, b"far ahead")
    with pytest.raises(ProtocolError) as raised:
        _recv(alice, blob)
    assert not isinstance(raised.value, StaleStateError)
    near = replace(alice, sending=_advanced(alice.sending, MAX_FORWARD))
    blob, _ = _send(near, b"at the bound")
    with pytest.raises(StaleStateError):
        _recv(alice, blob)


def _advanced(chain: SendingChain, generation: int) -> SendingChain:
    while chain.generation < generation:
        _, chain = chain.step(DEFAULT_SUITE)
    return chain


def test_a_restored_group_session_reading_its_own_later_message_is_stale() -> None:
    hub = Hub()
    a, b, c = (make_node(n) for n in "ABC")
    create(hub, a, [b, c])
    settle(hub, [a, b, c])
    assert a.session is not None
    saved = a.session.to_bytes()
    (out,) = a.session.encrypt(b"from the later copy", hub.now)
    hub.post([out])
    settle(hub, [a, b, c])
    assert b.messages()[-1] == b"from the later copy"
    restored = GroupSession.from_bytes(saved, a.identity)
    with pytest.raises(StaleStateError):
        restored.receive(out.blob, hub.now, entry_time=hub.t)
    assert restored.to_bytes() == saved
    # Read again (a reader that retries): the same answer, still nothing changed.
    with pytest.raises(StaleStateError):
        restored.receive(out.blob, hub.now, entry_time=hub.t)
    assert restored.to_bytes() == saved


# --- the client (review-client F14) ---------------------------------------------------------


def _run(coro: Any, timeout: float = 90) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


def _texts(inbox: Inbox) -> list[tuple[str, str | None]]:
    return [(e.sender.name, e.text) for e in inbox.of(GroupMessage)]  # type: ignore[attr-defined]


def test_f14_a_restored_backup_never_reuses_a_message_key(tmp_path: Path) -> None:
    """Alice's phone is restored from a backup taken before she sent m0..m2: reading her group
    mailbox from the old cursor she meets her own later messages. She must not send under the
    generations they used (bob would drop those as replays while she thinks they went out):
    she stops sending in that epoch, says `RejoinNeeded` (once), keeps the mark across a
    restart, and is back once the rejoin brings a new epoch."""
    async def main() -> None:
        clock = WarpClock()
        async with LocalHub(tmp_path / "hub.db", clock) as hub:
            alice, bob = [await device(tmp_path, n, hub) for n in ("alice", "bob")]
            inboxes = {c.name: Inbox(c) for c in (alice, bob)}
            gid = (await alice.create_group("g", [bob.identity])).id
            await until(lambda: bool(inboxes["bob"].of(GroupJoined)), "bob joins")
            clients = [alice, bob]
            try:
                await inboxes["alice"].stop()
                await alice.close()
                backup = {p.name: p.read_bytes() for p in tmp_path.glob("alice.db*")}
                alice = clients[0] = await device(tmp_path, "alice", hub)
                for i in range(3):
                    await alice.group(gid).send(f"m{i}")
                await until(lambda: ("alice", "m2") in _texts(inboxes["bob"]), "m2")
                await alice.close()
                for p in tmp_path.glob("alice.db*"):
                    p.unlink()
                for name, data in backup.items():  # the user restores the phone's backup
                    (tmp_path / name).write_bytes(data)
                alice = clients[0] = await device(tmp_path, "alice", hub)
                inboxes["alice"] = Inbox(alice)
                await until(lambda: bool(inboxes["alice"].of(RejoinNeeded)), "RejoinNeeded")
                dropped = bob.dropped
                group = alice.group(gid)
                assert group.epoch == 1  # no hub time passed: no epoch change yet
                with pytest.raises(StateError, match="old copy"):
                    await group.send("after the restore")
                for verb in (group.refresh, lambda: group.remove(bob.identity),
                             lambda: group.add(b"x" * 32)):
                    with pytest.raises(StateError, match="old copy"):
                        await verb()
                # The mark survives a restart (the entries that showed it are not read again).
                await inboxes["alice"].stop()
                await alice.close()
                alice = clients[0] = await device(tmp_path, "alice", hub)
                inboxes["alice"] = Inbox(alice)
                with pytest.raises(StateError, match="old copy"):
                    await alice.group(gid).send("after the restart")
                await asyncio.sleep(1.0)
                assert bob.dropped == dropped, "a blob under an already used message key"
                assert not inboxes["alice"].of(RejoinNeeded)  # asked once for this epoch
                # Bob answers the rejoin request with a resume: a new epoch, fresh chains.
                await until(lambda: alice.group(gid).epoch >= 2 and bob.group(gid).epoch >= 2,
                            "the resume's epoch", warp=clock)
                await alice.group(gid).send("back")
                await until(lambda: ("alice", "back") in _texts(inboxes["bob"]), "back at bob")
                assert bob.dropped == dropped
            finally:
                for inbox in inboxes.values():
                    await inbox.stop()
                for c in clients:
                    with contextlib.suppress(TripleRatchetError):
                        await c.close()

    _run(main())
