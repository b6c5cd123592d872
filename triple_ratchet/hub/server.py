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
import ipaddress
import logging
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

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
from triple_ratchet.hub.access import CHALLENGE_LEN, AccessProof, verify_proof
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

# One logger for every hub decision, the name an operator configures. Never logged: a blob, a
# key, a proof, an access key, a mailbox id or a store URL's credentials.
_log = logging.getLogger("triple_ratchet.hub")

HELLO_TIMEOUT = 10.0
# Connection lifecycle (spec 10.12, 12). A connection whose answers do not drain within
# DRAIN_TIMEOUT is closed: a client that stops reading may not pin the hub's memory.
DRAIN_TIMEOUT = 30.0
# Idle connections (no frame received): without an accepted proof after IDLE_UNAUTHENTICATED,
# with proofs but no subscription after IDLE_UNSUBSCRIBED. A subscriber may be silent for
# hours (it waits for pushes); WebSocket pings find a dead one.
IDLE_UNAUTHENTICATED = 30.0
IDLE_UNSUBSCRIBED = 300.0
# Connections per client address (an IPv4 address, or an IPv6 /64, which one subscriber
# usually holds whole): at most this many, or an eighth of the hub's connection limit if that
# is smaller, so one address can never take every descriptor.
MAX_CONNECTIONS_PER_ADDRESS = 256
# The hub's own connection limit defaults to the process's descriptor limit minus this reserve
# (store links, the listening socket, logs).
DESCRIPTOR_RESERVE = 64
# Frames and close reasons after the hub decided to close, then the socket is aborted.
CLOSE_GRACE_SECONDS = 2.0
# Metering of requests that cost the hub work (spec 10.12): a signature check per new proof
# (re-sending a proof the connection already had accepted is answered without one), a read
# per FETCH or SUBSCRIBE. Bursts fit a member's reconnect (every key proved again, every
# mailbox subscribed) and a resync of a full group mailbox (10 000 entries = 40 fetches).
PROOF_RATE = 10.0
PROOF_BURST = 1024.0
READ_RATE = 50.0
READ_BURST = 500.0
# A connection may follow this many mailboxes and hold this many access proofs: a member's
# group connection needs its epoch's group and control mailboxes plus a few old epochs'.
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
    # Connection lifecycle, limits and metering (spec 10.12); see the constants above.
    drain_timeout: float = DRAIN_TIMEOUT
    idle_unauthenticated: float = IDLE_UNAUTHENTICATED
    idle_unsubscribed: float = IDLE_UNSUBSCRIBED
    max_connections: int | None = None  # None: the descriptor limit minus DESCRIPTOR_RESERVE
    max_connections_per_address: int | None = None  # None: see MAX_CONNECTIONS_PER_ADDRESS
    # Addresses (CIDR) of reverse proxies whose X-Forwarded-For names the client (spec 10.11).
    trusted_proxies: tuple[str, ...] = ()
    proofs: RateLimit = RateLimit(rate=PROOF_RATE, burst=PROOF_BURST)
    reads: RateLimit = RateLimit(rate=READ_RATE, burst=READ_BURST)
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
        self.dead = False  # the writer ended: nothing queued will ever be sent

    def put(self, frame: bytes, push_entries: int = 0) -> None:
        if self.dead:
            return
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
        """Until everything queued was sent, or the writer ended (`dead`)."""
        await self._drained.wait()

    def close(self) -> None:
        """The writer ended: free what is queued and wake whoever waits for a drain."""
        self.dead = True
        self._frames.clear()
        self.pending_bytes = self.push_entries = self.push_bytes = 0
        self._drained.set()


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


class _Close(Exception):
    """Close this connection without an ERROR frame (idle, not draining, or already gone);
    `close_code` None: the transport is gone, there is nobody to tell."""

    def __init__(self, close_code: int | None, reason: str, why: str) -> None:
        super().__init__(why)
        self.close_code = close_code
        self.reason = reason
        self.why = why


@dataclass(slots=True)
class HubStats:
    """What this hub process decided, counted (also logged): for tests and monitoring."""

    connections_opened: int = 0
    connections_refused: int = 0  # over the total or per-address connection limit
    closed_idle: int = 0
    closed_not_draining: int = 0
    refusals: int = 0  # requests answered with an ERROR
    quota_hits: int = 0  # of which LIMIT (rate limits and quotas)
    store_failures: int = 0
    resyncs: int = 0


