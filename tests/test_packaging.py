"""What a user gets from `pip install .` (issue 10, item 4): an sdist and a wheel built from it
in an isolated build environment; the wheel, installed (not editable) into a fresh venv, runs
`triple-ratchet --version`, `vectors verify` from another folder (the published vectors ship as
package data, byte for byte the repository's vectors/), `vectors generate` (only where told) and
the demo, and an app on it passes `mypy --strict`; so does one on an editable install. Nothing at
runtime imports cbor2 (a test-only dependency)."""

from __future__ import annotations

import ast
import os
import shutil
import site
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from pathlib import Path

import pytest

import triple_ratchet

REPO = Path(__file__).resolve().parents[1]
PACKAGED = "triple_ratchet/testvectors/published/"
# What the build needs (MANIFEST.in ships the same in an sdist); copied so that building leaves
# no build/ or *.egg-info in the checkout.
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE",
           "triple_ratchet", "vectors", "spec")

APP = '''\
"""A small app on the library's public names: mypy --strict must accept it as it is."""
from triple_ratchet import Account, SafetyNumber, safety_number
from triple_ratchet.errors import TripleRatchetError
from triple_ratchet.suites import DEFAULT_SUITE


def pair() -> tuple[Account, Account]:
    return Account.generate(DEFAULT_SUITE), Account.generate(DEFAULT_SUITE)


def number() -> SafetyNumber:
    alice, bob = pair()
    return safety_number(alice.public_identity, bob.public_identity)


def describe(error: TripleRatchetError) -> str:
    return type(error).__name__ + ": " + str(error)


print(number().formatted())
'''
# The same app with a type error: mypy must see the library's real types (py.typed), not Any.
WRONG_APP = APP.replace("safety_number(alice.public_identity, bob.public_identity)",
                        "safety_number(alice, bob)")


def _run(*argv: str | Path, cwd: Path, timeout: float = 120,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    clean.update(env or {})
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=clean, capture_output=True,
                          text=True, timeout=timeout, check=False)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.args, result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout


def _venv(path: Path, *, dependencies: bool = True) -> Path:
    """A fresh venv whose own site-packages comes first; with `dependencies`, the running
    interpreter's site-packages follows it (a plain path line, so an editable install of the
    checkout there is not picked up) and provides the dependencies without a download."""
    _ok(_run(sys.executable, "-m", "venv", "--without-pip", path, cwd=path.parent))
    python = path / "bin" / "python"
    if not dependencies:
        return python
    purelib = _ok(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                       cwd=path.parent)).strip()
    Path(purelib, "_test_dependencies.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n")
    return python


def _pip(python: Path, *args: str | Path, cwd: Path) -> str:
    return _ok(_run(sys.executable, "-m", "pip", "--python", python, *args, cwd=cwd,
                    timeout=300))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, tree / name,
                            ignore=shutil.ignore_patterns("__pycache__", "published"))
        else:
            shutil.copy2(src, tree / name)
    return tree


@pytest.fixture(scope="module")
def sdist(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The source distribution, made as `python -m build` would: by the build backend, in a
    venv holding only what [build-system] requires."""
    builder = _venv(tmp_path_factory.mktemp("builder") / "venv", dependencies=False)
    requires = tomllib.loads((source / "pyproject.toml").read_text())["build-system"]["requires"]
    _pip(builder, "install", "-q", *requires, cwd=source)
    out = tmp_path_factory.mktemp("sdist")
    _ok(_run(builder, "-c", "import sys; from setuptools import build_meta as backend; "
             "backend.build_sdist(sys.argv[1])", out, cwd=source))
    (built,) = out.glob("triple_ratchet-*.tar.gz")
    return built


@pytest.fixture(scope="module")
def wheel(sdist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from the sdist (as `python -m build` does), by pip in an isolated build
    environment with [build-system] requires (setuptools>=77)."""
    out = tmp_path_factory.mktemp("wheel")
    _ok(_run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", out, sdist,
             cwd=out, timeout=300))
    (built,) = out.glob("triple_ratchet-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The venv's bin/ with the wheel installed, not editable."""
    python = _venv(tmp_path_factory.mktemp("regular") / "venv")
    _pip(python, "install", "-q", "--no-deps", wheel, cwd=wheel.parent)
    yield python.parent


def test_the_wheel_ships_the_published_vectors_byte_for_byte(wheel: Path) -> None:
    """Fails when the packaged copy and vectors/ diverge (a file missing, extra or changed)."""
    published = {p.name: p.read_bytes() for p in (REPO / "vectors").glob("*.json")}
    with zipfile.ZipFile(wheel) as archive:
        packaged = {name[len(PACKAGED):]: archive.read(name) for name in archive.namelist()
                    if name.startswith(PACKAGED)}
    assert sorted(packaged) == sorted(published)
    for name, data in published.items():
        assert packaged[name] == data, name


def test_the_sdist_carries_the_licence_the_vectors_and_the_spec(sdist: Path) -> None:
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "README.md", "pyproject.toml", "setup.py", "MANIFEST.in",
            "triple_ratchet/py.typed"} <= names
    assert {f"vectors/{p.name}" for p in (REPO / "vectors").glob("*.json")} <= names
    assert {f"spec/{p.name}" for p in (REPO / "spec").glob("*.md")} <= names


