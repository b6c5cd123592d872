"""Epoch key schedule: determinism, distinctness, dependence on every input, and healing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from triple_ratchet.errors import LimitExceeded, UsageError
from triple_ratchet.group import key_schedule as ks
from triple_ratchet.mailbox import mailbox_id
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import ALL_SUITES, Suite
from triple_ratchet.testvectors import key_schedule as ks_vectors
from triple_ratchet.testvectors import verify_document

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "key-schedule.json"


def _inputs(suite: Suite, n: int = 4, seed: bytes = b"ks") -> tuple[bytes, bytes, list[bytes]]:
    rng = DeterministicRandom(seed + suite.name.encode())
    return rng(suite.hash_len), rng(ks.TRANSCRIPT_HASH_LEN), [rng(32) for _ in range(n)]


def _values(e: ks.EpochSecrets) -> list[bytes]:
    """Every secret or public value of an epoch, as bytes."""
    return [
        *e.chain_roots,
        e.sender_data_secret,
        e.mailbox.access_key.to_bytes(),
        e.mailbox.access_public,
        e.mailbox.mailbox_id,
        e.epoch_id,
        e.init_secret_next,
    ]


@pytest.fixture(params=ALL_SUITES, ids=lambda s: s.name)
def suite(request: pytest.FixtureRequest) -> Suite:
    s: Suite = request.param
    return s


def test_deterministic(suite: Suite) -> None:
    init, th, payloads = _inputs(suite)
    a = ks.derive_epoch(suite, init, th, payloads)
    b = ks.derive_epoch(suite, init, th, list(payloads))
    assert _values(a) == _values(b)
    assert a == b


def test_lengths(suite: Suite) -> None:
    init, th, payloads = _inputs(suite, n=3)
    e = ks.derive_epoch(suite, init, th, payloads)
    assert e.roster_size == 3
    assert all(len(r) == suite.hash_len for r in e.chain_roots)
    assert len(e.sender_data_secret) == suite.hash_len
    assert len(e.init_secret_next) == suite.hash_len
    assert len(e.epoch_id) == ks.EPOCH_ID_LEN
    assert len(e.mailbox.mailbox_id) == 32
    assert e.mailbox.access_public == e.mailbox.access_key.public_key().to_bytes()
    assert e.mailbox.mailbox_id == mailbox_id(suite, e.mailbox.access_public)
    assert e.chain_root(0) == e.chain_roots[0] and e.chain_root(2) == e.chain_roots[2]
    for bad in (-1, 3):
        with pytest.raises(UsageError):
            e.chain_root(bad)


def test_every_value_distinct(suite: Suite) -> None:
    init, th, payloads = _inputs(suite, n=6)
    e = ks.derive_epoch(suite, init, th, payloads)
    secret = ks.extract_epoch_secret(suite, init, th, payloads)
    values = [*_values(e), secret, init]
    assert len(set(values)) == len(values)
    a = ks.derive_attempt(suite, init)
    more = [a.traffic_key, a.mailbox.access_key.to_bytes(), a.mailbox.mailbox_id]
    assert not set(more) & set(values)


@pytest.mark.parametrize("what", ["init_secret", "transcript_hash", "payload_first",
                                  "payload_last", "payload_order"])
def test_any_input_change_changes_everything(suite: Suite, what: str) -> None:
    init, th, payloads = _inputs(suite)
    base = ks.derive_epoch(suite, init, th, payloads)
    flipped = list(payloads)
    if what == "init_secret":
        init = bytes([init[0] ^ 1]) + init[1:]
    elif what == "transcript_hash":
        th = th[:-1] + bytes([th[-1] ^ 0x80])
    elif what == "payload_first":
        flipped[0] = bytes([flipped[0][0] ^ 1]) + flipped[0][1:]
    elif what == "payload_last":
        flipped[-1] = flipped[-1][:-1] + bytes([flipped[-1][-1] ^ 1])
    else:
        flipped[0], flipped[1] = flipped[1], flipped[0]
    other = ks.derive_epoch(suite, init, th, flipped)
    for old, new in zip(_values(base), _values(other), strict=True):
        assert old != new


def test_roster_size_is_bound(suite: Suite) -> None:
    init, th, payloads = _inputs(suite, n=3)
    small = ks.derive_epoch(suite, init, th, payloads[:2])
    big = ks.derive_epoch(suite, init, th, payloads)
    # Member 0's root differs: the payload list (and so the epoch secret) differs.
    assert small.chain_roots[0] != big.chain_roots[0]
    assert small.epoch_id != big.epoch_id


def test_epoch_zero_init_secret(suite: Suite) -> None:
    assert ks.initial_init_secret(suite) == bytes(suite.hash_len)


@pytest.mark.parametrize("bad", [31, 33, 0, 64])
def test_payload_length_enforced(suite: Suite, bad: int) -> None:
    init, th, payloads = _inputs(suite, n=2)
    with pytest.raises(UsageError):
        ks.derive_epoch(suite, init, th, [payloads[0], bytes(bad)])


def test_input_shapes_enforced(suite: Suite) -> None:
    init, th, payloads = _inputs(suite, n=2)
    with pytest.raises(UsageError):
        ks.derive_epoch(suite, init[:-1], th, payloads)
    with pytest.raises(UsageError):
        ks.derive_epoch(suite, init, th[:32], payloads)
    with pytest.raises(LimitExceeded):
        ks.derive_epoch(suite, init, th, [])
    with pytest.raises(LimitExceeded):
        ks.derive_epoch(suite, init, th, [payloads[0]] * (ks.MAX_ROSTER_SIZE + 1))
    with pytest.raises(UsageError):
        ks.derive_attempt(suite, init + b"x")


# --- Healing (post-compromise security) ---------------------------------------------------------


def test_healing_state_before_announcements_cannot_derive(suite: Suite) -> None:
    """An attacker holding everything of epoch e (init_secret(e) included) and the whole public
    attempt transcript, but not the fresh payloads of the others, derives nothing of e+1."""
    init, th, payloads = _inputs(suite, n=4)
    real = ks.derive_epoch(suite, init, th, payloads)
    real_values = set(_values(real))
    real_secret = ks.extract_epoch_secret(suite, init, th, payloads)

    # init_secret alone, with the transcript hash as salt, is not the epoch secret.
    assert suite.hkdf_extract(th, init) != real_secret
    # Any guess of the payloads: all zero, random, or every payload but one right.
    rng = DeterministicRandom(b"attacker guesses")
    guesses: list[list[bytes]] = [[bytes(32)] * 4, [rng(32) for _ in range(4)]]
    for missing in range(4):
        guess = list(payloads)
        guess[missing] = rng(32)
        guesses.append(guess)
    for guess in guesses:
        attempt = ks.derive_epoch(suite, init, th, guess)
        assert not set(_values(attempt)) & real_values
        assert ks.extract_epoch_secret(suite, init, th, guess) != real_secret


def test_healing_needs_every_payload(suite: Suite) -> None:
    """Leaving any payload out (a shorter list) never reproduces the epoch."""
    init, th, payloads = _inputs(suite, n=4)
    real = set(_values(ks.derive_epoch(suite, init, th, payloads)))
    for missing in range(4):
        partial = payloads[:missing] + payloads[missing + 1:]
        assert not set(_values(ks.derive_epoch(suite, init, th, partial))) & real


def test_next_epoch_chains_from_init_secret_next(suite: Suite) -> None:
    init, th, payloads = _inputs(suite)
    e1 = ks.derive_epoch(suite, init, th, payloads)
    e2 = ks.derive_epoch(suite, e1.init_secret_next, th, payloads)
    assert not set(_values(e1)) & set(_values(e2))


# --- Joiner confirmation and attempt -------------------------------------------------------------


def test_joiner_confirmation_binds_everything(suite: Suite) -> None:
    rng = DeterministicRandom(b"joiner")
    init, roster, session = rng(suite.hash_len), [rng(33), rng(33), rng(33)], rng(32)
    base = ks.joiner_confirmation(suite, init, roster, session)
    assert len(base) == suite.hash_len
    assert base == ks.joiner_confirmation(suite, init, list(roster), session)
    variants = [
        ks.joiner_confirmation(suite, rng(suite.hash_len), roster, session),
        ks.joiner_confirmation(suite, init, roster[:2], session),
        ks.joiner_confirmation(suite, init, [roster[1], roster[0], roster[2]], session),
        ks.joiner_confirmation(suite, init, roster, rng(32)),
        # Framing: moving a byte between entries changes the value.
        ks.joiner_confirmation(suite, init, [roster[0] + roster[1][:1], roster[1][1:], roster[2]],
                               session),
    ]
    assert base not in variants
    with pytest.raises(UsageError):
        ks.joiner_confirmation(suite, init, [b""], session)
    with pytest.raises(LimitExceeded):
        ks.joiner_confirmation(suite, init, [], session)


def test_attempt_derivations(suite: Suite) -> None:
    rng = DeterministicRandom(b"attempt")
    secret = rng(suite.hash_len)
    a = ks.derive_attempt(suite, secret)
    b = ks.derive_attempt(suite, rng(suite.hash_len))
    assert a == ks.derive_attempt(suite, secret)
    assert len(a.traffic_key) == suite.aead_key_len
    assert a.mailbox.mailbox_id == mailbox_id(suite, a.mailbox.access_public)
    assert a.traffic_key != b.traffic_key and a.mailbox.mailbox_id != b.mailbox.mailbox_id
    # The traffic key actually works with the suite's AEAD.
    nonce = bytes(suite.aead_nonce_len)
    assert suite.aead_decrypt(a.traffic_key, nonce,
                              suite.aead_encrypt(a.traffic_key, nonce, b"x", b""), b"") == b"x"


def test_repr_hides_secrets(suite: Suite) -> None:
    init, th, payloads = _inputs(suite)
    e = ks.derive_epoch(suite, init, th, payloads)
    a = ks.derive_attempt(suite, init)
    text = repr(e) + str(e) + repr(a) + repr(e.mailbox)
    for secret in [*e.chain_roots, e.sender_data_secret, e.init_secret_next,
                   e.mailbox.access_key.to_bytes(), a.traffic_key,
                   a.mailbox.access_key.to_bytes()]:
        assert secret.hex() not in text
        assert secret.hex()[:16] not in text
    assert e.epoch_id.hex() in text  # public, shown on purpose


# --- Vectors -------------------------------------------------------------------------------------


def test_vectors_file_matches_generator() -> None:
    if not VECTORS.exists():
        pytest.skip("vectors/key-schedule.json not generated yet")
    on_disk: dict[str, Any] = json.loads(VECTORS.read_text())
    assert on_disk == ks_vectors.generate()["key-schedule.json"]
    results = list(verify_document(on_disk))
    assert results and all(r.status == "passed" for r in results), results


def test_vectors_detect_a_wrong_output() -> None:
    doc = ks_vectors.generate()["key-schedule.json"]
    case = next(c for c in doc["cases"] if c["inputs"]["operation"] == "epoch")
    case["outputs"]["epoch_id"] = "00" * 32
    results = list(verify_document(doc))
    assert sum(r.status == "failed" for r in results) == 1
