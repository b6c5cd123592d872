"""Spec gaps an implementer from the spec alone hit (issue 9, items 17-19, 21): the spec must say
what the code and the vectors pin down. Each test reads spec text and compares it with the code
or the vector files, so neither can change without the other.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from pathlib import Path
from typing import Any

from triple_ratchet import errors
from triple_ratchet.dkg.ed25519 import L, Scalar
from triple_ratchet.identity import Identity
from triple_ratchet.suites import suite_by_name

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "spec"


def _section(file: str, heading: str) -> str:
    """The text of one section (from its heading to the next heading of the same level)."""
    text = (SPEC / file).read_text()
    level = heading.split(" ")[0]
    start = text.index(heading + "\n")
    rest = text[start + len(heading) + 1:]
    end = re.search(rf"^{level} ", rest, flags=re.MULTILINE)
    return rest[: end.start()] if end else rest


def test_spec_defines_the_error_hierarchy_of_errors_py() -> None:
    """Item 19: spec 14 "Error classes" draws exactly errors.py's tree and has a row per class."""
    section = _section("14-test-vectors.md", "## Error classes")
    tree = section.split("```")[1]
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in tree.strip().splitlines():
        name = re.search(r"[A-Z]\w+", line)
        assert name is not None, line
        depth = name.start()
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[name.group()] = stack[-1][1] if stack else None
        stack.append((depth, name.group()))
    classes = {n: c for n, c in inspect.getmembers(errors, inspect.isclass)
               if issubclass(c, errors.TripleRatchetError)}
    assert set(parents) == set(classes) == set(errors.__all__)
    for name, cls in classes.items():
        base = cls.__bases__[0]
        assert parents[name] == (None if base is Exception else base.__name__), name
        assert f"| `{name}` |" in section or name == "TripleRatchetError", f"no row for {name}"
    # The over-limit rule is stated there, and 12 points to it.
    assert "**Over a limit: `LimitExceeded` or `DecodeError`.**" in section
    limits = " ".join((SPEC / "12-limits.md").read_text().split())
    assert '14 "Error classes" states the rule in full' in limits


def _keys(value: Any, into: set[str]) -> None:
    """Every object key at any depth (a decoded frame's fields, nested outputs...)."""
    if isinstance(value, dict):
        for k, v in value.items():
            into.add(k)
            _keys(v, into)
    elif isinstance(value, list):
        for v in value:
            _keys(v, into)


def test_every_vector_field_is_in_the_schemas() -> None:
    """Item 18: every operation, every input and output field (at any depth, so a hub frame's
    `proof` and `mailbox` too), every frame type name and every typed-JSON tag of every file in
    vectors/ is named in spec 14 "Schemas"."""
    section = _section("14-test-vectors.md", "### Schemas")
    named = set(re.findall(r"`([A-Za-z_][\w-]*)`", section))
    named |= set(re.findall(r"`\{\"(\w+)\"", section))  # typed JSON: `{"int": ...}`
    missing: dict[str, set[str]] = {}
    for path in sorted((REPO / "vectors").glob("*.json")):
        doc = json.loads(path.read_text())
        assert f"**`{doc['kind']}`**" in section, f"no schema for kind {doc['kind']}"
        found: set[str] = set()
        for case in doc["cases"]:
            _keys(case["inputs"], found)
            _keys(case.get("outputs") or {}, found)
            found |= set(case.get("error", {}))
            operation = case["inputs"].get("operation")
            if operation:
                found.add(operation)
            frame = (case.get("outputs") or {}).get("frame")
            if frame:
                found.add(frame["type"])
        gaps = found - named
        if gaps:
            missing[path.name] = gaps
    assert not missing, missing


