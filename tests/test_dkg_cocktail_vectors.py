"""vectors/dkg-cocktail.json: our COCKTAIL-core vectors pass, and any alteration is reported."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from triple_ratchet import cli
from triple_ratchet.testvectors import CaseResult, document, verify_document
from triple_ratchet.testvectors import dkg_cocktail as tv

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / tv.FILE


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return tv.generate()[tv.FILE]


def run(case: dict[str, Any]) -> CaseResult:
    results = list(verify_document(document(tv.KIND, "one case", [case])))
    assert len(results) == 1
    return results[0]


def find(doc: dict[str, Any], description_start: str) -> dict[str, Any]:
    matches = [c for c in doc["cases"] if c["description"].startswith(description_start)]
    assert len(matches) == 1, description_start
    return copy.deepcopy(matches[0])


def flip_hex(value: str, position: int) -> str:
    raw = bytearray(bytes.fromhex(value))
    raw[position] ^= 0x01
    return raw.hex()


def alter(value: Any) -> Any:
    if isinstance(value, list):
        return [alter(value[0]), *value[1:]]
    assert isinstance(value, str)
    return flip_hex(value, len(value) // 4)


# --- The file ------------------------------------------------------------------------------------


def test_file_on_disk_is_the_generator_output(doc: dict[str, Any]) -> None:
    if not VECTORS.exists():
        pytest.skip(f"{VECTORS} not generated yet")
    assert json.loads(VECTORS.read_text()) == doc


def test_generator_is_deterministic(doc: dict[str, Any]) -> None:
    assert tv.generate()[tv.FILE] == doc


def test_every_case_passes(doc: dict[str, Any]) -> None:
    results = list(verify_document(doc))
    assert len(results) == len(doc["cases"]) >= 50
    assert all(r.status == "passed" for r in results), [r for r in results if r.status != "passed"]


def test_cli_verifies_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    if not VECTORS.exists():
        pytest.skip(f"{VECTORS} not generated yet")
    assert cli.main(["vectors", "verify", str(VECTORS)]) == 0
    out = capsys.readouterr().out
    assert f"{len(json.loads(VECTORS.read_text())['cases'])} passed, 0 failed, 0 skipped" in out


def test_required_coverage(doc: dict[str, Any]) -> None:
    """The cases the issue asks for are all present, with the culprit they must name."""
    errors = {(c["inputs"]["operation"], c["error"]["reason"], c["error"].get("culprit"))
              for c in doc["cases"] if "error" in c}
    for wanted in [
        ("params", "invalid-static-key", 2), ("params", "invalid-static-key", 3),
        ("params", "duplicate-static-key", 3), ("params", "bad-parameters", None),
        ("params", "too-many-participants", None),
        ("participant", "invalid-point", 3), ("participant", "invalid-point", 2),
        ("participant", "bad-pop", 2), ("participant", "share-mismatch", 3),
        ("participant", "decryption-failed", 3), ("participant", "non-canonical-plaintext", 2),
        ("participant", "bad-ciphertext-frame", 2), ("participant", "malformed-message", None),
        ("participant", "bad-transcript-signature", 2),
        ("participant", "bad-transcript-signature", 3),
        ("coordinator", "malformed-message", 2), ("coordinator", "bad-pop", 3),
        ("coordinator", "bad-transcript-signature", 2),
    ]:
        assert wanted in errors, wanted
    identity = find(doc, "static key 3 is the identity")
    assert identity["inputs"]["static_keys"][2] == "01" + "00" * 31
    valid_views = [c for c in doc["cases"] if c["inputs"]["operation"] == "participant"
                   and "outputs" in c]
    assert {(c["inputs"]["threshold"], len(c["inputs"]["static_keys"])) for c in valid_views} == {
        (2, 3), (3, 5)}
    # Every view of one run agrees on the group key, the verification shares and the hash.
    for n in (3, 5):
        views = [c["outputs"] for c in valid_views if len(c["inputs"]["static_keys"]) == n]
        assert len(views) == n
        for key in ("group_public_key", "verification_shares", "transcript_hash", "transcript"):
            assert len({json.dumps(v[key]) for v in views}) == 1, key


# --- Alterations are reported ---------------------------------------------------------------------


def test_every_altered_output_fails(doc: dict[str, Any]) -> None:
    checked = 0
    for original in doc["cases"]:
        for key in original.get("outputs", {}):
            case = copy.deepcopy(original)
            case["outputs"][key] = alter(case["outputs"][key])
            result = run(case)
            assert result.status == "failed", (original["description"], key)
            assert key in result.reason
            checked += 1
    assert checked >= 75


def test_a_valid_case_without_outputs_fails(doc: dict[str, Any]) -> None:
    case = find(doc, "2-of-3 run, participant 1's view")
    case["outputs"] = {}
    assert run(case).status == "failed"
    case["outputs"] = {"no-such-output": "00"}
    assert run(case).status == "failed"


def test_every_altered_culprit_fails(doc: dict[str, Any]) -> None:
    for original in doc["cases"]:
        if "error" not in original:
            continue
        case = copy.deepcopy(original)
        culprit = case["error"].get("culprit")
        if culprit is None:
            case["error"]["culprit"] = 1  # an error that names no one must not name anyone
        else:
            case["error"]["culprit"] = culprit % 3 + 1
        assert run(case).status == "failed", original["description"]
        if culprit is not None:
            del case["error"]["culprit"]  # absent means "no culprit", so this must fail too
            assert run(case).status == "failed", original["description"]


def test_altered_reason_or_type_fails(doc: dict[str, Any]) -> None:
    for original in doc["cases"]:
        if "error" not in original:
            continue
        case = copy.deepcopy(original)
        case["error"]["reason"] = "bad-pop" if case["error"]["reason"] != "bad-pop" else "x"
        assert run(case).status == "failed", original["description"]
        case = copy.deepcopy(original)
        case["error"]["type"] = "ProtocolError"  # DkgError's base class is not precise enough
        assert run(case).status == "failed", original["description"]


def test_negative_case_made_valid_fails(doc: dict[str, Any]) -> None:
    # The tampered tag byte is the last byte of msg2: flipping it back gives an honest run.
    case = find(doc, "dealer 3's ciphertext to participant 1 does not decrypt")
    case["inputs"]["round2"] = flip_hex(case["inputs"]["round2"], -1)
    result = run(case)
    assert result.status == "failed" and "got success" in result.reason
    case = find(doc, "t = 0")
    case["inputs"]["threshold"] = 1
    result = run(case)
    assert result.status == "failed" and "got success" in result.reason
    case = find(doc, "static key 3 repeats static key 1")
    case["inputs"]["static_keys"][2] = find(doc, "2-of-3 session")["inputs"]["static_keys"][2]
    assert run(case).status == "failed"
    # Certificate with sig_3's z + 1 restored: z is the last 32 bytes, little-endian.
    case = find(doc, "certificate: sig_3 has z + 1")
    honest = find(doc, "2-of-3 run, participant 1's view")["inputs"]["signatures"]
    assert case["inputs"]["signatures"] != honest
    case["inputs"]["signatures"] = honest
    assert run(case).status == "failed"


def test_negative_case_with_other_input_names_someone_else(doc: dict[str, Any]) -> None:
    # Another session id means another context: now dealer 1's PoP fails first, not dealer 3's
    # share.
    case = find(doc, "dealer 3's share to participant 1 is f_3(1) + 1")
    case["inputs"]["session_id"] = flip_hex(case["inputs"]["session_id"], 0)
    result = run(case)
    assert result.status == "failed" and "culprit 1" in result.reason
    # Participant 1 drawing other randomness: its own entry no longer matches (no one named).
    case = find(doc, "dealer 3's share to participant 1 is f_3(1) + 1")
    case["inputs"]["randomness"][0] = flip_hex(case["inputs"]["randomness"][0], 0)
    result = run(case)
    assert result.status == "failed" and "culprit None" in result.reason
    # The split view seen with version B's signatures only from participant 3: sig_3 named.
    case = find(doc, "split view")
    honest = bytes.fromhex(find(doc, "2-of-3 run, participant 1's view")["inputs"]["signatures"])
    split = bytes.fromhex(case["inputs"]["signatures"])
    case["inputs"]["signatures"] = (honest[:128] + split[128:]).hex()
    result = run(case)
    assert result.status == "failed" and "culprit 3" in result.reason


def test_ill_formed_vectors_fail(doc: dict[str, Any]) -> None:
    case = find(doc, "2-of-3 run, participant 2's view")
    case["inputs"]["participant"] = 1  # the secret is participant 2's
    assert run(case).status == "failed"
    case = find(doc, "2-of-3 run, participant 2's view")
    case["inputs"]["randomness"].append("00" * 64)  # must be consumed exactly
    assert run(case).status == "failed"
    case = find(doc, "2-of-3 run, participant 2's view")
    case["inputs"]["operation"] = "nonsense"
    assert run(case).status == "failed"


def test_real_code_paths_are_exercised(doc: dict[str, Any]) -> None:
    """Valid views go through both round-2 entry points, and the coordinator is driven too."""
    views = [c["inputs"] for c in doc["cases"] if c["inputs"]["operation"] == "participant"]
    assert any("round1" in v for v in views) and any("round2" in v for v in views)
    assert sum(c["inputs"]["operation"] == "coordinator" for c in doc["cases"]) >= 5
