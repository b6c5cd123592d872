"""The group message path's fast paths, through version 1's GroupSession (moved out of
test_group_fastpath.py, which keeps the version-neutral ones; test_group_fastpath_v2.py checks
the same fast paths on version 2). Deleting version 1 deletes this file."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import Any

import pytest
from test_group_support import T0, T0_MS, make_group

from triple_ratchet import cbor
from triple_ratchet.errors import RemoteError
from triple_ratchet.group.epoch import EpochState, evolve
from triple_ratchet.group.events import MessageReceived, Outgoing
from triple_ratchet.group.message import (
    GroupMessage,
    _sender_data_key_nonce,
    unpad,
)
from triple_ratchet.suites import ALL_SUITES, Suite


def _outcome(f: Callable[[], Any]) -> Any:
    try:
        return ("ok", f())
    except RemoteError as exc:
        return ("error", type(exc))


def _mutations(blob: bytes, rnd: random.Random) -> list[bytes]:
    out = [blob[:-1], blob + b"\x00", blob[:40], b"", blob[:1]]
    for _ in range(150):
        b = bytearray(blob)
        # Heads and lengths live in the first ~80 bytes: mutate there most.
        i = rnd.randrange(min(len(b), 80)) if rnd.random() < 0.8 else rnd.randrange(len(b))
        b[i] = rnd.randrange(256)
        out.append(bytes(b))
    # Same fields under a non-shortest head: the strict decoder refuses them.
    out.append(blob[:38] + b"\x59\x00\x20" + blob[40:])
    if blob[72] == 0x59:
        out.append(blob[:72] + b"\x5a\x00\x00" + blob[73:])
    return out


def _one_blob(suite: Suite, size: int = 100) -> tuple[bytes, Any]:
    (a, b, _), _ = make_group(3, suite)
    (out,) = a.encrypt(bytes(size), T0)
    assert isinstance(out, Outgoing)
    return out.blob, b


@pytest.mark.parametrize("suite", ALL_SUITES, ids=lambda s: s.name)
def test_blob_fast_parse_agrees_with_strict_parse(suite: Suite) -> None:
    rnd = random.Random(1)
    blob, _ = _one_blob(suite)
    big, _ = _one_blob(suite, 60_000)  # a 64 KiB bucket: a 4-byte length
    for candidate in [blob, big, *_mutations(blob, rnd), *_mutations(big, rnd)[:40]]:
        fast = GroupMessage._parse_canonical(suite, candidate)
        strict = _outcome(lambda c=candidate: GroupMessage._parse_strict(suite, c))
        if fast is not None:
            assert strict == ("ok", fast)
        assert _outcome(lambda c=candidate: GroupMessage.from_bytes(suite, c)) == strict
    assert GroupMessage._parse_canonical(suite, blob) is not None
    assert GroupMessage._parse_canonical(suite, big) is not None and big[72] == 0x5A


def test_evolve_copies_and_refuses_unknown_fields() -> None:
    (a, *_), _ = make_group(2)
    state = a._s.epoch
    assert isinstance(state, EpochState)
    new = evolve(state, last_seen=b"x" * 32)
    assert new.last_seen == b"x" * 32 and state.last_seen == b""
    assert new.roster is state.roster
    with pytest.raises(TypeError):
        evolve(state, last_sene=b"")


@pytest.mark.parametrize("suite", ALL_SUITES, ids=lambda s: s.name)
def test_failed_receive_after_steady_traffic_changes_nothing_and_traffic_continues(
        suite: Suite) -> None:
    (a, b, _), _ = make_group(3, suite)
    for i in range(5):
        (out,) = a.encrypt(b"m%d" % i, T0)
        assert isinstance(out, Outgoing)
        b.receive(out.blob, T0, entry_time=T0_MS)
    (out,) = a.encrypt(b"next", T0)
    assert isinstance(out, Outgoing)
    before = b.to_bytes()
    tampered = out.blob[:-1] + bytes([out.blob[-1] ^ 1])
    with pytest.raises(RemoteError):
        b.receive(tampered, T0, entry_time=T0_MS)
    assert b.to_bytes() == before
    events, _ = b.receive(out.blob, T0, entry_time=T0_MS)
    assert [e.body for e in events if isinstance(e, MessageReceived)] == [b"next"]
    assert unpad(b"ab\x80\x00") == b"ab"


@pytest.mark.parametrize("suite", ALL_SUITES, ids=lambda s: s.name)
def test_sender_data_hmac_of_the_state_gives_the_same_keys(suite: Suite) -> None:
    (a, *_), _ = make_group(2, suite)
    state = a._s.epoch
    assert isinstance(state, EpochState)
    ciphertext = bytes(range(256))
    plain = _sender_data_key_nonce(suite, state.sender_data_secret, ciphertext)
    for _ in range(2):  # the cached HMAC is copied, never consumed
        assert _sender_data_key_nonce(suite, state.sender_data_secret, ciphertext,
                                      state.sender_data_hmac()) == plain
    copied = copy.deepcopy(a)
    assert copied.to_bytes() == a.to_bytes()
    assert state.sender_data_secret.hex() not in repr(state) + repr(state.sd_mac)


def test_attempt_mailbox_is_derived_once_and_follows_its_proposal() -> None:
    from dataclasses import replace

    from test_group_epoch_change import create

    from triple_ratchet.group.key_schedule import derive_attempt

    attempts = []
    for proposer in "ab":  # two groups alike, each with its own proposal read back
        net = create(3)
        net.send(proposer, net.members[proposer].propose(net.now))
        net.read(proposer, net.members[proposer].mailbox_id)
        attempts.append(net.members[proposer]._s.attempt)
    attempt_a, attempt_b = attempts
    assert attempt_a is not None and attempt_b is not None
    want = derive_attempt(attempt_a.suite, attempt_a.proposal.proposal.attempt_secret)
    assert attempt_a.mailbox() == (want.mailbox.mailbox_id, want.traffic_key)
    assert attempt_a.derived is not None and attempt_a.mailbox() == attempt_a.mailbox()
    assert attempt_a.mailbox_access_key().to_bytes() == want.mailbox.access_key.to_bytes()
    # A copy with a different proposal never returns the cached secrets of the old one.
    other = replace(attempt_a, proposal=attempt_b.proposal)
    assert other.derived is attempt_a.derived
    assert other.mailbox() == attempt_b.mailbox() != attempt_a.mailbox()


def _generic_order(state: EpochState, content: Any, now_ms: int) -> Any:
    """order_in_epoch without its in-order shortcut (the general path, as it was)."""
    from triple_ratchet.group import message_path
    from triple_ratchet.group.message import CONTENT_APPLICATION
    from triple_ratchet.group.ordering import Held

    suite = state.suite
    body = content.body if content.content_type == CONTENT_APPLICATION else b""
    held = Held(content.generation, content.content_type, content.last_seen,
                content.digest(suite),
                not content.last_seen or state.knows(content.last_seen), now_ms, body)
    result, order = state.order[content.sender].accept(held, now_ms)
    state = message_path._deliveries_seen(state.with_order(content.sender, order), result)
    return message_path._events_for(state, content.sender, result), state


@pytest.mark.parametrize("seed", range(4))
def test_in_order_shortcut_matches_the_general_ordering(seed: int,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from triple_ratchet.group import session

    rnd = random.Random(seed)
    (a, _, c), _ = make_group(3)
    blobs = []
    for i in range(40):
        sender = a if i < 10 or rnd.random() < 0.6 else c
        (out,) = sender.encrypt(b"m%d" % i, T0)
        assert isinstance(out, Outgoing)
        blobs.append(out.blob)
    # Mostly in order, with swaps, drops and a late tick: every ordering branch is taken.
    for _ in range(8):
        i = rnd.randrange(len(blobs) - 1)
        blobs[i], blobs[i + 1] = blobs[i + 1], blobs[i]
    del blobs[rnd.randrange(20, len(blobs))]
    del blobs[5]  # one of a's first ten: a gap that never fills
    runs = []
    for shortcut in (True, False):
        if not shortcut:
            monkeypatch.setattr(session, "order_in_epoch", _generic_order)
        (_, receiver, _), _ = make_group(3)
        events: list[Any] = []
        for k, blob in enumerate(blobs):
            got, _ = receiver.receive(blob, T0 + k, entry_time=T0_MS + k * 1000)
            events += got
        got, _ = receiver.tick(T0 + 10_000)
        runs.append((events + got, receiver.to_bytes()))
    assert runs[0] == runs[1]
    kinds = {type(e).__name__ for e in runs[0][0]}
    assert {"MessageReceived", "GapDetected", "MessagesLost"} <= kinds


def test_malformed_group_blob_still_meets_the_attempt_peek_first() -> None:
    from triple_ratchet.errors import LimitExceeded

    (_, b, _), _ = make_group(3)
    before = b.to_bytes()
    # Looks like a group message (type 0x20) but nests deeper than any wire message: the
    # strict peek at attempt blobs refuses it before the group path is tried, as before.
    blob = cbor.encode([0x20, [[1]], b"", b"", b""])
    with pytest.raises(LimitExceeded):
        b.receive(blob, T0, entry_time=T0_MS)
    assert b.to_bytes() == before
