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
    "demo": 10, "testvectors": 10, "cli": 11, "__main__": 12, "__init__": 12,
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



# Version 1 of the epoch change (spec 11 §11.1-11.9): the modules "the switch" deletes. Nothing
# outside this set imports one of them, so deleting them is a pure deletion; the only exceptions
# are the re-exports of `GroupSession` below, whose lines the switch deletes too.
V1_MODULES = frozenset({
    "triple_ratchet.group.session",
    "triple_ratchet.group.session_state",
    "triple_ratchet.group.attempt_driver",
    "triple_ratchet.group.attempt_mailbox",
    "triple_ratchet.group.epoch_change",
    "triple_ratchet.group.proposal",
    "triple_ratchet.group.welcome",
    "triple_ratchet.group.announcement",
})
V1_REEXPORTS = {
    "triple_ratchet/__init__.py": {("triple_ratchet.group", "GroupSession")},
    "triple_ratchet/group/__init__.py": {("triple_ratchet.group.session", "GroupSession")},
}

V1_REEXPORTERS = frozenset({"triple_ratchet", "triple_ratchet.group"})
# The atheris harness still fuzzes version 1: fixtures.py's `Group` (and `_Net`, `group()`), and
# targets.py's group_state, group_receive_active, group_receive_attempt, group_items and
# dkg_aborts (with their seeds, `_group_identity`, `_group_receive`, and fuzz/corpus/<target>/).
FUZZ_V1_USERS = frozenset({"fuzz/fixtures.py", "fuzz/targets.py"})


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = rel.parts[:-1] if rel.parts[-1] == "__init__" else rel.parts
    return ".".join(parts)


def _imported_names(path: Path) -> set[tuple[str, str]]:
    """(module, name) for each `from module import name`, and (module, "") for `import module`;
    `from triple_ratchet.group import session` counts as importing the module itself."""
    out: set[tuple[str, str]] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update((alias.name, "") for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                out.add((node.module, alias.name))
                out.add((f"{node.module}.{alias.name}", ""))
    return out


def test_nothing_outside_version_1_imports_a_version_1_module() -> None:
    for name in V1_MODULES:  # the list names real modules (a typo would make the test vacuous)
        importlib.import_module(name)
    files = [*PKG.rglob("*.py"), *(REPO / "bench").glob("*.py"), *(REPO / "tools").glob("*.py"),
             *(REPO / "fuzz").glob("*.py")]
    violations = []
    users = set()
    for path in files:
        if _module_name(path) in V1_MODULES:
            continue
        if str(path.relative_to(REPO)) in FUZZ_V1_USERS:
            users.add(str(path.relative_to(REPO)))
            continue
        allowed = V1_REEXPORTS.get(str(path.relative_to(REPO)), set())
        for module, name in _imported_names(path):
            if (module, name) in allowed:
                continue
            if module in V1_MODULES or (module in V1_REEXPORTERS and name == "GroupSession"):
                violations.append(f"{path.relative_to(REPO)} imports {module} {name}".rstrip())
    assert not violations, "\n".join(sorted(violations))
    assert users == FUZZ_V1_USERS


def test_the_v1_import_check_sees_an_import() -> None:
    # The check above must be able to fail: sealing.py once imported proposal.MAX_IDENTITY_LEN.
    probe = PKG / "group" / "sealing.py"
    names = _imported_names(probe)
    assert ("triple_ratchet.group.records", "MAX_IDENTITY_LEN") in names
    assert not any(module in V1_MODULES for module, _ in names)


# Test files of version 1 only: the switch deletes them whole (`test_brief_rules_v2.py::
# V1_TEST_FILES` is the same set but for the helper module test_group_support.py).
V1_TEST_FILES = frozenset({
    "test_brief_rules.py", "test_group_epoch_change.py", "test_group_equivocation.py",
    "test_group_fastpath_v1.py", "test_group_hub_time.py", "test_group_messages.py",
    "test_group_pairwise.py", "test_group_robustness.py", "test_group_saved_state.py",
    "test_group_stateful.py", "test_group_v1_fixes.py", "test_group_support.py",
})


def test_only_the_listed_test_files_use_version_1() -> None:
    tests = REPO / "tests"
    helpers = {f"{name.removesuffix('.py')}" for name in V1_TEST_FILES}
    users = set()
    for path in tests.glob("*.py"):
        for module, name in _imported_names(path):
            if (module in V1_MODULES or module in helpers
                    or (module in V1_REEXPORTERS and name == "GroupSession")):
                users.add(path.name)
    assert users == V1_TEST_FILES  # no other file uses version 1, and the list is not stale
    from test_brief_rules_v2 import V1_TEST_FILES as table_list
    assert V1_TEST_FILES - {"test_group_support.py"} == table_list
