"""The kept fuzz corpus as regression tests: every file of fuzz/corpus/<target>/ through its target.

Seeds (valid blobs) and kept findings (minimised reproducers) alike must meet the target's
contract (fuzz/targets.py `check`: success or a `triple_ratchet.errors` refusal, state unchanged,
no input bytes on the exception chain, canonical re-encoding) in bounded time. A reproducer of a
finding not fixed yet is listed in fuzz/known_findings.json and runs as a strict xfail: once the
fix is merged it passes, the xfail fails, and the entry must be removed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fuzz import make_corpus  # noqa: E402
from fuzz.targets import (  # noqa: E402
    CORPUS,
    TARGETS,
    check,
    clear_caches,
    corpus_input,
    is_known,
    known_findings,
    signature,
)

# Each input is refused (or accepted) well under a second here (issue 9 item 12: a hostile input
# must never cost seconds); the bound leaves room for slow CI machines.
TIME_BOUND = 1.0


def _cases() -> list[object]:
    known = known_findings()
    cases: list[object] = []
    for name in sorted(TARGETS):
        for path in sorted((CORPUS / name).iterdir()):
            key = f"{name}/{path.name}"
            marks = []
            if key in known:
                marks.append(pytest.mark.xfail(strict=True, reason=known[key]["reason"]))
            cases.append(pytest.param(name, path, id=key, marks=marks))
    return cases


@pytest.mark.parametrize(("name", "path"), _cases())
def test_corpus_file_meets_the_contract(name: str, path: Path) -> None:
    data = corpus_input(path)
    started = time.perf_counter()
    try:
        check(name, data)
    except BaseException as exc:
        pytest.fail(f"{name}/{path.name}: {signature(exc, name)}: {exc!r}")
    elapsed = time.perf_counter() - started
    assert elapsed < TIME_BOUND, f"{name}/{path.name} took {elapsed:.2f} s"


def test_every_target_has_a_corpus_and_every_known_finding_a_reproducer() -> None:
    for name in TARGETS:
        assert any((CORPUS / name).glob("seed-*")), f"no seeds for {name}"
    assert set(p.name for p in CORPUS.iterdir()) == set(TARGETS), "a corpus dir has no target"
    for key, entry in known_findings().items():
        assert (CORPUS / key).is_file(), f"known finding {key} has no reproducer in fuzz/corpus"
        assert entry["signature"] and entry["reason"]


def test_known_findings_reproduce_with_their_signature() -> None:
    """A listed reproducer still shows the finding it is listed for (not some other failure);
    a fixed one is reported by its strict xfail above."""
    for key, entry in known_findings().items():
        name = key.split("/")[0]
        try:
            check(name, corpus_input(CORPUS / key))
        except BaseException as exc:
            assert is_known(signature(exc, name), [entry["signature"]]), key


def test_seed_corpus_is_deterministic() -> None:
    """fuzz/make_corpus.py builds the same seeds every time, so a kept file keeps its meaning.
    (Committed seeds may lag a wire change — they still replay above as hostile input; rerun
    `python fuzz/make_corpus.py` after one so fuzzing starts from valid blobs again.)"""
    first = {name: make_corpus.seed_files(name) for name in TARGETS}
    clear_caches()
    assert {name: make_corpus.seed_files(name) for name in TARGETS} == first


def test_a_broken_contract_is_caught() -> None:
    """The harness itself: an untyped exception, and input bytes on the chain, are findings."""
    from fuzz.targets import Finding, Target, target
    from triple_ratchet.errors import DecodeError

    @target("_selftest_crash", list)
    def crash(data: bytes) -> None:
        raise IndexError("boom")

    @target("_selftest_leak", list)
    def leak(data: bytes) -> None:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("bad text") from None

    try:
        with pytest.raises(IndexError):
            check("_selftest_crash", b"x")
        with pytest.raises(Finding):
            check("_selftest_leak", b"\xff")
        check("_selftest_leak", b"fine")
        assert isinstance(TARGETS["_selftest_crash"], Target)
    finally:
        del TARGETS["_selftest_crash"], TARGETS["_selftest_leak"]
