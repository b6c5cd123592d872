"""RFC 9180 HPKE base mode (triple_ratchet/suites/hpke.py): the RFC's own vectors through
`vectors verify`, round trips, tampering, sequence numbers and public-key validation."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triple_ratchet.errors import (
    AuthenticationError,
    InvalidKey,
    StateError,
    UnsupportedError,
    UsageError,
)
from triple_ratchet.suites import (
    CLASSICAL_SUITES,
    HYBRID_SUITES,
    P256_SHA256_AES256GCM,
    X25519_SHA512_XCHACHA20,
)
from triple_ratchet.suites.hpke import (
    AES_256_GCM,
    CHACHA20_POLY1305,
    DHKEM_P256,
    DHKEM_X25519,
    HPKE_P256_AES256GCM,
    HPKE_X25519_CHACHA20POLY1305,
    HpkeSuite,
    hpke_for_suite,
)
from triple_ratchet.testvectors import verify_document, verify_paths

SUITES = (HPKE_P256_AES256GCM, HPKE_X25519_CHACHA20POLY1305)
_P256_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_X25519_P = 2**255 - 19


def _rfc_file(shared_vectors: Path) -> Path:
    path = shared_vectors / "hpke" / "rfc9180-test-vectors.json"
    if not path.is_file():
        pytest.skip(f"RFC 9180 vectors not present at {path}")
    return path


def _runnable(cases: list[dict[str, Any]]) -> list[int]:
    return [i for i, c in enumerate(cases) if c["mode"] == 0 and c["kem_id"] in (0x10, 0x20)
            and c["kdf_id"] == 1 and c["aead_id"] in (1, 2, 3)]


# --- RFC 9180 vectors ---------------------------------------------------------------------------


def test_rfc9180_base_mode_cases_all_pass(shared_vectors: Path) -> None:
    path = _rfc_file(shared_vectors)
    cases = json.loads(path.read_text())
    results = list(verify_document(cases))
    assert len(results) == len(cases)
    passed = [r.case for r in results if r.status == "passed"]
    # every base-mode case of DHKEM(P-256)/DHKEM(X25519) with HKDF-SHA256 and our AEADs, and only
    # those: AES-128-GCM, AES-256-GCM (suite 1) and ChaCha20-Poly1305 (suite 2) for both KEMs
    assert len(passed) == len(_runnable(cases)) == 6
    assert not [r for r in results if r.status == "failed"]
    for r in results:
        if r.status == "skipped":
            assert r.reason.startswith(("mode ", "KEM ", "KDF ", "AEAD ")), r.reason


def test_rfc9180_through_verify_paths(shared_vectors: Path) -> None:
    lines: list[str] = []
    passed, failed, skipped = verify_paths([_rfc_file(shared_vectors)], lines.append)
    assert (passed, failed) == (6, 0) and skipped == 122
    assert any("AEAD 0xffff (export-only)" in line for line in lines)


@pytest.mark.parametrize("where", [
    ("skEm",), ("pkEm",), ("skRm",), ("pkRm",), ("enc",), ("shared_secret",),
    ("key_schedule_context",), ("secret",), ("key",), ("base_nonce",), ("exporter_secret",),
    ("encryptions", 0, "ct"), ("encryptions", 5, "ct"), ("encryptions", 3, "nonce"),
    ("encryptions", 1, "pt"), ("exports", 2, "exported_value"), ("info",), ("ikmE",),
])
def test_rfc9180_altered_case_fails(shared_vectors: Path, where: tuple[Any, ...]) -> None:
    cases = json.loads(_rfc_file(shared_vectors).read_text())
    for index in _runnable(cases):
        altered = copy.deepcopy(cases[index])
        holder: Any = altered
        for key in where[:-1]:
            holder = holder[key]
        raw = bytearray(bytes.fromhex(holder[where[-1]]))
        raw[len(raw) // 2] ^= 0x01
        holder[where[-1]] = raw.hex()
        (result,) = verify_document([altered])
        assert result.status == "failed", (index, where, result)


def test_rfc9180_malformed_case_fails_not_crashes(shared_vectors: Path) -> None:
    cases = json.loads(_rfc_file(shared_vectors).read_text())
    case = copy.deepcopy(cases[_runnable(cases)[0]])
    del case["encryptions"][0]["ct"]
    (result,) = verify_document([case])
    assert result.status == "failed" and "KeyError" in result.reason
    truncated = copy.deepcopy(cases[_runnable(cases)[0]])
    truncated["encryptions"] = truncated["encryptions"][1:]  # seq numbers shift: every ct differs
    (result,) = verify_document([truncated])
    assert result.status == "failed"


def test_skip_decided_by_parameters_only(shared_vectors: Path) -> None:
    cases = json.loads(_rfc_file(shared_vectors).read_text())
    case = copy.deepcopy(cases[_runnable(cases)[0]])
    for field, value, reason in (("mode", 1, "mode 1 (psk)"), ("kem_id", 0x12, "KEM 0x0012"),
                                 ("kdf_id", 3, "KDF 0x0003"), ("aead_id", 0xFFFF, "AEAD 0xffff")):
        (result,) = verify_document([{**case, field: value}])
        assert result.status == "skipped" and result.reason.startswith(reason)


# --- Suite mapping ------------------------------------------------------------------------------


def test_protocol_suites_map_to_their_hpke_suites() -> None:
    one = hpke_for_suite(P256_SHA256_AES256GCM)
    two = hpke_for_suite(X25519_SHA512_XCHACHA20)
    assert (one.kem, one.aead) == (DHKEM_P256, AES_256_GCM)
    assert (two.kem, two.aead) == (DHKEM_X25519, CHACHA20_POLY1305)
    assert one.suite_id == b"HPKE\x00\x10\x00\x01\x00\x02"
    assert two.suite_id == b"HPKE\x00\x20\x00\x01\x00\x03"

    class Other(type(P256_SHA256_AES256GCM)):  # type: ignore[misc]
        suite_id = 0x7777
        name = "other"

    with pytest.raises(UnsupportedError):
        hpke_for_suite(Other())


# --- Round trips --------------------------------------------------------------------------------


@settings(max_examples=40)
@given(which=st.sampled_from(SUITES), ikm_r=st.binary(min_size=32, max_size=64),
       ikm_e=st.binary(min_size=32, max_size=64), info=st.binary(max_size=80),
       aad=st.binary(max_size=40), pt=st.binary(max_size=300))
def test_single_shot_round_trip(which: HpkeSuite, ikm_r: bytes, ikm_e: bytes, info: bytes,
                                aad: bytes, pt: bytes) -> None:
    pair = which.kem.derive_key_pair(ikm_r)
    enc, ct = which.seal(pair.public_key, info, aad, pt, ikm_e)
    assert len(enc) == which.kem.n_enc and len(ct) == len(pt) + which.aead.n_t
    assert which.open(pair.private_key, enc, info, aad, ct) == pt
    # deterministic in its inputs: the ephemeral comes from ikm_e only
    assert which.seal(pair.public_key, info, aad, pt, ikm_e) == (enc, ct)


@settings(max_examples=20)
@given(which=st.sampled_from(SUITES), messages=st.lists(st.binary(max_size=50), max_size=6))
def test_context_round_trip_in_order(which: HpkeSuite, messages: list[bytes]) -> None:
    pair = which.kem.derive_key_pair(bytes(range(32)))
    enc, sender = which.setup_sender(pair.public_key, b"info", bytes(32))
    recipient = which.setup_recipient(enc, pair.private_key, b"info")
    for i, m in enumerate(messages):
        assert recipient.open(b"", sender.seal(b"", m)) == m
        assert sender.seq == recipient.seq == i + 1
    assert sender.export(b"ctx", 40) == recipient.export(b"ctx", 40)


# --- Tampering ----------------------------------------------------------------------------------


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at % len(out)] ^= 0x01
    return bytes(out)


@settings(max_examples=30)
@given(which=st.sampled_from(SUITES), field=st.sampled_from(["enc", "ct", "info", "aad"]),
       at=st.integers(min_value=0, max_value=200))
def test_tampering_is_a_typed_error(which: HpkeSuite, field: str, at: int) -> None:
    pair = which.kem.derive_key_pair(b"r" * 32)
    args = {"enc": b"", "ct": b"", "info": b"some info", "aad": b"some aad"}
    args["enc"], args["ct"] = which.seal(pair.public_key, args["info"], args["aad"],
                                         b"secret plaintext", b"e" * 32)
    args[field] = _flip(args[field], at)
    # an altered enc is either no valid key (InvalidKey) or another key (the tag fails)
    with pytest.raises(AuthenticationError if field != "enc" else (AuthenticationError,
                                                                   InvalidKey)):
        which.open(pair.private_key, args["enc"], args["info"], args["aad"], args["ct"])


@pytest.mark.parametrize("which", SUITES, ids=lambda s: s.kem.name)
def test_wrong_recipient_and_truncations(which: HpkeSuite) -> None:
    pair = which.kem.derive_key_pair(b"r" * 32)
    other = which.kem.derive_key_pair(b"o" * 32)
    enc, ct = which.seal(pair.public_key, b"i", b"a", b"pt", b"e" * 32)
    with pytest.raises(AuthenticationError):
        which.open(other.private_key, enc, b"i", b"a", ct)
    with pytest.raises(AuthenticationError):
        which.open(pair.private_key, enc, b"i", b"a", ct[:15])
    with pytest.raises(AuthenticationError):
        which.open(pair.private_key, enc, b"i", b"a", ct + b"\x00")
    for bad_enc in (enc[:-1], enc + b"\x00", b""):
        with pytest.raises(InvalidKey):
            which.open(pair.private_key, bad_enc, b"i", b"a", ct)


# --- Sequence numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize("which", SUITES, ids=lambda s: s.kem.name)
def test_nonce_is_base_nonce_xor_seq_and_order_matters(which: HpkeSuite) -> None:
    pair = which.kem.derive_key_pair(b"r" * 32)
    enc, sender = which.setup_sender(pair.public_key, b"", b"e" * 32)
    recipient = which.setup_recipient(enc, pair.private_key, b"")
    base = int.from_bytes(sender.base_nonce, "big")
    assert sender.nonce(0) == sender.base_nonce
    assert sender.nonce(0x0102) == (base ^ 0x0102).to_bytes(12, "big")
    first, second = sender.seal(b"", b"one"), sender.seal(b"", b"two")
    with pytest.raises(AuthenticationError):  # reordered: seq 0 cannot open message 1
        recipient.open(b"", second)
    assert recipient.seq == 0  # a failed open does not advance
    assert recipient.open(b"", first) == b"one"
    assert recipient.open(b"", second) == b"two"
    with pytest.raises(AuthenticationError):  # replayed
        recipient.open(b"", second)


@pytest.mark.parametrize("which", SUITES, ids=lambda s: s.kem.name)
def test_sequence_number_overflow_is_refused(which: HpkeSuite) -> None:
    pair = which.kem.derive_key_pair(b"r" * 32)
    enc, sender = which.setup_sender(pair.public_key, b"", b"e" * 32)
    recipient = which.setup_recipient(enc, pair.private_key, b"")
    last = (1 << 96) - 2  # the last usable sequence number
    sender.seq = recipient.seq = last
    ct = sender.seal(b"", b"last")
    assert recipient.open(b"", ct) == b"last"
    assert sender.seq == recipient.seq == last + 1
    with pytest.raises(StateError):
        sender.seal(b"", b"one too many")
    with pytest.raises(StateError):
        recipient.open(b"", ct)
    assert sender.seq == recipient.seq == last + 1


@pytest.mark.parametrize("which", SUITES, ids=lambda s: s.kem.name)
def test_export_length_and_ikm_bounds(which: HpkeSuite) -> None:
    pair = which.kem.derive_key_pair(b"r" * 32)
    _, ctx = which.setup_sender(pair.public_key, b"", b"e" * 32)
    assert len(ctx.export(b"", 255 * 32)) == 255 * 32
    for bad in (-1, 255 * 32 + 1):
        with pytest.raises(UsageError):
            ctx.export(b"", bad)
    with pytest.raises(UsageError):
        which.kem.derive_key_pair(b"short")
    with pytest.raises(UsageError):
        which.seal(pair.public_key, b"", b"", b"pt", b"e" * 31)


def test_secrets_stay_out_of_repr() -> None:
    which = HPKE_P256_AES256GCM
    pair = which.kem.derive_key_pair(b"r" * 32)
    _, ctx = which.setup_sender(pair.public_key, b"", b"e" * 32)
    for value in (pair, ctx):
        text = repr(value)
        for secret in (pair.private_key, ctx.key, ctx.base_nonce, ctx.exporter_secret):
            assert secret.hex() not in text and secret.hex()[:16] not in text


# --- Public-key validation ----------------------------------------------------------------------

_P256_G = bytes.fromhex(
    "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
    "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5")
_P256_BAD = {
    "empty": b"",
    "64 bytes": _P256_G[1:],
    "66 bytes": _P256_G + b"\x00",
    "compressed": b"\x03" + _P256_G[1:33],
    "identity encoding": b"\x00",
    "off curve": _P256_G[:-1] + bytes([_P256_G[-1] ^ 1]),
    "x = p (not reduced)": b"\x04" + _P256_P.to_bytes(32, "big") + _P256_G[33:],
    "all zero point": b"\x04" + bytes(64),
}
_X25519_BAD = {
    "empty": b"",
    "31 bytes": bytes(range(1, 32)),
    "33 bytes": bytes(range(1, 34)),
    "zero (small order)": bytes(32),
    "one (small order)": (1).to_bytes(32, "little"),
    "order 8 point": bytes.fromhex(
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    "p - 1 (small order)": (_X25519_P - 1).to_bytes(32, "little"),
    "u = p (non-canonical zero)": _X25519_P.to_bytes(32, "little"),
    "u = p + 1 (non-canonical one)": (_X25519_P + 1).to_bytes(32, "little"),
    "high bit set": bytes(31) + b"\x89",
}


@pytest.mark.parametrize(("which", "bad"), [
    *[(HPKE_P256_AES256GCM, k) for k in _P256_BAD],
    *[(HPKE_X25519_CHACHA20POLY1305, k) for k in _X25519_BAD],
], ids=lambda v: v if isinstance(v, str) else v.kem.name)
def test_bad_public_keys_are_refused(which: HpkeSuite, bad: str) -> None:
    key = (_P256_BAD if which is HPKE_P256_AES256GCM else _X25519_BAD)[bad]
    pair = which.kem.derive_key_pair(b"r" * 32)
    with pytest.raises(InvalidKey):
        which.seal(key, b"", b"", b"pt", b"e" * 32)
    with pytest.raises(InvalidKey):  # the same value as an enc
        which.open(pair.private_key, key, b"", b"", bytes(18))
    with pytest.raises(InvalidKey):
        which.kem.deserialize_public_key(key)


def test_x25519_all_zero_shared_secret_is_refused() -> None:
    # Defence in depth: even a small-order key that got past decoding gives no shared secret.
    pair = DHKEM_X25519.derive_key_pair(b"r" * 32)
    public = X25519_SHA512_XCHACHA20.dh_public_from_bytes(pair.public_key)
    smuggled_type: Any = type(public)
    smuggled = smuggled_type(bytes(32))
    private = X25519_SHA512_XCHACHA20.dh_private_from_bytes(pair.private_key)
    with pytest.raises(InvalidKey, match="all zero"):
        private.exchange(smuggled)


@pytest.mark.parametrize("suite", CLASSICAL_SUITES + HYBRID_SUITES, ids=lambda s: s.name)
def test_bad_private_keys_are_refused(suite: Any) -> None:
    which = hpke_for_suite(suite)
    pair = which.kem.derive_key_pair(b"r" * 32)
    enc, ct = which.seal(pair.public_key, b"", b"", b"pt", b"e" * which.kem.n_ikm)
    for bad in (b"", pair.private_key[:-1], pair.private_key + b"\x00"):
        with pytest.raises(InvalidKey):
            which.open(bad, enc, b"", b"", ct)
    if suite is P256_SHA256_AES256GCM:
        with pytest.raises(InvalidKey):  # the scalar 0
            which.open(bytes(32), enc, b"", b"", ct)
