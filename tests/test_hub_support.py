"""Shared pieces of the hub tests: a real redis-server and real hub processes on 127.0.0.1.

No tests here. Imported by tests/test_hub_*.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    """The redis-server path, or skip (locally) / fail (under CI) when it is absent."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is required under CI (apt-get install redis-server)")
        pytest.skip("redis-server not installed (apt-get install redis-server); CI requires it")
    return binary


@dataclass
class RedisServer:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def flush(self) -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port)
        client.flushall()
        client.close()


@contextlib.contextmanager
def run_redis() -> Iterator[RedisServer]:
    binary = redis_server_binary()
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
                client.ping()
                client.close()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield RedisServer(proc, port)
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@dataclass
class HubProcess:
    proc: subprocess.Popen[str]
    port: int

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(5)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def start_hub(store_url: str, port: int = 0, *, args: tuple[str, ...] = (),
              log: Path | None = None, preexec: Callable[[], None] | None = None) -> HubProcess:
    """`python -m triple_ratchet.hub` as a real subprocess; waits for its listening line.
    `args`: more hub options; `log`: a file for its stderr (its log) instead of a pipe."""
    stderr = log.open("w") if log is not None else subprocess.PIPE
    proc = subprocess.Popen(
        [sys.executable, "-m", "triple_ratchet.hub", "--host", "127.0.0.1", "--port", str(port),
         "--store", store_url, *args],
        stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=REPO, preexec_fn=preexec,
    )
    if log is not None:
        stderr.close()  # the child has its own copy
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("hub listening on 127.0.0.1:"):
        proc.kill()
        _, err = proc.communicate(timeout=5)
        err = err if err is not None else log.read_text() if log is not None else ""
        raise RuntimeError(f"hub did not start: {line!r} {err[-2000:]}")
    return HubProcess(proc, int(line.rsplit(":", 1)[1]))


@contextlib.contextmanager
def hub(store_url: str, port: int = 0, **options: Any) -> Iterator[HubProcess]:
    process = start_hub(store_url, port, **options)
    try:
        yield process
    finally:
        if process.proc.poll() is None:
            process.stop()
