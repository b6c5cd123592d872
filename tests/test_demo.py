"""The README's main job, end to end: a real hub process, real WebSocket clients, a real DKG."""

from __future__ import annotations

import subprocess
import sys

import pytest

from triple_ratchet.cli import main
from triple_ratchet.suites import CLASSICAL_SUITES


@pytest.mark.parametrize("suite", CLASSICAL_SUITES, ids=lambda s: s.name)
def test_demo_runs_a_group_through_a_local_hub(suite, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--members", "3", "--messages", "6", "--suite", suite.name]) == 0
    out = capsys.readouterr().out
    assert "every plaintext reached exactly the members it was sent to, once: yes" in out
    assert "removed member decrypted nothing after its removal: yes" in out
    assert out.count("epoch change,") == 4  # create, add, remove, refresh
    assert "hub stored:" in out


def test_demo_with_members_offline_through_the_changes(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    assert main(["demo", "--members", "4", "--messages", "5", "--offline", "2"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "offline members caught up: yes" in lines
    assert "removed for being offline: 0" in lines
    assert "every plaintext reached exactly the members it was sent to, once: yes" in out
    assert "catch-up: 2 back" in out


def test_demo_refuses_more_offline_than_it_can_keep(capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    assert main(["demo", "--members", "3", "--offline", "2"]) == 2
    assert "--offline" in capsys.readouterr().err


def test_demo_refuses_a_group_of_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--members", "1"]) == 2
    assert "at least 2 members" in capsys.readouterr().err


def test_console_script_entry_point_runs() -> None:
    done = subprocess.run([sys.executable, "-m", "triple_ratchet", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "demo" in done.stdout and "vectors" in done.stdout and "hub" in done.stdout
