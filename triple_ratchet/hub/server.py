"""The hub server: WebSocket transport around the frame codec and a store.

One `_Connection` per WebSocket: it reads frames in order, answers each request in order through
one outbox, and runs one pump task per subscription that reads the store after the subscriber's
cursor whenever the store reports a new entry. The outbox bounds what a subscription may have
queued; a subscriber that does not keep up gets RESYNC and must fetch, so nothing is lost
silently. Nothing here logs mailbox ids, directory ids or payloads.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from triple_ratchet.errors import (
    AuthenticationError,
    DecodeError,
    InvalidSignature,
    LimitExceeded,
    ProtocolError,
    RemoteError,
    UnsupportedError,
    UsageError,
)
from triple_ratchet.hub.access import CHALLENGE_LEN, verify_proof
from triple_ratchet.hub.frames import (
    MAX_BATCH_BYTES,
    MAX_BATCH_ENTRIES,
    MAX_BLOB_SIZE,
    MAX_CLIENT_FRAME,
    MAX_REASON_LEN,
    PROTOCOL_VERSION,
    Ack,
    Auth,
    Batch,
    Bundle,
    Challenge,
    ClientFrame,
    Create,
    Error,
    ErrorCode,
    Fetch,
    Hello,
    JoinKey,
    Kind,
    Ok,
    Publish,
    PublishJoinKeys,
    Push,
    Put,
    PutOk,
    Resync,
    Subscribe,
    TakeBundle,
    TakeJoinKey,
    Unpin,
    Unsubscribe,
    decode_client_frame,
    encode,
)
from triple_ratchet.hub.store import MemoryStore, Store
from triple_ratchet.random import RandomSource, system_random

_log = logging.getLogger(__name__)

HELLO_TIMEOUT = 10.0
# A connection may follow this many mailboxes and hold this many access proofs: a member's
# group connection needs one group mailbox plus the DKG mailboxes of live attempts.
MAX_SUBSCRIPTIONS = 256
MAX_AUTHORIZED = 1024
# Wrong proofs are either bugs or probing; a few are allowed, then the connection is closed.
MAX_AUTH_FAILURES = 3
# Bounded per-process caches (the per-mailbox rate buckets and the mailbox kind cache).
MAX_TRACKED = 100_000
# New mailboxes one connection may create in a burst, then one more per CREATE_REFILL_SECONDS.
# A member's group connection follows its epoch mailbox, a few grace mailboxes and one attempt
# mailbox at a time; an epoch change adds at most two (the attempt's and the next epoch's), each
# created by whichever member opens it first, and aborted attempts come at most one per member
# per epoch. So a member creates a handful per change, far below the burst, and the refill keeps
# a connection that lives for months working while bounding what one connection can create.
# Opening (re-creating) an existing mailbox costs nothing, so reconnects are free.
MAX_CREATES_PER_CONNECTION = 64
CREATE_REFILL_SECONDS = 60.0
# Pinned (DKG attempt) mailboxes this connection created and that are still pinned. A group runs
# one attempt at a time; 4 leaves room for an unpin still in flight and a few groups on one
# connection, and bounds what a connection can leave behind untrimmed.
MAX_PINNED_PER_CONNECTION = 4
# Authenticated writes (group mailboxes, and an owner writing its own inbox) per connection.
# Generous: a person sends a few messages a second at most, a DKG step puts a few blobs, and the
# demo and tests put a few hundred back to back; a connection that keeps writing faster than
# this is a flood, and the cap bounds what it can push into the store.
AUTH_WRITE_RATE = 100.0
AUTH_WRITE_BURST = 1000.0
# Directory publishes (prekeys and join keys) per connection: a client publishes when it starts
# and when it refills its keys, a few times a day; one connection flooding the directory stored
# 187 MB in 5 s before (issue 9).
PUBLISH_RATE = 0.1
PUBLISH_BURST = 20.0


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: `rate` tokens per second, at most `burst` saved up."""

    rate: float
    burst: float


