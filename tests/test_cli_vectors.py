"""`triple-ratchet vectors verify`: our files pass, an altered file fails, junk is an error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from triple_ratchet.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_all_our_vectors_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vectors", "verify", str(REPO / "vectors")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    passed, failed = int(last.split()[0]), int(last.split()[2])
    assert failed == 0 and passed > 400


def test_generated_vectors_equal_the_published_ones(tmp_path: Path) -> None:
    assert main(["vectors", "generate", "--out", str(tmp_path)]) == 0
    published = sorted(p.name for p in (REPO / "vectors").glob("*.json"))
    assert sorted(p.name for p in tmp_path.glob("*.json")) == published
    for name in published:
        assert (tmp_path / name).read_bytes() == (REPO / "vectors" / name).read_bytes(), name


def test_an_altered_vector_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads((REPO / "vectors" / "double-ratchet.json").read_text())
    for case in doc["cases"]:
        outputs = case.get("outputs")
        if outputs:
            key = next(k for k, v in outputs.items() if isinstance(v, str) and v)
            outputs[key] = ("0" if outputs[key][0] != "0" else "1") + outputs[key][1:]
            break
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(doc))
    assert main(["vectors", "verify", str(altered)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and out.strip().endswith("1 failed, 0 skipped")


def test_uninterpretable_file_is_a_failure(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": 1}')
    assert main(["vectors", "verify", str(junk)]) == 1
    assert "cannot interpret" in capsys.readouterr().out


def test_wycheproof_files_pass_with_explained_skips(shared_vectors: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vectors", "verify", str(shared_vectors / "wycheproof")]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].endswith(" 0 failed, 335 skipped")
    assert "skipped 37: AES-GCM nonce size other than 96 bits: not used" in out
