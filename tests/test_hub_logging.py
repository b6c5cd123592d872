"""Hub and hub-client logging (issue 10, item 5), beyond tests/test_hub_observability.py: every
hub decision goes to the one logger `triple_ratchet.hub` (start, stop, resyncs with levels, a
store that fails to start), the client's decisions to `triple_ratchet.hub.client` at DEBUG, none
with a blob, key, proof or whole mailbox id; and a connection lost with requests in flight leaves
no "exception was never retrieved" behind."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from typing import Any

import pytest
from test_hub_observability import SECRET, _Flaky, _no_secret, arun, in_process
from test_hub_support import start_hub

from triple_ratchet.hub import frames as f
from triple_ratchet.hub.access import AccessKey
from triple_ratchet.hub.client import Delivery, HubConnection, MailboxClient
from triple_ratchet.hub.server import HubConfig, serve_hub
from triple_ratchet.hub.store import MemoryStore
from triple_ratchet.suites import DEFAULT_SUITE


def _records(caplog: pytest.LogCaptureFixture, prefix: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(prefix)]


def _clean(records: list[logging.LogRecord], *secrets: bytes) -> None:
    for record in records:
        _no_secret(record.getMessage() + repr(record.args) + str(record.exc_text or ""),
                   *secrets)


def test_hub_start_stop_and_resyncs_go_to_one_logger_with_levels(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="triple_ratchet.hub")
    key = AccessKey.generate(DEFAULT_SUITE)

    async def main() -> None:
        async with in_process(MemoryStore(), HubConfig(live_queue_entries=2)) as (url, hub_):
            writer = await HubConnection.connect(url)
            await writer.authenticate(key)
            await writer.create(key.mailbox_id, f.Kind.GROUP)
            slow = await HubConnection.connect(url)  # subscribes, then stops reading
            await slow.authenticate(key)
            await slow.subscribe(key.mailbox_id, 0)
            transport = slow._ws.transport
            assert transport is not None
            transport.pause_reading()  # its socket fills, then the hub's live queue
            blob = SECRET * (writer.challenge.max_blob // len(SECRET))
            for i in range(48):
                await writer.put(key.mailbox_id, blob, i.to_bytes(16, "big"))
                if hub_.stats.resyncs >= 1:
                    break
            assert hub_.stats.resyncs == 1
            transport.resume_reading()
            await writer.close()
            await slow.close()

    arun(main())
    hub_records = [r for r in caplog.records if r.name == "triple_ratchet.hub"]
    text = "\n".join(r.getMessage() for r in hub_records)
    assert "hub serving on 127.0.0.1:" in text and "MemoryStore store" in text
    assert "hub stopping: closing" in text and "hub stopped: HubStats(" in text
    (resync,) = [r for r in hub_records if "fell behind its live queue: resync" in r.getMessage()]
    assert resync.levelno == logging.INFO  # the first on a connection; later ones at DEBUG
    assert "1 resyncs" in text  # and counted in the connection's closing line
    # Nothing the hub decides goes to another logger name.
    assert {r.name for r in _records(caplog, "triple_ratchet")} == {"triple_ratchet.hub"}
    _clean(hub_records, SECRET, key.mailbox_id, key.public_key)


def test_a_store_that_fails_to_start_is_logged_without_what_it_carried(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="triple_ratchet.hub")

    class Broken(MemoryStore):
        async def start(self) -> None:
            raise RuntimeError(f"cannot open {SECRET.hex()}")

    async def main() -> None:
        with pytest.raises(RuntimeError):
            await serve_hub("127.0.0.1", 0, Broken(), stop=asyncio.Event())

    arun(main())
    (line,) = [r for r in _records(caplog, "triple_ratchet.hub") if "failed to start" in
               r.getMessage()]
    assert line.levelno == logging.ERROR and "builtins.RuntimeError" in line.getMessage()
    _clean([line], SECRET)


def test_a_store_failure_at_shutdown_is_logged_not_raised(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="triple_ratchet.hub")

    class CloseFails(_Flaky):
        async def close(self) -> None:
            raise RuntimeError(f"while closing {SECRET!r}")

    async def main() -> None:
        async with in_process(CloseFails()):
            pass

    arun(main())
    lines = [r.getMessage() for r in _records(caplog, "triple_ratchet.hub")]
    assert any("store failed during close: builtins.RuntimeError" in m for m in lines), lines
    assert any(m.startswith("hub stopped:") for m in lines)
    _clean(_records(caplog, "triple_ratchet"), SECRET)


def test_the_client_logs_its_decisions_at_debug_without_secrets(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="triple_ratchet.hub.client")
    key = AccessKey.generate(DEFAULT_SUITE)
    process = start_hub("memory:")
    try:

        async def main() -> None:
            async with MailboxClient(process.url, retry_timeout=2.0) as client:
                await client.follow(key)
                await client.put(key.mailbox_id, SECRET)
                event = await client.next_event(5)
                assert isinstance(event, Delivery) and event.blob == SECRET
                process.kill()
                for _ in range(100):
                    if client._conn is None:
                        break
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.1)

        arun(main())
    finally:
        process.kill()
    records = _records(caplog, "triple_ratchet.hub.client")
    text = "\n".join(r.getMessage() for r in records)
    assert "connected (" in text and "connection lost" in text and "hub not reached" in text
    assert all(r.levelno == logging.DEBUG for r in records)
    _clean(records, SECRET, key.mailbox_id, key.public_key)


def test_a_lost_connection_with_requests_in_flight_leaves_no_unretrieved_exception(
        caplog: pytest.LogCaptureFixture) -> None:
    """The hub stops reading (SIGSTOP) while requests are being sent, so sends block on a full
    socket; then it dies (SIGKILL). The reader fails every pending request and the blocked
    sends raise: each request future must still be seen by someone, or asyncio reports "Future
    exception was never retrieved" when it is collected. (Fails without `_retrieved` in
    `HubConnection._call`.)"""
    caplog.set_level(logging.ERROR, logger="asyncio")
    reported: list[dict[str, Any]] = []
    key = AccessKey.generate(DEFAULT_SUITE)
    process = start_hub("memory:")
    try:

        async def main() -> None:
            asyncio.get_running_loop().set_exception_handler(
                lambda _loop, context: reported.append(context))
            conns = [await HubConnection.connect(process.url) for _ in range(3)]
            for conn in conns:
                await conn.authenticate(key)
            await conns[0].create(key.mailbox_id, f.Kind.GROUP)
            client = MailboxClient(process.url, retry_timeout=1.0)
            await client.follow(key)
            process.proc.send_signal(signal.SIGSTOP)
            big = conns[0].challenge.max_blob
            calls: list[asyncio.Future[object]] = []
            for i in range(120):
                put = conns[i % 3].put(key.mailbox_id, bytes(big), i.to_bytes(16, "big"))
                calls.append(asyncio.ensure_future(put))
            calls += [asyncio.ensure_future(conns[i % 3].fetch(key.mailbox_id, 0))
                      for i in range(30)]
            calls += [asyncio.ensure_future(client.put(key.mailbox_id, bytes(1000)))
                      for _ in range(30)]
            await asyncio.sleep(0.5)
            process.kill()
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert any(isinstance(r, ConnectionError) for r in results)
            for conn in conns:
                await conn.close()
            await client.close()
            await asyncio.sleep(0.05)
            gc.collect()  # collected futures report here, while the handler is set
            await asyncio.sleep(0.05)

        arun(main())
        gc.collect()
    finally:
        process.kill()
    messages = [str(c.get("message")) for c in reported]
    messages += [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert not [m for m in messages if "never retrieved" in m], messages


def test_the_client_tells_its_connection_state() -> None:
    """`connected` and `on_state` follow the link: up, down when the hub dies, up again when
    a hub is back on the same port, down at close; a listener that raises changes nothing."""
    key = AccessKey.generate(DEFAULT_SUITE)
    process = start_hub("memory:")
    port = process.port
    states: list[bool] = []

    def broken(up: bool) -> None:
        raise RuntimeError("an app bug")

    async def wait_for(want: bool, client: MailboxClient) -> None:
        for _ in range(500):
            if client.connected == want and states and states[-1] == want:
                return
            await asyncio.sleep(0.01)
        raise AssertionError((want, states))

    try:

        async def main() -> None:
            nonlocal process
            client = MailboxClient(process.url, retry_timeout=5.0)
            client.on_state(broken)
            client.on_state(states.append)
            assert not client.connected
            await client.follow(key)
            await wait_for(True, client)
            process.kill()
            await wait_for(False, client)
            process = start_hub("memory:", port)
            await wait_for(True, client)
            assert client.reconnects == 1
            await client.close()
            assert not client.connected

        arun(main())
    finally:
        process.kill()
    assert states == [True, False, True, False]
