"""Coverage-guided fuzzing with atheris: `python fuzz/run.py [--seconds N] [--target NAME]`.

Each target runs in its own process (libFuzzer ends the process on a finding). The growing
corpus goes to fuzz/work/<target>/ (not committed) on top of the committed fuzz/corpus/<target>/,
and a crashing input to fuzz/findings/<target>/. Findings already listed in
fuzz/known_findings.json (same signature: what broke, where) are counted, not stopped on, so a
run keeps looking for new ones. Exit status 0: no new finding; 1: a new finding; 2: atheris is
missing.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))

FUZZ = REPO / "fuzz"
WORK = FUZZ / "work"
FINDINGS = FUZZ / "findings"


def _child(name: str, seconds: int, runs: int, work_root: Path, seed: int = 0) -> None:
    """Inside the fuzzing process: instrument the library, then hand over to libFuzzer."""
    import contextlib
    import importlib
    import pkgutil

    import atheris

    with atheris.instrument_imports(include=["triple_ratchet"]):
        import triple_ratchet
        for info in pkgutil.walk_packages(triple_ratchet.__path__, "triple_ratchet."):
            if info.name.endswith("__main__"):
                continue
            # An optional extra (redis, websockets) may not be installed.
            with contextlib.suppress(ImportError):
                importlib.import_module(info.name)
    from fuzz.targets import CORPUS, TARGETS, check, is_known, known_signatures, signature

    t = TARGETS[name]
    t.seeds()  # build the fixtures before the clock starts
    known = known_signatures()
    seen: dict[str, int] = {}

    def one_input(data: bytes) -> None:
        try:
            check(name, data)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            sig = signature(exc, name)
            if not is_known(sig, known):
                print(f"NEW FINDING in {name}: {sig}", file=sys.stderr, flush=True)
                raise
            if sig not in seen:
                print(f"known finding in {name}: {sig}", file=sys.stderr, flush=True)
            seen[sig] = seen.get(sig, 0) + 1

    work = work_root / name
    found = FINDINGS / name
    work.mkdir(parents=True, exist_ok=True)
    found.mkdir(parents=True, exist_ok=True)
    args = [sys.argv[0], str(work), str(CORPUS / name), f"-max_len={t.max_len}",
            "-timeout=30", "-rss_limit_mb=2048", f"-artifact_prefix={found}/",
            "-print_final_stats=1"]
    args.append(f"-runs={runs}" if runs else f"-max_total_time={seconds}")
    if seed:
        args.append(f"-seed={seed}")
    atheris.Setup(args, one_input)
    atheris.Fuzz()


def _run_one(name: str, seconds: int, runs: int, work_root: Path,
             seed: int = 0) -> tuple[str, int, str]:
    work_root.mkdir(parents=True, exist_ok=True)
    log = work_root / f"{name}.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    if seed:  # a seeded run repeats exactly: no per-process hash randomisation either
        env["PYTHONHASHSEED"] = "0"
    started = time.monotonic()
    with log.open("w") as out:
        try:
            rc = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--child", name,
                 "--seconds", str(seconds), "--runs", str(runs), "--work", str(work_root),
                 "--seed", str(seed)],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                timeout=seconds + 120).returncode
        except subprocess.TimeoutExpired:
            rc = -1
    text = log.read_text(errors="replace")
    execs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", text)
    cov = re.findall(r"\bcov: (\d+)", text)
    known = sorted(set(re.findall(r"known finding in \S+: (.*)", text)))
    summary = (f"{name}: {execs[-1] if execs else '?'} runs in "
               f"{time.monotonic() - started:.0f} s, coverage {cov[-1] if cov else '?'}")
    if known:
        summary += f", known findings hit: {len(known)}"
    if rc != 0:
        new = re.findall(r"NEW FINDING in \S+: (.*)", text)
        artifact = re.findall(r"Test unit written to (\S+)", text)
        summary += (f"\n  FINDING: {new[-1] if new else f'exit status {rc}'}"
                    f"\n  input: {artifact[-1] if artifact else '?'}\n  log: {log}")
        tail = text.strip().splitlines()[-25:]
        summary += "\n    " + "\n    ".join(tail)
    return name, rc, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="per target (default 60)")
    parser.add_argument("--runs", type=int, default=0,
                        help="stop each target after this many inputs instead of a time")
    parser.add_argument("--seed", type=int, default=0,
                        help="libFuzzer's seed; with --runs a run repeats exactly (CI)")
    parser.add_argument("--target", action="append", help="one target (repeatable); default all")
    parser.add_argument("--jobs", type=int, default=1, help="targets fuzzed at once")
    parser.add_argument("--work", type=Path, default=WORK,
                        help="where the growing corpora and logs go (default fuzz/work)")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.seconds, args.runs, args.work, args.seed)
        return 0
    from fuzz.targets import TARGETS
    if args.list:
        for name, t in sorted(TARGETS.items()):
            print(f"{name:24} {t.doc.splitlines()[0]}")
        return 0
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed (pip install atheris)", file=sys.stderr)
        return 2
    names = args.target or sorted(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; see --list")
    failed = 0
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = pool.map(
            lambda n: _run_one(n, args.seconds, args.runs, args.work, args.seed), names)
        for _, rc, summary in results:
            print(summary, flush=True)
            failed += rc != 0
    print(f"{len(names)} targets, {failed} with a new finding")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