@dataclass(frozen=True)
class HubConfig:
    # Open (unauthenticated) inbox writes and bundle fetches, per connection and per target.
    per_connection: RateLimit = RateLimit(rate=20.0, burst=100.0)
    per_mailbox: RateLimit = RateLimit(rate=50.0, burst=200.0)
    # What one connection may have queued in pushes before its subscription is dropped.
    live_queue_entries: int = 1024
    live_queue_bytes: int = 4 * 1024 * 1024
    # Responses pending past this stop the connection's request reading (backpressure).
    outbox_high_water: int = 8 * 1024 * 1024
    # Per-connection quotas on authenticated work (spec 10.8): creating new mailboxes, keeping
    # pinned ones alive, and writing with a proof.
    creates: RateLimit = RateLimit(rate=1.0 / CREATE_REFILL_SECONDS,
                                   burst=float(MAX_CREATES_PER_CONNECTION))
    max_pinned: int = MAX_PINNED_PER_CONNECTION
    authenticated_writes: RateLimit = RateLimit(rate=AUTH_WRITE_RATE, burst=AUTH_WRITE_BURST)
    publishes: RateLimit = RateLimit(rate=PUBLISH_RATE, burst=PUBLISH_BURST)


class TokenBucket:
    __slots__ = ("_limit", "_stamp", "_tokens")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self._limit = limit
        self._tokens = limit.burst
        self._stamp = now

    def take(self, now: float) -> bool:
        elapsed = max(0.0, now - self._stamp)
        self._tokens = min(self._limit.burst, self._tokens + elapsed * self._limit.rate)
        self._stamp = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def peek(self, now: float) -> bool:
        """Whether `take(now)` would succeed; takes nothing."""
        elapsed = max(0.0, now - self._stamp)
        return min(self._limit.burst, self._tokens + elapsed * self._limit.rate) >= 1.0

    def full(self, now: float) -> bool:
        return self._tokens + (now - self._stamp) * self._limit.rate >= self._limit.burst


def error_code(exc: RemoteError) -> ErrorCode:
    if isinstance(exc, InvalidSignature):
        return ErrorCode.BAD_SIGNATURE
    if isinstance(exc, AuthenticationError):
        return ErrorCode.UNAUTHENTICATED
    if isinstance(exc, LimitExceeded):
        return ErrorCode.LIMIT
    if isinstance(exc, UnsupportedError):
        return ErrorCode.UNSUPPORTED
    if isinstance(exc, DecodeError):
        return ErrorCode.MALFORMED
    return ErrorCode.REFUSED


def _reason(exc: BaseException) -> str:
    return str(exc).encode("ascii", "replace").decode("ascii")[:MAX_REASON_LEN]


class _Outbox:
    """The connection's ordered outgoing frames, with what is pending counted."""

    def __init__(self) -> None:
        self._frames: collections.deque[tuple[bytes, int]] = collections.deque()
        self._ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self.pending_bytes = 0
        self.push_entries = 0
        self.push_bytes = 0

    def put(self, frame: bytes, push_entries: int = 0) -> None:
        self._frames.append((frame, push_entries))
        self.pending_bytes += len(frame)
        if push_entries:
            self.push_entries += push_entries
            self.push_bytes += len(frame)
        self._ready.set()
        self._drained.clear()

    async def get(self) -> tuple[bytes, int]:
        while not self._frames:
            self._ready.clear()
            await self._ready.wait()
        return self._frames.popleft()

    def sent(self, frame: bytes, push_entries: int) -> None:
        self.pending_bytes -= len(frame)
        if push_entries:
            self.push_entries -= push_entries
            self.push_bytes -= len(frame)
        if not self._frames and self.pending_bytes == 0:
            self._drained.set()

    async def wait_drained(self) -> None:
        await self._drained.wait()


@dataclass(eq=False)
class _Subscription:
    mailbox: bytes
    cursor: int
    incarnation: bytes  # the store history `cursor` belongs to
    lost: bool = False  # the reader's cursor was of a lost history: report fell_behind first
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class _Fatal(Exception):
    """Close this connection (and nothing else) after telling the client why."""

    def __init__(self, code: ErrorCode, reason: str, close_code: int = 1008) -> None:
        super().__init__(reason)
        self.code = code
        self.close_code = close_code


