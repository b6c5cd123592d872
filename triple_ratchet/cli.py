"""The `triple-ratchet` command: vectors, hub, demo. Sits on top of every layer; does the I/O."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import site
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

from triple_ratchet.errors import UsageError
from triple_ratchet.suites import ALL_SUITES, DEFAULT_SUITE

DISTRIBUTION = "triple_ratchet"


class MissingExtra(UsageError):
    """A command needs an optional dependency that is not installed."""


def version() -> str:
    """The installed distribution's version when it is the code running; otherwise (run from
    a checkout with PYTHONPATH, or beside another installed copy) the package's `__version__`,
    which the build also reads (pyproject's dynamic version)."""
    from importlib.metadata import PackageNotFoundError, distribution

    import triple_ratchet

    try:
        dist = distribution(DISTRIBUTION)
    except PackageNotFoundError:
        return triple_ratchet.__version__
    installed = Path(str(dist.locate_file("triple_ratchet/__init__.py"))).resolve()
    if installed == Path(triple_ratchet.__file__).resolve():
        return dist.version
    return triple_ratchet.__version__


def require_extra(module: str, extra: str, command: str) -> None:
    """Import `module` now, so that a missing optional dependency is a one-line instruction
    instead of a traceback from deep inside the command."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != module:
            raise  # something else is missing: not ours to explain
        raise MissingExtra(
            f"{command} needs the optional dependency {module!r}: "
            f"pip install '{DISTRIBUTION}[{extra}]'"
        ) from None


def _in_a_checkout(folder: Path) -> bool:
    """`folder` is a triple_ratchet repository (its pyproject.toml names this project)."""
    project = folder / "pyproject.toml"
    try:
        text = project.read_text(encoding="utf-8")
    except OSError:
        return False
    return f'name = "{DISTRIBUTION}"' in text and (folder / "vectors").is_dir()


def _installed_locations() -> list[Path]:
    """Folders a regular install lives in: generated files never go there."""
    places = {Path(__file__).resolve().parent}
    for key in ("purelib", "platlib"):
        places.add(Path(sysconfig.get_paths()[key]).resolve())
    for folder in (*site.getsitepackages(), site.getusersitepackages()):
        places.add(Path(folder).resolve())
    return sorted(places)


def _default_vectors_dir() -> Path:
    """What `vectors verify` checks without arguments: this version's published vectors."""
    from triple_ratchet.testvectors import published_vectors_dir

    found = published_vectors_dir()
    if found is None:
        raise UsageError("no published vectors found in this installation: "
                         "name the files or folders to verify")
    return found


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


def _generate_target(out: str | None) -> Path:
    """Where `vectors generate` writes: `--out`, or ./vectors inside a checkout; never into an
    installed package."""
    if out is None:
        cwd = Path.cwd()
        if not _in_a_checkout(cwd):
            raise UsageError("not in a triple_ratchet checkout: say where to write with "
                             "--out DIR (the published vectors ship inside the package and are "
                             "never overwritten)")
        return cwd / "vectors"
    target = Path(out).resolve()
    for place in _installed_locations():
        if target == place or place in target.parents:
            raise UsageError(f"refusing to write vectors into the installed package at {place}: "
                             "choose another --out")
    return target


def _cmd_vectors_generate(args: argparse.Namespace) -> int:
    from triple_ratchet.testvectors import generate_all

    out = _generate_target(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, doc in sorted(generate_all().items()):
        (out / name).write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
        print(f"wrote {out / name} ({len(doc.get('cases', []))} cases)")
    return 0


def _cmd_hub(args: argparse.Namespace) -> int:
    from triple_ratchet.hub.__main__ import missing_dependency, run_hub_from_args

    missing = missing_dependency(args.store)
    if missing is not None:
        raise MissingExtra(missing)

    run_hub_from_args(args)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    require_extra("websockets", "hub", "triple-ratchet demo")
    from triple_ratchet.demo import run_demo

    return run_demo(members=args.members, messages=args.messages, hub_url=args.hub,
                    suite_name=args.suite, offline=args.offline)


class HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default; options whose default needs words (None, an
    empty list) say it in their own help text instead of "(default: None)"."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, [], argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from triple_ratchet.hub.__main__ import add_hub_arguments

    parser = argparse.ArgumentParser(
        prog="triple-ratchet", description="End-to-end encrypted group messaging.",
        formatter_class=HelpWithDefaults,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    vectors = sub.add_parser("vectors", help="check or regenerate test vectors",
                             formatter_class=HelpWithDefaults)
    vsub = vectors.add_subparsers(dest="vectors_command", required=True)
    verify = vsub.add_parser(
        "verify", formatter_class=HelpWithDefaults,
        help="check vector files (ours, Wycheproof, COCKTAIL-DKG, RFC 9180)",
        description="Check vector files: ours, Wycheproof, COCKTAIL-DKG, RFC 9180 HPKE.",
    )
    verify.add_argument("paths", nargs="*",
                        help="files or folders of JSON vector files (default: this version's "
                             "published vectors: vectors/ in a checkout, else the copy "
                             "installed with the package)")
    verify.set_defaults(func=_cmd_vectors_verify)
    generate = vsub.add_parser(
        "generate", formatter_class=HelpWithDefaults,
        help="regenerate our vectors deterministically",
        description="Regenerate our vector files (deterministic: a checkout's vectors/ is "
                    "reproduced byte for byte).",
    )
    generate.add_argument("--out", default=None, metavar="DIR",
                          help="folder to write into (default: ./vectors when run at the top "
                               "of a triple_ratchet checkout; required elsewhere; never the "
                               "installed package)")
    generate.set_defaults(func=_cmd_vectors_generate)

    hub = sub.add_parser("hub", help="run the relay hub (needs the [hub] extra)",
                         formatter_class=HelpWithDefaults)
    add_hub_arguments(hub)
    hub.set_defaults(func=_cmd_hub)

    demo = sub.add_parser("demo", help="a group exchanging messages through a local hub "
                                       "(needs the [hub] extra)",
                          formatter_class=HelpWithDefaults)
    demo.add_argument("--members", type=int, default=4, help="members in the group")
    demo.add_argument("--messages", type=int, default=50, help="messages to exchange")
    demo.add_argument("--offline", type=int, default=0,
                      help="members offline (not reading, not answering) through an add, "
                           "a remove and a refresh, then back")
    demo.add_argument("--hub", default=None, metavar="URL",
                      help="ws://HOST:PORT of a running hub (default: start a local one)")
    demo.add_argument("--suite", default=DEFAULT_SUITE.name,
                      choices=[s.name for s in ALL_SUITES], help="cipher suite")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except UsageError as exc:
        print(f"triple-ratchet: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `triple-ratchet vectors verify | head`: the reader left; exit quietly, and keep the
        # interpreter's final flush from failing again on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
