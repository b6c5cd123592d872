"""Write the seed corpus: `python fuzz/make_corpus.py` (deterministic; `--check` only compares).

Seeds are valid blobs built by `fixtures.py` and taken from vectors/, one file per blob under
fuzz/corpus/<target>/seed-<sha256 prefix>. Files named finding-* (kept reproducers) are never
touched; stale seed-* files are removed.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz.targets import CORPUS, TARGETS


def seed_files(name: str) -> dict[str, bytes]:
    return {f"seed-{hashlib.sha256(b).hexdigest()[:16]}": b for b in TARGETS[name].seeds()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the committed seeds differ from what would be written")
    args = parser.parse_args(argv)
    stale = 0
    for name in sorted(TARGETS):
        folder = CORPUS / name
        want = seed_files(name)
        have = {p.name: p.read_bytes() for p in folder.glob("seed-*")} if folder.exists() else {}
        if have == want:
            continue
        stale += 1
        print(f"{name}: {len(want)} seeds ({len(set(want) ^ set(have))} changed)")
        if args.check:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        for old in set(have) - set(want):
            (folder / old).unlink()
        for file, blob in want.items():
            (folder / file).write_bytes(blob)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