class Hub:
    """The relay: connection handling around one `Store`. Many `Hub`s may share a Redis store."""

    def __init__(self, store: Store, config: HubConfig | None = None, *,
                 clock: Callable[[], float] = time.time,
                 rng: RandomSource = system_random) -> None:
        self.store = store
        self.config = config or HubConfig()
        self.clock = clock
        self.rng = rng
        self._subs: dict[bytes, set[_Subscription]] = {}
        self._buckets: dict[bytes, TokenBucket] = {}
        self._kinds: dict[bytes, Kind] = {}
        store.add_listener(self._on_new_entry)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _on_new_entry(self, mailbox: bytes | None) -> None:
        if mailbox is None:
            for subs in self._subs.values():
                for sub in subs:
                    sub.wake.set()
            return
        for sub in self._subs.get(mailbox, ()):
            sub.wake.set()

    def register(self, sub: _Subscription) -> None:
        self._subs.setdefault(sub.mailbox, set()).add(sub)

    def unregister(self, sub: _Subscription) -> None:
        subs = self._subs.get(sub.mailbox)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.mailbox]

    def take_token(self, target: bytes) -> bool:
        now = self.clock()
        bucket = self._buckets.get(target)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED:
                # Forget buckets that have refilled: they carry no state worth keeping.
                self._buckets = {k: b for k, b in self._buckets.items() if not b.full(now)}
                if len(self._buckets) >= MAX_TRACKED:
                    return False
            bucket = self._buckets[target] = TokenBucket(self.config.per_mailbox, now)
        return bucket.take(now)

    async def kind(self, mailbox: bytes) -> Kind | None:
        kind = self._kinds.get(mailbox)
        if kind is None:
            info = await self.store.info(mailbox)
            if info is None:
                return None
            kind = info.kind
            if len(self._kinds) >= MAX_TRACKED:
                self._kinds.clear()
            self._kinds[mailbox] = kind  # a mailbox's kind never changes
        return kind

    async def handle(self, ws: ServerConnection) -> None:
        await _Connection(self, ws).run()


