"""The group message path's fast paths give exactly what the general code gives.

bench/group.py measures the message path; to make it fast, group/ parses the canonical blob and
content layouts with `cbor.decode_flat`, encodes them with `cbor.encode_flat`, builds KDF infos
once, and keeps the known-digest window in a shared log. Each is checked here against the
general code it replaces, including on malformed and forked inputs.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triple_ratchet import cbor
from triple_ratchet.errors import RemoteError
from triple_ratchet.group.epoch import MAX_KNOWN_DIGESTS, KnownDigests
from triple_ratchet.group.message import (
    LABEL_GROUP_SENDER_DATA_KEY,
    LABEL_GROUP_SENDER_DATA_NONCE,
    _sender_data_key_nonce,
)
from triple_ratchet.group.sender_chain import (
    LABEL_GROUP_CHAIN_NEXT,
    LABEL_GROUP_MESSAGE_KEY,
    LABEL_GROUP_MESSAGE_NONCE,
    _keys,
    _next,
)
from triple_ratchet.suites import CLASSICAL_SUITES, Suite

flat_items = st.lists(st.one_of(
    st.integers(min_value=0, max_value=2**64 - 1),
    st.integers(min_value=0, max_value=300),
    st.binary(max_size=300),
    st.booleans(),  # not an int on the wire: must fall back to the general encoder
    st.integers(min_value=-1000, max_value=-1),
), max_size=30)


@settings(max_examples=300, deadline=None)
@given(flat_items)
def test_encode_flat_is_cbor_encode(items: list[Any]) -> None:
    assert cbor.encode_flat(tuple(items)) == cbor.encode(items)


def _outcome(f: Callable[[], Any]) -> Any:
    try:
        return ("ok", f())
    except RemoteError as exc:
        return ("error", type(exc))


def _strict_inner(data: bytes) -> list[Any]:
    return cbor.as_list(cbor.decode(data, max_items=8, max_depth=2), "content", length=4)


def test_content_fast_parse_agrees_with_strict_decoder() -> None:
    rnd = random.Random(2)
    samples = [cbor.encode_flat((1, b"", b"hi", bytes(64))),
               cbor.encode_flat((2, bytes(32), bytes(300), bytes(64))),
               cbor.encode_flat((1, bytes(64), bytes(65_536), bytes(64)))]
    for good in samples:
        assert cbor.decode_flat(good, 4) == _strict_inner(good)
        candidates = [good[:-1], good + b"\x00", good[:3]]
        for _ in range(200):
            b = bytearray(good)
            b[rnd.randrange(min(len(b), 12))] = rnd.randrange(256)
            candidates.append(bytes(b))
        candidates.append(b"\x84\x01\x58\x00" + good[3:])  # non-shortest empty string head
        for c in candidates:
            fast = cbor.decode_flat(c, 4)
            if fast is not None:
                assert _outcome(lambda c=c: _strict_inner(c)) == ("ok", fast)


@pytest.mark.parametrize("suite", CLASSICAL_SUITES, ids=lambda s: s.name)
def test_precomputed_kdf_infos_are_expand_label(suite: Suite) -> None:
    ck = bytes(range(suite.hash_len))
    keys = _keys(suite, ck, 7)
    assert keys.key == suite.expand_label(ck, LABEL_GROUP_MESSAGE_KEY, b"", suite.aead_key_len)
    assert keys.nonce_base == suite.expand_label(ck, LABEL_GROUP_MESSAGE_NONCE, b"",
                                                 suite.aead_nonce_len)
    assert _next(suite, ck) == suite.expand_label(ck, LABEL_GROUP_CHAIN_NEXT, b"",
                                                  suite.hash_len)
    secret, ciphertext = bytes(suite.hash_len), bytes(range(200))
    sample = ciphertext[:suite.hash_len]
    assert _sender_data_key_nonce(suite, secret, ciphertext) == (
        suite.expand_label(secret, LABEL_GROUP_SENDER_DATA_KEY, sample, suite.aead_key_len),
        suite.expand_label(secret, LABEL_GROUP_SENDER_DATA_NONCE, sample, suite.aead_nonce_len))


def test_known_digests_behave_like_an_immutable_window_under_forks() -> None:
    rnd = random.Random(3)
    pool = [bytes([i % 256, i // 256]) * 16 for i in range(3 * MAX_KNOWN_DIGESTS)]
    # Every value ever made, with the tuple it must equal; new values grow from any of them
    # (the latest, or an older one: a state kept after a failed step).
    values: list[tuple[KnownDigests, tuple[bytes, ...]]] = [(KnownDigests(), ())]
    for step in range(6 * MAX_KNOWN_DIGESTS):
        base, model = values[-1] if rnd.random() < 0.97 else rnd.choice(values)
        d = rnd.choice(pool[:200]) if rnd.random() < 0.05 else pool[step % len(pool)]
        values.append((base.add(d), (*model, d)[-MAX_KNOWN_DIGESTS:]))
        if len(values) > 300:
            del values[1:50]
    for value, model in values[::7]:
        assert list(value) == list(model) and len(value) == len(model)
        for d in rnd.sample(pool, 60) + list(model[:3]) + list(model[-3:]):
            assert (d in value) == (d in model)
    assert KnownDigests(values[-1][1]) == values[-1][0]


@pytest.mark.parametrize("suite", CLASSICAL_SUITES, ids=lambda s: s.name)
def test_keyed_hmac_is_hmac(suite: Suite) -> None:
    import hmac

    from triple_ratchet.group.sender_chain import KeyedHmac, hash_of

    rnd = random.Random(5)
    for key_len in (0, 1, suite.hash_len, 127, 128, 129, 300):
        key = rnd.randbytes(key_len)
        mac = KeyedHmac(suite, key)
        for msg_len in (0, 1, 90, 1000):
            msg = rnd.randbytes(msg_len)
            assert mac.digest(msg) == hmac.digest(key, msg, suite.hash_name)
    assert mac.digest(b"again") == hmac.digest(key, b"again", suite.hash_name)  # reusable
    assert key.hex() not in repr(mac)
    assert hash_of(suite, b"abc" * 100) == suite.hash(b"abc" * 100)


