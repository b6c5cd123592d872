"""vectors/epoch-run-v2.json (whole v2 runs, creation, notices, rejoin): every case passes, and a
byte flipped anywhere in a case (any output value, the inputs that carry secrets and
randomness) fails that case and no other."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from triple_ratchet.testvectors import epoch_run_v2

REPO = Path(__file__).resolve().parents[1]
DOC: dict[str, Any] = json.loads((REPO / "vectors" / epoch_run_v2.FILE).read_text())


def _hex_leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths to every non-empty hex string in a JSON value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _hex_leaves(v, (*path, k))
    elif isinstance(value, list):
        for j, v in enumerate(value):
            yield from _hex_leaves(v, (*path, j))
    elif isinstance(value, str) and value and all(c in "0123456789abcdef" for c in value):
        yield path


def _flipped(doc: dict[str, Any], index: int, path: tuple[Any, ...]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    holder: Any = out["cases"][index]
    for step in path[:-1]:
        holder = holder[step]
    value = holder[path[-1]]
    # flip the low bit of the middle byte
    mid = (len(value) // 4) * 2
    byte = int(value[mid:mid + 2], 16) ^ 1
    holder[path[-1]] = value[:mid] + f"{byte:02x}" + value[mid + 2:]
    return out


def _statuses(doc: dict[str, Any]) -> list[str]:
    return [r.status for r in epoch_run_v2.verify(doc)]


def test_every_case_passes_and_each_operation_is_there() -> None:
    assert _statuses(DOC) == ["passed"] * len(DOC["cases"])
    ops = sorted({c["inputs"]["operation"] for c in DOC["cases"]})
    assert ops == ["creation", "rejoin", "run"]
    suites = {c["suite"] for c in DOC["cases"]}
    assert len(DOC["cases"]) == 3 * len(suites) and len(suites) >= 2


def test_the_run_case_names_every_entry_and_key() -> None:
    run = next(c for c in DOC["cases"] if c["inputs"]["operation"] == "run")
    out = run["outputs"]
    assert set(out["signed_entries"]) == {
        "announcements", "round1", "round3", "commit", "reveal", "tick",
        "evidence_announcement_equivocation", "evidence_round1_equivocation", "evidence_blame"}
    assert len(out["signed_entries"]["round1"]) == len(out["signed_entries"]["round3"]) == 2
    for key in ("run_session_id", "commit_secret", "member_base", "seal_secret", "group_context",
                "epoch_secret", "bundle_root"):
        assert len(bytes.fromhex(out[key])) == len(bytes.fromhex(out["run_session_id"]))
    assert out["recipients"] == [2] and out["sealings"][0]["sealed"] == "member_base"
    new = out["new_epoch"]
    assert len(new["chain_roots"]) == 3 and new["control_mailbox"]["mailbox_id"]


@pytest.mark.parametrize("index", range(len(DOC["cases"])))
def test_a_flipped_output_byte_fails_exactly_that_case(index: int) -> None:
    first = next(_hex_leaves(DOC["cases"][index]["outputs"]))
    statuses = _statuses(_flipped(DOC, index, ("outputs", *first)))
    assert statuses == ["passed" if j != index else "failed" for j in range(len(statuses))]


def _one_case(index: int) -> dict[str, Any]:
    return {**DOC, "cases": [DOC["cases"][index]]}


@pytest.mark.parametrize("operation", ["run", "creation", "rejoin"])
def test_every_value_of_a_case_is_checked(operation: str) -> None:
    """Each hex value, output or input, once flipped, makes the case fail (first suite)."""
    index = next(j for j, c in enumerate(DOC["cases"]) if c["inputs"]["operation"] == operation)
    doc = _one_case(index)
    paths = [p for part in ("outputs", "inputs")
             for p in ((part, *q) for q in _hex_leaves(doc["cases"][0][part]))]
    assert len(paths) > 20
    for path in paths:
        assert _statuses(_flipped(doc, 0, path)) == ["failed"], path


def test_a_missing_or_extra_output_fails() -> None:
    doc = copy.deepcopy(_one_case(0))
    doc["cases"][0]["outputs"].pop("epoch_secret")
    assert _statuses(doc) == ["failed"]
    doc = copy.deepcopy(_one_case(0))
    doc["cases"][0]["outputs"]["extra"] = "00"
    assert _statuses(doc) == ["failed"]
