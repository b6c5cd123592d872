"""The package layout is the architecture: a layer imports only from layers below it,
the core does no I/O, and every domain-separation label is unique and specified."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import triple_ratchet

PKG = Path(triple_ratchet.__file__).resolve().parent
REPO = PKG.parent

# Rank of each top-level module or subpackage; an import must go to an equal or lower rank.
RANK = {
    "errors": 0, "random": 0,
    "suites": 1,
    "cbor": 2, "mailbox": 2, "storage": 2,
    "identity": 3,
    "double_ratchet": 4,
    "handshake": 5,
    "pairwise": 6,
    "dkg": 7,
    "group": 8,
    "hub": 9,
    "client": 10,
    "demo": 11, "testvectors": 11, "cli": 12, "__main__": 13, "__init__": 13,
}
CORE = {name for name, rank in RANK.items() if rank <= RANK["group"]}
IO_MODULES = {"socket", "asyncio", "sqlite3", "subprocess", "websockets", "redis", "time",
              "urllib", "http", "logging"}


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        out.append((rel.parts[0].removesuffix(".py"), path))
    return out


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_every_module_has_a_layer() -> None:
    unknown = {top for top, _ in _modules() if top not in RANK}
    assert not unknown, f"modules without a layer rank: {unknown}"


def test_layers_import_only_downwards() -> None:
    violations = []
    for top, path in _modules():
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "triple_ratchet" or len(parts) < 2:
                continue
            target = parts[1]
            if RANK.get(target, 99) > RANK[top]:
                violations.append(f"{path.relative_to(REPO)} imports {name}")
    assert not violations, "\n".join(violations)


def test_core_does_no_io() -> None:
    violations = []
    for top, path in _modules():
        if top not in CORE:
            continue
        for name in _imports(path):
            if name.split(".")[0] in IO_MODULES:
                violations.append(f"{path.relative_to(REPO)} imports {name}")
    assert not violations, "\n".join(violations)


def _all_labels() -> dict[str, list[str]]:
    """Every module-level LABEL_* bytes constant in the package: value -> [where]."""
    labels: dict[str, list[str]] = {}
    for info in pkgutil.walk_packages([str(PKG)], prefix="triple_ratchet."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for attr, value in vars(module).items():
            if attr.startswith("LABEL_") and isinstance(value, bytes):
                owner = getattr(module, "__name__", info.name)
                labels.setdefault(value.decode("latin-1"), []).append(f"{owner}.{attr}")
    return labels


def test_labels_are_unique() -> None:
    labels = _all_labels()
    # The same constant re-exported from another module is one label, not two uses.
    dupes = {}
    for value, where in labels.items():
        attrs = {w.rsplit(".", 1)[1] for w in where}
        if len(attrs) > 1:
            dupes[value] = where
    assert not dupes, f"labels used by more than one constant: {dupes}"


def test_every_label_is_in_the_spec() -> None:
    spec = "\n".join(p.read_text() for p in (REPO / "spec").glob("*.md"))
    missing = [v for v in _all_labels() if v not in spec]
    assert not missing, f"labels not written in spec/: {missing}"


# Version 1 of the epoch change is withdrawn (spec 11 "Version 1 (withdrawn)"): its modules are
# gone, and the public GroupSession is the committee protocol's.
# `session.py` is version 2's session now (it took the name of version 1's).
V1_MODULES = ("session_state", "attempt_driver", "attempt_mailbox", "epoch_change", "proposal",
              "welcome", "announcement", "session_v2")


def test_version_1_modules_are_gone_and_group_session_is_version_2() -> None:
    present = [name for name in V1_MODULES if (PKG / "group" / f"{name}.py").exists()]
    assert not present, f"version-1 modules still present: {present}"
    from triple_ratchet.group.session import STATE_VERSION, GroupSession
    assert STATE_VERSION == 2  # the session module is version 2's
    assert triple_ratchet.GroupSession is GroupSession
    assert importlib.import_module("triple_ratchet.group").GroupSession is GroupSession


def test_the_library_group_size_bound_is_one_thousand() -> None:
    """Issue 8: GroupSession takes groups of up to 1,000 members; every layer's bound agrees."""
    from triple_ratchet.group import control_log, epoch, key_schedule
    assert epoch.MAX_GROUP_SIZE == key_schedule.MAX_GROUP_SIZE_V2 == 1000
    assert control_log.MAX_GROUP_SIZE == 1000
