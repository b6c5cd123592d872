"""ML-KEM-768 (triple_ratchet/suites/mlkem.py): our derandomised encapsulation against
`cryptography`'s decapsulation, FIPS 203's input checks, and Wycheproof's ML-KEM-768 files
through `vectors verify` (which must notice an altered case)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from triple_ratchet.errors import DecodeError, InvalidKey, UsageError
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import mlkem
from triple_ratchet.suites.mlkem import (
    MLKEM768_CIPHERTEXT_LEN,
    MLKEM768_PUBLIC_KEY_LEN,
    MlKemPrivateKey,
    MlKemPublicKey,
    clear_expanded_key_cache,
)
from triple_ratchet.testvectors import verify_document, verify_paths

_Q = 3329
FILES = ("mlkem_768_encaps_test.json", "mlkem_768_test.json", "mlkem_768_keygen_seed_test.json")
EXPECTED_CASES = {"mlkem_768_encaps_test.json": 265, "mlkem_768_test.json": 193,
                  "mlkem_768_keygen_seed_test.json": 100}


def _dir(shared_vectors: Path) -> Path:
    path = shared_vectors / "wycheproof-mlkem"
    if not path.is_dir():
        pytest.skip(f"Wycheproof ML-KEM vectors not present at {path}")
    return path


def _load(shared_vectors: Path, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((_dir(shared_vectors) / name).read_text())
    return doc


# --- Against cryptography ---------------------------------------------------------------------


@settings(max_examples=40)
@given(seed=st.binary(min_size=64, max_size=64), m=st.binary(min_size=32, max_size=32))
def test_encapsulation_decapsulates_to_the_same_secret(seed: bytes, m: bytes) -> None:
    key = MlKemPrivateKey.from_seed(seed)
    shared, ciphertext = key.public_key().encapsulate(m)
    assert len(shared) == 32 and len(ciphertext) == MLKEM768_CIPHERTEXT_LEN
    # cryptography's own key object, not ours, decapsulates.
    assert MLKEM768PrivateKey.from_seed_bytes(seed).decapsulate(ciphertext) == shared
    assert key.decapsulate(ciphertext) == shared


def test_encapsulation_is_deterministic_in_m_and_independent_of_the_cache() -> None:
    rng = DeterministicRandom(b"mlkem determinism")
    public = MlKemPrivateKey.generate(rng).public_key()
    m = rng(32)
    clear_expanded_key_cache()
    first = public.encapsulate(m)
    cached = public.encapsulate(m)
    clear_expanded_key_cache()
    again = MlKemPublicKey.from_bytes(public.to_bytes()).encapsulate(m)
    assert first == cached == again
    assert public.encapsulate(rng(32)) != first


def test_the_expansion_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mlkem, "EXPANDED_KEY_CACHE_SIZE", 2)
    clear_expanded_key_cache()
    rng = DeterministicRandom(b"mlkem cache")
    keys = [MlKemPrivateKey.generate(rng) for _ in range(4)]
    for key in keys:
        shared, ct = key.public_key().encapsulate(b"m" * 32)
        assert key.decapsulate(ct) == shared
    assert len(mlkem._cache) == 2
    assert list(mlkem._cache) == [k.public_key().to_bytes() for k in keys[2:]]


def test_implicit_rejection_gives_another_secret_not_an_error() -> None:
    key = MlKemPrivateKey.from_seed(bytes(range(64)))
    shared, ct = key.public_key().encapsulate(bytes(32))
    for at in (0, 500, MLKEM768_CIPHERTEXT_LEN - 1):
        altered = bytearray(ct)
        altered[at] ^= 1
        other = key.decapsulate(bytes(altered))
        assert len(other) == 32 and other != shared


# --- Input checks -----------------------------------------------------------------------------


def _encoded_with_coefficient(value: int, index: int) -> bytes:
    """A valid key with the 12-bit coefficient `index` set to `value` (ByteEncode_12 layout)."""
    raw = bytearray(MlKemPrivateKey.from_seed(bytes(64)).public_key().to_bytes())
    at = 3 * (index // 2)
    if index % 2 == 0:
        raw[at] = value & 0xFF
        raw[at + 1] = (raw[at + 1] & 0xF0) | value >> 8
    else:
        raw[at + 1] = (raw[at + 1] & 0x0F) | (value & 0x0F) << 4
        raw[at + 2] = value >> 4
    return bytes(raw)


@given(index=st.integers(0, 767), value=st.integers(_Q, 4095))
def test_unreduced_coefficients_fail_the_modulus_check(index: int, value: int) -> None:
    with pytest.raises(InvalidKey, match="not reduced"):
        MlKemPublicKey.from_bytes(_encoded_with_coefficient(value, index))
    MlKemPublicKey.from_bytes(_encoded_with_coefficient(_Q - 1, index))  # the largest is fine


@pytest.mark.parametrize("length", [0, 1, MLKEM768_PUBLIC_KEY_LEN - 1, MLKEM768_PUBLIC_KEY_LEN + 1])
def test_public_key_of_wrong_length_is_refused(length: int) -> None:
    with pytest.raises(InvalidKey):
        MlKemPublicKey.from_bytes(bytes(length))


def test_wrong_types_and_sizes() -> None:
    key = MlKemPrivateKey.from_seed(bytes(64))
    with pytest.raises(UsageError):
        MlKemPublicKey.from_bytes("00" * 1184)  # type: ignore[arg-type]
    for bad_m in (b"", bytes(31), bytes(33)):
        with pytest.raises(UsageError):
            key.public_key().encapsulate(bad_m)
    for bad_seed in (b"", bytes(63), bytes(65)):
        with pytest.raises(InvalidKey):
            MlKemPrivateKey.from_seed(bad_seed)
    for bad_ct in (b"", bytes(MLKEM768_CIPHERTEXT_LEN - 1), bytes(MLKEM768_CIPHERTEXT_LEN + 1)):
        with pytest.raises(DecodeError):
            key.decapsulate(bad_ct)


def test_secrets_stay_out_of_repr() -> None:
    seed = bytes(range(64))
    key = MlKemPrivateKey.from_seed(seed)
    assert seed.hex()[:16] not in repr(key) and "secret" in repr(key)
    assert key.to_bytes() == seed
    public = key.public_key()
    assert public == MlKemPublicKey.from_bytes(public.to_bytes())
    assert hash(public) == hash(MlKemPublicKey.from_bytes(public.to_bytes()))


# --- Wycheproof ---------------------------------------------------------------------------------


def test_wycheproof_mlkem_files_all_pass(shared_vectors: Path) -> None:
    directory = _dir(shared_vectors)
    lines: list[str] = []
    for name in FILES:
        passed, failed, skipped = verify_paths([directory / name], lines.append)
        assert (passed, failed, skipped) == (EXPECTED_CASES[name], 0, 0), lines


def test_modulus_overflow_keys_are_refused(shared_vectors: Path) -> None:
    doc = _load(shared_vectors, "mlkem_768_encaps_test.json")
    flagged = [t for g in doc["testGroups"] for t in g["tests"]
               if "ModulusOverflow" in t.get("flags", [])]
    assert len(flagged) == 12
    for test in flagged:
        with pytest.raises(InvalidKey):
            MlKemPublicKey.from_bytes(bytes.fromhex(test["ek"]))


def _first(doc: dict[str, Any], result: str, *, length: int | None = None) -> dict[str, Any]:
    for group in doc["testGroups"]:
        for test in group["tests"]:
            if test["result"] == result and (length is None or len(test["ek"]) == length):
                found: dict[str, Any] = test
                return found
    raise LookupError(result)


def _flip(hex_value: str, at: int = 0) -> str:
    raw = bytearray(bytes.fromhex(hex_value))
    raw[at] ^= 1
    return raw.hex()


@pytest.mark.parametrize(("name", "alter"), [
    ("mlkem_768_encaps_test.json", lambda t: t.update(K=_flip(t["K"]))),
    ("mlkem_768_encaps_test.json", lambda t: t.update(c=_flip(t["c"], 700))),
    ("mlkem_768_encaps_test.json", lambda t: t.update(m=_flip(t["m"]))),
    ("mlkem_768_encaps_test.json", lambda t: t.update(result="invalid")),
    ("mlkem_768_test.json", lambda t: t.update(K=_flip(t["K"], 31))),
    ("mlkem_768_test.json", lambda t: t.update(ek=_flip(t["ek"], 1183))),
    ("mlkem_768_test.json", lambda t: t.update(seed=_flip(t["seed"]))),
    ("mlkem_768_keygen_seed_test.json", lambda t: t.update(dk=_flip(t["dk"], 100))),
    ("mlkem_768_keygen_seed_test.json", lambda t: t.update(dk=_flip(t["dk"], 2399))),
    ("mlkem_768_keygen_seed_test.json", lambda t: t.update(ek=_flip(t["ek"], 5))),
])
def test_an_altered_valid_case_fails(shared_vectors: Path, name: str, alter: Any) -> None:
    doc = copy.deepcopy(_load(shared_vectors, name))
    alter(_first(doc, "valid"))
    results = list(verify_document(doc))
    failed = [r for r in results if r.status == "failed"]
    assert len(failed) == 1 and len(results) == EXPECTED_CASES[name]


def test_an_invalid_key_called_valid_fails(shared_vectors: Path) -> None:
    doc = copy.deepcopy(_load(shared_vectors, "mlkem_768_encaps_test.json"))
    test = _first(doc, "invalid", length=2 * MLKEM768_PUBLIC_KEY_LEN)
    test["result"] = "valid"
    failed = [r for r in verify_document(doc) if r.status == "failed"]
    assert len(failed) == 1 and "rejected" in failed[0].reason


def test_other_parameter_sets_are_skipped(shared_vectors: Path) -> None:
    doc = copy.deepcopy(_load(shared_vectors, "mlkem_768_test.json"))
    doc["testGroups"][0]["parameterSet"] = "ML-KEM-1024"
    results = list(verify_document(doc))
    skipped = [r for r in results if r.status == "skipped"]
    assert len(skipped) == len(doc["testGroups"][0]["tests"]) and "ML-KEM-768" in skipped[0].reason


def test_forgetting_one_key_keeps_the_others() -> None:
    rng = DeterministicRandom(b"mlkem forget")
    first, second = (MlKemPrivateKey.generate(rng).public_key() for _ in range(2))
    clear_expanded_key_cache()
    first.encapsulate(bytes(32))
    second.encapsulate(bytes(32))
    clear_expanded_key_cache(first)
    assert list(mlkem._cache) == [second.to_bytes()]


def test_random_encapsulation_through_cryptography() -> None:
    key = MlKemPrivateKey.from_seed(bytes(range(64)))
    first = key.public_key().encapsulate_random()
    second = key.public_key().encapsulate_random()
    for shared, ciphertext in (first, second):
        assert len(shared) == 32 and len(ciphertext) == MLKEM768_CIPHERTEXT_LEN
        assert key.decapsulate(ciphertext) == shared
    assert first != second  # fresh randomness each time
