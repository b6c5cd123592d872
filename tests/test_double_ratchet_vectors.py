"""vectors/double-ratchet.json: generated deterministically, verified, and able to fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from triple_ratchet.testvectors import double_ratchet as dr_vectors
from triple_ratchet.testvectors import verify_document

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "double-ratchet.json"


def _statuses(doc: dict[str, Any]) -> list[str]:
    return [r.status for r in dr_vectors.verify(doc)]


def test_vectors_file_matches_generator() -> None:
    if not VECTORS.exists():
        pytest.skip("vectors/double-ratchet.json not generated yet")
    on_disk: dict[str, Any] = json.loads(VECTORS.read_text())
    assert on_disk == dr_vectors.generate()["double-ratchet.json"]
    results = list(verify_document(on_disk))
    assert len(results) == len(on_disk["cases"]) >= 20
    assert all(r.status == "passed" for r in results), results


def test_vectors_cover_both_suites_and_negative_cases() -> None:
    doc = dr_vectors.generate()["double-ratchet.json"]
    suites = {c["suite"] for c in doc["cases"]}
    assert len(suites) == 2
    errors = {c["error"]["type"] for c in doc["cases"] if "error" in c}
    assert errors == {"AuthenticationError", "ReplayError", "DecodeError", "UnsupportedError",
                      "LimitExceeded"}


@pytest.mark.parametrize("mutate", ["blob", "message_key", "received", "state", "kdf"])
def test_vectors_detect_a_wrong_output(mutate: str) -> None:
    doc = dr_vectors.generate()["double-ratchet.json"]
    session = next(c for c in doc["cases"] if c["inputs"]["operation"] == "session")
    if mutate == "blob":
        blob = session["outputs"]["messages"][3]["blob"]
        session["outputs"]["messages"][3]["blob"] = blob[:-2] + "00"
    elif mutate == "message_key":
        session["outputs"]["messages"][0]["message_key"] = "00" * 32
    elif mutate == "received":
        session["outputs"]["received"][0] = "00"
    elif mutate == "state":
        session["outputs"]["responder_state"] = session["outputs"]["responder_state"][:-2]
    else:
        kdf = next(c for c in doc["cases"] if c["inputs"]["operation"] == "kdf")
        kdf["outputs"]["kdf_ck_message_key"] = "00" * 32
    assert _statuses(doc).count("failed") == 1


def test_negative_vector_fails_when_the_message_is_valid() -> None:
    doc = dr_vectors.generate()["double-ratchet.json"]
    valid = next(c for c in doc["cases"]
                 if c["inputs"]["operation"] == "decrypt" and "outputs" in c)
    negative = next(c for c in doc["cases"] if c.get("error"))
    negative["inputs"]["message"] = valid["inputs"]["message"]
    negative["inputs"]["state"] = valid["inputs"]["state"]
    assert _statuses(doc).count("failed") == 1
