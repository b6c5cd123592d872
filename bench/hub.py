"""Hub throughput and delivery latency on loopback, with the raw WebSocket echo as the floor.

K clients follow one group mailbox; each puts M blobs; every client receives all K*M. Measured,
interleaved in one run (the machines change speed for seconds at a time, so only ratios taken
side by side mean anything):

- echo: K clients doing WebSocket round trips of the same size to an echo server process;
- one hub (SQLite store), all K clients on it;
- two hubs sharing a redis-server, clients split between them (skipped if redis-server is absent);
- each hub setup again with one blob in flight at a time (unloaded delivery latency).

Bounded: K, M and rounds are capped and every phase has a deadline; it stops by itself.
Usage: python bench/hub.py [--clients K] [--blobs M] [--size BYTES] [--rounds R]

Load mode (`--load`, issue 9 item 2): N concurrent clients (default 200), each on its own
connection with its own group mailbox, doing PUT then FETCH back to back for a few seconds,
against one hub on SQLite and against two hubs sharing Redis (clients split between them).
Reports operations per second, p50/p99 per operation, and store failures (INTERNAL answers:
the hub's store call failed) next to any other error.
Usage: python bench/hub.py --load [--load-clients N] [--seconds S] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from websockets.asyncio.client import connect

from triple_ratchet.hub.access import AccessKey
from triple_ratchet.hub.client import Delivery, HubConnection, MailboxClient
from triple_ratchet.hub.frames import Kind
from triple_ratchet.suites import DEFAULT_SUITE

MAX_CLIENTS = 32
MAX_LOAD_CLIENTS = 500
MAX_LOAD_SECONDS = 60.0
MAX_BLOBS = 2000
PHASE_DEADLINE = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _echo_server(port: int) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with serve(echo, "127.0.0.1", port, compression=None):
            print("ready", flush=True)
            await asyncio.Future()

    asyncio.run(main())


@contextlib.contextmanager
def _process(args: list[str], ready_prefix: str) -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith(ready_prefix):
            raise RuntimeError(f"{args} did not start: {line!r}")
        yield line.strip()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def _hub(store: str) -> Iterator[str]:
    # Every bench client comes from 127.0.0.1: lift the per-address limit above the load.
    with _process(["-m", "triple_ratchet.hub", "--host", "127.0.0.1", "--port", "0",
                   "--store", store, "--max-per-address", str(MAX_LOAD_CLIENTS + 64)],
                  "hub listening on") as line:
        yield "ws://" + line.rsplit(" ", 1)[1]


@contextlib.contextmanager
def _redis() -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


class Result:
    def __init__(self, name: str, count: int, elapsed: float, latencies: list[float]) -> None:
        self.name = name
        self.rate = count / elapsed
        self.latencies = sorted(latencies)

    def pct(self, q: float) -> float:
        lat = self.latencies
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3


async def bench_echo(url: str, clients: int, blobs: int, size: int) -> Result:
    latencies: list[float] = []
    payload = os.urandom(size)

    async def one() -> None:
        async with connect(url, compression=None) as ws:
            for _ in range(blobs):
                t0 = time.perf_counter()
                await ws.send(payload)
                await ws.recv()
                latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(clients))), PHASE_DEADLINE)
    return Result("raw WebSocket echo (round trip)", clients * blobs,
                  time.perf_counter() - start, latencies)


async def bench_hub(name: str, urls: list[str], clients: int, blobs: int, size: int) -> Result:
    group = AccessKey.generate(DEFAULT_SUITE)
    members = [MailboxClient(urls[i % len(urls)], max_events=MAX_CLIENTS * MAX_BLOBS)
               for i in range(clients)]
    for m in members:
        await m.start()
        await m.follow(group)
    latencies: list[float] = []
    total = clients * blobs
    pad = os.urandom(max(0, size - 8))

    async def write(m: MailboxClient) -> None:
        for _ in range(blobs):
            stamp = time.perf_counter_ns().to_bytes(8, "big")
            await m.put(group.mailbox_id, stamp + pad)

    async def read(m: MailboxClient) -> None:
        for _ in range(total):
            event = await m.next_event()
            assert isinstance(event, Delivery)
            sent = int.from_bytes(event.blob[:8], "big")
            latencies.append((time.perf_counter_ns() - sent) / 1e9)

    start = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(*(write(m) for m in members), *(read(m) for m in members)),
        PHASE_DEADLINE)
    elapsed = time.perf_counter() - start
    for m in members:
        await m.close()
    return Result(name, total, elapsed, latencies)



async def bench_hub_one_in_flight(name: str, urls: list[str], clients: int, blobs: int,
                                  size: int) -> Result:
    """Unloaded latency: one blob in flight at a time, sent when every client has the last."""
    group = AccessKey.generate(DEFAULT_SUITE)
    members = [MailboxClient(urls[i % len(urls)]) for i in range(clients)]
    for m in members:
        await m.start()
        await m.follow(group)
    latencies: list[float] = []
    pad = os.urandom(max(0, size - 8))

    async def receive(m: MailboxClient) -> None:
        event = await m.next_event()
        assert isinstance(event, Delivery)
        latencies.append((time.perf_counter_ns() - int.from_bytes(event.blob[:8], "big")) / 1e9)

    start = time.perf_counter()
    deadline = start + PHASE_DEADLINE
    for i in range(blobs):
        if time.perf_counter() > deadline:
            break
        writer = members[i % clients]
        receivers = asyncio.gather(*(receive(m) for m in members))
        await writer.put(group.mailbox_id, time.perf_counter_ns().to_bytes(8, "big") + pad)
        await asyncio.wait_for(receivers, PHASE_DEADLINE)
    elapsed = time.perf_counter() - start
    for m in members:
        await m.close()
    return Result(name, len(latencies) // clients, elapsed, latencies)


class LoadResult:
    def __init__(self, name: str, ops: int, elapsed: float, latencies: list[float],
                 store_failures: int, other_errors: int) -> None:
        self.name = name
        self.rate = ops / elapsed
        self.latencies = sorted(latencies)
        self.store_failures = store_failures
        self.other_errors = other_errors

    def pct(self, q: float) -> float:
        lat = self.latencies
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3 if lat else float("nan")


async def bench_load(name: str, urls: list[str], clients: int, seconds: float,
                     size: int) -> LoadResult:
    """`clients` connections at once, each PUT then FETCH on its own mailbox until the end."""
    latencies: list[float] = []
    store_failures = other_errors = 0
    payload = os.urandom(size)
    opening = asyncio.Semaphore(50)  # connect in waves: the handshakes are not the bench

    async def open_one(i: int) -> tuple[HubConnection, AccessKey]:
        async with opening:
            conn = await HubConnection.connect(urls[i % len(urls)], timeout=30)
            key = AccessKey.generate(DEFAULT_SUITE)
            await conn.authenticate(key)
            await conn.create(key.mailbox_id, Kind.GROUP)
            return conn, key

    conns = await asyncio.gather(*(open_one(i) for i in range(clients)))
    start = time.perf_counter()
    deadline = start + seconds

    async def run(conn: HubConnection, key: AccessKey) -> None:
        nonlocal store_failures, other_errors
        cursor = 0
        n = 0
        while time.perf_counter() < deadline and not conn.closed:
            for op in ("put", "fetch"):
                t0 = time.perf_counter()
                try:
                    if op == "put":
                        n += 1
                        cursor = (await conn.put(key.mailbox_id, payload,
                                                 n.to_bytes(16, "big"))).cursor
                    else:
                        await conn.fetch(key.mailbox_id, max(0, cursor - 1))
                except ConnectionError as exc:
                    if str(exc).startswith("hub failed"):
                        store_failures += 1  # INTERNAL: the store call failed
                    else:
                        other_errors += 1
                        return
                except Exception:
                    other_errors += 1
                else:
                    latencies.append(time.perf_counter() - t0)

    await asyncio.wait_for(asyncio.gather(*(run(c, k) for c, k in conns)),
                           seconds + PHASE_DEADLINE)
    elapsed = time.perf_counter() - start
    for conn, _ in conns:
        await conn.close()
    return LoadResult(name, len(latencies), elapsed, latencies, store_failures, other_errors)


def main_load(args: argparse.Namespace) -> None:
    clients = max(1, min(args.load_clients, MAX_LOAD_CLIENTS))
    seconds = max(1.0, min(args.seconds, MAX_LOAD_SECONDS))
    rounds = max(1, min(args.rounds, 10))
    size = max(8, min(args.size, 64 * 1024))
    results: dict[str, list[LoadResult]] = {}
    with tempfile.TemporaryDirectory() as tmp, _redis() as redis_url, \
            _hub(f"sqlite:{Path(tmp) / 'bench.db'}") as one_hub, contextlib.ExitStack() as stack:
        two = ([stack.enter_context(_hub(redis_url)), stack.enter_context(_hub(redis_url))]
               if redis_url else [])

        async def run() -> None:
            for _ in range(rounds):
                phases = [bench_load("one hub (SQLite)", [one_hub], clients, seconds, size)]
                if two:
                    phases.append(bench_load("two hubs over Redis", two, clients, seconds,
                                             size))
                for phase in phases:
                    r = await phase
                    results.setdefault(r.name, []).append(r)

        asyncio.run(run())

    print(f"\n{clients} concurrent clients, PUT+FETCH of {size} B for {seconds:.0f} s each, "
          f"{rounds} interleaved rounds (median round by ops/s shown)")
    print("| store | ops/s | p50 ms | p99 ms | store failures | other errors |")
    print("|---|---|---|---|---|---|")
    for name, rs in results.items():
        r = sorted(rs, key=lambda x: x.rate)[len(rs) // 2]
        print(f"| {name} | {r.rate:,.0f} | {r.pct(0.5):.1f} | {r.pct(0.99):.1f} | "
              f"{sum(x.store_failures for x in rs)} | {sum(x.other_errors for x in rs)} |")
    if not any(n.startswith("two") for n in results):
        print("(two hubs over Redis skipped: redis-server not installed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--blobs", type=int, default=200, help="blobs each client puts")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--echo-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--load", action="store_true",
                        help="load mode: many concurrent clients, SQLite vs Redis")
    parser.add_argument("--load-clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    if args.echo_server is not None:
        _echo_server(args.echo_server)
        return
    if args.load:
        main_load(args)
        return
    clients = max(1, min(args.clients, MAX_CLIENTS))
    blobs = max(1, min(args.blobs, MAX_BLOBS))
    rounds = max(1, min(args.rounds, 10))
    size = max(8, min(args.size, 64 * 1024))

    results: dict[str, list[Result]] = {}
    with tempfile.TemporaryDirectory() as tmp, _redis() as redis_url, \
            _process([__file__, "--echo-server", str(echo_port := _free_port())], "ready"), \
            _hub(f"sqlite:{Path(tmp) / 'bench.db'}") as one_hub, \
            contextlib.ExitStack() as stack:
        two = ([stack.enter_context(_hub(redis_url)), stack.enter_context(_hub(redis_url))]
               if redis_url else [])

        async def run() -> None:
            for _ in range(rounds):
                phases = [bench_echo(f"ws://127.0.0.1:{echo_port}", clients, blobs, size),
                          bench_hub("one hub (SQLite)", [one_hub], clients, blobs, size),
                          bench_hub_one_in_flight("one hub (SQLite), one blob in flight",
                                                  [one_hub], clients, blobs // 2, size)]
                if two:
                    phases.append(bench_hub("two hubs over Redis", two, clients, blobs, size))
                    phases.append(bench_hub_one_in_flight(
                        "two hubs over Redis, one blob in flight", two, clients, blobs // 2,
                        size))
                for phase in phases:
                    r = await phase
                    results.setdefault(r.name, []).append(r)

        asyncio.run(run())

    print(f"\n{clients} clients x {blobs} blobs of {size} B, {rounds} interleaved rounds "
          f"(median round shown); hub rows: every client receives every blob")
    print("| path | blobs delivered/s | puts/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for name, rs in results.items():
        r = sorted(rs, key=lambda x: x.rate)[len(rs) // 2]
        hub_row = not name.startswith("raw")
        delivered = r.rate * clients if hub_row else r.rate
        print(f"| {name} | {delivered:,.0f} | {r.rate:,.0f} | {r.pct(0.5):.2f} | "
              f"{r.pct(0.99):.2f} |")
    if not any(n.startswith("two") for n in results):
        print("(two hubs over Redis skipped: redis-server not installed)")
    print("median p50 of all rounds, ms: " + ", ".join(
        f"{n}: {statistics.median(r.pct(0.5) for r in rs):.2f}" for n, rs in results.items()))


if __name__ == "__main__":
    main()