def test_directory_id_hashes_the_identity_encoding() -> None:
    """Item 17: spec 10 names the identity encoding of 03, and the hub vector shows it as input
    and the exact hashed bytes as output."""
    text = (SPEC / "10-hub.md").read_text()
    assert "**whole identity\nencoding** of section 3" in text
    doc = json.loads((REPO / "vectors" / "hub.json").read_text())
    cases = [c for c in doc["cases"] if c["inputs"]["operation"] == "access"]
    assert cases
    for case in cases:
        suite = suite_by_name(case["suite"])
        identity = bytes.fromhex(case["inputs"]["identity"])
        assert Identity.from_bytes(identity, suite).to_bytes() == identity
        hashed = bytes.fromhex(case["outputs"]["directory_id_input"])
        assert hashed.endswith(suite.suite_id.to_bytes(2, "big") + identity)
        assert hashlib.sha256(hashed).hexdigest() == case["outputs"]["directory_id"]


def test_spec_states_the_dkg_draws_byte_order_and_the_code_follows_it() -> None:
    """Item 21: a DKG scalar draw is 64 bytes read little-endian, reduced mod L (spec 06 §6.5)."""
    assert "64 bytes read as a **little-endian** integer and reduced mod `L`" in _section(
        "06-dkg-cocktail.md", "## 6.5 Round 1 (participant i)")
    draw = bytes(range(64))
    assert Scalar.random(lambda n: draw[:n]).to_bytes() == (
        int.from_bytes(draw, "little") % L).to_bytes(32, "little")


def test_spec_answers_the_smaller_gaps() -> None:
    """Item 21: the open-vector receiver, the error classes of an equivocation, the epoch
    numbering and the honest WebCrypto note are written down."""
    assert "**fresh receiver of that epoch**" in _section("09-group-messages.md", "## 9.9 Vectors")
    judged = _section("07-dkg-additions.md", "## 7.7 Aborts")
    for error in ("DecodeError", "LimitExceeded", "ProtocolError", "InvalidSignature"):
        assert error in judged.split("**Equivocation, kind 1**")[1].split("**Kind 2**")[0]
    assert "a group's first epoch is **1**" in (SPEC / "08-key-schedule.md").read_text()
    suites = (SPEC / "02-suites.md").read_text()
    assert "is what a browser's WebCrypto does natively" not in suites
    assert "**RFC 6979 signing.**" in suites
    assert "**A public key from a raw private key.**" in suites


def test_the_epoch_script_schema_names_every_step_and_action_of_the_file() -> None:
    """Spec 14's `epoch-script-v2` schema spells out each step kind and the exact array of each
    action (its call, `now`, `posted`, and the error of a refused receive), and the file uses
    exactly those; the kind is in the version-2 table with its module."""
    section = _section("14-test-vectors.md", "### Schemas")
    schema = section[section.index("**`epoch-script-v2`**"):]
    schema = " ".join(schema[:schema.index("\n\n")].split())
    doc = json.loads((REPO / "vectors" / "epoch-script-v2.json").read_text())
    steps: set[str] = set()
    shapes: set[str] = set()
    for case in doc["cases"]:
        steps |= {s["do"] for s in case["inputs"]["steps"]}
        for member in case["outputs"]["members"]:
            for action in member["actions"]:
                refused = isinstance(action[-1], str)
                call = action[:-3] if refused else action[:-2]
                assert isinstance(action[-3 if refused else -2], int)  # now
                assert isinstance(action[-2 if refused else -1], list)  # posted
                assert not refused or action[0] == "receive"
                shapes.add(call[0])
                argument = {"create": "[names]", "chunk": "mailbox, entry",
                            "receive": "mailbox, entry", "caught_up": "mailbox",
                            "encrypt": "text", "propose_add": "joiner"}.get(call[0])
                want = f'["{call[0]}", ' + (f"{argument}, " if argument else "") + "now, posted]"
                assert want in schema, want
    for step in steps:
        assert f'`"{step}"`' in schema, step
    assert shapes == {"create", "chunk", "rotate", "receive", "caught_up", "tick", "encrypt",
                      "propose_add"}
    table = " ".join(_section("14-test-vectors.md",
                              "## The epoch change's files").split())
    assert ("| `epoch-script-v2` | `vectors/epoch-script-v2.json` (module "
            "`epoch_script_v2.py`) | `script` |") in table
