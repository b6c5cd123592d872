"""Known-answer test vectors: one file format for all of ours, plus readers for third-party files.

Our files (spec: Test vectors) are JSON objects::

    {"format": "triple-ratchet-vectors", "version": 1, "kind": "<kind>",
     "description": "...", "cases": [
        {"description": "...", "suite": "<suite name or null>",
         "inputs": {...}, "outputs": {...}}            # a valid case
        {"description": "...", "suite": ..., "inputs": {...},
         "error": {"type": "<error class name>", "culprit": <int, optional>}}   # a negative case
     ]}

Byte strings are lowercase hex. Each kind has one verifier module registered in `VERIFIERS`;
third-party formats (Wycheproof, COCKTAIL-DKG, RFC 9180 HPKE) are recognised by their own top-level
keys (RFC 9180's file is a bare list of cases).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

FORMAT = "triple-ratchet-vectors"
FORMAT_VERSION = 1

Status = Literal["passed", "failed", "skipped"]


@dataclass(frozen=True)
class CaseResult:
    case: str
    status: Status
    reason: str = ""


class UnrecognisedFile(Exception):
    """The file is not in any format `vectors verify` understands."""


Verifier = Callable[[Any], Iterator[CaseResult]]

# kind -> verifier for our own files. Filled by `_registry()` lazily so that importing this
# package does not import every layer.
_Loader = Callable[[], dict[str, Verifier]]
_LOADERS: list[_Loader] = []


def register(loader: _Loader) -> None:
    _LOADERS.append(loader)


Generator = Callable[[], dict[str, dict[str, Any]]]
_GENERATORS: list[Generator] = []


def register_generator(generate: Generator) -> None:
    """`generate()` returns {file name in vectors/: document}; it must be deterministic."""
    _GENERATORS.append(generate)


def generate_all() -> dict[str, dict[str, Any]]:
    from triple_ratchet.testvectors import _registry  # noqa: F401

    files: dict[str, dict[str, Any]] = {}
    for generate in _GENERATORS:
        for name, doc in generate().items():
            if name in files:
                raise ValueError(f"two generators write vectors/{name}")
            files[name] = doc
    return files


def our_verifiers() -> dict[str, Verifier]:
    from triple_ratchet.testvectors import _registry  # noqa: F401  (fills _LOADERS)

    table: dict[str, Verifier] = {}
    for loader in _LOADERS:
        table.update(loader())
    return table


def third_party_verifier(doc: Any) -> Verifier | None:
    from triple_ratchet.testvectors import _registry  # noqa: F401

    for detect, top_level in _DETECTORS:
        if isinstance(doc, top_level):
            v = detect(doc)
            if v is not None:
                return v
    return None


_DETECTORS: list[tuple[Callable[[Any], Verifier | None], type]] = []


def register_detector(detect: Callable[[Any], Verifier | None], top_level: type = dict) -> None:
    """`detect` sees only documents whose top level is a `top_level` (RFC 9180's is a list)."""
    _DETECTORS.append((detect, top_level))


def verify_document(doc: Any) -> Iterator[CaseResult]:
    if not isinstance(doc, dict | list):
        raise UnrecognisedFile("top level is neither a JSON object nor a list")
    if isinstance(doc, dict) and doc.get("format") == FORMAT:
        if doc.get("version") != FORMAT_VERSION:
            raise UnrecognisedFile(f"unsupported vector format version {doc.get('version')!r}")
        kind = doc.get("kind")
        table = our_verifiers()
        if kind not in table:
            raise UnrecognisedFile(f"unknown vector kind {kind!r}")
        return table[kind](doc)
    verifier = third_party_verifier(doc)
    if verifier is None:
        raise UnrecognisedFile(
            "not a triple-ratchet, Wycheproof, COCKTAIL-DKG or RFC 9180 HPKE vector file"
        )
    return verifier(doc)


PUBLISHED_PACKAGE_DIR = "published"  # setup.py copies vectors/*.json here when building a wheel


def source_checkout() -> Path | None:
    """The repository this package is imported from (a clone, or an editable install), or None
    for a regular install: the folder holding both `triple_ratchet/` and its pyproject.toml."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "vectors").is_dir() else None


def published_vectors_dir() -> Path | None:
    """Where this version's published vectors are: the checkout's `vectors/` (the canonical
    copy) or, from a regular install, the copy shipped as package data; None if neither."""
    root = source_checkout()
    if root is not None:
        return root / "vectors"
    packaged = Path(__file__).resolve().parent / PUBLISHED_PACKAGE_DIR
    return packaged if packaged.is_dir() else None


def load(path: Path) -> Any:
    with path.open("rb") as f:
        return json.load(f)


def verify_paths(paths: list[Path], out: Callable[[str], None] = print) -> tuple[int, int, int]:
    """Check every file; print a line per file and per failure. Returns (passed, failed, skipped).

    A file that cannot be read or interpreted counts as one failure.
    """
    totals = [0, 0, 0]
    for path in paths:
        counts = [0, 0, 0]
        skip_reasons: dict[str, int] = {}
        try:
            for result in verify_document(load(path)):
                i = ("passed", "failed", "skipped").index(result.status)
                counts[i] += 1
                if result.status == "failed":
                    out(f"  FAIL {path.name} {result.case}: {result.reason}")
                elif result.status == "skipped":
                    skip_reasons[result.reason] = skip_reasons.get(result.reason, 0) + 1
        except (OSError, ValueError, UnrecognisedFile) as exc:
            out(f"  ERROR {path}: cannot interpret file: {exc}")
            counts[1] += 1
        except Exception as exc:  # a hostile file fails; the next file still runs
            # (RecursionError from deep nesting, a verifier tripping over a malformed shape.)
            out(f"  ERROR {path}: verifier crashed: {type(exc).__name__}: {str(exc)[:200]}")
            counts[1] += 1
        out(f"{path}: {counts[0]} passed, {counts[1]} failed, {counts[2]} skipped")
        for reason, n in sorted(skip_reasons.items()):
            out(f"  skipped {n}: {reason or 'no reason given'}")
        for i in range(3):
            totals[i] += counts[i]
    return totals[0], totals[1], totals[2]


def document(kind: str, description: str, cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Build one of our vector files."""
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "kind": kind,
        "description": description,
        "cases": cases,
    }


