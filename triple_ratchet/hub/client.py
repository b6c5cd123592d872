"""Hub clients: `HubConnection` (one WebSocket, request/answer) and `MailboxClient` (resilient).

`MailboxClient` is what an application (or a demo driving many members) uses: give it access
keys to follow, then `put` blobs and read `Delivery` events. It reconnects by itself, opens
every mailbox again, resumes each from the last cursor it delivered, retries puts with the same
message id (so the hub appends each once), answers RESYNC by fetching, and reports trimmed
stretches as `Gap` events. Deliveries per mailbox are in hub order, each exactly once, each with
its hub acceptance time `t` and the hub's time `hub_time` when it was sent. A cursor belongs to
one store history (`incarnation`): persist both (`cursor()`, `incarnation()`) and give both to
`follow()`; a cursor of a history the store lost gives a `Gap` with `history_changed`, then the
new history from its start.

Use one `MailboxClient` for a member's inbox and another for its group mailboxes, so the hub
cannot link them by connection (spec/10-hub.md, "What the hub sees"). A member, in short::

    group_conn = MailboxClient(url)                 # connects on first use
    inbox_conn = MailboxClient(url)
    await inbox_conn.follow(inbox_key, Kind.INBOX)  # AccessKey.generate(suite), kept secret
    # after every GroupSession step: follow exactly its mailboxes
    keys = {m: AccessKey(suite, session.mailbox_access_key(m)) for m in session.mailboxes()}
    await group_conn.sync(keys, control=[session.control_mailbox_id])
    for out in outgoing:                            # after storing the new state
        if out.mailbox_id in keys:
            await group_conn.put(out.mailbox_id, out.blob)
        else:                                       # a notice chunk to someone's inbox
            await send_to_inbox(url, out.mailbox_id, out.blob)
    event = await group_conn.next_event()           # Delivery(mailbox, cursor, blob, t, ...)
    await inbox_conn.ack(inbox_key.mailbox_id, cursor)  # once the inbox message is processed
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from triple_ratchet.errors import (
    AuthenticationError,
    DecodeError,
    HubRefused,
    InvalidSignature,
    LimitExceeded,
    ProtocolError,
    RemoteError,
    UnsupportedError,
    UsageError,
)
from triple_ratchet.hub.access import AccessKey
from triple_ratchet.hub.frames import (
    MAX_BATCH_ENTRIES,
    MAX_HUB_FRAME,
    MSG_ID_LEN,
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
    HubFrame,
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
    decode_hub_frame,
    encode,
)
from triple_ratchet.random import RandomSource, system_random

# The client's decisions at DEBUG (connects, losses, back-off, resyncs, refusals, gaps) for an
# application to switch on; never a blob, a key or a proof, and mailbox ids only by their first
# four bytes.
_log = logging.getLogger("triple_ratchet.hub.client")


def _short(mailbox: bytes) -> str:
    return mailbox[:4].hex() + "…"


_T = TypeVar("_T")

START = 0  # the cursor before every entry
REQUEST_TIMEOUT = 30.0
CLOSE_TIMEOUT = 5.0  # seconds: MailboxClient.close gives up on a task or socket that does not stop

_ERRORS: dict[ErrorCode, type[RemoteError]] = {
    ErrorCode.MALFORMED: DecodeError,
    ErrorCode.UNAUTHENTICATED: AuthenticationError,
    ErrorCode.BAD_SIGNATURE: InvalidSignature,
    ErrorCode.REFUSED: ProtocolError,
    ErrorCode.LIMIT: LimitExceeded,
    ErrorCode.UNSUPPORTED: UnsupportedError,
}


def error_from_frame(frame: Error) -> Exception:
    """The typed error for a hub ERROR frame (INTERNAL is a `ConnectionError`: retry later)."""
    cls = _ERRORS.get(frame.code)
    if cls is None:
        return ConnectionError(f"hub failed: {frame.reason}")
    return cls(f"hub refused: {frame.reason}")


def _retrieved(fut: asyncio.Future[HubFrame]) -> None:
    """Mark a request's outcome as seen: the connection may fail it while the send is still
    under way, and nobody else will look ("Future exception was never retrieved")."""
    if fut.done() and not fut.cancelled():
        fut.exception()


class HubConnection:
    """One WebSocket to a hub. Requests are matched to answers by id; pushes go to `on_push`,
    which runs inside the reading task and must not block."""

    def __init__(self, ws: ClientConnection, challenge: Challenge,
                 on_push: Callable[[Push | Resync], None]) -> None:
        self._ws = ws
        self.challenge = challenge
        self._on_push = on_push
        self._pending: dict[int, asyncio.Future[HubFrame]] = {}
        self._on_ok: dict[int, Callable[[], None]] = {}
        self._next_req = 1
        self._closed = asyncio.Event()
        self.error: Exception | None = None
        self._reader = asyncio.create_task(self._read_loop())

    @classmethod
    async def connect(cls, url: str, *, on_push: Callable[[Push | Resync], None] | None = None,
                      timeout: float = 5.0) -> HubConnection:
        """Connect, say hello and take the challenge. Raises `ConnectionError` when the hub
        cannot be reached, a `RemoteError` when it answers wrongly."""
        try:
            ws = await connect(url, compression=None, max_size=MAX_HUB_FRAME, max_queue=64,
                               open_timeout=timeout, ping_interval=20)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise ConnectionError(f"cannot reach hub: {type(exc).__name__}") from None
        try:
            await ws.send(encode(Hello(PROTOCOL_VERSION)))
            raw = await asyncio.wait_for(ws.recv(), timeout)
            if isinstance(raw, str):
                raise DecodeError("hub sent a text frame")
            first = decode_hub_frame(raw)
            if isinstance(first, Error) and first.code == ErrorCode.LIMIT:
                # Over the hub's connection limits: busy, not broken; retry later.
                raise ConnectionError(f"hub busy: {first.reason}")
            if isinstance(first, Error):
                raise error_from_frame(first)
            if not isinstance(first, Challenge):
                raise ProtocolError("hub did not answer hello with a challenge")
            if first.version != PROTOCOL_VERSION:
                raise UnsupportedError("hub speaks another protocol version")
        except (ConnectionClosed, TimeoutError):
            await ws.close()
            raise ConnectionError("hub closed during hello") from None
        except BaseException:
            await ws.close()
            raise
        return cls(ws, first, on_push or (lambda frame: None))

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def close(self) -> None:
        await self._ws.close()
        await self._closed.wait()

    async def _read_loop(self) -> None:
        try:
            async for message in self._ws:
                if isinstance(message, str):
                    raise DecodeError("hub sent a text frame")
                frame = decode_hub_frame(message)
                if isinstance(frame, Push | Resync):
                    self._on_push(frame)
                    continue
                if isinstance(frame, Error) and frame.req == 0:
                    self.error = error_from_frame(frame)
                    break
                if isinstance(frame, Challenge):
                    raise ProtocolError("hub sent a second challenge")
                fut = self._pending.pop(frame.req, None)
                hook = self._on_ok.pop(frame.req, None)
                if hook is not None and isinstance(frame, Ok):
                    hook()
                if fut is not None and not fut.done():
                    fut.set_result(frame)
        except ConnectionClosed:
            pass
        except RemoteError as exc:  # the hub broke the protocol: drop this connection
            self.error = exc
        finally:
            self._closed.set()
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(self.error or ConnectionError("hub connection lost"))
            self._pending.clear()
            with contextlib.suppress(Exception):
                await self._ws.close()

    async def _call(self, make: Callable[[int], ClientFrame],
                    on_ok: Callable[[], None] | None = None) -> HubFrame:
        if self._closed.is_set():
            raise ConnectionError("hub connection lost")
        req = self._next_req
        self._next_req = req % 0xFFFFFFFF + 1
        fut: asyncio.Future[HubFrame] = asyncio.get_running_loop().create_future()
        self._pending[req] = fut
        if on_ok is not None:
            self._on_ok[req] = on_ok
        try:
            await self._ws.send(encode(make(req)))
            frame = await asyncio.wait_for(fut, REQUEST_TIMEOUT)
        except ConnectionClosed:
            raise ConnectionError("hub connection lost") from None
        finally:
            self._pending.pop(req, None)
            self._on_ok.pop(req, None)
            _retrieved(fut)
        if isinstance(frame, Error):
            raise error_from_frame(frame)
        return frame

    async def _ok(self, make: Callable[[int], ClientFrame],
                  on_ok: Callable[[], None] | None = None) -> None:
        if not isinstance(await self._call(make, on_ok), Ok):
            raise ProtocolError("unexpected answer from hub")

    async def authenticate(self, key: AccessKey) -> None:
        proof = key.prove(self.challenge.nonce)
        await self._ok(lambda req: Auth(req, proof))

    async def create(self, mailbox: bytes, kind: Kind, pinned: bool = False) -> None:
        await self._ok(lambda req: Create(req, mailbox, kind, pinned))

    async def unpin(self, mailbox: bytes) -> None:
        await self._ok(lambda req: Unpin(req, mailbox))

    async def put(self, mailbox: bytes, blob: bytes, msg_id: bytes) -> PutOk:
        if len(msg_id) != MSG_ID_LEN:
            raise UsageError("message ids are 16 bytes")
        if not 0 < len(blob) <= self.challenge.max_blob:
            raise UsageError("blob must be 1..max_blob bytes")
        frame = await self._call(lambda req: Put(req, mailbox, msg_id, blob))
        if not isinstance(frame, PutOk):
            raise ProtocolError("unexpected answer from hub")
        return frame

    def _history(self, incarnation: bytes | None) -> bytes:
        """The store history a cursor is of: given, or the one the hub named at hello."""
        return self.challenge.incarnation if incarnation is None else incarnation

    async def fetch(self, mailbox: bytes, after: int, limit: int = MAX_BATCH_ENTRIES, *,
                    incarnation: bytes | None = None) -> Batch:
        """Entries after `after`, a cursor of the store history `incarnation` (default: the
        one this connection's challenge named)."""
        inc = self._history(incarnation)
        frame = await self._call(lambda req: Fetch(req, mailbox, inc, after, limit))
        if not isinstance(frame, Batch) or frame.mailbox != mailbox:
            raise ProtocolError("unexpected answer from hub")
        return frame

    async def subscribe(self, mailbox: bytes, after: int,
                        on_live: Callable[[], None] | None = None, *,
                        incarnation: bytes | None = None) -> None:
        """`on_live` runs in the reading task when the hub accepts, before any push of the new
        subscription is read."""
        inc = self._history(incarnation)
        await self._ok(lambda req: Subscribe(req, mailbox, inc, after), on_live)

    async def unsubscribe(self, mailbox: bytes) -> None:
        await self._ok(lambda req: Unsubscribe(req, mailbox))

    async def ack(self, mailbox: bytes, cursor: int, *, incarnation: bytes | None = None) -> None:
        inc = self._history(incarnation)
        await self._ok(lambda req: Ack(req, mailbox, inc, cursor))

    async def publish(self, directory: bytes, owner: bytes, bundle: bytes,
                      prekeys: tuple[bytes, ...] = ()) -> None:
        await self._ok(lambda req: Publish(req, directory, owner, bundle, prekeys))

    async def take_bundle(self, directory: bytes) -> Bundle:
        frame = await self._call(lambda req: TakeBundle(req, directory))
        if not isinstance(frame, Bundle):
            raise ProtocolError("unexpected answer from hub")
        return frame

    async def publish_join_keys(self, directory: bytes, owner: bytes,
                                last_resort: bytes | None = None,
                                join_keys: tuple[bytes, ...] = ()) -> None:
        await self._ok(lambda req: PublishJoinKeys(req, directory, owner, last_resort,
                                                   join_keys))

    async def take_join_key(self, directory: bytes) -> JoinKey:
        frame = await self._call(lambda req: TakeJoinKey(req, directory))
        if not isinstance(frame, JoinKey):
            raise ProtocolError("unexpected answer from hub")
        return frame


async def send_to_inbox(url: str, mailbox: bytes, blob: bytes, *, msg_id: bytes | None = None,
                        timeout: float = 30.0, rng: RandomSource = system_random) -> int:
    """Write to someone else's inbox on a connection of its own (so the hub cannot link the
    write to the sender's other connections), retrying with one message id until `timeout`.
    Returns the cursor."""
    mid = msg_id if msg_id is not None else rng(MSG_ID_LEN)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.02
    while True:
        try:
            conn = await HubConnection.connect(url)
            try:
                return (await conn.put(mailbox, blob, mid)).cursor
            finally:
                await conn.close()
        except ConnectionError:
            if loop.time() + delay > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


# --- Resilient client ----------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Delivery:
    """An entry: its cursor, its hub acceptance time `t` (Unix ms; the same for every reader,
    never decreasing within the mailbox) and the hub's clock `hub_time` when it was sent (so a
    backlog can be told from a live entry)."""

    mailbox: bytes
    cursor: int
    blob: bytes
    t: int
    hub_time: int

    def __repr__(self) -> str:
        return f"Delivery(cursor={self.cursor}, t={self.t}, {len(self.blob)} bytes)"


@dataclass(frozen=True)
class Gap:
    """Entries after `after` were trimmed before this client read them (retention), or, with
    `history_changed`, the store lost data: `after` was a cursor of a lost history, and the
    next deliveries start the new one from its beginning."""

    mailbox: bytes
    after: int
    history_changed: bool = False


Event = Delivery | Gap


class _State(enum.Enum):
    CATCHING_UP = enum.auto()  # pushes are ignored until the subscription is (re)accepted
    LIVE = enum.auto()


@dataclass
class _Follow:
    key: AccessKey
    kind: Kind
    pinned: bool
    cursor: int
    incarnation: bytes | None  # the store history of `cursor` (None: none yet, cursor 0)
    state: _State = _State.CATCHING_UP
    worker: asyncio.Task[None] | None = None
    again: bool = False


class MailboxClient:
    """A connection to one hub that survives reconnects. See the module docstring."""

    def __init__(self, url: str, *, max_events: int = 4096, retry_timeout: float = 30.0,
                 rng: RandomSource = system_random) -> None:
        self.url = url
        self.retry_timeout = retry_timeout
        self._rng = rng
        # Events, and None: a wake-up for `next_event` to look at `_refusals`.
        self._events: asyncio.Queue[Event | None] = asyncio.Queue(max_events)
        self._refusals: collections.deque[HubRefused] = collections.deque()
        self._keys: dict[bytes, AccessKey] = {}
        self._follows: dict[bytes, _Follow] = {}
        self._conn: HubConnection | None = None
        self._connected = asyncio.Event()
        self._failure: Exception | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._workers: set[asyncio.Task[None]] = set()
        self._state_listeners: list[Callable[[bool], None]] = []
        self._up = False  # the last state told to the listeners
        self.reconnects = 0  # connections lost and re-established (for tests and monitoring)
        self.resyncs = 0  # times a mailbox fell out of live pushes and was fetched instead

    # --- lifecycle ---
    async def start(self) -> None:
        """Start the connection loop and wait for the first connection (`retry_timeout`)."""
        await self._wait_connected(asyncio.get_running_loop().time() + self.retry_timeout)

    async def close(self) -> None:
        """Stop the connection loop and close the connection, within CLOSE_TIMEOUT. A task can
        lose a cancellation (Python 3.11's wait_for returns a result that came in the same loop
        iteration), so it is cancelled again until it is done; one that never stops is
        abandoned at the deadline, and so is a socket that does not close."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLOSE_TIMEOUT
        tasks = {t for t in (self._supervisor, *self._workers) if t is not None}
        while True:
            tasks = {t for t in tasks if not t.done()}
            left = deadline - loop.time()
            if not tasks or left <= 0:
                break
            for task in tasks:
                task.cancel()
            # asyncio.wait neither raises the tasks' CancelledError nor swallows our own.
            await asyncio.wait(tasks, timeout=min(0.5, left))
        if tasks:
            _log.warning("hub client close: a task did not stop")
        if self._conn is not None:
            try:
                await asyncio.wait_for(self._conn.close(),
                                       max(0.5, deadline - loop.time()))
            except TimeoutError:
                _log.warning("hub client close: the connection did not close in time")
        self._tell_state(False)

    @property
    def connected(self) -> bool:
        """A live connection to the hub, with every followed mailbox reopened on it."""
        conn = self._conn
        return conn is not None and not conn.closed

    @property
    def queued(self) -> int:
        """Deliveries received from the hub and not yet taken with `next_event`/`events`."""
        return self._events.qsize()

    def on_state(self, listener: Callable[[bool], None]) -> None:
        """Call `listener(True)` each time the client is connected (mailboxes reopened) and
        `listener(False)` each time it loses the connection or gives up. It runs inside the
        client's connection task: it must not block; an exception from it is logged and
        ignored."""
        self._state_listeners.append(listener)

    def _tell_state(self, up: bool) -> None:
        if up == self._up:
            return
        self._up = up
        for listener in list(self._state_listeners):
            try:
                listener(up)
            except Exception as exc:  # an app's callback must not stop the connection loop
                _log.warning("connection state listener raised %s", type(exc).__name__)

    async def __aenter__(self) -> MailboxClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _supervise(self) -> None:
        delay = 0.02
        while True:
            try:
                conn = await HubConnection.connect(self.url, on_push=self._on_push)
            except ConnectionError as exc:
                _log.debug("hub not reached (%s): retrying in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
                continue
            except RemoteError as exc:
                _log.debug("hub refused the connection: %s: giving up", type(exc).__name__)
                self._fail(exc)
                return
            try:
                await self._reopen(conn)
            except ConnectionError as exc:  # lost again, or the hub's store failed: back off
                _log.debug("connection lost while reopening %d mailboxes (%s): retrying in "
                           "%.2f s", len(self._follows), exc, delay)
                await conn.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
                continue
            except RemoteError as exc:
                await conn.close()
                self._fail(exc)
                return
            self._conn = conn
            self._connected.set()
            _log.debug("connected (%d mailboxes followed, %d reconnects so far)",
                       len(self._follows), self.reconnects)
            self._tell_state(True)
            delay = 0.02
            await conn.wait_closed()
            self._connected.clear()
            self._conn = None
            self._tell_state(False)
            if conn.error is not None and not isinstance(conn.error, ConnectionError):
                _log.debug("hub broke the protocol: %s: giving up", type(conn.error).__name__)
                self._fail(conn.error)
                return
            _log.debug("connection lost (%s): reconnecting",
                       conn.error if conn.error is not None else "closed")
            self.reconnects += 1

    async def _reopen(self, conn: HubConnection) -> None:
        """Prove every key again and open every followed mailbox on a new connection. A
        refusal for one mailbox (e.g. a store that lost its history: "cursor was never
        issued") stops following that one and reaches the application (`HubRefused` from
        `next_event`); the others carry on."""
        # Snapshots: follow() may add mailboxes while this loop awaits.
        for key in list(self._keys.values()):
            try:
                await conn.authenticate(key)
            except RemoteError as exc:
                self._refuse(key.mailbox_id, exc)
        for mailbox, follow in list(self._follows.items()):
            if self._follows.get(mailbox) is follow:
                try:
                    await self._open(conn, mailbox, follow)
                except RemoteError as exc:
                    self._refuse(mailbox, exc)

    def _refuse(self, mailbox: bytes, exc: RemoteError) -> None:
        """The hub refused background work for `mailbox`: stop following it (and proving its
        key) and hand the refusal to the application."""
        follow = self._follows.pop(mailbox, None)
        self._keys.pop(mailbox, None)
        cursor = follow.cursor if follow is not None else START
        incarnation = follow.incarnation if follow is not None else None
        _log.debug("hub refused mailbox %s: %s: no longer following it", _short(mailbox), exc)
        self._refusals.append(HubRefused(f"hub refused a followed mailbox: {exc}", mailbox,
                                         cursor, exc, incarnation))
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a full queue wakes next_event anyway
            self._events.put_nowait(None)

    def _fail(self, exc: Exception) -> None:
        self._failure = exc
        self._tell_state(False)
        self._connected.set()  # wake waiters so they see the failure
        self._wake()

    async def _wait_connected(self, deadline: float) -> HubConnection:
        loop = asyncio.get_running_loop()
        if self._supervisor is None:  # any call starts the client; start() is optional
            self._supervisor = asyncio.create_task(self._supervise())
        while True:
            if self._failure is not None:
                raise self._failure
            conn = self._conn
            if conn is not None and not conn.closed:
                return conn
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ConnectionError("hub unreachable")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._connected.wait(), remaining)
            if self._connected.is_set() and self._conn is None and self._failure is None:
                await asyncio.sleep(0.01)

    async def _retrying(self, op: Callable[[HubConnection], Awaitable[_T]]) -> _T:
        """Run `op` on the live connection; after a lost connection, again on the next one."""
        deadline = asyncio.get_running_loop().time() + self.retry_timeout
        delay = 0.01
        while True:
            conn = await self._wait_connected(deadline)
            try:
                return await op(conn)
            except ConnectionError:  # lost connection, or the hub's store failed (INTERNAL)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    # --- mailboxes ---
    async def add_key(self, key: AccessKey) -> None:
        """Prove `key` on this and every later connection (to write or publish, not follow)."""
        self._keys[key.mailbox_id] = key
        await self._retrying(lambda conn: conn.authenticate(key))

    async def follow(self, key: AccessKey, kind: Kind = Kind.GROUP, *, pinned: bool = False,
                     after: int = START, incarnation: bytes | None = None) -> None:
        """Create the mailbox if needed (kind and pin apply only at creation), then deliver
        every entry after `after` — a cursor of the store history `incarnation`, both as
        `cursor()` and `incarnation()` gave them — now and after every reconnect."""
        mailbox = key.mailbox_id
        if mailbox in self._follows:
            raise UsageError("already following this mailbox")
        if after != START and incarnation is None:
            raise UsageError("a cursor needs the store incarnation it belongs to")
        if any((f.kind == Kind.INBOX) != (kind == Kind.INBOX) for f in self._follows.values()):
            # One connection for the inbox, another for group and control mailboxes: otherwise
            # the hub could link a member's inbox to its groups by connection (spec 10.1).
            raise UsageError("use one MailboxClient for an inbox and another for groups")
        self._keys[mailbox] = key
        follow = self._follows[mailbox] = _Follow(key, kind, pinned, after, incarnation)

        async def op(conn: HubConnection) -> None:
            await conn.authenticate(key)
            await self._open(conn, mailbox, follow)

        try:
            await self._retrying(op)
        except BaseException:
            if self._follows.get(mailbox) is follow:  # (a background refusal may have won)
                del self._follows[mailbox]
            raise

    async def _open(self, conn: HubConnection, mailbox: bytes, follow: _Follow) -> None:
        await conn.create(mailbox, follow.kind, follow.pinned)
        if follow.worker is not None and not follow.worker.done():
            follow.again = True  # the resync worker continues on this connection
            return
        await self._subscribe(conn, mailbox, follow)

    async def _subscribe(self, conn: HubConnection, mailbox: bytes, follow: _Follow) -> None:
        follow.state = _State.CATCHING_UP

        def live() -> None:
            follow.state = _State.LIVE

        await conn.subscribe(mailbox, follow.cursor, live, incarnation=follow.incarnation)

    async def sync(self, keys: Mapping[bytes, AccessKey],
                   pinned: Collection[bytes] = (), control: Collection[bytes] = ()) -> None:
        """Follow exactly these group mailboxes (id -> access key): open the new ones (those in
        `pinned` created pinned; those in `control` as control mailboxes) and
        stop following the others. Made for `GroupSession.mailboxes()` /
        `mailbox_access_key()` after every step."""
        for mailbox in [m for m in self._follows if m not in keys]:
            await self.unfollow(mailbox)
        for mailbox, key in keys.items():
            if key.mailbox_id != mailbox:
                raise UsageError("access key does not open that mailbox")
            if mailbox not in self._follows:
                kind = Kind.CONTROL if mailbox in control else Kind.GROUP
                await self.follow(key, kind, pinned=mailbox in pinned)

    async def unfollow(self, mailbox: bytes) -> None:
        follow = self._follows.pop(mailbox, None)
        if follow is None:
            return
        self._keys.pop(mailbox, None)
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(ConnectionError):
                await conn.unsubscribe(mailbox)

    def cursor(self, mailbox: bytes) -> int:
        """The last cursor delivered for a followed mailbox (persist it, with `incarnation()`,
        to resume later)."""
        return self._follows[mailbox].cursor

    def incarnation(self, mailbox: bytes) -> bytes | None:
        """The store history `cursor(mailbox)` belongs to (None before any delivery)."""
        return self._follows[mailbox].incarnation

    async def put(self, mailbox: bytes, blob: bytes, msg_id: bytes | None = None) -> int:
        """Append `blob`; retried across reconnects with one message id. Returns its cursor."""
        return (await self.put_entry(mailbox, blob, msg_id)).cursor

    async def put_entry(self, mailbox: bytes, blob: bytes, msg_id: bytes | None = None) -> PutOk:
        """As `put`, returning the hub's answer: cursor, acceptance time `t`, duplicate."""
        mid = msg_id if msg_id is not None else self._rng(MSG_ID_LEN)
        return await self._retrying(lambda conn: conn.put(mailbox, blob, mid))

    async def ack(self, mailbox: bytes, cursor: int) -> None:
        """Inbox: delete every entry up to `cursor` (of the history the mailbox is followed in)
        at the hub."""
        follow = self._follows.get(mailbox)
        inc = follow.incarnation if follow is not None else None
        await self._retrying(lambda conn: conn.ack(mailbox, cursor, incarnation=inc))

    async def unpin(self, mailbox: bytes) -> None:
        """A pinned mailbox is no longer needed whole; let normal group retention apply."""
        await self._retrying(lambda conn: conn.unpin(mailbox))

    async def fetch(self, mailbox: bytes, after: int, limit: int = MAX_BATCH_ENTRIES, *,
                    incarnation: bytes | None = None) -> Batch:
        return await self._retrying(
            lambda conn: conn.fetch(mailbox, after, limit, incarnation=incarnation))

    async def publish_bundle(self, directory: bytes, owner: AccessKey, bundle: bytes,
                             prekeys: tuple[bytes, ...] = ()) -> None:
        """Publish (or replace) a prekey bundle and add one-time prekeys. `owner` is an access
        key of its own; the first publisher of a directory id owns it."""
        self._keys[owner.mailbox_id] = owner

        async def op(conn: HubConnection) -> None:
            await conn.authenticate(owner)
            await conn.publish(directory, owner.mailbox_id, bundle, prekeys)

        await self._retrying(op)

    async def take_bundle(self, directory: bytes) -> Bundle:
        return await self._retrying(lambda conn: conn.take_bundle(directory))

    async def publish_join_keys(self, directory: bytes, owner: AccessKey,
                                last_resort: bytes | None = None,
                                join_keys: tuple[bytes, ...] = ()) -> None:
        """Publish group join keys (opaque to the hub): replace the last-resort one if given,
        add one-time ones, each handed out once. Same owner rule as `publish_bundle`."""
        self._keys[owner.mailbox_id] = owner

        async def op(conn: HubConnection) -> None:
            await conn.authenticate(owner)
            await conn.publish_join_keys(directory, owner.mailbox_id, last_resort, join_keys)

        await self._retrying(op)

    async def take_join_key(self, directory: bytes) -> JoinKey:
        """One one-time join key (removed at the hub), or the last-resort one when none is
        left (`last_resort` set)."""
        return await self._retrying(lambda conn: conn.take_join_key(directory))

    # --- events ---
    async def next_event(self, timeout: float | None = None) -> Event:
        """The next delivery or gap. Raises `HubRefused` when the hub refused work done in the
        background for a followed mailbox (that mailbox is then no longer followed; the others
        carry on), and the client's failure when it failed as a whole."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if self._refusals:
                raise self._refusals.popleft()
            if self._failure is not None and self._events.empty():
                raise self._failure
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            event = await asyncio.wait_for(self._events.get(), remaining)
            if event is not None:
                return event

    async def events(self) -> AsyncIterator[Event]:
        while True:
            yield await self.next_event()

    def _on_push(self, frame: Push | Resync) -> None:
        follow = self._follows.get(frame.mailbox)
        if follow is None:
            return
        if isinstance(frame, Resync):
            self._start_resync(frame.mailbox, follow)
            return
        if follow.state is not _State.LIVE:
            return
        needed = len(frame.entries) + int(frame.fell_behind)
        if self._events.maxsize - self._events.qsize() < needed:
            # The application is not reading fast enough: stop taking pushes for this
            # mailbox and fetch at the application's pace instead.
            self._start_resync(frame.mailbox, follow)
            return
        self._accept(frame.mailbox, follow, frame, self._events.put_nowait)

    def _accept(self, mailbox: bytes, follow: _Follow, frame: Batch | Push,
                emit: Callable[[Event], None]) -> None:
        if follow.incarnation is not None and frame.incarnation != follow.incarnation:
            # The store lost data: our cursor names nothing in this history, which the hub
            # sends from its start.
            _log.debug("mailbox %s: the store's history changed: reading it from its start",
                        _short(mailbox))
            emit(Gap(mailbox, follow.cursor, history_changed=True))
            follow.cursor = START
        elif frame.fell_behind:
            _log.debug("mailbox %s: entries after cursor %d were trimmed: gap",
                       _short(mailbox), follow.cursor)
            emit(Gap(mailbox, follow.cursor))
        follow.incarnation = frame.incarnation
        for entry in frame.entries:
            if entry.cursor > follow.cursor:
                emit(Delivery(mailbox, entry.cursor, entry.blob, entry.t, frame.hub_time))
                follow.cursor = entry.cursor
        follow.cursor = max(follow.cursor, frame.next_cursor)

    def _start_resync(self, mailbox: bytes, follow: _Follow) -> None:
        follow.state = _State.CATCHING_UP
        if follow.worker is not None and not follow.worker.done():
            follow.again = True  # one worker per mailbox keeps deliveries in order
            return
        self.resyncs += 1
        _log.debug("mailbox %s: out of live pushes: fetching from cursor %d", _short(mailbox),
                   follow.cursor)
        task = asyncio.create_task(self._resync(mailbox, follow))
        follow.worker = task
        self._workers.add(task)
        task.add_done_callback(self._worker_done)

    def _worker_done(self, task: asyncio.Task[None]) -> None:
        """A worker must never end silently: an error it did not handle fails the client,
        which `next_event` then raises."""
        self._workers.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._fail(exc if isinstance(exc, Exception) else RuntimeError("worker ended"))

    async def _resync(self, mailbox: bytes, follow: _Follow) -> None:
        """Fetch at the application's pace from the last delivered cursor, then subscribe.
        Survives reconnects: it continues on the next connection."""
        loop = asyncio.get_running_loop()
        follow.again = True
        delay = 0.01
        limited_since: float | None = None
        while follow.again and self._follows.get(mailbox) is follow:
            follow.again = False
            try:
                conn = await self._wait_connected(loop.time() + self.retry_timeout)
                await conn.unsubscribe(mailbox)
                while True:
                    batch = await conn.fetch(mailbox, follow.cursor,
                                             incarnation=follow.incarnation)
                    pending: list[Event] = []
                    self._accept(mailbox, follow, batch, pending.append)
                    for event in pending:
                        await self._events.put(event)
                    if not batch.more:
                        break
                if not follow.again:
                    await self._subscribe(conn, mailbox, follow)
            except (ConnectionError, TimeoutError):  # lost, or a request not answered in time
                follow.again = True
                if self._failure is not None:
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            except LimitExceeded as exc:
                # Reads are metered (spec 10.8): slow down and go on, for a while.
                limited_since = limited_since if limited_since is not None else loop.time()
                if loop.time() - limited_since > self.retry_timeout:
                    self._refuse(mailbox, exc)
                    return
                follow.again = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            except RemoteError as exc:  # refused: the application must hear of it
                self._refuse(mailbox, exc)
                return


__all__ = [
    "START",
    "Delivery",
    "Event",
    "Gap",
    "HubConnection",
    "MailboxClient",
    "error_from_frame",
    "send_to_inbox",
]
