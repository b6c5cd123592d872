"""`python -m triple_ratchet.hub --host H --port P --store URL` (the CLI's `hub` does the same)."""

from __future__ import annotations

import argparse

from triple_ratchet.hub.server import run_hub


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="triple-ratchet hub", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--store", default="sqlite:hub.sqlite3",
                        help="memory:, sqlite:PATH or redis://HOST:PORT/DB")
    args = parser.parse_args(argv)
    run_hub(args.host, args.port, args.store)


if __name__ == "__main__":
    main()
