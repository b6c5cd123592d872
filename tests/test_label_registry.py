"""tools/label_registry.py finds every label the code defines, so the registry in spec/00 can be
regenerated from the code (the table's freshness is checked by `--check`, not here, so that a new
label does not fail the suite before its section's helper reruns the generator)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from triple_ratchet import random as tr_random
from triple_ratchet.testvectors import cocktail as tv_cocktail

REPO = Path(__file__).resolve().parents[1]


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("label_registry", REPO / "tools" /
                                                  "label_registry.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["label_registry"] = module
    spec.loader.exec_module(module)
    return module


def _label_constants() -> dict[str, bytes]:
    import importlib
    import pkgutil

    import triple_ratchet

    found: dict[str, bytes] = {}
    for info in pkgutil.walk_packages(triple_ratchet.__path__, prefix="triple_ratchet."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for attr, value in vars(module).items():
            if attr.startswith("LABEL_") and isinstance(value, bytes):
                found[attr] = value
    return found


def test_every_label_constant_has_a_row_naming_it() -> None:
    rows, _ = _tool().rows()
    by_constant = {where.rsplit(".", 1)[1]: value for value, where, _, _ in rows
                   if not where.endswith("(inline)")}
    constants = _label_constants()
    assert constants, "no LABEL_* constants found: the walk is broken"
    for name, value in constants.items():
        assert by_constant.get(name) == value.decode("latin-1"), name


def test_inline_domain_strings_are_found() -> None:
    rows, _ = _tool().rows()
    inline = {(value, where) for value, where, _, _ in rows if where.endswith("(inline)")}
    assert ("payload_{i}", "testvectors.cocktail (inline)") in inline  # an f-string label
    assert ("triple-ratchet test rng", "random (inline)") in inline
    # the scanner reads the real source, not a list: both strings are in those modules
    assert b'f"payload_{i}"' in Path(tv_cocktail.__file__).read_bytes()
    assert b"triple-ratchet test rng" in Path(tr_random.__file__).read_bytes()


def test_clashes_are_reported() -> None:
    tool = _tool()
    labels, _ = tool.collect()
    assert tool.clashes(labels) == []  # the code as it stands has none
    first = labels[0]
    twin = tool.Label(first.value, "elsewhere.LABEL_TWIN", "LABEL_TWIN", "elsewhere", 1)
    assert any("more than one constant" in w for w in tool.clashes([*labels, twin]))
    prefix = tool.Label("group message", "elsewhere.LABEL_PREFIX", "LABEL_PREFIX", "elsewhere", 1)
    assert any("is a prefix of" in w for w in tool.clashes([*labels, prefix]))


def test_an_undescribed_label_still_gets_a_row() -> None:
    tool = _tool()
    original = tool.collect
    new = tool.Label("x new label", "somewhere.LABEL_NEW", "LABEL_NEW", "somewhere", 1)
    setattr(tool, "collect", lambda: (original()[0] + [new], []))  # noqa: B010
    rows, warnings = tool.rows()
    assert ("x new label", "somewhere.LABEL_NEW") in {(v, w) for v, w, _, _ in rows}
    assert any("LABEL_NEW" in w and "not described" in w for w in warnings)


def test_the_spec_table_is_generated_from_markers() -> None:
    tool = _tool()
    text = tool.OVERVIEW.read_text()
    assert tool._TABLE_START in text and tool._TABLE_END in text
    replaced = tool._replace(text, "| x |\n")
    assert "| x |\n" in replaced and replaced.count(tool._TABLE_START) == 1
