"""The `triple-ratchet` command: vectors, hub, demo. Sits on top of every layer; does the I/O."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from triple_ratchet.errors import UsageError
from triple_ratchet.suites import ALL_SUITES, DEFAULT_SUITE


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


def _cmd_hub(args: argparse.Namespace) -> int:
    from triple_ratchet.hub.__main__ import run_hub_from_args

    run_hub_from_args(args)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from triple_ratchet.demo import run_demo

    return run_demo(members=args.members, messages=args.messages, hub_url=args.hub,
                    suite_name=args.suite, offline=args.offline)


def build_parser() -> argparse.ArgumentParser:
    from triple_ratchet.hub.__main__ import add_hub_arguments

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

    hub = sub.add_parser("hub", help="run the relay hub")
    add_hub_arguments(hub)
    hub.set_defaults(func=_cmd_hub)

    demo = sub.add_parser("demo", help="a group exchanging messages through a local hub")
    demo.add_argument("--members", type=int, default=4)
    demo.add_argument("--messages", type=int, default=50)
    demo.add_argument("--offline", type=int, default=0,
                      help="members offline (not reading, not answering) through an add, "
                           "a remove and a refresh, then back")
    demo.add_argument("--hub", default=None,
                      help="ws://HOST:PORT of a running hub (default: start a local one)")
    demo.add_argument("--suite", default=DEFAULT_SUITE.name,
                      choices=[s.name for s in ALL_SUITES])
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except UsageError as exc:
        print(f"triple-ratchet: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