def test_the_wheel_metadata(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(archive.read(meta_name).decode())
        license_text = next(archive.read(n) for n in names
                            if n.endswith(".dist-info/licenses/LICENSE"))
    assert "triple_ratchet/py.typed" in names
    assert meta["Version"] == triple_ratchet.__version__
    assert meta["License-Expression"] == "Apache-2.0"
    assert license_text == (REPO / "LICENSE").read_bytes()
    assert b"Apache License" in license_text and b"Version 2.0, January 2004" in license_text
    assert meta.get_all("Project-URL") and meta["Keywords"]
    classifiers = meta.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert not any(c.startswith("License ::") for c in classifiers)  # PEP 639: the expression
    runtime = [r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r]
    assert not any(r.startswith("cbor2") for r in runtime), runtime
    assert any(r.startswith("cbor2") and 'extra == "test"' in r
               for r in meta.get_all("Requires-Dist") or [])
    assert not any(n.startswith(("tests/", "setup.py", "vectors/")) for n in names)


def test_build_requires_a_setuptools_that_reads_the_spdx_licence() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert isinstance(project["project"]["license"], str)  # an SPDX expression
    assert "setuptools>=77" in project["build-system"]["requires"]


def test_regular_install_runs_version_verify_and_demo(installed: Path, tmp_path: Path) -> None:
    where = _ok(_run(installed / "python", "-c",
                     "import triple_ratchet; print(triple_ratchet.__file__)", cwd=tmp_path))
    assert Path(where.strip()).is_relative_to(installed.parent), where  # not the checkout
    command = installed / "triple-ratchet"

    out = _ok(_run(command, "--version", cwd=tmp_path))
    assert out.strip() == f"triple-ratchet {triple_ratchet.__version__}"

    out = _ok(_run(command, "vectors", "verify", cwd=tmp_path))
    files = len(list((REPO / "vectors").glob("*.json")))
    assert out.count("/triple_ratchet/testvectors/published/") == files
    assert out.strip().splitlines()[-1].endswith(" passed, 0 failed, 0 skipped")

    pytest.importorskip("websockets")
    out = _ok(_run(command, "demo", "--members", "3", "--messages", "5", cwd=tmp_path,
                   timeout=180))
    assert "exactly the members it was sent to, once: yes" in out


def test_regular_install_generates_only_where_told(installed: Path, tmp_path: Path) -> None:
    command = installed / "triple-ratchet"
    refused = _run(command, "vectors", "generate", cwd=tmp_path)
    assert refused.returncode == 2 and "--out" in refused.stderr
    assert list(tmp_path.iterdir()) == []
    package = Path(_ok(_run(installed / "python", "-c",
                            "import triple_ratchet; print(triple_ratchet.__file__)",
                            cwd=tmp_path)).strip()).parent
    refused = _run(command, "vectors", "generate", "--out", package / "testvectors" / "published",
                   cwd=tmp_path)
    assert refused.returncode == 2 and "installed package" in refused.stderr
    _ok(_run(command, "vectors", "generate", "--out", tmp_path / "mine", cwd=tmp_path,
             timeout=300))
    for published in (REPO / "vectors").glob("*.json"):
        assert (tmp_path / "mine" / published.name).read_bytes() == published.read_bytes()


@pytest.mark.parametrize("mode", ["regular", "editable"])
def test_mypy_strict_accepts_an_app_on_the_installed_library(
        mode: str, installed: Path, source: Path, tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    if mode == "regular":
        python = installed / "python"
    else:
        python = _venv(tmp_path / "venv")
        _pip(python, "install", "-q", "--no-deps", "-e", source, cwd=tmp_path)
    app = tmp_path / "app"
    app.mkdir()
    (app / "good.py").write_text(APP)
    (app / "wrong.py").write_text(WRONG_APP)

    def mypy(name: str) -> subprocess.CompletedProcess[str]:
        return _run(sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                    "--python-executable", python, name, cwd=app, timeout=300)

    good = mypy("good.py")
    assert good.returncode == 0, good.stdout + good.stderr
    wrong = mypy("wrong.py")
    assert wrong.returncode == 1 and '"safety_number" has incompatible type' in wrong.stdout, (
        wrong.stdout + wrong.stderr)
    assert "missing library stubs or py.typed marker" not in wrong.stdout
    _ok(_run(python, "good.py", cwd=app))  # and it runs against that install


def test_nothing_at_runtime_imports_cbor2() -> None:
    """cbor2 is a test-only dependency (tests cross-check our codec against it)."""
    for path in sorted((REPO / "triple_ratchet").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.split(".")[0] == "cbor2" for n in names), (path, names)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("cbor2") for d in project["dependencies"])
    assert any(d.startswith("cbor2") for d in project["optional-dependencies"]["test"])
