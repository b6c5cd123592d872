"""The `triple-ratchet` command: vectors, hub, demo. Sits on top of every layer; does the I/O."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def _default_vectors_dir() -> Path:
    here = Path.cwd() / "vectors"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[1] / "vectors"


def _cmd_vectors_verify(args: argparse.Namespace) -> int:
    from triple_ratchet.testvectors import verify_paths

    paths: list[Path] = []
    targets = args.paths or [str(_default_vectors_dir())]
    for target in targets:
        p = Path(target)
        if p.is_dir():
            paths.extend(sorted(p.glob("*.json")))
        else:
            paths.append(p)
    if not paths:
        print("no vector files found", file=sys.stderr)
        return 2
    passed, failed, skipped = verify_paths(paths)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


def _cmd_vectors_generate(args: argparse.Namespace) -> int:
    from triple_ratchet.testvectors import generate_all

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, doc in sorted(generate_all().items()):
        (out / name).write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
        print(f"wrote {out / name} ({len(doc.get('cases', []))} cases)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triple-ratchet", description="End-to-end encrypted group messaging."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    vectors = sub.add_parser("vectors", help="check or regenerate test vectors")
    vsub = vectors.add_subparsers(dest="vectors_command", required=True)
    verify = vsub.add_parser(
        "verify",
        help="check vector files (ours, Wycheproof, COCKTAIL-DKG); default: everything in vectors/",
    )
    verify.add_argument("paths", nargs="*", help="files or folders of JSON vector files")
    verify.set_defaults(func=_cmd_vectors_verify)
    generate = vsub.add_parser("generate", help="regenerate our vectors deterministically")
    generate.add_argument("--out", default=str(_default_vectors_dir()))
    generate.set_defaults(func=_cmd_vectors_generate)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
