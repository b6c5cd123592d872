"""The group message path's fast paths on version 2 (spec 09 §9.11) give exactly what the general
code gives: the tests of test_group_fastpath.py that drive version 1's GroupSession, on version-2
epoch states and the v2 message path (`encrypt_v2`, `parse_v2`, `receive_v2`)."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import Any

import pytest

from triple_ratchet.errors import RemoteError
from triple_ratchet.group import message_path
from triple_ratchet.group.epoch import EpochState, Member, evolve
from triple_ratchet.group.events import MessageReceived
from triple_ratchet.group.key_schedule import derive_epoch_v2
from triple_ratchet.group.message import (
    CONTENT_APPLICATION,
    VERSION,
    GroupMessage,
    _sender_data_key_nonce,
)
from triple_ratchet.group.message_path import encrypt_v2, expire_in_epoch, parse_v2, receive_v2
from triple_ratchet.group.ordering import Held
from triple_ratchet.group.records import RecordKeys
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import CLASSICAL_SUITES, DEFAULT_SUITE, Suite

SUITES = pytest.mark.parametrize("suite", CLASSICAL_SUITES, ids=lambda s: s.name)
T = 1_700_000_000_000


def _epoch(n: int, suite: Suite = DEFAULT_SUITE) -> list[EpochState]:
    rng = DeterministicRandom(b"fastpath v2")
    keys = [RecordKeys.generate(suite, rng) for _ in range(n)]
    roster = [Member(b"member-%d" % i, k.signing_public) for i, k in enumerate(keys)]
    secrets = derive_epoch_v2(suite, rng(suite.hash_len), suite.hash(b"context"), n)
    return [EpochState.from_secrets_v2(secrets, group_id=b"G" * 16, epoch=3, roster=roster,
                                       own_index=i, signing_key=k.signing_key)
            for i, k in enumerate(keys)]


def _send(state: EpochState, body: bytes) -> tuple[bytes, EpochState]:
    out, new = encrypt_v2(state, body, DeterministicRandom(b"send " + body))
    return out.blob, new


def _outcome(f: Callable[[], Any]) -> Any:
    try:
        return ("ok", f())
    except RemoteError as exc:
        return ("error", type(exc))


def _mutations(blob: bytes, rnd: random.Random) -> list[bytes]:
    out = [blob[:-1], blob + b"\x00", blob[:40], b"", blob[:1]]
    for _ in range(150):
        b = bytearray(blob)
        i = rnd.randrange(min(len(b), 80)) if rnd.random() < 0.8 else rnd.randrange(len(b))
        b[i] = rnd.randrange(256)
        out.append(bytes(b))
    return out


@SUITES
def test_v2_blob_fast_parse_agrees_with_strict_parse(suite: Suite) -> None:
    rnd = random.Random(1)
    a, _ = _epoch(2, suite)
    blob, a = _send(a, bytes(100))
    big, _ = _send(a, bytes(60_000))  # a 64 KiB bucket: a 4-byte length
    for candidate in [blob, big, *_mutations(blob, rnd), *_mutations(big, rnd)[:40]]:
        fast = GroupMessage._parse_canonical(suite, candidate, VERSION)
        strict = _outcome(lambda c=candidate: GroupMessage._parse_strict(suite, c, VERSION))
        if fast is not None:
            assert strict == ("ok", fast)
        assert _outcome(lambda c=candidate: GroupMessage.from_bytes(
            suite, c, version=VERSION)) == strict
    assert GroupMessage._parse_canonical(suite, blob, VERSION) is not None
    assert GroupMessage._parse_canonical(suite, big, VERSION) is not None


def test_v2_evolve_copies_and_refuses_unknown_fields() -> None:
    state, _ = _epoch(2)
    new = evolve(state, last_seen=b"x" * 32)
    assert new.last_seen == b"x" * 32 and state.last_seen == b""
    assert new.roster is state.roster
    with pytest.raises(TypeError):
        evolve(state, last_sene=b"")


@SUITES
def test_v2_failed_receive_after_steady_traffic_changes_nothing_and_traffic_continues(
        suite: Suite) -> None:
    a, b, _ = _epoch(3, suite)
    for i in range(5):
        blob, a = _send(a, b"m%d" % i)
        _, b = receive_v2(b, parse_v2(b, blob), T, T)
    blob, a = _send(a, b"next")
    before = b.to_bytes()
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(RemoteError):
        receive_v2(b, parse_v2(b, tampered), T, T)
    assert b.to_bytes() == before
    events, _ = receive_v2(b, parse_v2(b, blob), T, T)
    assert [e.body for e in events if isinstance(e, MessageReceived)] == [b"next"]


@SUITES
def test_v2_sender_data_hmac_of_the_state_gives_the_same_keys(suite: Suite) -> None:
    state, _ = _epoch(2, suite)
    ciphertext = bytes(range(256))
    plain = _sender_data_key_nonce(suite, state.sender_data_secret, ciphertext)
    for _ in range(2):  # the cached HMAC is copied, never consumed
        assert _sender_data_key_nonce(suite, state.sender_data_secret, ciphertext,
                                      state.sender_data_hmac()) == plain
    copied = copy.deepcopy(state)
    assert copied.to_bytes() == state.to_bytes()
    assert state.sender_data_secret.hex() not in repr(state) + repr(state.sd_mac)


def _generic_order(state: EpochState, content: Any, now_ms: int) -> Any:
    """order_in_epoch without its in-order shortcut (the general path)."""
    suite = state.suite
    body = content.body if content.content_type == CONTENT_APPLICATION else b""
    held = Held(content.generation, content.content_type, content.last_seen,
                content.digest(suite),
                not content.last_seen or state.knows(content.last_seen), now_ms, body)
    result, order = state.order[content.sender].accept(held, now_ms)
    state = message_path._deliveries_seen(state.with_order(content.sender, order), result)
    return message_path._events_for(state, content.sender, result), state


@pytest.mark.parametrize("seed", range(4))
def test_v2_in_order_shortcut_matches_the_general_ordering(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(seed)
    a, _, c = _epoch(3)
    blobs = []
    for i in range(40):
        if i < 10 or rnd.random() < 0.6:
            blob, a = _send(a, b"m%d" % i)
        else:
            blob, c = _send(c, b"m%d" % i)
        blobs.append(blob)
    # Mostly in order, with swaps, drops and a late expiry: every ordering branch is taken.
    for _ in range(8):
        i = rnd.randrange(len(blobs) - 1)
        blobs[i], blobs[i + 1] = blobs[i + 1], blobs[i]
    del blobs[rnd.randrange(20, len(blobs))]
    del blobs[5]  # one of a's first ten: a gap that never fills
    runs = []
    for shortcut in (True, False):
        if not shortcut:
            monkeypatch.setattr(message_path, "order_in_epoch", _generic_order)
        _, receiver, _ = _epoch(3)
        events: list[Any] = []
        for k, blob in enumerate(blobs):
            got, receiver = receive_v2(receiver, parse_v2(receiver, blob), T + k * 1000,
                                       T + k)
            events += got
        got, receiver = expire_in_epoch(receiver, T + 10_000_000)
        runs.append((events + got, receiver.to_bytes()))
    assert runs[0] == runs[1]
    kinds = {type(e).__name__ for e in runs[0][0]}
    assert {"MessageReceived", "GapDetected", "MessagesLost"} <= kinds
