"""`python -m triple_ratchet.hub --host H --port P --store URL` (the CLI's `hub` does the same).

The options live here, without importing the server, so `triple-ratchet` can list them without
the hub's optional dependencies installed.
"""

from __future__ import annotations

import argparse
import importlib


def add_hub_arguments(parser: argparse.ArgumentParser) -> None:
    """The hub command's options (shared by `triple-ratchet hub` and `python -m ...hub`)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8765,
                        help="port to listen on (0: any free one, printed at start)")
    parser.add_argument("--store", default="sqlite:hub.sqlite3",
                        help="memory:, sqlite:PATH or redis://HOST:PORT/DB "
                             "(?max_connections=N&timeout=S size the Redis pool)")
    parser.add_argument("--store-pool", type=int, default=None, metavar="N",
                        help="Redis connection pool size (overrides the URL's max_connections; "
                             "default: the URL's, else the store's own)")
    parser.add_argument("--max-connections", type=int, default=None, metavar="N",
                        help="connections the hub holds at once (default: the descriptor limit "
                             "minus a reserve of 64)")
    parser.add_argument("--max-per-address", type=int, default=None, metavar="N",
                        help="connections per client address (an IPv4 address or an IPv6 /64);"
                             " default: 256, or an eighth of --max-connections if smaller")
    parser.add_argument("--trusted-proxy", action="append", default=[], metavar="CIDR",
                        help="a reverse proxy whose X-Forwarded-For names the client "
                             "(repeatable; default: none, the peer address counts); "
                             "see spec/10-hub.md 10.11")
    parser.add_argument("--log-level", default="warning",
                        choices=["debug", "info", "warning", "error"],
                        help="what the hub logs to stderr (logger triple_ratchet.hub): info "
                             "adds connections and quota hits, debug every refusal and resync")


def run_hub_from_args(args: argparse.Namespace) -> None:
    from triple_ratchet.hub.server import Hub, HubConfig, run_hub
    from triple_ratchet.hub.store import MemoryStore

    config = HubConfig(max_connections=args.max_connections,
                       max_connections_per_address=args.max_per_address,
                       trusted_proxies=tuple(args.trusted_proxy))
    Hub(MemoryStore(), config)  # refuses bad options before a store is opened
    run_hub(args.host, args.port, args.store, config=config, log_level=args.log_level,
            pool_size=args.store_pool)


def missing_dependency(store_url: str) -> str | None:
    """What to install when the hub's optional dependencies are absent (`websockets`, and
    `redis` for a Redis store), or None: one line instead of a ModuleNotFoundError."""
    needs = [("websockets", "hub")]
    if store_url.startswith(("redis://", "rediss://", "unix://")):
        needs.append(("redis", "redis"))
    for module, extra in needs:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.split(".")[0] != module:
                raise
            return (f"the hub needs the optional dependency {module!r}: "
                    f"pip install 'triple_ratchet[{extra}]'")
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="triple-ratchet hub", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_hub_arguments(parser)
    args = parser.parse_args(argv)
    missing = missing_dependency(args.store)
    if missing is not None:
        parser.exit(2, f"triple-ratchet hub: {missing}\n")
    run_hub_from_args(args)


if __name__ == "__main__":
    main()
