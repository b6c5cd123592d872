"""First contact with the command (issue 10, item 4): --version, defaults in every --help, a
missing optional extra named instead of a traceback, and `vectors generate` writing only where
it is told (never into an installed package)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest

import triple_ratchet
from triple_ratchet import cli
from triple_ratchet.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]


def _parsers(parser: argparse.ArgumentParser,
             path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _parsers(child, (*path, name))
    return found


def test_version_comes_from_the_package(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"triple-ratchet {triple_ratchet.__version__}"


def test_version_falls_back_to_dunder_version_when_not_installed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata as metadata

    def missing(name: str) -> metadata.Distribution:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    assert cli.version() == triple_ratchet.__version__


def test_version_of_another_installed_copy_is_not_reported(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An older triple_ratchet installed elsewhere must not lend its version to this code."""
    import importlib.metadata as metadata

    class Elsewhere(metadata.Distribution):
        version = "0.0.1"

        def read_text(self, filename: str) -> str | None:
            return None

        def locate_file(self, path: str | os.PathLike[str]) -> Path:
            return tmp_path / path

    monkeypatch.setattr(metadata, "distribution", lambda name: Elsewhere())
    assert cli.version() == triple_ratchet.__version__ != "0.0.1"


def test_every_option_of_every_subcommand_shows_its_default(
        capsys: pytest.CaptureFixture[str]) -> None:
    parsers = _parsers(build_parser())
    assert {p for p, _ in parsers} >= {(), ("vectors",), ("vectors", "verify"),
                                      ("vectors", "generate"), ("hub",), ("demo",)}
    for path, parser in parsers:
        with pytest.raises(SystemExit) as stop:
            main([*path, "--help"])
        assert stop.value.code == 0
        text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction
                          | argparse._SubParsersAction):
                continue
            name = action.option_strings[-1] if action.option_strings else action.dest
            shown = cli.HelpWithDefaults("x")._get_help_string(action) or ""
            assert action.help and "default" in shown, (path, name)
            if action.default not in (None, [], argparse.SUPPRESS):
                assert f"(default: {action.default})" in text, (path, name, text)


@pytest.mark.parametrize("argv", [["hub", "--store", "memory:", "--port", "0"],
                                  ["demo", "--members", "2", "--messages", "1"]])
def test_hub_and_demo_without_websockets_name_the_extra(
        argv: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # None in sys.modules makes `import websockets` raise ModuleNotFoundError, as if absent,
    # even when another test already imported the hub.
    monkeypatch.setitem(sys.modules, "websockets", None)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "pip install 'triple_ratchet[hub]'" in err and "websockets" in err
    assert "Traceback" not in err


def test_a_redis_store_without_redis_names_its_extra(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    assert main(["hub", "--store", "redis://127.0.0.1:1/0", "--port", "0"]) == 2
    assert "pip install 'triple_ratchet[redis]'" in capsys.readouterr().err


def test_another_missing_module_is_not_blamed_on_the_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(name: str) -> None:
        raise ModuleNotFoundError("No module named 'somethingelse'", name="somethingelse")

    monkeypatch.setattr("importlib.import_module", broken)
    with pytest.raises(ModuleNotFoundError):
        cli.require_extra("websockets", "hub", "triple-ratchet hub")


def test_generate_outside_a_checkout_asks_for_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["vectors", "generate"]) == 2
    assert "--out" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_generate_in_a_checkout_defaults_to_its_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert cli._generate_target(None) == REPO / "vectors"


def test_generate_never_writes_into_the_installed_package(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import sysconfig

    package = Path(triple_ratchet.__file__).resolve().parent
    purelib = Path(sysconfig.get_paths()["purelib"])
    for target in (package / "testvectors" / "published", purelib / "somewhere"):
        assert main(["vectors", "generate", "--out", str(target)]) == 2
        assert "refusing to write vectors into the installed package" in capsys.readouterr().err
        assert not (purelib / "somewhere").exists()
    assert not (package / "testvectors" / "published").exists()


def test_verify_without_arguments_finds_the_published_vectors(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # not the checkout: the package knows where its vectors are
    from triple_ratchet.testvectors import published_vectors_dir

    assert published_vectors_dir() == REPO / "vectors"
    assert cli._default_vectors_dir() == REPO / "vectors"


def test_verify_says_so_when_no_published_vectors_exist(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import triple_ratchet.testvectors as tv

    monkeypatch.setattr(tv, "published_vectors_dir", lambda: None)
    assert main(["vectors", "verify"]) == 2
    assert "no published vectors found" in capsys.readouterr().err


def test_python_m_hub_without_websockets_names_the_extra(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from triple_ratchet.hub.__main__ import main as hub_main

    monkeypatch.setitem(sys.modules, "websockets", None)
    with pytest.raises(SystemExit) as stop:
        hub_main(["--store", "memory:", "--port", "0"])
    assert stop.value.code == 2
    assert "pip install 'triple_ratchet[hub]'" in capsys.readouterr().err


def test_output_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    import subprocess

    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    run = subprocess.run(  # `... vectors verify | head -1`, the reader gone after one line
        ["/bin/sh", "-c", f"'{sys.executable}' -m triple_ratchet vectors verify | head -1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.stdout.count("\n") == 1 and "passed" in run.stdout
    assert "Traceback" not in run.stderr and "BrokenPipeError" not in run.stderr, run.stderr