def run_cases(
    doc: dict[str, Any], check: Callable[[dict[str, Any]], None]
) -> Iterator[CaseResult]:
    """Run `check` on every case: it raises `AssertionError` (or anything) on a mismatch.

    A negative case passes when `check` raises the error class the case names.
    """
    from triple_ratchet import errors

    cases = doc.get("cases", [])
    if not isinstance(cases, list):
        yield CaseResult("cases", "failed", "malformed file: \"cases\" is not a list")
        return
    for index, case in enumerate(cases):
        if not isinstance(case, dict):
            yield CaseResult(f"#{index}", "failed", "malformed case: not an object")
            continue
        name = f"#{index} {_text(case.get('description', ''))}".strip()
        expected = case.get("error")
        if expected is not None and not (
                isinstance(expected, dict) and isinstance(expected.get("type"), str)):
            yield CaseResult(name, "failed", "malformed case: \"error\" is not {\"type\": str}")
            continue
        try:
            check(case)
        except AssertionError as exc:
            yield CaseResult(name, "failed", f"mismatch: {exc}")
            continue
        except errors.TripleRatchetError as exc:
            if expected and _is_subclass_named(type(exc), expected.get("type")):
                culprit = expected.get("culprit")
                if culprit is not None and getattr(exc, "culprit", None) != culprit:
                    yield CaseResult(
                        name, "failed",
                        f"culprit {getattr(exc, 'culprit', None)} != expected {culprit}",
                    )
                else:
                    yield CaseResult(name, "passed")
            else:
                yield CaseResult(name, "failed", f"unexpected {type(exc).__name__}: {exc}")
            continue
        except Exception as exc:  # a crash is a failure, never a pass
            yield CaseResult(name, "failed", f"crashed with {type(exc).__name__}: {exc}")
            continue
        if expected:
            yield CaseResult(name, "failed", f"expected {expected.get('type')}, got success")
        else:
            yield CaseResult(name, "passed")


def case(description: str, suite_name: str | None, inputs: dict[str, Any],
         outputs: dict[str, Any] | None = None, error: str | None = None) -> dict[str, Any]:
    """One case of our format: valid (`outputs`) or negative (`error`, an error class name)."""
    doc: dict[str, Any] = {"description": description, "suite": suite_name, "inputs": inputs}
    if error is None:
        doc["outputs"] = outputs
    else:
        doc["error"] = {"type": error}
    return doc


def _text(value: object) -> str:
    """A file-supplied label for a report line: shown, never trusted, and kept short."""
    return (value if isinstance(value, str) else repr(value))[:200]


def _is_subclass_named(cls: type, name: object) -> bool:
    return any(k.__name__ == name for k in cls.__mro__)


def expect_equal(label: str, got: object, want: object) -> None:
    if got != want:
        raise AssertionError(f"{label}: got {got!r}, want {want!r}")
