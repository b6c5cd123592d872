"""What the hub tells its operator and its clients (issue 9, hub items 2 and observability): its
decisions are logged with levels (connections, refusals, quota hits, store failures, resyncs)
and counted, never with a blob, key, proof or id; a store failure under a subscription is
told to the client (ERROR INTERNAL), not turned into a silent resync."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from test_hub_support import hub

from triple_ratchet.errors import InvalidSignature, LimitExceeded
from triple_ratchet.hub import frames as f
from triple_ratchet.hub.access import AccessKey
from triple_ratchet.hub.client import Delivery, HubConnection, MailboxClient, send_to_inbox
from triple_ratchet.hub.server import Hub, HubConfig, RateLimit, describe_failure, serve_hub
from triple_ratchet.hub.store import MemoryStore, ReadResult
from triple_ratchet.suites import DEFAULT_SUITE

SECRET = bytes.fromhex("5ec7e7c0ffee") * 8  # stands for a blob, a key, a proof


def arun(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


class _Flaky(MemoryStore):
    """Reads fail while `down`, with the secret in the exception's message (as a careless
    backend might put a key or value there)."""

    down = False

    async def read(self, mailbox: bytes, after: int, limit: int, max_bytes: int,
                   now_ms: int) -> ReadResult:
        if self.down:
            raise RuntimeError(f"backend down while reading {SECRET.hex()} {SECRET!r}")
        return await super().read(mailbox, after, limit, max_bytes, now_ms)


@asynccontextmanager
async def in_process(store: MemoryStore,
                     config: HubConfig | None = None) -> AsyncIterator[tuple[str, Hub]]:
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    hubs: list[Hub] = []
    original = Hub.__init__

    def capture(self: Hub, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        hubs.append(self)

    Hub.__init__ = capture  # type: ignore[method-assign]
    try:
        task = asyncio.create_task(serve_hub("127.0.0.1", 0, store, config=config, stop=stop,
                                             ready=ready.set_result))
        port = await ready
    finally:
        Hub.__init__ = original  # type: ignore[method-assign]
    try:
        yield f"ws://127.0.0.1:{port}", hubs[0]
    finally:
        stop.set()
        await task


def _hub_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("triple_ratchet")]


def _no_secret(text: str, *extra: bytes) -> None:
    for secret in (SECRET, *extra):
        for form in (secret.hex(), repr(secret), secret.hex().upper(), secret[:8].hex()):
            assert form not in text


def test_a_store_failure_under_a_subscription_is_told_to_the_client(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="triple_ratchet")

    async def main() -> None:
        store = _Flaky()
        async with in_process(store) as (url, hub_):
            key = AccessKey.generate(DEFAULT_SUITE)
            conn = await HubConnection.connect(url)
            await conn.authenticate(key)
            await conn.create(key.mailbox_id, f.Kind.GROUP)
            await conn.subscribe(key.mailbox_id, 0)
            store.down = True
            writer = await HubConnection.connect(url)
            await writer.authenticate(key)
            await writer.put(key.mailbox_id, SECRET, bytes(16))  # wakes the subscription
            await asyncio.wait_for(conn.wait_closed(), 5)
            assert isinstance(conn.error, ConnectionError)  # INTERNAL: retry
            assert "store unavailable" in str(conn.error)
            assert hub_.stats.store_failures == 1 and hub_.stats.resyncs == 0
            # The resilient client reconnects and gets everything once the store is back.
            async with MailboxClient(url) as reader:
                store.down = False
                await reader.follow(key)
                event = await reader.next_event(5)
                assert isinstance(event, Delivery) and event.blob == SECRET
            await writer.close()

    arun(main())
    lines = _hub_lines(caplog)
    assert any("store failed during a push read: builtins.RuntimeError" in line
               for line in lines), lines
    _no_secret("\n".join(lines))
    assert all(r.levelno == logging.WARNING for r in caplog.records
               if "store failed" in r.getMessage())


def test_hub_logs_its_decisions_and_never_a_blob_key_or_proof(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="triple_ratchet")
    config = HubConfig(authenticated_writes=RateLimit(rate=0.0, burst=3.0),
                       live_queue_entries=2, max_connections_per_address=30)
    keys: list[AccessKey] = []
    proofs: list[bytes] = []

    async def main() -> None:
        store = _Flaky()
        async with in_process(store, config) as (url, hub_):
            key = AccessKey.generate(DEFAULT_SUITE)
            inbox = AccessKey.generate(DEFAULT_SUITE)
            keys.extend((key, inbox))
            conn = await HubConnection.connect(url)
            proofs.append(key.prove(conn.challenge.nonce).signature)
            await conn.authenticate(key)
            await conn.create(key.mailbox_id, f.Kind.GROUP)
            await conn.authenticate(inbox)
            await conn.create(inbox.mailbox_id, f.Kind.INBOX)
            await conn.put(key.mailbox_id, SECRET, SECRET[:16])
            await send_to_inbox(url, inbox.mailbox_id, SECRET)
            with pytest.raises(LimitExceeded):  # a quota hit
                for i in range(5):
                    await conn.put(key.mailbox_id, SECRET, bytes([i]) * 16)
            bad = AccessKey.generate(DEFAULT_SUITE)
            with pytest.raises(InvalidSignature):  # a refused proof (for another nonce)
                await conn._ok(lambda req: f.Auth(req, bad.prove(bytes(32))))
            await conn.publish(SECRET[:32], key.mailbox_id, SECRET, (SECRET,))
            store.down = True  # a store failure on a request
            with pytest.raises(ConnectionError):
                await conn.fetch(key.mailbox_id, 0)
            store.down = False
            # a resync: a subscriber that does not keep up
            slow = await HubConnection.connect(url)
            await slow.authenticate(key)
            await slow.subscribe(key.mailbox_id, 0)
            await asyncio.sleep(0.3)
            await conn.close()
            await slow.close()
            await asyncio.sleep(0.2)
            assert hub_.stats.quota_hits >= 1 and hub_.stats.refusals >= 2
            assert hub_.stats.store_failures == 1

    arun(main())
    lines = _hub_lines(caplog)
    text = "\n".join(lines)
    for expected in ("opened from 127.0.0.1", "closed (", "over a quota: write rate limited",
                     "refused a request: BAD_SIGNATURE", "store failed during Fetch",
                     "resync"):
        assert expected in text, (expected, lines)
    levels = {r.getMessage().split(":")[0]: r.levelname for r in caplog.records
              if r.name.startswith("triple_ratchet")}
    assert any(v == "INFO" for k, v in levels.items() if "opened" in k)
    secrets = [SECRET, *proofs]
    for k in keys:
        secrets += [k.mailbox_id, k.public_key]
    _no_secret(text, *secrets)
    for record in caplog.records:  # nor in arguments or tracebacks
        _no_secret(repr(record.args) + str(record.exc_text or ""), *secrets)


def test_describe_failure_keeps_link_errors_and_drops_other_messages() -> None:
    class ConnectionError(Exception):  # named like redis's
        pass

    try:
        raise ConnectionError("No connection available.")
    except ConnectionError as exc:
        text = describe_failure(exc)
    assert "No connection available." in text and "test_hub_observability.py" in text
    try:
        raise ValueError(SECRET.hex())
    except ValueError as exc:
        text = describe_failure(exc)
    assert text.startswith("builtins.ValueError") and SECRET.hex() not in text


def test_real_hub_at_debug_level_logs_no_payload(tmp_path: Path) -> None:
    """With the real process at its most verbose (websockets logs frame bytes at DEBUG), the
    log still holds no blob."""
    log = tmp_path / "hub.log"
    with hub("memory:", args=("--log-level", "debug"), log=log) as process:

        async def main() -> None:
            key = AccessKey.generate(DEFAULT_SUITE)
            conn = await HubConnection.connect(process.url)
            await conn.authenticate(key)
            await conn.create(key.mailbox_id, f.Kind.GROUP)
            await conn.put(key.mailbox_id, SECRET, SECRET[:16])
            await conn.fetch(key.mailbox_id, 0)
            await conn.close()

        arun(main())
    text = log.read_text()
    assert "opened from 127.0.0.1" in text and "closed (" in text
    _no_secret(text)