class _Connection:
    def __init__(self, hub: Hub, ws: ServerConnection) -> None:
        self.hub = hub
        self.ws = ws
        self.out = _Outbox()
        self.challenge = b""
        self.authorized: set[bytes] = set()
        self.subs: dict[bytes, _Subscription] = {}
        self.auth_failures = 0
        now = hub.clock()
        self.bucket = TokenBucket(hub.config.per_connection, now)
        self.creates = TokenBucket(hub.config.creates, now)
        self.writes = TokenBucket(hub.config.authenticated_writes, now)
        self.publishes = TokenBucket(hub.config.publishes, now)
        self.pinned: set[bytes] = set()  # pinned mailboxes this connection created

    async def run(self) -> None:
        writer = asyncio.create_task(self._write_loop())
        try:
            await self._serve()
        except _Fatal as fatal:
            writer.cancel()
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(encode(Error(0, fatal.code, _reason(fatal))))
                await self.ws.close(fatal.close_code, fatal.code.name.lower())
        except ConnectionClosed:
            pass
        except Exception:
            _log.exception("hub connection failed")
            with contextlib.suppress(ConnectionClosed):
                await self.ws.close(1011, "internal error")
        finally:
            for sub in list(self.subs.values()):
                self._drop(sub)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await writer

    async def _write_loop(self) -> None:
        while True:
            frame, entries = await self.out.get()
            await self.ws.send(frame)
            self.out.sent(frame, entries)

    async def _serve(self) -> None:
        try:
            first = await asyncio.wait_for(self.ws.recv(), HELLO_TIMEOUT)
        except TimeoutError:
            raise _Fatal(ErrorCode.MALFORMED, "no hello") from None
        hello = self._decode(first)
        if not isinstance(hello, Hello):
            raise _Fatal(ErrorCode.MALFORMED, "the first frame must be hello")
        if hello.version != PROTOCOL_VERSION:
            raise _Fatal(ErrorCode.UNSUPPORTED, "unsupported protocol version")
        self.challenge = self.hub.rng(CHALLENGE_LEN)
        self.out.put(encode(Challenge(PROTOCOL_VERSION, self.challenge, MAX_BLOB_SIZE,
                                      self.hub.store.incarnation)))
        high_water = self.hub.config.outbox_high_water
        async for message in self.ws:
            frame = self._decode(message)
            if isinstance(frame, Hello):
                raise _Fatal(ErrorCode.MALFORMED, "hello sent twice")
            try:
                await self._dispatch(frame)
            except RemoteError as exc:
                self.out.put(encode(Error(frame.req, error_code(exc), _reason(exc))))
            except (_Fatal, ConnectionClosed, asyncio.CancelledError):
                raise
            except Exception:
                # The store failed (e.g. Redis unreachable): refuse this request, keep the
                # connection; the client retries. Logged without request contents.
                _log.warning("hub request failed in the store", exc_info=True)
                self.out.put(encode(Error(frame.req, ErrorCode.INTERNAL, "store unavailable")))
            if self.out.pending_bytes > high_water:
                await self.out.wait_drained()

    def _decode(self, message: str | bytes) -> ClientFrame:
        if isinstance(message, str):
            raise _Fatal(ErrorCode.MALFORMED, "frames are binary messages", 1003)
        try:
            return decode_client_frame(message)
        except LimitExceeded as exc:
            raise _Fatal(ErrorCode.MALFORMED, _reason(exc), 1009) from None
        except DecodeError as exc:
            raise _Fatal(ErrorCode.MALFORMED, _reason(exc), 1002) from None

    def _require(self, mailbox: bytes) -> None:
        if mailbox not in self.authorized:
            raise AuthenticationError("not authenticated for this mailbox")

    def _rate(self, target: bytes) -> None:
        if not self.bucket.take(self.hub.clock()) or not self.hub.take_token(target):
            raise LimitExceeded("rate limited")

    async def _dispatch(self, frame: ClientFrame) -> None:
        hub, store = self.hub, self.hub.store
        match frame:
            case Auth(req, proof):
                if len(self.authorized) >= MAX_AUTHORIZED:
                    raise LimitExceeded("too many mailboxes on one connection")
                try:
                    verify_proof(proof, self.challenge)
                except RemoteError:
                    self.auth_failures += 1
                    if self.auth_failures >= MAX_AUTH_FAILURES:
                        raise _Fatal(ErrorCode.BAD_SIGNATURE, "too many failed proofs") from None
                    raise
                self.authorized.add(proof.mailbox_id)
                self.out.put(encode(Ok(req)))
            case Create(req, mailbox, kind, pinned):
                self._require(mailbox)
                await self._create(mailbox, kind, pinned)
                self.out.put(encode(Ok(req)))
            case Unpin(req, mailbox):
                self._require(mailbox)
                await store.unpin(mailbox, hub.now_ms())
                self.pinned.discard(mailbox)
                self.out.put(encode(Ok(req)))
            case Put(req, mailbox, msg_id, blob):
                if mailbox not in self.authorized:
                    # The connection's bucket first: telling an inbox from a group mailbox (or
                    # none) takes a store lookup, which a stranger must not get unmetered.
                    if not self.bucket.take(hub.clock()):
                        raise LimitExceeded("rate limited")
                    # Open writes reach inboxes only; a group mailbox (or none) looks the same
                    # to a stranger, so this is no oracle for which group mailboxes exist.
                    if await hub.kind(mailbox) != Kind.INBOX:
                        raise AuthenticationError("not authenticated for this mailbox")
                    if not hub.take_token(mailbox):
                        raise LimitExceeded("rate limited")
                elif not self.writes.take(hub.clock()):
                    raise LimitExceeded("write rate limited")
                result = await store.append(mailbox, msg_id, blob, hub.now_ms())
                self.out.put(encode(PutOk(req, result.cursor, result.t, result.duplicate)))
            case Fetch(req, mailbox, incarnation, after, limit):
                self._require(mailbox)
                # A cursor of a lost store history names nothing here: read from the start of
                # this history and report the gap (never skip silently). The store checks the
                # history it reads in is `current` (taken with no await in between).
                current = store.incarnation
                lost = after != 0 and incarnation != current
                res = await store.read(mailbox, 0 if lost else after, limit, MAX_BATCH_BYTES,
                                       hub.now_ms())
                self.out.put(encode(Batch(req, mailbox, current, res.next_cursor, hub.now_ms(),
                                          res.fell_behind or lost, res.more, res.entries)))
            case Subscribe(req, mailbox, incarnation, after):
                self._require(mailbox)
                current = store.incarnation
                lost = after != 0 and incarnation != current
                after = 0 if lost else after
                info = await store.info(mailbox)
                if info is None:
                    raise ProtocolError("no such mailbox")
                if after > info.head:
                    raise ProtocolError("cursor was never issued")
                old = self.subs.get(mailbox)
                if old is not None:
                    self._drop(old)
                elif len(self.subs) >= MAX_SUBSCRIPTIONS:
                    raise LimitExceeded("too many subscriptions on one connection")
                self.out.put(encode(Ok(req)))
                self._start(_Subscription(mailbox, after, current, lost))
            case Unsubscribe(req, mailbox):
                sub = self.subs.get(mailbox)
                if sub is not None:
                    self._drop(sub)
                self.out.put(encode(Ok(req)))
            case Ack(req, mailbox, incarnation, cursor):
                self._require(mailbox)
                if cursor != 0 and incarnation != store.incarnation:
                    raise ProtocolError("cursor is of another store history")
                await store.ack(mailbox, cursor)
                self.out.put(encode(Ok(req)))
            case Publish(req, directory, owner, bundle, prekeys):
                self._require(owner)
                self._publish_token()
                await store.publish(directory, owner, bundle, prekeys, hub.now_ms())
                self.out.put(encode(Ok(req)))
            case TakeBundle(req, directory):
                self._rate(directory)
                taken = await store.take_bundle(directory, hub.now_ms())
                self.out.put(encode(Bundle(req, taken.bundle, taken.prekey, taken.remaining)))
            case PublishJoinKeys(req, directory, owner, last_resort, join_keys):
                self._require(owner)
                self._publish_token()
                await store.publish_join_keys(directory, owner, last_resort, join_keys,
                                              hub.now_ms())
                self.out.put(encode(Ok(req)))
            case TakeJoinKey(req, directory):
                self._rate(directory)
                join = await store.take_join_key(directory, hub.now_ms())
                self.out.put(encode(JoinKey(req, join.last_resort, join.join_key,
                                            join.remaining)))
            case _:
                raise UsageError("unhandled frame")

    def _publish_token(self) -> None:
        if not self.publishes.take(self.hub.clock()):
            raise LimitExceeded("directory publishes rate limited")

    async def _create(self, mailbox: bytes, kind: Kind, pinned: bool) -> None:
        """CREATE within the connection's quotas. Whether the mailbox is new is decided by the
        store in the same atomic step as the creation (`may_create`), so opening an existing
        mailbox always works and costs nothing, and an exhausted quota refuses only new ones."""
        now = self.hub.clock()
        room_for_pin = not pinned or await self._pinned_room()
        may_create = room_for_pin and self.creates.peek(now)
        try:
            created = await self.hub.store.create(mailbox, kind, pinned, self.hub.now_ms(),
                                                  may_create=may_create)
        except LimitExceeded:
            if not room_for_pin:
                raise LimitExceeded("too many pinned mailboxes on one connection") from None
            raise
        if created:
            self.creates.take(now)
            if pinned:
                self.pinned.add(mailbox)

    async def _pinned_room(self) -> bool:
        """Whether this connection may create one more pinned mailbox. Another member may have
        unpinned one of ours, so at the cap the store is asked before refusing."""
        if len(self.pinned) < self.hub.config.max_pinned:
            return True
        for mailbox in list(self.pinned):
            info = await self.hub.store.info(mailbox)
            if info is None or not info.pinned:
                self.pinned.discard(mailbox)
        return len(self.pinned) < self.hub.config.max_pinned

    def _start(self, sub: _Subscription) -> None:
        self.subs[sub.mailbox] = sub
        self.hub.register(sub)
        sub.task = asyncio.create_task(self._pump(sub))
        sub.wake.set()  # catch up first

    def _drop(self, sub: _Subscription) -> None:
        self.hub.unregister(sub)
        if self.subs.get(sub.mailbox) is sub:
            del self.subs[sub.mailbox]
        if sub.task is not None and sub.task is not asyncio.current_task():
            sub.task.cancel()

    async def _pump(self, sub: _Subscription) -> None:
        config = self.hub.config
        while True:
            await sub.wake.wait()
            sub.wake.clear()
            more = True
            while more:
                current = self.hub.store.incarnation
                if current != sub.incarnation:  # the store lost data under this subscription
                    sub.cursor, sub.incarnation, sub.lost = 0, current, True
                try:
                    res = await self.hub.store.read(sub.mailbox, sub.cursor, MAX_BATCH_ENTRIES,
                                                    MAX_BATCH_BYTES, self.hub.now_ms())
                except Exception:
                    # The store failed under us: hand the cursor back so the client fetches
                    # (and sees the failure there) instead of stalling silently.
                    self._overflow(sub)
                    return
                if not res.entries and not res.fell_behind and not sub.lost:
                    break
                frame = encode(Push(sub.mailbox, current, res.next_cursor, self.hub.now_ms(),
                                    res.fell_behind or sub.lost, res.entries))
                if self.out.push_entries and (
                    self.out.push_entries + len(res.entries) > config.live_queue_entries
                    or self.out.push_bytes + len(frame) > config.live_queue_bytes
                ):
                    self._overflow(sub)
                    return
                self.out.put(frame, max(1, len(res.entries)))
                sub.cursor, sub.lost = res.next_cursor, False
                more = res.more

    def _overflow(self, sub: _Subscription) -> None:
        self._drop(sub)
        self.out.put(encode(Resync(sub.mailbox, sub.cursor)))


