"""One build step on top of pyproject.toml: ship the published vectors as package data.

`vectors/` at the top of the repository stays the one canonical copy (the specification cites
it, `triple-ratchet vectors generate` rewrites it, tests compare against it). A wheel has no
repository, so the build copies `vectors/*.json` into `triple_ratchet/testvectors/published/`;
`triple_ratchet.testvectors.published_vectors_dir()` reads the checkout's copy when there is one
and the packaged copy otherwise. tests/test_packaging.py checks the wheel's copy byte for byte.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PUBLISHED = HERE / "vectors"
PACKAGED = Path("triple_ratchet", "testvectors", "published")


class BuildPyWithVectors(build_py):
    """build_py, plus the published vectors copied next to the verifiers."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's vectors/ directly
        files = sorted(PUBLISHED.glob("*.json"))
        if not files:
            raise SystemExit(f"no published vectors in {PUBLISHED}: the wheel would lack them")
        target = Path(self.build_lib, PACKAGED)
        if target.exists():
            shutil.rmtree(target)  # a vector file removed from vectors/ leaves the wheel too
        target.mkdir(parents=True)
        for source in files:
            shutil.copyfile(source, target / source.name)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        if not getattr(self, "editable_mode", False):
            target = Path(self.build_lib, PACKAGED)
            outputs += [str(target / p.name) for p in sorted(PUBLISHED.glob("*.json"))]
        return outputs


setup(cmdclass={"build_py": BuildPyWithVectors})
