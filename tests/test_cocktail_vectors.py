"""The published COCKTAIL-DKG vectors (C2SP/CCTV), byte for byte, and tamper detection."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from triple_ratchet.testvectors import CaseResult, verify_document
from triple_ratchet.testvectors.cocktail import VectorRng, participant_rng

VECTORS = (
    Path(__file__).resolve().parents[1].parent / "shared" / "vectors-external" / "cocktail-dkg"
)
ED25519 = VECTORS / "cocktail-dkg-ed25519-sha512.json"
P256 = VECTORS / "cocktail-dkg-p256-sha256.json"

pytestmark = pytest.mark.skipif(
    not ED25519.exists(), reason=f"external COCKTAIL vectors not present at {VECTORS}"
)


def load(path: Path) -> dict[str, Any]:
    with path.open() as f:
        doc: dict[str, Any] = json.load(f)
    return doc


def test_every_ed25519_case_passes() -> None:
    results = list(verify_document(load(ED25519)))
    failed = [r for r in results if r.status != "passed"]
    assert not failed, failed
    # 4 vectors: setup + n round-1 cases + round2 + round3 (+ recovery for the 2-of-3 ones).
    assert len(results) == (1 + 3 + 2 + 1) + (1 + 5 + 2) + (1 + 14 + 2) + (1 + 3 + 2 + 1)


def test_p256_file_is_recognised_and_skipped() -> None:
    if not P256.exists():
        pytest.skip("P-256 vector file absent")
    results = list(verify_document(load(P256)))
    assert results and all(r.status == "skipped" for r in results)
    assert "not supported" in results[0].reason


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, (*path, i))
    else:
        yield path


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for p in path[:-1]:
        doc = doc[p]
    doc[path[-1]] = value


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _altered(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        if value == "":
            return "00"
        try:
            raw = bytearray(bytes.fromhex(value))
        except ValueError:
            return value + "x"
        raw[len(raw) // 2] ^= 0x01
        return raw.hex()
    return None


def _failures(results: list[CaseResult]) -> list[CaseResult]:
    return [r for r in results if r.status == "failed"]


@pytest.mark.parametrize("vector_index", [0, 3])  # the 2-of-3 vector and the payload vector
def test_altering_any_field_is_reported(vector_index: int) -> None:
    full = load(ED25519)
    base = {k: v for k, v in full.items() if k != "vectors"}
    base["vectors"] = [full["vectors"][vector_index]]
    assert not _failures(list(verify_document(base)))
    paths = [p for p in _leaves(base) if p[0] in ("seed", "vectors")]
    assert len(paths) > 60
    for path in paths:
        doc = copy.deepcopy(base)
        _set(doc, path, _altered(_get(doc, path)))
        failed = _failures(list(verify_document(doc)))
        assert failed, f"altering {path} went unnoticed"


def test_vector_rng_stream_layout() -> None:
    import hashlib

    seed = bytes(32)
    rng = VectorRng(seed, 2, 3, b"round1_participant_1")
    first = rng(64)
    want = hashlib.sha512(
        seed
        + b"COCKTAIL(Ed25519, SHA-512)"
        + (2).to_bytes(4, "little")
        + (3).to_bytes(4, "little")
        + b"round1_participant_1"
        + bytes(8)
    ).digest()
    assert first == want
    # Reads that straddle blocks see one continuous stream.
    a = participant_rng(seed, 2, 3, 1)
    assert a(10) + a(118) == participant_rng(seed, 2, 3, 1)(128)
    assert "redacted" in repr(rng)
