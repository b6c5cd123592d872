"""Coverage-guided fuzzing in CI, on a bounded budget: every target of fuzz/targets.py runs for a
few seconds under atheris (libFuzzer), two at a time. A finding not listed in
fuzz/known_findings.json fails the test with the input's path and the traceback; the long run is
`python fuzz/run.py --seconds N` (fuzz/README.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Inputs per target, with a fixed libFuzzer seed: the CI run explores the same inputs every time,
# so a green run here is a green run in CI (a time budget would explore differently on a slower
# machine and could stop CI on a finding nobody saw). 20 targets, two at a time: 95 s measured on
# a busy shared 2-core machine. The long, time-budgeted run is `python fuzz/run.py --seconds N`.
RUNS = int(os.environ.get("TRIPLE_RATCHET_FUZZ_RUNS", "1500"))
SEED = int(os.environ.get("TRIPLE_RATCHET_FUZZ_SEED", "1"))

try:
    import atheris  # noqa: F401
    HAVE_ATHERIS = True
except ImportError:
    HAVE_ATHERIS = False


@pytest.mark.fuzz
@pytest.mark.skipif(not HAVE_ATHERIS, reason="atheris is not installed (pip install atheris; "
                    "it needs CPython 3.8-3.11 wheels or clang to build)")
def test_every_target_fuzzes_without_a_new_finding(tmp_path: Path) -> None:
    # A fresh work folder: start from the committed corpus only, as CI does.
    done = subprocess.run(
        [sys.executable, str(REPO / "fuzz" / "run.py"), "--runs", str(RUNS), "--seed", str(SEED),
         "--jobs", "2", "--work", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if " runs in " in line]
    assert len(lines) >= 20 and all(not line.startswith("?") for line in lines), done.stdout
