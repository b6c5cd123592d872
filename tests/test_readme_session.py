"""README's "Using a group session" cannot rot: its code runs as written, and every name its
table gives is one the library has."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from triple_ratchet import errors
from triple_ratchet.group import events, run
from triple_ratchet.group.events import CommonOut, MessageReceived, PairwiseOut
from triple_ratchet.group.message_path import GRACE_MS
from triple_ratchet.group.session import GroupSession
from triple_ratchet.hub.frames import Kind

README = Path(__file__).resolve().parents[1] / "README.md"
HEADING = "## Using a group session"


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    assert HEADING in text, "README lost its 'Using a group session' section"
    body = text.split(HEADING, 1)[1]
    return body.split("\n## ", 1)[0]


def _code_blocks(section: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", section, flags=re.S | re.M)


def test_section_is_compact_and_has_one_example() -> None:
    section = _section()
    assert len((HEADING + section).splitlines()) <= 81  # the brief's "at most 80 lines" + gap
    assert len(_code_blocks(section)) == 1


def test_example_runs_and_delivers() -> None:
    (code,) = _code_blocks(_section())
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(code, str(README), "exec"), namespace)
    got = namespace["got"]
    assert isinstance(got, list)
    assert [e.body for e in got if isinstance(e, MessageReceived)] == [b"hello Bob"]
    # It saved before sending, and what it saved loads as the session it was.
    bob_group = namespace["bob_group"]
    assert isinstance(bob_group, GroupSession)
    assert bob_group.status == "active" and bob_group.epoch >= 1
    saved = namespace["saved"]
    assert isinstance(saved, dict) and set(saved) == {"alice", "bob"}
    # The common part went to a mailbox of its own, not to a group, control or inbox one.
    hub = namespace["hub"]
    opened = namespace["opened"]
    assert isinstance(hub, dict)
    common_box = opened.common_mailbox.mailbox_id  # type: ignore[attr-defined]
    assert hub[common_box] and common_box not in bob_group.mailboxes()


def test_example_fails_when_a_step_is_left_out() -> None:
    """The check at the end can fail: without Alice's message nothing is delivered."""
    (code,) = _code_blocks(_section())
    line = 'post("alice", group, group.encrypt(b"hello Bob", clock / 1000))\n'
    assert line in code
    with pytest.raises(AssertionError):
        exec(compile(code.replace(line, ""), str(README), "exec"),
             {"__name__": "readme_example"})


def _known_names() -> set[str]:
    names = {n for n in dir(GroupSession) if not n.startswith("__")}
    names |= {n for n in dir(events) if not n.startswith("_")}
    names |= {n for n in dir(errors) if not n.startswith("_")}
    for cls in (CommonOut, PairwiseOut):
        names |= {f.name for f in dataclasses.fields(cls)}
    names.add(run.RepairedSealing.__name__)
    return names | {k.name for k in Kind}  # the hub's mailbox kinds (CONTROL)


def test_table_names_exist() -> None:
    section = _section()
    table = [line for line in section.splitlines() if line.startswith("| ")]
    assert len(table) >= 9
    tokens = {m.group(1) for line in table
              for m in re.finditer(r"`([A-Za-z_]\w*)(?![\w/])", line)}
    missing = tokens - _known_names()
    assert not missing, f"README table names what the library lacks: {sorted(missing)}"


def test_grace_is_what_the_readme_says() -> None:
    assert "GRACE (5 min of hub time)" in _section()
    assert GRACE_MS == 5 * 60 * 1000