class _Throttle:
    """At most one log line per key and interval; counts what it held back."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def allow(self, key: str, now: float) -> int | None:
        """The number of lines held back since the last one, or None to hold this one."""
        if now - self._last.get(key, -self._interval) < self._interval:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)


_STORE_LINK_ERRORS = ("ConnectionError", "TimeoutError", "BusyLoadingError", "MaxConnectionsError")


def describe_failure(exc: BaseException) -> str:
    """An exception for the log without anything it may carry from a request: its type, and
    its message only for store-link errors (which describe the link: "Connection refused",
    "No connection available"); the place it was raised, from the traceback's frames."""
    kind = type(exc)
    text = f"{kind.__module__}.{kind.__qualname__}"
    if kind.__name__ in _STORE_LINK_ERRORS:
        text += ": " + _reason(exc)
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        code = tb.tb_frame.f_code
        text += f" (at {code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno} in {code.co_name})"
    return text


def descriptor_budget() -> int:
    """Connections this process can hold: its descriptor limit minus DESCRIPTOR_RESERVE."""
    try:
        import resource
    except ImportError:  # not POSIX
        return 1024 - DESCRIPTOR_RESERVE
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(16, int(soft) - DESCRIPTOR_RESERVE)


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def address_key(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """What one client address is for the limits: an IPv4 address, an IPv6 /64."""
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


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
        self._init_limits()

    def _init_limits(self) -> None:
        config = self.config
        self.stats = HubStats()
        self.connections: set[_Connection] = set()
        self._per_address: dict[str, int] = {}
        self._serial = 0
        self._throttle = _Throttle(1.0)
        try:
            self._proxies = tuple(ipaddress.ip_network(p, strict=False)
                                  for p in config.trusted_proxies)
        except ValueError:
            raise UsageError("trusted proxies must be IP addresses or networks") from None
        self.max_connections = config.max_connections or descriptor_budget()
        per_address = config.max_connections_per_address
        if per_address is None:
            per_address = min(MAX_CONNECTIONS_PER_ADDRESS, max(1, self.max_connections // 8))
        self.max_per_address = per_address
        if self.max_connections < 1 or self.max_per_address < 1:
            raise UsageError("connection limits must be positive")

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
        address = self.client_address(ws.remote_address, ws.request)
        refusal = self._admit(address)
        if refusal is not None:
            # Over a connection limit: say so (LIMIT, connection-level) and close; the client
            # retries later. Refused before HELLO is read, so it costs no work.
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                await asyncio.wait_for(
                    ws.send(encode(Error(0, ErrorCode.LIMIT, refusal))), CLOSE_GRACE_SECONDS)
                await asyncio.wait_for(ws.close(1013, "try again later"), CLOSE_GRACE_SECONDS)
            return
        self._per_address[address] = self._per_address.get(address, 0) + 1
        self._serial += 1
        conn = _Connection(self, ws, address, self._serial)
        self.connections.add(conn)
        try:
            await conn.run()
        finally:
            self.connections.discard(conn)
            left = self._per_address.pop(address, 1) - 1
            if left > 0:
                self._per_address[address] = left

    # --- connection limits, addresses, logs --------------------------------------------------

    def client_address(self, peer: object, request: Request | None) -> str:
        """The client's address key (`address_key`): the peer's, or when the peer is a trusted
        proxy, the nearest untrusted hop of X-Forwarded-For (its rightmost entries were appended
        by proxies we trust; anything further left is whatever the client claimed)."""
        host = peer[0] if isinstance(peer, tuple) and peer else None
        ip = _parse_ip(host) if isinstance(host, str) else None
        if ip is None:
            return "unknown"
        if request is not None and self._trusted(ip):
            hops = [hop for value in request.headers.get_all("X-Forwarded-For")
                    for hop in value.split(",")]
            for hop in reversed(hops):
                forwarded = _parse_ip(hop)
                if forwarded is None:
                    break  # malformed: trust nothing further left
                ip = forwarded
                if not self._trusted(ip):
                    break
        return address_key(ip)

    def _trusted(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(ip in net for net in self._proxies)

    def _admit(self, address: str) -> str | None:
        """Why a new connection from `address` is refused (counted and logged), or None."""
        if len(self.connections) >= self.max_connections:
            reason = "hub is at its connection limit"
        elif self._per_address.get(address, 0) >= self.max_per_address:
            reason = "too many connections from this address"
        else:
            return None
        self.stats.connections_refused += 1
        held = self._throttle.allow("refused " + reason, self.clock())
        if held is not None:
            _log.warning("connection from %s refused: %s (%d more since the last line)",
                         address, reason, held)
        return reason

    async def process_request(self, connection: ServerConnection,
                              request: Request) -> Response | None:
        """Before the WebSocket handshake: refuse over-limit clients with HTTP 503, cheaply.
        (`handle` checks again; this only saves the handshake.)"""
        address = self.client_address(connection.remote_address, request)
        if self._admit(address) is not None:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE,
                                      "too many connections, try again later\n")
        return None

    def store_failed(self, what: str, exc: BaseException) -> None:
        """A store call failed (Redis unreachable, pool exhausted, disk error): counted and
        logged (throttled), never with request contents."""
        self.stats.store_failures += 1
        held = self._throttle.allow("store " + what, self.clock())
        if held is not None:
            _log.warning("store failed during %s: %s (%d more since the last line)",
                         what, describe_failure(exc), held)


def _forget_frames(exc: BaseException) -> None:
    """websockets raises one stored ConnectionClosed per connection each time, so its traceback
    (and the frames on it, with their locals: the frame being sent, up to 1 MiB) stay reachable
    from the connection itself, a cycle only the cyclic GC frees, late. Drop them now."""
    exc.__traceback__ = None
    for linked in (exc.__cause__, exc.__context__):
        if linked is not None:
            linked.__traceback__ = None


class _Connection:
    def __init__(self, hub: Hub, ws: ServerConnection, address: str = "unknown",
                 number: int = 0) -> None:
        self.hub = hub
        self.ws = ws
        self._init_lifecycle(address, number)
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
            self.ended = f"refused: {_reason(fatal)}"
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                await asyncio.wait_for(self.ws.send(encode(Error(0, fatal.code, _reason(fatal)))),
                                       CLOSE_GRACE_SECONDS)
            await self._close_ws(fatal.close_code, fatal.code.name.lower())
        except _Close as close:
            writer.cancel()
            self.ended = close.why
            if close.close_code is not None:
                await self._close_ws(close.close_code, close.reason)
        except ConnectionClosed as exc:
            _forget_frames(exc)
        except Exception as exc:
            self.ended = "internal error"
            _log.error("connection %d failed: %s", self.number, describe_failure(exc))
            await self._close_ws(1011, "internal error")
        finally:
            for sub in list(self.subs.values()):
                self._drop(sub)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await writer
            self.out.close()  # frees what was queued even if the writer never started
            self._log_end()

    async def _write_loop(self) -> None:
        try:
            while True:
                frame, entries = await self.out.get()
                await self.ws.send(frame)
                self.out.sent(frame, entries)
        except ConnectionClosed as exc:
            _forget_frames(exc)
        finally:
            # However the writer ends (the peer left, cancelled): what is queued can never be
            # sent, so free it and wake a reader waiting for the drain.
            self.out.close()

    # --- lifecycle: idle and drain bounds, closing, logs -------------------------------------

    def _init_lifecycle(self, address: str, number: int) -> None:
        self.address = address
        self.number = number
        self.opened = time.monotonic()
        self.ended = "closed by the client"
        self.requests = self.refused = self.quota_hits = self.resyncs = 0
        self._quota_logged: set[str] = set()
        self._accepted: dict[bytes, AccessProof] = {}  # the proof accepted per mailbox
        now = self.hub.clock()
        self.proofs = TokenBucket(self.hub.config.proofs, now)
        self.reads = TokenBucket(self.hub.config.reads, now)
        self.hub.stats.connections_opened += 1
        _log.info("connection %d opened from %s (%d open)", number, address,
                  len(self.hub.connections) + 1)

    def _log_end(self) -> None:
        _log.info("connection %d closed (%s) after %.1f s: %d requests, %d refused "
                  "(%d over a quota), %d resyncs", self.number, self.ended,
                  time.monotonic() - self.opened, self.requests, self.refused,
                  self.quota_hits, self.resyncs)

    def _idle_limit(self) -> float | None:
        """How long this connection may stay silent: a subscriber indefinitely (pings watch
        it), others by whether they proved a key."""
        if self.subs:
            return None
        if self.authorized:
            return self.hub.config.idle_unsubscribed
        return self.hub.config.idle_unauthenticated

    async def _receive(self) -> str | bytes:
        limit = self._idle_limit()
        if limit is None:
            return await self.ws.recv()
        try:
            async with asyncio.timeout(limit):  # no task per frame, unlike wait_for
                return await self.ws.recv()
        except TimeoutError:
            self.hub.stats.closed_idle += 1
            raise _Close(1000, "idle", "idle") from None

    async def _drain(self) -> None:
        """Backpressure with a bound: wait for the answers to drain, but not forever, and not
        at all once the writer is gone (the peer left)."""
        try:
            await asyncio.wait_for(self.out.wait_drained(), self.hub.config.drain_timeout)
        except TimeoutError:
            self.hub.stats.closed_not_draining += 1
            _log.info("connection %d does not read its answers: closing it", self.number)
            raise _Close(1008, "not reading", "not reading its answers") from None
        if self.out.dead:
            raise _Close(None, "", "the peer left with answers pending")

    async def _close_ws(self, code: int, reason: str) -> None:
        """Close within CLOSE_GRACE_SECONDS; a peer that does not read gets its socket aborted."""
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            await asyncio.wait_for(self.ws.close(code, reason), CLOSE_GRACE_SECONDS)
        if self.ws.transport is not None and not self.ws.transport.is_closing():
            self.ws.transport.abort()

    def _refusal(self, exc: RemoteError) -> None:
        """Count and log a refused request: quota hits at INFO (the first of each kind per
        connection), other refusals at DEBUG. Reasons are fixed texts without ids or bytes."""
        self.refused += 1
        self.hub.stats.refusals += 1
        reason = _reason(exc)
        if isinstance(exc, LimitExceeded):
            self.quota_hits += 1
            self.hub.stats.quota_hits += 1
            if reason not in self._quota_logged:
                self._quota_logged.add(reason)
                _log.info("connection %d over a quota: %s", self.number, reason)
                return
        _log.debug("connection %d refused a request: %s: %s", self.number,
                   error_code(exc).name, reason)

    async def _push_failed(self, exc: Exception) -> None:
        """The store failed under a subscription: tell the client (ERROR INTERNAL about the
        connection, then close) so it reconnects and resubscribes from its own cursor."""
        if self.ended == "store unavailable":
            return  # another subscription's pump already said so
        self.hub.store_failed("a push read", exc)
        self.ended = "store unavailable"
        self.out.put(encode(Error(0, ErrorCode.INTERNAL, "store unavailable")))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.out.wait_drained(), CLOSE_GRACE_SECONDS)
        await self._close_ws(1011, "store unavailable")

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
        while True:
            message = await self._receive()
            self.requests += 1
            frame = self._decode(message)
            if isinstance(frame, Hello):
                raise _Fatal(ErrorCode.MALFORMED, "hello sent twice")
            try:
                await self._dispatch(frame)
            except RemoteError as exc:
                self._refusal(exc)
                self.out.put(encode(Error(frame.req, error_code(exc), _reason(exc))))
            except (_Fatal, ConnectionClosed, asyncio.CancelledError):
                raise
            except Exception as exc:
                # The store failed (e.g. Redis unreachable): refuse this request, keep the
                # connection; the client retries. Logged without request contents.
                self.hub.store_failed(type(frame).__name__, exc)
                self.out.put(encode(Error(frame.req, ErrorCode.INTERNAL, "store unavailable")))
            if self.out.pending_bytes > high_water:
                await self._drain()

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
                if self._accepted.get(proof.mailbox_id) == proof:
                    # This very proof was accepted on this connection: answered without a
                    # second signature check, so re-sending it costs the hub nothing.
                    self.out.put(encode(Ok(req)))
                    return
                if not self.proofs.take(hub.clock()):
                    raise LimitExceeded("proof rate limited")
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
                self._accepted[proof.mailbox_id] = proof
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
                if not self.reads.take(hub.clock()):
                    raise LimitExceeded("read rate limited")
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
                if not self.reads.take(hub.clock()):
                    raise LimitExceeded("read rate limited")
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
                except RemoteError:
                    # The store refused (the mailbox or the cursor is gone): the client's
                    # fetch after RESYNC gets the refusal itself.
                    self._overflow(sub)
                    return
                except Exception as exc:
                    # The store failed under us: the client is told (not a silent resync).
                    await self._push_failed(exc)
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
        """A subscriber fell behind its live queue: RESYNC (it fetches instead). The first per
        connection at INFO (a load signal), later ones at DEBUG; all are counted."""
        self.resyncs += 1
        self.hub.stats.resyncs += 1
        _log.log(logging.INFO if self.resyncs == 1 else logging.DEBUG,
                 "connection %d: a subscriber fell behind its live queue: resync (%d on this "
                 "connection)", self.number, self.resyncs)
        self._drop(sub)
        self.out.put(encode(Resync(sub.mailbox, sub.cursor)))


# How long shutdown waits for connections, then for the store, before exiting anyway.
SHUTDOWN_GRACE_SECONDS = 3.0


def open_store(store_url: str, *, pool_size: int | None = None,
               pool_timeout: float | None = None) -> Store:
    """`memory:`, `sqlite:PATH` or `redis://host:port/db` (also `rediss://`, `unix://`).
    `pool_size` and `pool_timeout` size Redis's connection pool (they override the URL's
    `max_connections` and `timeout` query parameters); other stores ignore them."""
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

        return RedisStore(store_url, pool_size=pool_size, pool_timeout=pool_timeout)
    raise UsageError("store must be memory:, sqlite:PATH or redis://...")


async def serve_hub(host: str, port: int, store: Store, *, config: HubConfig | None = None,
                    stop: asyncio.Event | None = None,
                    ready: Callable[[int], None] | None = None) -> None:
    """Serve until `stop` is set; then close every connection (1001) and the store."""
    try:
        await store.start()
    except Exception as exc:
        _log.error("store failed to start: %s", describe_failure(exc))
        raise
    hub = Hub(store, config)
    stop = stop or asyncio.Event()
    try:
        server = await serve(hub.handle, host, port, compression=None,
                             max_size=MAX_CLIENT_FRAME, max_queue=16,
                             process_request=hub.process_request)
        try:
            bound = server.sockets[0].getsockname()[1] if server.sockets else port
            _log.info("hub serving on %s:%d (%s store; at most %d connections, %d per address)",
                      host, bound, type(store).__name__, hub.max_connections,
                      hub.max_per_address)
            if ready is not None:
                ready(int(bound))
            await stop.wait()
        finally:
            _log.info("hub stopping: closing %d connections", len(hub.connections))
            server.close()
            # A handler stuck on a dead store link must not keep the process from exiting.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), SHUTDOWN_GRACE_SECONDS)
    finally:
        try:
            await asyncio.wait_for(store.close(), SHUTDOWN_GRACE_SECONDS)
        except TimeoutError:
            _log.warning("hub stopped without closing its store within %.0f s",
                         SHUTDOWN_GRACE_SECONDS)
        except Exception as exc:
            hub.store_failed("close", exc)
        _log.info("hub stopped: %s", hub.stats)


# Buffers at least this big get a mapping of their own from glibc's malloc (M_MMAP_THRESHOLD).
MMAP_THRESHOLD = 128 * 1024


def _return_big_buffers_to_the_os() -> None:
    """glibc raises its mmap threshold after big buffers are freed, so later frames (answers of
    up to 1 MiB) come from the heap, whose freed pages it keeps: a flood's memory never went
    back (measured: 67 MB -> 584 MB during 60 non-reading clients, still 550 MB after they
    left, all of it free inside malloc). Pinning the threshold maps each big buffer on its own
    and unmaps it when freed (40 MB -> 42 MB after each of four such floods)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None).mallopt(-3, MMAP_THRESHOLD)  # -3: M_MMAP_THRESHOLD


def _raise_descriptor_limit() -> None:
    """Use the hard descriptor limit: the connection limit is derived from it."""
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_hub(host: str, port: int, store_url: str, *, config: HubConfig | None = None,
            log_level: str = "warning", pool_size: int | None = None,
            pool_timeout: float | None = None) -> None:
    """The `triple-ratchet hub` command: serve until SIGINT or SIGTERM, then shut down cleanly.

    Prints one line `hub listening on HOST:PORT` (PORT is the bound one, useful with port 0).
    Logs its decisions to stderr at `log_level` (debug, info, warning, error).
    """
    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        raise UsageError("log level must be debug, info, warning or error")
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # websockets logs frame contents at DEBUG: never let blobs or proofs into the log.
    logging.getLogger("websockets").setLevel(max(level, logging.INFO))
    _raise_descriptor_limit()
    _return_big_buffers_to_the_os()
    store = open_store(store_url, pool_size=pool_size, pool_timeout=pool_timeout)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def ready(bound: int) -> None:
            print(f"hub listening on {host}:{bound}", flush=True)

        await serve_hub(host, port, store, config=config, stop=stop, ready=ready)

    asyncio.run(main())
    print("hub stopped", file=sys.stderr, flush=True)


__all__ = ["Hub", "HubConfig", "HubStats", "RateLimit", "open_store", "run_hub", "serve_hub"]
