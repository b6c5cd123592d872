"""A saved session's control log is loaded by judging its kept entries again (11.v2.35): every
kept entry must be kept again exactly as saved, and all of them must be there. A tampered,
dropped, repeated or reordered kept entry makes `GroupSession.from_bytes` raise `DecodeError`
(one strict decoder: never a shorter log that re-encodes differently)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import pytest
from group_v2_sim import Hub, create, make_node, settle

from triple_ratchet import cbor
from triple_ratchet.errors import DecodeError
from triple_ratchet.group.session import GroupSession
from triple_ratchet.identity import IdentityKeyPair

LOG_FIELD = 6  # the control log in a saved session (GroupSession.to_bytes)
KEPT_FIELD = 13  # the kept entries in a saved control log (ControlLog.to_bytes)

Kept = list[cbor.CborValue]


@cache
def _saved() -> tuple[bytes, IdentityKeyPair]:
    """B's saved session in the middle of an epoch change (a proposal, announcements, round
    items and records kept in epoch 1's control log)."""
    hub = Hub()
    a, b, c, d = (make_node(n) for n in "ABCD")
    create(hub, a, [b, c])
    settle(hub, [a, b, c])
    assert a.session is not None and b.session is not None
    hub.post(a.session.propose(hub.now, add=[d.take_join_key()]))
    for _ in range(40):  # until round-1 items are in the log
        for n in (a, b, c):
            n.pump(hub)
        if b.session.control_log.run.phase not in ("waiting", "announce"):
            break
        hub.advance(500)
    assert b.session.epoch == 1
    return b.session.to_bytes(), b.identity


def _kept(data: bytes) -> Kept:
    log = cbor.as_list(cbor.decode(cbor.as_list(cbor.decode(data), "s")[LOG_FIELD]), "log")
    return list(cbor.as_list(log[KEPT_FIELD], "kept"))


def _with_kept(data: bytes, change: Callable[[Kept], Kept]) -> bytes:
    state = list(cbor.as_list(cbor.decode(data), "state"))
    log = list(cbor.as_list(cbor.decode(cbor.as_bytes(state[LOG_FIELD], "log")), "log"))
    log[KEPT_FIELD] = change(list(cbor.as_list(log[KEPT_FIELD], "kept")))
    state[LOG_FIELD] = cbor.encode(log)
    return cbor.encode(state)


def _blob(entry: cbor.CborValue) -> bytes:
    return cbor.as_bytes(cbor.as_list(entry, "entry")[2], "blob")


def _readable() -> list[int]:
    """Indices of kept entries saved whole (a time marker is kept with an empty blob)."""
    return [i for i, e in enumerate(_kept(_saved()[0])) if _blob(e)]


def test_the_saved_state_has_entries_to_tamper_with() -> None:
    data, _ = _saved()
    assert len(_kept(data)) >= 6 and len(_readable()) >= 6


def test_the_untouched_state_round_trips_byte_identically() -> None:
    data, identity = _saved()
    assert GroupSession.from_bytes(data, identity).to_bytes() == data
    # Re-encoding our own decoding changes nothing either (the mutations below are real).
    assert _with_kept(data, lambda kept: kept) == data


def _refused(data: bytes) -> None:
    _, identity = _saved()
    with pytest.raises(DecodeError):
        GroupSession.from_bytes(data, identity)


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_flipped_byte_in_any_kept_entry_is_refused(where: str) -> None:
    data, _ = _saved()
    for i in _readable():
        blob = _blob(_kept(data)[i])
        at = {"first": 0, "middle": len(blob) // 2, "last": len(blob) - 1}[where]
        flipped = blob[:at] + bytes([blob[at] ^ 0x01]) + blob[at + 1:]

        def change(kept: Kept, i: int = i, flipped: bytes = flipped) -> Kept:
            entry = list(cbor.as_list(kept[i], "entry"))
            entry[2] = flipped
            kept[i] = entry
            return kept

        _refused(_with_kept(data, change))


def test_a_dropped_kept_entry_is_refused() -> None:
    data, _ = _saved()
    for i in range(len(_kept(data))):
        _refused(_with_kept(data, lambda kept, i=i: kept[:i] + kept[i + 1:]))


def test_a_repeated_kept_entry_is_refused() -> None:
    data, _ = _saved()
    for i in range(len(_kept(data))):
        _refused(_with_kept(data, lambda kept, i=i: kept[:i + 1] + kept[i:]))


def test_two_kept_entries_swapped_are_refused() -> None:
    data, _ = _saved()
    for i in range(len(_kept(data)) - 1):
        _refused(_with_kept(data, lambda kept, i=i: [*kept[:i], kept[i + 1], kept[i],
                                                      *kept[i + 2:]]))

