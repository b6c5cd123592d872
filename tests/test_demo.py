"""The README's main job, end to end: a real hub process, real WebSocket clients, a real DKG."""

from __future__ import annotations

import subprocess
import sys

import pytest

from triple_ratchet.cli import main
from triple_ratchet.suites import ALL_SUITES


@pytest.mark.parametrize("suite", ALL_SUITES, ids=lambda s: s.name)
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


@pytest.mark.parametrize("suite", ALL_SUITES, ids=lambda s: s.name)
def test_the_directory_sees_no_identity_or_inbox_in_a_join_key(suite) -> None:
    """The demo publishes join keys encrypted under a key from the identity (spec 10.3): the
    hub holds neither the identity nor the inbox id a join key names; a contact who knows the
    identity opens it, anyone else gets an authentication error."""
    from triple_ratchet.demo import _open_join_key, _seal_join_key
    from triple_ratchet.errors import AuthenticationError
    from triple_ratchet.group.join_keys import JoinKeyring
    from triple_ratchet.identity import IdentityKeyPair

    me, other = IdentityKeyPair.generate(suite), IdentityKeyPair.generate(suite)
    inbox = bytes(range(32))
    ring = JoinKeyring.empty(suite).generate(me, one_time=1, last_resort=False, inbox_id=inbox,
                                             expiry=2**40)
    signed = ring.publishable()[1][0]
    me_bytes = me.public.to_bytes()
    sealed = _seal_join_key(suite, me_bytes, signed)
    assert me_bytes not in sealed and inbox not in sealed and signed not in sealed
    assert _open_join_key(suite, me_bytes, sealed) == signed
    with pytest.raises(AuthenticationError):
        _open_join_key(suite, other.public.to_bytes(), sealed)