# How long shutdown waits for connections, then for the store, before exiting anyway.
SHUTDOWN_GRACE_SECONDS = 3.0


def open_store(store_url: str) -> Store:
    """`memory:`, `sqlite:PATH` or `redis://host:port/db` (also `rediss://`, `unix://`)."""
    if store_url == "memory:":
        return MemoryStore()
    if store_url.startswith("sqlite:"):
        from triple_ratchet.hub.sqlite_store import SqliteStore

        path = store_url[len("sqlite:"):]
        if not path:
            raise UsageError("sqlite store needs a path: sqlite:PATH")
        return SqliteStore(path)
    if store_url.startswith(("redis://", "rediss://", "unix://")):
        from triple_ratchet.hub.redis_store import RedisStore

        return RedisStore(store_url)
    raise UsageError("store must be memory:, sqlite:PATH or redis://...")


async def serve_hub(host: str, port: int, store: Store, *, config: HubConfig | None = None,
                    stop: asyncio.Event | None = None,
                    ready: Callable[[int], None] | None = None) -> None:
    """Serve until `stop` is set; then close every connection (1001) and the store."""
    await store.start()
    hub = Hub(store, config)
    stop = stop or asyncio.Event()
    try:
        server = await serve(hub.handle, host, port, compression=None,
                             max_size=MAX_CLIENT_FRAME, max_queue=16)
        try:
            bound = server.sockets[0].getsockname()[1] if server.sockets else port
            if ready is not None:
                ready(int(bound))
            await stop.wait()
        finally:
            server.close()
            # A handler stuck on a dead store link must not keep the process from exiting.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), SHUTDOWN_GRACE_SECONDS)
    finally:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(store.close(), SHUTDOWN_GRACE_SECONDS)


def run_hub(host: str, port: int, store_url: str) -> None:
    """The `triple-ratchet hub` command: serve until SIGINT or SIGTERM, then shut down cleanly.

    Prints one line `hub listening on HOST:PORT` (PORT is the bound one, useful with port 0).
    """
    store = open_store(store_url)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def ready(bound: int) -> None:
            print(f"hub listening on {host}:{bound}", flush=True)

        await serve_hub(host, port, store, stop=stop, ready=ready)

    asyncio.run(main())
    print("hub stopped", file=sys.stderr, flush=True)


__all__ = ["Hub", "HubConfig", "RateLimit", "open_store", "run_hub", "serve_hub"]
