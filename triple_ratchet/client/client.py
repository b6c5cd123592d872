"""`Client`: one device of one account, around the sans-IO sessions (spec/15-client.md).

It owns what an application should not write: the store (sealed, one transaction per step),
the outbox, the cursors, the hub connections (one for the inbox, one per group, one-off ones
for the directory and for notices), the directory entry and join keys, and the timer that lets
the sessions act on the clock.

**The durability rule, done once.** Every step of a session (`encrypt`, `propose`, `receive`,
`caught_up`, `tick`, `join`) is committed in one transaction together with the outbox entries
it produced and the cursor of the entry it read, *before* anything is sent. Each outbox entry
has a 16-byte id that is the hub's message id, so a crash between the commit and the send
re-sends it after the restart and the hub keeps it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from triple_ratchet import cbor
from triple_ratchet.client.directory import (
    ContactEntry,
    Invite,
    clean_name,
    open_join_key,
    open_prekey,
    seal_join_key,
    seal_prekey,
)
from triple_ratchet.client.events import (
    CatchingUp,
    ConnectionChanged,
    ConnectionState,
    DirectMessage,
    EpochChanged,
    Event,
    Fork,
    Gap,
    GroupJoined,
    GroupMessage,
    Member,
    MemberOffline,
    MembershipChanged,
    Refused,
    RejoinNeeded,
    RemovedFromGroup,
)
from triple_ratchet.client.group import (
    DATA,
    INFO,
    MEMBERSHIP_HINT,
    MESSAGE_ID_LEN,
    REJOIN_REQUEST,
    REPAIRED_SEALING,
    TEXT,
    Envelope,
    Group,
)
from triple_ratchet.client.store import (
    Passphrase,
    SealedStore,
    SQLiteStore,
    StorageKey,
    Store,
    Transaction,
)
from triple_ratchet.errors import (
    AuthenticationError,
    DecodeError,
    HubRefused,
    LimitExceeded,
    RemoteError,
    StaleStateError,
    StateError,
    TripleRatchetError,
    UsageError,
)
from triple_ratchet.group import events as ge
from triple_ratchet.group.control_log import RETENTION
from triple_ratchet.group.join_keys import MAX_JOIN_KEYS, JoinKeyring
from triple_ratchet.group.notice import (
    JoinStart,
    NoticeAssembler,
    OpenedNotice,
    PendingRejoin,
    open_notice_sealing,
)
from triple_ratchet.group.records import JoinKey, RecordKeys
from triple_ratchet.group.session import GroupSession
from triple_ratchet.group.session_features import SKEW_MAX
from triple_ratchet.handshake import MSG_TYPE_INITIAL
from triple_ratchet.hub.access import AccessKey, directory_id
from triple_ratchet.hub.client import START, Delivery, HubConnection, MailboxClient
from triple_ratchet.hub.client import Gap as HubGap
from triple_ratchet.hub.frames import MAX_BLOB_SIZE, MAX_JOIN_KEY_SIZE, MAX_PREKEY_SIZE, Kind
from triple_ratchet.identity import (
    MAX_ONE_TIME_PREKEYS,
    Account,
    Identity,
    IdentityKeyPair,
    safety_number,
)
from triple_ratchet.pairwise import (
    MSG_TYPE_PAIRWISE,
    PairwiseSession,
    message_type,
)
from triple_ratchet.random import system_random
from triple_ratchet.suites import DEFAULT_SUITE, Suite, suite_by_id

log = logging.getLogger("triple_ratchet.client")
_T = TypeVar("_T")

ACCOUNT_VERSION = 1
ONE_TIME_JOIN_KEYS = 4  # kept published; refilled when a notice used one
LAST_RESORT_RENEW_MS = 7 * 24 * 3_600_000  # 11.v2.4: the last-resort key is replaced weekly
CLOSE_TIMEOUT = 3.0  # seconds close() waits for the hub clients (each bounds itself too)
REPUBLISH_EVERY = 24 * 3600.0  # seconds: the directory entry lives 30 days after a publish
# Seconds a joiner waits for the common part its notice names (it is posted before the notices,
# so only a sender that crashed in between, or a stranger's junk notice, makes it wait).
COMMON_WAIT = 30.0
MAX_JOINS = 32  # notices waiting for their common part at once
MAX_PROPOSED_NAMES = 256  # names of joiners not yet added, per group
MAX_PENDING_REJOINS = 4  # rejoins without a session waiting for their notice
INFO_WAIT = 10.0  # seconds a joiner waits for the group's info before reporting GroupJoined
LIMIT_DELAY, LIMIT_DELAY_MAX = 1.0, 30.0  # seconds an entry the hub's LIMIT refused waits
LIMIT_GIVE_UP = 600.0  # seconds of LIMIT refusals before an outbox entry is dropped
# The largest plaintext sent one-to-one: its blob (Double Ratchet header and tag, CBOR framing,
# and an initial message's handshake) stays within the hub's MAX_BLOB_SIZE.
MAX_DIRECT_PLAINTEXT = MAX_BLOB_SIZE - 4096
# Outbox kinds: a group or control mailbox of the session, a change's common mailbox (created
# with the access key stored with the entry), someone's inbox.
OUT_GROUP, OUT_COMMON, OUT_INBOX = 0, 1, 2
# ... and a plaintext envelope for a peer (`mailbox` is its identity), encrypted over the pairwise
# session when it is sent.
OUT_PAIRWISE = 3
ONE_TIME_PREKEYS = 10  # pairwise one-time prekeys kept published

_SELF, _KEYRING = b"self", b"keyring"  # row keys of the account table
# The one-time batches sent without the hub's OK (F29): [join keys' receive keys, prekey count].
_UNCONFIRMED = b"unconfirmed"
# Tables of the store (spec/15-client.md "The store").
ACCOUNT, GROUPS, CURSORS, OUTBOX, SEEN, CONTACTS, PAIRWISE, REJOINS = (
    "account", "groups", "cursors", "outbox", "seen", "contacts", "pairwise", "rejoins")
# Messages delivered (marked seen) but not yet taken by the app (F31): u64(seq) -> CBOR row.
PENDING = "pending"
_PENDING_GROUP, _PENDING_DIRECT = 0, 1
MAX_PAIRWISE_SESSIONS = 2  # per peer: the one we send on, and one a crossing handshake made


def _short(data: bytes) -> str:
    """An id for the debug log (a prefix of a public id: never a key, blob or plaintext)."""
    return data.hex()[:12]


@dataclass
class _Account:
    suite: Suite
    name: str
    pairwise: Account = field(repr=False)  # the identity key pair and the prekeys
    inbox_key: bytes = field(repr=False)  # access signing key of our inbox
    owner_key: bytes = field(repr=False)  # access signing key that owns our directory entry
    published: list[bytes] = field(repr=False)  # receive keys of the one-time join keys published
    pending_prekeys: list[bytes] = field(default_factory=list, repr=False)  # not yet published

    @property
    def identity(self) -> IdentityKeyPair:
        return self.pairwise.identity

    def to_bytes(self) -> bytes:
        return cbor.encode([ACCOUNT_VERSION, self.suite.suite_id, self.name,
                            self.pairwise.to_bytes(), self.inbox_key, self.owner_key,
                            self.published, self.pending_prekeys])

    @classmethod
    def from_bytes(cls, data: bytes) -> _Account:
        f = cbor.as_list(cbor.decode(data, max_size=len(data), max_items=8192), "account", 8)
        if cbor.as_int(f[0], "account version") != ACCOUNT_VERSION:
            raise DecodeError("client account of an unknown version")
        suite = suite_by_id(cbor.as_int(f[1], "suite", maximum=0xFFFF))
        pairwise = Account.from_bytes(cbor.as_bytes(f[3], "pairwise account"))
        if pairwise.suite.suite_id != suite.suite_id:
            raise DecodeError("client account of two suites")
        return cls(suite, cbor.as_str(f[2], "name", max_length=256), pairwise,
                   cbor.as_bytes(f[4], "inbox key", max_length=64),
                   cbor.as_bytes(f[5], "owner key", max_length=64),
                   [cbor.as_bytes(k, "published key", max_length=MAX_JOIN_KEY_SIZE)
                    for k in cbor.as_list(f[6], "published")],
                   [cbor.as_bytes(k, "pending prekey", max_length=MAX_PREKEY_SIZE)
                    for k in cbor.as_list(f[7], "pending prekeys")])


@dataclass(frozen=True)
class _Out:
    """An outbox entry: `seq` orders them, `msg_id` is the hub's message id."""

    seq: int
    msg_id: bytes
    kind: int
    group_id: bytes
    mailbox: bytes
    blob: bytes = field(repr=False)
    access_key: bytes = field(default=b"", repr=False)

    def to_bytes(self) -> bytes:
        return cbor.encode([self.msg_id, self.kind, self.group_id, self.mailbox, self.blob,
                            self.access_key])

    @classmethod
    def from_row(cls, key: bytes, data: bytes) -> _Out:
        f = cbor.as_list(cbor.decode(data, max_size=len(data), max_items=8), "outbox entry", 6)
        return cls(int.from_bytes(key, "big"), cbor.as_bytes(f[0], "msg id", length=16),
                   cbor.as_int(f[1], "kind", maximum=OUT_PAIRWISE),
                   cbor.as_bytes(f[2], "group id", max_length=64),
                   cbor.as_bytes(f[3], "mailbox", max_length=512), cbor.as_bytes(f[4], "blob"),
                   cbor.as_bytes(f[5], "access key", max_length=64))


@dataclass
class _GroupState:
    """One group as the client holds it (the session, and what the app sees around it)."""

    group_id: bytes
    session: GroupSession = field(repr=False)
    name: str = ""
    names: dict[bytes, str] = field(default_factory=dict)
    announced: bool = True  # GroupJoined was reported (a joiner reports it once it has a name)
    inviter: bytes = b""
    last_epoch: int = 0  # the epoch last reported, for `Group.epoch` after a removal
    cursors: dict[bytes, tuple[int, bytes | None]] = field(default_factory=dict)
    conn: MailboxClient | None = None
    followed: dict[bytes, AccessKey] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    reader: asyncio.Task[None] | None = None
    quiet: bool = True
    busy: bool = False  # the reader holds an entry it has not delivered yet
    waiting_since: float | None = None  # (loop time) a joiner began waiting for the info
    catching_up: bool = False
    send_info: bool = False  # we proposed an add: tell the new roster the names once it is in
    stale: set[bytes] = field(default_factory=set)  # followed before a reload: to unfollow
    introducers: dict[bytes, bytes] = field(default_factory=dict)  # joiner -> who added it
    # The epoch in which this state read a message a later copy of it sent (review F14): an
    # old copy (restored backup) whose next generations are used already. 0: none.
    stale_epoch: int = 0
    proposed_names: dict[tuple[bytes, bytes], str] = field(default_factory=dict)

    @property
    def epoch(self) -> int:
        if self.session.status == "active":
            return self.session.epoch
        return self.last_epoch

    def to_bytes(self) -> bytes:
        return cbor.encode([self.session.to_bytes(), self.name,
                            [[i, n] for i, n in sorted(self.names.items())], self.announced,
                            self.inviter, self.epoch, self.send_info, self.stale_epoch])

    @property
    def old_copy(self) -> bool:
        """No group message may be sent from this state (it is an old copy) until an epoch
        after the one it was found stale in."""
        return self.stale_epoch != 0 and self.session.status == "active" and (
            self.session.epoch <= self.stale_epoch)


@dataclass(frozen=True)
class Contact:
    """Someone found in the directory (by invite or identity)."""

    identity: bytes = field(repr=False)
    name: str
    inbox_id: bytes = field(default=b"", repr=False)
    # The one-time prekey the lookup took (sealed), for our first session with them: a lookup
    # does not spend another of their prekeys.
    prekey: bytes = field(default=b"", repr=False)

    def to_bytes(self) -> bytes:
        return cbor.encode([self.name, self.inbox_id, self.prekey])


class Client:
    """One device of one account. Open with `await Client.open(...)`; see CLIENT-API.md."""

    def __init__(self, store: SealedStore, account: _Account, hub: str, *,
                 clock: Callable[[], float], tick_interval: float,
                 retry_timeout: float) -> None:
        self._store = store
        self._account = account
        self.hub = hub
        self._clock = clock
        self.tick_interval = tick_interval
        self.retry_timeout = retry_timeout
        self._keyring = JoinKeyring.empty(account.suite)
        # One-time keys marked published whose request the hub never confirmed: kept (it may
        # have got them) but not counted as offered, so the refill replaces them (F29).
        self._unconfirmed_join: set[bytes] = set()
        self._unconfirmed_prekeys = 0
        self._groups: dict[bytes, _GroupState] = {}
        self._contacts: dict[bytes, Contact] = {}
        self._pairwise: dict[bytes, list[PairwiseSession]] = {}  # the one we send on first
        self._pairwise_lock = asyncio.Lock()
        self._rejoins: dict[bytes, PendingRejoin] = {}  # group id -> a rejoin without a session
        self._rejoin_peers: dict[bytes, bytes] = {}  # hinting peer -> group id (this run)
        self._seen: set[bytes] = set()
        self._outbox: dict[int, _Out] = {}
        self._next_seq = 1
        self._flushing = asyncio.Lock()
        self._flush_wanted = asyncio.Event()
        # Outbox entries the hub's LIMIT held back: (first refusal, not before, delay), loop time.
        self._limited: dict[int, tuple[float, float, float]] = {}
        self._publishing = asyncio.Lock()
        # Each event with the key of its `pending` row (messages only); None: closed.
        self._events: asyncio.Queue[tuple[Event, bytes | None] | None] = asyncio.Queue()
        self._next_pending = 1
        self._in_hand: set[bytes] = set()  # pending rows handed to the app, not yet released
        self._next_in_hand: list[bytes] = []  # the one next_event() returned last
        self._inbox = MailboxClient(hub, retry_timeout=retry_timeout)
        self._assembler = NoticeAssembler(account.suite)
        self._tasks: list[asyncio.Task[None]] = []  # readers and the timer: they never end
        self._joins: set[asyncio.Task[None]] = set()  # notices being joined
        self._unacked = False  # an inbox entry failed for a local reason: acknowledge no more
        self._join_slots = asyncio.Semaphore(4)
        self._state = ConnectionState.CONNECTING
        self._closed = False
        self._publish_due = False
        self._published_at = 0.0
        self.dropped = 0  # forged, corrupted or otherwise unusable entries (never raised)
        self.refused = 0  # hub refusals (HubRefused events)
        self.sent_blobs = 0  # blobs the hub acknowledged (for demos and monitoring)
        self.sent_bytes = 0

    # --- opening and closing ------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str | os.PathLike[str] | None = None, *, hub: str,
                   passphrase: str | Passphrase | None = None, key: StorageKey | None = None,
                   name: str | None = None, suite: Suite | None = None,
                   clock: Callable[[], float] | None = None, store: Store | None = None,
                   tick_interval: float = 1.0, retry_timeout: float = 30.0) -> Client:
        """Open the account in `path` (created with a new identity if absent), publish its
        directory entry and join keys, and start reading. The storage secret is a passphrase
        (Argon2id) or a 32-byte `StorageKey`; a wrong one is an `AuthenticationError` and
        nothing is changed. `store` replaces the SQLite file (e.g. `MemoryStore()`)."""
        if (passphrase is None) == (key is None):
            raise UsageError("give a passphrase or a storage key (one of them)")
        secret: StorageKey | Passphrase
        if key is not None:
            secret = key
        elif isinstance(passphrase, Passphrase):
            secret = passphrase
        else:
            secret = Passphrase(str(passphrase))
        if store is None:
            if path is None:
                raise UsageError("give a path (or a store)")
            store = SQLiteStore(path)
        try:
            sealed = SealedStore(store, secret)
            account = cls._load_account(sealed, name, suite)
        except BaseException:
            store.close()
            raise
        client = cls(sealed, account, hub, clock=clock or time.time,
                     tick_interval=tick_interval, retry_timeout=retry_timeout)
        try:
            client._load()
            await client._start()
        except BaseException:
            await client.close()
            raise
        return client

    @staticmethod
    def _load_account(store: SealedStore, name: str | None, suite: Suite | None) -> _Account:
        with store.transaction() as tx:
            raw = tx.get(ACCOUNT, _SELF)
            if raw is not None:
                account = _Account.from_bytes(raw)
                if suite is not None and suite.suite_id != account.suite.suite_id:
                    raise UsageError("this account is of another suite")
                if name is not None and name != account.name:
                    account.name = _check_name(name)
                    tx.put(ACCOUNT, _SELF, account.to_bytes())
                return account
            suite = suite or DEFAULT_SUITE
            account = _Account(suite, _check_name(name or ""),
                               Account.from_identity(IdentityKeyPair.generate(suite)),
                               suite.generate_signing().to_bytes(),
                               suite.generate_signing().to_bytes(), [])
            tx.put(ACCOUNT, _SELF, account.to_bytes())
            return account

    def _load(self) -> None:
        with self._store.transaction() as tx:
            raw = tx.get(ACCOUNT, _KEYRING)
            if raw is not None:
                self._keyring = JoinKeyring.from_bytes(raw)
            raw = tx.get(ACCOUNT, _UNCONFIRMED)
            if raw is not None:
                f = cbor.as_list(cbor.decode(raw, max_size=len(raw), max_items=1024),
                                 "unconfirmed batches", 2)
                self._unconfirmed_join = {
                    cbor.as_bytes(k, "unconfirmed join key", max_length=MAX_JOIN_KEY_SIZE)
                    for k in cbor.as_list(f[0], "unconfirmed join keys")}
                self._unconfirmed_prekeys = cbor.as_int(f[1], "unconfirmed prekeys",
                                                        maximum=MAX_ONE_TIME_PREKEYS)
            for key, value in tx.items(CONTACTS):
                f = cbor.as_list(cbor.decode(value, max_items=8), "contact", 3)
                prekey = cbor.as_bytes(f[2], "prekey", max_length=MAX_PREKEY_SIZE)
                self._contacts[key] = Contact(key, cbor.as_str(f[0], "name", max_length=256),
                                              cbor.as_bytes(f[1], "inbox", max_length=32), prekey)
            self._seen = {key for key, _ in tx.items(SEEN)}
            for peer, value in tx.items(PAIRWISE):
                self._pairwise[peer] = [
                    PairwiseSession.from_bytes(cbor.as_bytes(x, "pairwise session"))
                    for x in cbor.as_list(cbor.decode(value, max_size=len(value), max_items=8),
                                          "pairwise sessions")]
            for gid, value in tx.items(REJOINS):
                self._rejoins[gid] = PendingRejoin.from_bytes(value, self._account.identity)
            for key, value in tx.items(OUTBOX):
                out = _Out.from_row(key, value)
                self._outbox[out.seq] = out
            self._next_seq = max(self._outbox, default=0) + 1
            pending = sorted((int.from_bytes(k, "big"), v) for k, v in tx.items(PENDING))
            cursors = {key: _cursor(value) for key, value in tx.items(CURSORS)}
            for gid, value in tx.items(GROUPS):
                self._groups[gid] = self._group_from_row(gid, value, cursors)
        # Taken by no app before the last run ended: handed out first, before anything new.
        for seq, value in pending:
            self._events.put_nowait((self._pending_event(value), seq.to_bytes(8, "big")))
        self._next_pending = max((seq for seq, _ in pending), default=0) + 1

    def _group_from_row(self, gid: bytes, value: bytes,
                        cursors: dict[bytes, tuple[int, bytes | None]]) -> _GroupState:
        f = cbor.as_list(cbor.decode(value, max_size=len(value), max_items=8 + 2 * 4096),
                         "group")
        if len(f) not in (7, 8):  # 7: a row from before the stale mark
            raise DecodeError(f"group: expected 8 elements, got {len(f)}")
        session = GroupSession.from_bytes(cbor.as_bytes(f[0], "session"),
                                          self._account.identity)
        names = {cbor.as_bytes(p[0], "identity"): cbor.as_str(p[1], "name")
                 for p in (cbor.as_list(x, "name", 2) for x in cbor.as_list(f[2], "names"))}
        gs = _GroupState(gid, session, cbor.as_str(f[1], "group name"), names,
                         cbor.as_bool(f[3], "announced"), cbor.as_bytes(f[4], "inviter"),
                         cbor.as_int(f[5], "epoch"), send_info=cbor.as_bool(f[6], "send info"),
                         stale_epoch=cbor.as_int(f[7], "stale epoch") if len(f) == 8 else 0)
        gs.cursors = {m: cursors[m] for m in session.mailboxes() if m in cursors}
        return gs

    def _reload(self, gs: _GroupState) -> None:
        """After a failed commit: the group as stored (its entries come again from the stored
        cursors: the timer follows the mailboxes again)."""
        with self._store.transaction() as tx:
            row = tx.get(GROUPS, gs.group_id)
            cursors = {key: _cursor(value) for key, value in tx.items(CURSORS)}
        if row is None:  # never stored: as if never made
            self._groups.pop(gs.group_id, None)
            return
        stored = self._group_from_row(gs.group_id, row, cursors)
        gs.session, gs.name, gs.names = stored.session, stored.name, stored.names
        gs.announced, gs.inviter, gs.last_epoch = stored.announced, stored.inviter, stored.epoch
        gs.send_info, gs.cursors = stored.send_info, stored.cursors
        gs.stale_epoch = stored.stale_epoch
        # Entries already queued are ignored; every mailbox is followed again from its cursor.
        gs.stale |= set(gs.followed)
        gs.followed.clear()

    async def _start(self) -> None:
        """Start reading; works offline too (the hub is reached when it can be): the inbox
        and the groups are followed in the background, the outbox is sent in the background,
        and a directory publish that found no hub is retried by the timer."""
        self._tasks.append(asyncio.create_task(self._read_inbox()))
        for gs in self._groups.values():
            await self._open_group(gs, follow=False)  # the timer follows them
        self._tasks.append(asyncio.create_task(self._tick_loop()))
        self._tasks.append(asyncio.create_task(self._flush_loop()))
        await self._republish(retry=False)
        self._flush_soon()

    async def _republish(self, *, retry: bool = True) -> None:
        try:
            again = await self._publish(retry=retry)
        except HubRefused as exc:
            if isinstance(exc.refusal, LimitExceeded):  # a rate: try again at a later tick
                self._publish_due = True
                return
            # Refused for good (e.g. another owner took our directory id): say so once, and
            # try again only with the daily republish.
            self.refused += 1
            log.debug("directory publish refused: %s", exc)
            self._emit(Refused(None, exc))
            self._publish_due = False
            self._published_at = self._clock()
        except (ConnectionError, RemoteError) as exc:
            self._publish_due = True
            log.debug("directory publish postponed: %s", exc)
        else:
            # A batch whose request went unconfirmed (a retry published the rest): a fresh
            # batch goes out at the next tick.
            self._publish_due = again
            self._published_at = self._clock()

    async def close(self) -> None:
        """Stop reading and close the connections and the store (what was committed stays)."""
        if self._closed:
            return
        self._closed = True
        pending = {*self._tasks, *self._joins,
                   *(gs.reader for gs in self._groups.values() if gs.reader)}
        # Bounded: a task may lose a cancellation (asyncio.wait_for in Python 3.11 can return
        # a result that came in the same loop iteration), so cancel again, a few rounds.
        for _ in range(10):
            pending = {t for t in pending if not t.done()}
            if not pending:
                break
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=0.5)
        if any(not t.done() for t in pending):
            log.warning("close: a task did not stop")
        # Every hub client at once, bounded (F27): one that does not close is abandoned.
        closing = {asyncio.create_task(conn.close()) for conn in
                   [self._inbox] + [gs.conn for gs in self._groups.values() if gs.conn]}
        done, stuck = await asyncio.wait(closing, timeout=CLOSE_TIMEOUT)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.debug("close: a hub client failed to close: %s",
                          type(task.exception()).__name__)
        for task in stuck:
            task.cancel()
        if stuck:
            log.warning("close: %d hub client(s) did not close in time", len(stuck))
        # The app closed the client after taking these: delivered (those still queued stay).
        with contextlib.suppress(Exception), self._store.transaction() as tx:
            for row in self._in_hand:
                tx.delete(PENDING, row)
        self._in_hand.clear()
        self._store.close()
        self._set_state(ConnectionState.OFFLINE)
        self._events.put_nowait(None)  # ends events()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- who we are ---------------------------------------------------------------------------

    @property
    def suite(self) -> Suite:
        return self._account.suite

    @property
    def identity(self) -> bytes:
        """This account's public identity: what others add or look up."""
        return self._account.identity.public.to_bytes()

    @property
    def name(self) -> str:
        return self._account.name

    @property
    def connection(self) -> ConnectionState:
        return self._state

    def invite(self) -> str:
        """A short copyable string with our identity and name (no secret)."""
        return str(Invite(self.identity, self.name))

    def safety_number(self, identity: bytes) -> str:
        """Sixty digits in groups of five, the same on both sides, to compare out of band."""
        peer = Identity.from_bytes(identity, self.suite)
        return safety_number(self._account.identity.public, peer).formatted()

    # --- contacts and the directory ------------------------------------------------------

    def contacts(self) -> list[Contact]:
        return list(self._contacts.values())

    async def add_contact(self, invite_or_identity: str | bytes, *,
                          refresh: bool = False) -> Contact:
        """Look the identity's directory entry up (its name and inbox) and keep it. A known
        contact is returned as it is unless `refresh` (a lookup spends one of their one-time
        prekeys, which we keep for our first session with them)."""
        self._check_open()
        if isinstance(invite_or_identity, str):
            identity = Invite.parse(invite_or_identity).identity
        else:
            identity = bytes(invite_or_identity)
            Identity.from_bytes(identity, self.suite)
        known = self._contacts.get(identity)
        if known is not None and known.inbox_id and not refresh:
            return known
        directory = self._directory_id(identity)
        taken = await self._one_off(lambda c: c.take_bundle(directory), subject=directory)
        entry = ContactEntry.open(self.suite, identity, taken.bundle)
        if taken.prekey is not None:
            open_prekey(self.suite, identity, taken.prekey)  # it opens and is theirs
        contact = Contact(identity, entry.name, entry.inbox_id, taken.prekey or b"")
        with self._store.transaction() as tx:
            tx.put(CONTACTS, identity, contact.to_bytes())
        self._contacts[identity] = contact
        return contact

    def _directory_id(self, identity: bytes) -> bytes:
        return directory_id(self.suite, identity)

    async def _publish(self, *, retry: bool = True) -> bool:
        """Our directory entry (refreshed, so it does not expire), one-time prekeys and join
        keys: the private halves are stored before anything is published, and a batch of
        one-time keys is marked published (committed) before it is sent, so it is never sent
        twice (the hub appends: one key handed out twice would fail its second user). A batch
        whose request the hub did not confirm (OK) stays held but is no longer counted, so
        the next publish offers a fresh one (at most once on the hub, no silent exhaustion).
        True when such a batch is still to be replaced."""
        async with self._publishing:
            return await self._publish_locked(retry)

    def _save_unconfirmed(self, tx: Transaction) -> None:
        tx.put(ACCOUNT, _UNCONFIRMED, cbor.encode([sorted(self._unconfirmed_join),
                                                   self._unconfirmed_prekeys]))

    async def _publish_locked(self, retry: bool) -> bool:
        acct = self._account
        now_ms = int(self._clock() * 1000)
        keyring = self._keyring.expire(now_ms)
        self._unconfirmed_join &= {h.join_key.receive_key for h in keyring.held}
        held = [h for h in keyring.held
                if h.one_time and h.join_key.receive_key not in self._unconfirmed_join]
        last = [h for h in keyring.held if not h.one_time]
        renew = not last or last[-1].join_key.expiry - now_ms < RETENTION - LAST_RESORT_RENEW_MS
        missing = max(0, min(ONE_TIME_JOIN_KEYS - len(held),
                             MAX_JOIN_KEYS - len(keyring.held) - int(renew)))
        if missing or renew:
            keyring = keyring.generate(acct.identity, one_time=missing, last_resort=renew,
                                       inbox_id=self._inbox_id, expiry=now_ms + RETENTION)
        if keyring != self._keyring:
            with self._store.transaction() as tx:
                tx.put(ACCOUNT, _KEYRING, keyring.to_bytes())
            self._keyring = keyring
        held_prekeys = acct.pairwise.one_time_prekey_count
        offered = max(0, held_prekeys - self._unconfirmed_prekeys)
        room = MAX_ONE_TIME_PREKEYS - max(held_prekeys, acct.pairwise.one_time_kem_prekey_count)
        if offered < ONE_TIME_PREKEYS // 2 and not acct.pending_prekeys and room > 0:
            # Stored (private halves, and the sealed bundles to publish) before publishing.
            bundles = acct.pairwise.new_bundles(min(room, ONE_TIME_PREKEYS - offered))
            acct.pending_prekeys += [seal_prekey(b) for b in bundles]
            with self._store.transaction() as tx:
                tx.put(ACCOUNT, _SELF, acct.to_bytes())
        prekeys = tuple(acct.pending_prekeys)
        last_resort, _ = keyring.publishable()
        fresh = [h for h in keyring.held
                 if h.one_time and h.join_key.receive_key not in acct.published]
        me = self.identity
        entry = ContactEntry(acct.name, self._inbox_id, acct.pairwise.bundle()).seal(self.suite)
        owner = AccessKey(self.suite, self.suite.signing_from_bytes(acct.owner_key))
        directory = self._directory_id(me)

        join_keys = tuple(seal_join_key(self.suite, me, h.join_key.to_bytes()) for h in fresh)
        marked = False
        batch_join = {h.join_key.receive_key for h in fresh}

        def mark() -> None:
            # Once a connection is up, before the first send: the batch leaves `pending`, and
            # counts as unconfirmed until the hub answers OK to the request that carries it.
            nonlocal marked
            if marked or not (fresh or prekeys):
                return
            marked = True
            acct.pending_prekeys = acct.pending_prekeys[len(prekeys):]
            held_keys = {h.join_key.receive_key for h in keyring.held}
            acct.published = [k for k in acct.published if k in held_keys] + [
                h.join_key.receive_key for h in fresh]
            self._unconfirmed_join |= batch_join
            self._unconfirmed_prekeys += len(prekeys)
            with self._store.transaction() as tx:
                tx.put(ACCOUNT, _SELF, acct.to_bytes())
                self._save_unconfirmed(tx)

        prekeys_confirmed = False

        def confirm(join: set[bytes], prekey_count: int) -> None:
            nonlocal prekeys_confirmed
            prekeys_confirmed = prekeys_confirmed or prekey_count > 0
            if not (join or prekey_count):
                return
            self._unconfirmed_join -= join
            self._unconfirmed_prekeys = max(0, self._unconfirmed_prekeys - prekey_count)
            with self._store.transaction() as tx:
                self._save_unconfirmed(tx)

        async def publish(conn: HubConnection) -> None:
            await conn.authenticate(owner)
            first = not marked
            mark()
            await conn.publish(directory, owner.mailbox_id, entry, prekeys if first else ())
            if first:
                confirm(set(), len(prekeys))
            await conn.publish_join_keys(
                directory, owner.mailbox_id,
                None if last_resort is None else seal_join_key(self.suite, me, last_resort),
                join_keys if first else ())
            if first:
                confirm(batch_join, 0)

        await self._one_off(publish, retry=retry, subject=directory)
        log.debug("published the directory entry, %d join keys and %d prekeys", len(fresh),
                  len(prekeys))
        return bool(self._unconfirmed_join & batch_join) or (
            bool(prekeys) and not prekeys_confirmed)

    @property
    def _inbox_id(self) -> bytes:
        return AccessKey(self.suite,
                         self.suite.signing_from_bytes(self._account.inbox_key)).mailbox_id

    async def _one_off(self, op: Callable[[HubConnection], Awaitable[_T]], *,
                       retry: bool = True, subject: bytes = b"") -> _T:
        """`op` on a connection of its own (the hub cannot link it to our other ones),
        retried on a lost connection until `retry_timeout` (or tried once)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.retry_timeout if retry else 0.0)
        delay = 0.02
        while True:
            try:
                conn = await HubConnection.connect(self.hub)
                try:
                    return await op(conn)
                finally:
                    await conn.close()
            except ConnectionError:
                if loop.time() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            except HubRefused:
                raise
            except RemoteError as exc:
                # The hub's ERROR answer (`hub.client.error_from_frame` words every one of them
                # "hub refused: ..."), told apart from a malformed frame and from forged
                # content, which the caller decodes after this returns.
                if str(exc).startswith("hub refused"):
                    raise HubRefused(str(exc), subject, START, exc) from None
                raise

    async def _take_join_key(self, identity: bytes) -> JoinKey:
        Identity.from_bytes(identity, self.suite)
        directory = self._directory_id(identity)
        taken = await self._one_off(lambda c: c.take_join_key(directory), subject=directory)
        return open_join_key(self.suite, identity, taken.join_key)

    async def _learn(self, identity: bytes) -> None:
        """Add an unknown identity as a contact if it has a directory entry (for its name)."""
        if identity in self._contacts or identity == self.identity:
            return
        try:
            await self.add_contact(identity)
        except Exception as exc:  # a name is a nicety: never fail the caller for it
            log.debug("no directory entry for %s: %s", _short(identity), type(exc).__name__)

    # --- groups -------------------------------------------------------------------------------

    def groups(self) -> list[Group]:
        return [Group(self, gid) for gid in self._groups]

    def group(self, group_id: bytes) -> Group:
        self._group_state(group_id)
        return Group(self, group_id)

    def _group_state(self, group_id: bytes) -> _GroupState:
        gs = self._groups.get(group_id)
        if gs is None:
            raise UsageError("no such group on this device")
        return gs

    def _member(self, gs: _GroupState, identity: bytes) -> Member:
        if identity == self.identity:
            return Member(identity, self.name)
        contact = self._contacts.get(identity)
        if contact is not None:
            return Member(identity, contact.name)
        return Member(identity, gs.names.get(identity, ""))

    def _info(self, gs: _GroupState) -> bytes:
        known = dict.fromkeys([*gs.session.roster, *gs.names])
        names = tuple((i, self._member(gs, i).name) for i in known)
        return Envelope(INFO, system_random(MESSAGE_ID_LEN), group_name=gs.name,
                        names=names).to_bytes()

    async def create_group(self, name: str, members: list[bytes]) -> Group:
        """Create a group with these identities (their join keys are taken from the
        directory); they join from the notices the hub keeps in their inboxes."""
        self._check_open()
        name = _check_name(name)
        if len(set(members)) != len(members) or self.identity in members:
            raise UsageError("members are other identities, each once")
        for identity in members:
            await self._learn(identity)
        join_keys = [await self._take_join_key(identity) for identity in members]
        now = self._clock()
        session, out = GroupSession.create(self._account.identity, join_keys, now)
        gs = _GroupState(session.group_id, session, name, announced=True,
                         inviter=self.identity, last_epoch=session.epoch)
        gs.names = {i: self._member(gs, i).name for i in session.roster}
        # The group's name and the members' names, first message of epoch 1.
        out += session.encrypt(self._info(gs), now)
        self._groups[gs.group_id] = gs
        async with gs.lock:
            self._commit(gs, out)
            await self._open_group(gs)
        await self._flush()
        log.debug("created group %s with %d members", _short(gs.group_id), len(members))
        return Group(self, gs.group_id)

    async def _send(self, group_id: bytes, message: str | bytes) -> bytes:
        self._check_open()
        gs = self._group_state(group_id)
        envelope = _envelope(message)
        async with gs.lock:
            _check_not_stale(gs)
            out = gs.session.encrypt(envelope.to_bytes(), self._clock())
            self._commit(gs, out)
        await self._flush()
        return envelope.message_id

    async def _propose(self, group_id: bytes, *, add: bytes | None = None,
                       remove: bytes | None = None, refresh: bool = False) -> None:
        self._check_open()
        gs = self._group_state(group_id)
        _check_not_stale(gs)
        join_keys = []
        if add is not None:
            await self._learn(add)
            join_keys.append(await self._take_join_key(add))
        async with gs.lock:
            _check_not_stale(gs)  # again: a message read meanwhile may have shown it
            now = self._clock()
            out = gs.session.propose(now, add=join_keys,
                                     remove=[] if remove is None else [remove], refresh=refresh)
            if add is not None:
                # The joiner's name for the members now, and every name for the joiner once
                # the new epoch is in.
                gs.names[add] = self._member(gs, add).name
                gs.send_info = True
                try:  # (not stale: checked above, under the lock)
                    out += gs.session.encrypt(self._info(gs), now)
                except TripleRatchetError as exc:  # the proposal stands without it
                    log.debug("group %s: info not sent: %s", _short(gs.group_id), exc)
            self._commit(gs, out)
        await self._flush()

    # --- the step: commit, then follow, then send ------------------------------------------

    def _commit(self, gs: _GroupState, out: Sequence[ge.Outgoing | ge.PairwiseOut],
                tx_extra: Callable[[Transaction], None] | None = None,
                direct: Sequence[tuple[bytes, Envelope]] = ()) -> None:
        """Store the session with the outbox entries it produced and its cursors, in one
        transaction (the caller holds the group's lock)."""
        session = gs.session
        boxes = set(session.mailboxes())
        entries = []
        direct = [*direct, *((o.peer, Envelope(REPAIRED_SEALING, system_random(16),
                                               data=o.payload, group_id=gs.group_id))
                             for o in out if isinstance(o, ge.PairwiseOut))]
        for peer, envelope in direct:
            entries.append(_Out(self._next_seq, system_random(16), OUT_PAIRWISE, gs.group_id,
                                peer, envelope.to_bytes()))
            self._next_seq += 1
        for o in out:
            if isinstance(o, ge.PairwiseOut):
                continue
            if isinstance(o, ge.CommonOut):
                kind, key = OUT_COMMON, o.access_key.to_bytes()
            elif o.mailbox_id in boxes:
                kind, key = OUT_GROUP, session.mailbox_access_key(o.mailbox_id).to_bytes()
            else:
                kind, key = OUT_INBOX, b""
            entries.append(_Out(self._next_seq, system_random(16), kind, gs.group_id,
                                o.mailbox_id, o.blob, key))
            self._next_seq += 1
        if session.status == "active":
            gs.last_epoch = session.epoch
        try:
            with self._store.transaction() as tx:
                tx.put(GROUPS, gs.group_id, gs.to_bytes())
                for mailbox, (cursor, inc) in gs.cursors.items():
                    tx.put(CURSORS, mailbox, cbor.encode([cursor, inc]))
                for e in entries:
                    tx.put(OUTBOX, e.seq.to_bytes(8, "big"), e.to_bytes())
                if tx_extra is not None:
                    tx_extra(tx)
        except Exception:
            # Memory must not run ahead of the store (disk full, I/O error): back to it.
            with contextlib.suppress(Exception):
                self._reload(gs)
            raise
        for e in entries:
            self._outbox[e.seq] = e

    def _flush_soon(self) -> None:
        """Have the outbox sent by the flushing task (readers never wait on the network)."""
        self._flush_wanted.set()

    async def _flush_loop(self) -> None:
        while not self._closed:
            await self._flush_wanted.wait()
            self._flush_wanted.clear()
            try:
                await self._flush()
            except Exception as exc:  # the flusher never stops
                log.warning("outbox: %s", type(exc).__name__)

    async def _flush(self) -> None:
        """Send the outbox in order (per mailbox); each entry leaves the outbox once the hub
        has it. A lost hub leaves the rest for the next flush; the hub's LIMIT holds an entry
        (and the later ones for its mailbox) back, with a growing delay; a refusal drops the
        entry (`Refused`). A change's common part held back also holds back every later entry
        of its group: its notices must not reach a joiner before it (F30)."""
        async with self._flushing:
            now = asyncio.get_running_loop().time()
            held_back: set[bytes] = set()  # mailboxes whose next entry waits
            held_groups: set[bytes] = set()  # groups whose common part waits

            def hold(out: _Out) -> None:
                held_back.add(out.mailbox)
                if out.kind == OUT_COMMON:
                    held_groups.add(out.group_id)

            for seq in sorted(self._outbox):
                out = self._outbox.get(seq)
                if out is None or self._closed:
                    return
                limited = self._limited.get(seq)
                if (out.mailbox in held_back or (out.group_id and out.group_id in held_groups)
                        or (limited is not None and limited[1] > now)):
                    hold(out)
                    continue
                try:
                    await self._put(out)
                except ConnectionError as exc:
                    log.debug("outbox: hub unreachable (%s); %d entries wait", exc,
                              len(self._outbox))
                    return
                except RemoteError as exc:
                    # The hub's LIMIT (a rate, a full mailbox) passes: keep the entry, wait
                    # longer each time, give up after LIMIT_GIVE_UP.
                    limit = isinstance(exc, LimitExceeded) or (
                        isinstance(exc, HubRefused) and isinstance(exc.refusal, LimitExceeded))
                    first, _, delay = limited or (now, now, LIMIT_DELAY / 2)
                    if limit and now - first < LIMIT_GIVE_UP:
                        delay = min(delay * 2, LIMIT_DELAY_MAX)
                        self._limited[seq] = (first, now + delay, delay)
                        hold(out)
                        log.debug("outbox: hub limit (%s), again in %.1f s", exc, delay)
                        continue
                    self._refuse(out, exc)
                except _Unusable as exc:
                    # Not a refusal: a directory answer that does not open (dropped, counted).
                    self.dropped += 1
                    log.debug("outbox: a peer's directory entry is unusable: %s",
                              type(exc.error).__name__)
                except Exception as exc:  # a bug must not stop the outbox for good
                    self.dropped += 1
                    log.warning("outbox: an entry failed and is dropped: %s",
                                type(exc).__name__)
                else:
                    if out.kind != OUT_PAIRWISE:
                        self.sent_blobs += 1
                        self.sent_bytes += len(out.blob)
                self._limited.pop(seq, None)
                if self._closed:
                    return  # sent; the outbox entry goes with the next flush (sent again once)
                with self._store.transaction() as tx:
                    tx.delete(OUTBOX, seq.to_bytes(8, "big"))
                self._outbox.pop(seq, None)

    def _refuse(self, out: _Out, exc: RemoteError) -> None:
        gs = self._groups.get(out.group_id)
        refused = exc if isinstance(exc, HubRefused) else HubRefused(
            f"hub refused an outbox entry: {exc}", out.mailbox, START, exc)
        self.refused += 1
        log.debug("outbox: hub refused an entry: %s", exc)
        self._emit(Refused(None if gs is None else Group(self, gs.group_id), refused))

    async def _put(self, out: _Out) -> None:
        if out.kind == OUT_PAIRWISE:
            await self._encrypt_direct(out.mailbox, out.blob, done=out)
            return
        if out.kind == OUT_INBOX:
            await self._one_off(lambda c: c.put(out.mailbox, out.blob, out.msg_id),
                                subject=out.mailbox)
            return
        gs = self._groups.get(out.group_id)
        if out.kind == OUT_GROUP and gs is not None and gs.conn is not None and (
                out.mailbox in gs.followed):
            accepted = await gs.conn.put_entry(out.mailbox, out.blob, out.msg_id)
            # The PUT_OK's time against our clock (11.v2.32), saved with the next step. No lock:
            # a step commits before its first await, so this cannot fall inside one.
            self._handle(gs, gs.session.put_accepted(out.mailbox, accepted.t, self._clock()))
            return
        # A change's common mailbox, or a mailbox the session no longer reads: a connection
        # of its own, opened with the access key stored with the entry.
        key = AccessKey(self.suite, self.suite.signing_from_bytes(out.access_key))

        async def put(conn: HubConnection) -> None:
            await conn.authenticate(key)
            if out.kind == OUT_COMMON:
                await conn.create(out.mailbox, Kind.CONTROL)
            await conn.put(out.mailbox, out.blob, out.msg_id)

        await self._one_off(put, subject=out.mailbox)

    async def _open_group(self, gs: _GroupState, *, follow: bool = True) -> None:
        if gs.conn is None:
            gs.conn = MailboxClient(self.hub, retry_timeout=self.retry_timeout)
        if follow:
            await self._follow(gs)
        if gs.reader is None and not self._closed:
            gs.reader = asyncio.create_task(self._read_group(gs))

    async def _follow(self, gs: _GroupState) -> None:
        """Follow exactly the session's mailboxes, each from its stored cursor."""
        assert gs.conn is not None
        for mailbox in list(gs.stale):
            await gs.conn.unfollow(mailbox)
            gs.stale.discard(mailbox)
        session = gs.session
        boxes = session.mailboxes()
        for mailbox in [m for m in gs.followed if m not in boxes]:
            del gs.followed[mailbox]
            gs.cursors.pop(mailbox, None)
            with self._store.transaction() as tx:
                tx.delete(CURSORS, mailbox)
            await gs.conn.unfollow(mailbox)
        control = session.control_mailbox_id if session.status == "active" else None
        for mailbox in boxes:
            if mailbox in gs.followed:
                continue
            key = AccessKey(self.suite, session.mailbox_access_key(mailbox))
            cursor, inc = gs.cursors.get(mailbox, (START, None))
            await gs.conn.follow(key, Kind.CONTROL if mailbox == control else Kind.GROUP,
                                 after=cursor, incarnation=inc)
            gs.followed[mailbox] = key
            gs.quiet = False  # a whole tick for its backlog to come before caught_up

    # --- reading --------------------------------------------------------------------------

    async def _read_group(self, gs: _GroupState) -> None:
        assert gs.conn is not None
        while not self._closed:
            try:
                event = await gs.conn.next_event()
            except HubRefused as refused:
                # The hub refused a mailbox we follow: follow it again at the next step.
                self.refused += 1
                gs.followed.pop(refused.mailbox, None)
                log.debug("group %s: hub refused a followed mailbox", _short(gs.group_id))
                self._emit(Refused(Group(self, gs.group_id), refused))
                continue
            except (ConnectionError, RemoteError) as exc:
                # The hub client failed as a whole (it reconnects by itself otherwise): a new
                # one; the timer follows every mailbox again from the stored cursors.
                log.debug("group %s: hub client failed: %s", _short(gs.group_id),
                          type(exc).__name__)
                old = gs.conn
                async with gs.lock:
                    gs.conn = MailboxClient(self.hub, retry_timeout=self.retry_timeout)
                    gs.followed.clear()
                with contextlib.suppress(Exception):
                    await old.close()
                await asyncio.sleep(max(self.tick_interval, 1.0))
                continue
            if isinstance(event, HubGap):
                log.debug("group %s: the hub trimmed entries before we read them",
                          _short(gs.group_id))
                continue
            gs.quiet = False
            gs.busy = True  # until delivered: the timer reports no mailbox read to its end
            try:
                async with gs.lock:
                    await self._deliver(gs, event)
                self._flush_soon()
            except Exception as exc:  # never stop reading for one entry (typed ones are above)
                log.warning("group %s: an entry failed: %s", _short(gs.group_id),
                            type(exc).__name__)
                # A local failure (the store's): back to what is stored; the entry comes again.
                with contextlib.suppress(Exception):
                    self._reload(gs)
            finally:
                gs.busy = False

    async def _deliver(self, gs: _GroupState, d: Delivery) -> None:
        session = gs.session
        if d.mailbox not in gs.followed:
            return
        if d.hub_time - d.t > SKEW_MAX and not gs.catching_up:
            gs.catching_up = True
            self._emit(CatchingUp(Group(self, gs.group_id)))
        try:
            events, out = session.receive(d.blob, self._clock(), entry_time=d.t,
                                          hub_time=d.hub_time)
        except StaleStateError:
            events, out = self._found_stale(gs), []
        except TripleRatchetError as exc:
            # Forged, replayed or corrupted: dropped and counted, never raised to the app.
            self.dropped += 1
            log.debug("group %s: dropped an entry: %s", _short(gs.group_id),
                      type(exc).__name__)
            events, out = [], []
        assert gs.conn is not None
        gs.cursors[d.mailbox] = (d.cursor, gs.conn.incarnation(d.mailbox))
        await self._step(gs, events, out)

    def _found_stale(self, gs: _GroupState) -> list[ge.Event]:
        """A message a later copy of our state sent (review F14): we are an old copy (a
        restored backup, a store row put back). Marked with this step (so it survives a
        restart), nothing more is sent in this epoch, and once per epoch a rejoin is asked for
        (`RejoinNeeded`: the resume record it makes is not in the later copy's hands)."""
        session = gs.session
        if session.status != "active" or gs.stale_epoch >= session.epoch:
            # Asked already in this epoch, or nothing to send from (removed, rejoining).
            log.debug("group %s: another message of a later copy of us", _short(gs.group_id))
            return []
        epoch = session.epoch
        log.warning("group %s: this state is an old copy (a message a later copy of it sent "
                    "was read); no more sending in epoch %d, asking to rejoin",
                    _short(gs.group_id), epoch)
        gs.stale_epoch = epoch
        return [ge.RejoinNeeded(epoch)]

    async def _step(self, gs: _GroupState, events: Sequence[ge.Event],
                    out: Sequence[ge.Outgoing | ge.PairwiseOut]) -> None:
        """After a session call: report, store (with the outbox and the ids delivered), follow
        the new mailboxes. The caller flushes the outbox after releasing the lock."""
        app, seen = self._translate(gs, events)
        more = self._after_events(gs, events)
        direct = self._rejoin(gs) if any(isinstance(e, ge.RejoinNeeded) for e in events) else []

        rows = [(event, self._pending_row(event)) for event in app]

        def mark(tx: Transaction) -> None:
            for key in seen:
                tx.put(SEEN, key, b"")
            for _, row in rows:
                if row is not None:
                    tx.put(PENDING, *row)

        self._commit(gs, [*out, *more], mark, direct)
        self._seen.update(seen)
        for event, row in rows:
            self._emit(event, None if row is None else row[0])
        if gs.conn is not None and set(gs.followed) != set(gs.session.mailboxes()):
            try:
                await self._follow(gs)
            except (ConnectionError, RemoteError) as exc:
                log.debug("group %s: cannot follow yet: %s", _short(gs.group_id), exc)

    def _after_events(self, gs: _GroupState, events: Sequence[ge.Event]) -> list[ge.Outgoing]:
        """After the epoch change of an add we proposed: the names, for the new roster."""
        if gs.send_info and gs.session.status == "active" and not gs.old_copy and any(
                isinstance(e, ge.MembershipChanged) and e.proposer == self.identity and e.added
                for e in events):
            gs.send_info = False
            try:
                return gs.session.encrypt(self._info(gs), self._clock())
            except TripleRatchetError as exc:
                log.debug("group %s: info not sent: %s", _short(gs.group_id), exc)
        return []

    def _rejoin(self, gs: _GroupState) -> list[tuple[bytes, Envelope]]:
        """RejoinNeeded: a rejoin request (a resume record, stored with this step) to one
        member over the pairwise session; its resume notice comes to our inbox (11.v2.31)."""
        try:
            roster = [e.identity for e in gs.session.control_log.view.roster.entries]
            request = gs.session.rejoin_request(self._inbox_id)
        except TripleRatchetError as exc:
            log.debug("group %s: cannot ask to rejoin: %s", _short(gs.group_id), exc)
            return []
        others = [i for i in roster if i != self.identity]
        peer = next((i for i in others if i in self._contacts), others[0] if others else None)
        if peer is None:
            return []
        return [(peer, Envelope(REJOIN_REQUEST, system_random(16), data=request,
                                group_id=gs.group_id))]

    def _translate(self, gs: _GroupState, events: Sequence[ge.Event]
                   ) -> tuple[list[Event], list[bytes]]:
        """The session's events as the app's (and the message ids to mark delivered)."""
        group = Group(self, gs.group_id)
        app: list[Event] = []
        seen: list[bytes] = []
        for e in events:
            if isinstance(e, ge.MessageReceived):
                if e.sender_identity == self.identity:
                    continue
                try:
                    env = Envelope.from_bytes(e.body)
                except TripleRatchetError as exc:
                    self.dropped += 1
                    log.debug("group %s: a message without a valid envelope: %s",
                              _short(gs.group_id), type(exc).__name__)
                    continue
                # Per sender: a member cannot suppress another's message by reusing its id.
                key = gs.group_id + e.sender_identity + env.message_id
                if key in self._seen or key in seen:
                    log.debug("group %s: a message delivered before", _short(gs.group_id))
                    continue
                seen.append(key)
                if env.kind == INFO:
                    self._take_info(gs, e.sender_identity, env)
                    if not gs.announced:
                        gs.announced = True
                        app.append(GroupJoined(group, self._member(gs, gs.inviter)))
                    continue
                if not gs.announced:
                    gs.announced = True
                    app.append(GroupJoined(group, self._member(gs, gs.inviter)))
                app.append(GroupMessage(group, self._member(gs, e.sender_identity),
                                        env.text if env.kind == TEXT else None, env.data,
                                        env.message_id))
            elif isinstance(e, ge.MembershipChanged):
                for added in e.added:
                    gs.introducers[added] = e.proposer
                    name = gs.proposed_names.pop((e.proposer, added), None)
                    if name is not None:
                        gs.names[added] = name
                app.append(MembershipChanged(
                    group, e.epoch, tuple(self._member(gs, i) for i in e.added),
                    tuple(self._member(gs, i) for i in e.removed),
                    self._member(gs, e.proposer), e.reason))
            elif isinstance(e, ge.EpochChanged):
                app.append(EpochChanged(group, e.epoch, e.public_epoch_id))
            elif isinstance(e, ge.RemovedFromGroup):
                app.append(RemovedFromGroup(group, self._member(gs, e.proposer)))
            elif isinstance(e, ge.MemberExcluded):
                app.append(MemberOffline(group, self._member(gs, e.member), e.reason))
            elif isinstance(e, ge.GapDetected | ge.MessagesLost):
                app.append(Gap(group, self._member(gs, e.sender_identity), e.first, e.last,
                               isinstance(e, ge.MessagesLost)))
            elif isinstance(e, ge.ForkDetected):
                app.append(Fork(group, e.kind, self._member(gs, e.member) if e.member else None,
                                e.detail))
            elif isinstance(e, ge.RejoinNeeded):
                app.append(RejoinNeeded(group))
            else:
                log.debug("group %s: %s", _short(gs.group_id), type(e).__name__)
        return app, seen

    def _take_info(self, gs: _GroupState, sender: bytes, env: Envelope) -> None:
        """A group's info: the group's name only from whoever brought us in; a member's name
        from that member, from whoever brought us in, from whoever added that member, or for
        someone not yet in the roster (a joiner being introduced). Contacts' names (from the
        directory) always win (`_member`)."""
        if sender == gs.inviter and env.group_name:
            gs.name = env.group_name
        roster = set(gs.session.roster) if gs.session.status == "active" else set()
        for identity, name in env.names:
            if sender in (identity, gs.inviter) or gs.introducers.get(identity) == sender:
                gs.names[identity] = name
            elif identity not in roster:
                # A joiner being introduced: its name counts once the add is applied and
                # names this sender as its proposer (MembershipChanged).
                gs.proposed_names[(sender, identity)] = name
                while len(gs.proposed_names) > MAX_PROPOSED_NAMES:
                    del gs.proposed_names[next(iter(gs.proposed_names))]

    def _handle(self, gs: _GroupState, events: list[ge.Event]) -> None:
        app, _ = self._translate(gs, events)
        for event in app:
            self._emit(event)

    async def _read_inbox(self) -> None:
        """Notices: assemble, open with our join keys, read the common part, join; and
        pairwise messages."""
        inbox_key = AccessKey(self.suite, self.suite.signing_from_bytes(self._account.inbox_key))
        while not self._closed:
            try:
                await self._inbox.follow(inbox_key, Kind.INBOX)
            except ConnectionError:
                await asyncio.sleep(self.tick_interval)
                continue
            except RemoteError as exc:
                log.debug("inbox: cannot follow: %s", type(exc).__name__)
                await self._replace_inbox()
                continue
            await self._read_inbox_entries()
            await self._replace_inbox()

    async def _replace_inbox(self) -> None:
        """The inbox's hub client gave up for good (or was refused): a new one, after a
        pause; the hub keeps every entry we did not acknowledge."""
        old, self._inbox = self._inbox, MailboxClient(self.hub, retry_timeout=self.retry_timeout)
        with contextlib.suppress(Exception):
            await old.close()
        await asyncio.sleep(max(self.tick_interval, 1.0))

    async def _read_inbox_entries(self) -> None:
        while not self._closed:
            try:
                event = await self._inbox.next_event()
            except (ConnectionError, RemoteError) as exc:
                # The hub client failed as a whole (it reconnects by itself otherwise).
                log.debug("inbox: hub client failed: %s", type(exc).__name__)
                return
            if not isinstance(event, Delivery):
                continue
            failed = False
            try:
                await self._on_inbox(event)
            except TripleRatchetError as exc:
                self.dropped += 1
                log.debug("inbox: dropped an entry: %s", type(exc).__name__)
            except Exception as exc:  # never stop reading the inbox for one entry
                failed = True  # not acknowledged: the hub gives it again after a restart
                log.warning("inbox: an entry failed: %s", type(exc).__name__)
            if failed:
                self._unacked = True
            elif not self._assembler.pending and not self._joins and not self._unacked:
                # Nothing half-assembled or joining: the hub may delete what we read.
                with contextlib.suppress(ConnectionError, RemoteError):
                    await self._inbox.ack(event.mailbox, event.cursor)

    async def _on_inbox(self, d: Delivery) -> None:
        try:
            kind = message_type(d.blob)
        except RemoteError:
            kind = None  # not a pairwise message: a notice chunk, or junk
        if kind in (MSG_TYPE_INITIAL, MSG_TYPE_PAIRWISE):
            await self._on_direct(d.blob, initial=kind == MSG_TYPE_INITIAL)
            return
        me = self.identity
        # Our join keys (and the resume keys of groups we must rejoin) open a notice's first
        # chunk at once (review F5).
        keys = (*self._keyring.keys(), *(k for gs in self._groups.values()
                                         if gs.session.status != "active"
                                         for k in gs.session.resume_keys()),
                *(p.keys() for p in self._rejoins.values()))
        self._assembler = replace(self._assembler, identity=me, keys=keys)
        self._assembler, notice = self._assembler.receive(d.blob)
        if notice is None:
            return
        # Joining waits for the change's common part: in a task of its own, so a notice whose
        # common part never comes does not stall the inbox (the inbox is not acknowledged
        # while a join is under way: a crash meanwhile gets the notice again). Join keys are
        # public, so at most MAX_JOINS notices wait at once; a further one waits here for a
        # free place (reading the inbox pauses, the hub client's bounded queue falls back to
        # fetching): never dropped, since a later ack would delete it at the hub (F28).
        while len(self._joins) >= MAX_JOINS:
            log.debug("inbox: %d notices wait for their common part; reading pauses",
                      len(self._joins))
            await asyncio.wait(set(self._joins), return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.create_task(self._join(notice, keys))
        self._joins.add(task)
        task.add_done_callback(self._joins.discard)

    async def _join(self, notice: bytes, keys: Sequence[RecordKeys]) -> None:
        while True:  # the notice is whole: a lost hub only delays the join
            try:
                await self._on_notice(notice, keys)
                return
            except ConnectionError as exc:
                if self._closed:
                    return
                log.debug("inbox: joining waits for the hub: %s", exc)
                await asyncio.sleep(max(self.tick_interval, 1.0))
            except TripleRatchetError as exc:
                self.dropped += 1
                log.debug("inbox: a notice dropped: %s", type(exc).__name__)
                return
            except Exception as exc:
                self.dropped += 1
                log.warning("inbox: a notice failed: %s", type(exc).__name__)
                return

    async def _on_notice(self, notice: bytes, keys: Sequence[RecordKeys]) -> None:
        me = self.identity
        opened = open_notice_sealing(self.suite, notice, identity=me, keys=keys)
        known = self._groups.get(opened.header.group_id)
        if known is not None and known.session.status == "active":
            log.debug("inbox: a notice for a group we are in")  # e.g. delivered again
            return
        common = await self._fetch_common(opened)  # waiting takes no slot
        async with self._join_slots:  # the slots bound the work of checking and joining
            await self._complete_join(opened, common)

    async def _complete_join(self, opened: OpenedNotice, common: bytes) -> None:
        start = opened.complete(common)
        known = self._groups.get(start.group_id)  # another copy of the notice may have won
        if known is not None and known.session.status == "active":
            return
        if known is not None:
            if start.resumed:
                async with known.lock:
                    await self._step(known, known.session.resume(start), [])
                self._flush_soon()
            return
        pending = self._rejoins.get(start.group_id)
        if start.resumed and pending is not None:
            await self._start_rejoined(start, pending)
            return
        session, keyring = GroupSession.join(self._account.identity, start, self._keyring)
        gs = _GroupState(session.group_id, session, announced=False, inviter=start.added_by,
                         last_epoch=session.epoch)
        self._groups[gs.group_id] = gs
        self._keyring = keyring
        async with gs.lock:
            out = session.rotate(self._clock())  # R10: our own keys at once

            def save_keyring(tx: Transaction) -> None:
                tx.put(ACCOUNT, _KEYRING, keyring.to_bytes())

            self._commit(gs, out, save_keyring)
            await self._open_group(gs)
        log.debug("joined group %s at epoch %d", _short(gs.group_id), session.epoch)
        self._flush_soon()
        await self._republish()  # refill the one-time join key the notice used
        await self._learn(start.added_by)  # the inviter's name, should the info not come

    async def _start_rejoined(self, start: JoinStart, pending: PendingRejoin) -> None:
        """The resume notice our rejoin request (made without a session) brought."""
        session = GroupSession.from_rejoin(self._account.identity, start, pending)
        gs = _GroupState(session.group_id, session, announced=False, inviter=start.added_by,
                         last_epoch=session.epoch)
        self._groups[gs.group_id] = gs
        del self._rejoins[gs.group_id]
        async with gs.lock:

            def done(tx: Transaction) -> None:
                tx.delete(REJOINS, gs.group_id)

            self._commit(gs, session.rotate(self._clock()), done)
            await self._open_group(gs)
        log.debug("rejoined group %s at epoch %d", _short(gs.group_id), session.epoch)
        self._flush_soon()
        await self._learn(start.added_by)

    async def _offer_rejoin(self, group_id: bytes, identity: bytes) -> None:
        self._check_open()
        gs = self._group_state(group_id)
        async with gs.lock:
            hint = gs.session.membership_hint(identity)
            envelope = Envelope(MEMBERSHIP_HINT, system_random(16), data=hint,
                                group_id=group_id)
            self._commit(gs, [], direct=[(identity, envelope)])
        await self._flush()

    async def _fetch_common(self, opened: OpenedNotice) -> bytes:
        """The common part the notice names, from the change's common mailbox (it may not be
        posted whole yet: wait for it)."""
        keys = opened.common_mailbox
        key = AccessKey(self.suite, keys.access_key)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + COMMON_WAIT

        async def read(conn: HubConnection) -> bytes | None:
            await conn.authenticate(key)
            await conn.create(key.mailbox_id, Kind.CONTROL)
            assembler, after = opened.assembler(), START
            while True:
                batch = await conn.fetch(key.mailbox_id, after)
                for entry in batch.entries:
                    try:
                        assembler, common = assembler.receive(entry.blob)
                    except RemoteError:
                        self.dropped += 1
                        assembler = assembler.reset()
                        continue
                    if common is not None:
                        return common
                if not batch.more or not batch.entries:
                    return None
                after = batch.next_cursor

        while True:
            common = await self._one_off(read)
            if common is not None:
                return common
            if loop.time() > deadline:
                raise DecodeError("the common part of a notice never came")
            await asyncio.sleep(self.tick_interval)

    # --- one-to-one -------------------------------------------------------------------------

    async def send_direct(self, identity: bytes, message: str | bytes) -> bytes:
        """Send over the pairwise Double Ratchet session with `identity` (started from its
        directory entry when there is none); returns the message id."""
        self._check_open()
        envelope = _envelope(message)
        try:
            await self._encrypt_direct(bytes(identity), envelope.to_bytes())
        except _Unusable as exc:
            raise exc.error from None
        await self._flush()
        return envelope.message_id

    async def _encrypt_direct(self, identity: bytes, plaintext: bytes,
                              done: _Out | None = None) -> None:
        """Encrypt for `identity` and commit the session with the inbox entry in one
        transaction (`done`, the OUT_PAIRWISE entry this was, leaves the outbox in it)."""
        if identity == self.identity:
            raise UsageError("a direct message goes to someone else")
        if len(plaintext) > MAX_DIRECT_PLAINTEXT:
            raise LimitExceeded(f"a direct message is at most {MAX_DIRECT_PLAINTEXT} bytes")
        Identity.from_bytes(identity, self.suite)
        async with self._pairwise_lock:
            sessions = self._pairwise.get(identity, [])
            contact = self._contacts.get(identity)
            active = next((x for x in sessions if x.can_send), None)
            bundle = None
            if contact is not None and contact.inbox_id and active is None and contact.prekey:
                try:  # the one-time prekey our lookup took
                    bundle = open_prekey(self.suite, identity, contact.prekey)
                except RemoteError as exc:
                    raise _Unusable(exc) from None
                contact = replace(contact, prekey=b"")
            elif contact is None or not contact.inbox_id or active is None:
                directory = self._directory_id(identity)
                taken = await self._one_off(  # a hub refusal raises here (HubRefused)
                    lambda c: c.take_bundle(directory), subject=directory)
                try:
                    entry = ContactEntry.open(self.suite, identity, taken.bundle)
                    bundle = entry.bundle if taken.prekey is None else open_prekey(
                        self.suite, identity, taken.prekey)
                except RemoteError as exc:
                    raise _Unusable(exc) from None
                contact = Contact(identity, entry.name, entry.inbox_id)
            assert contact is not None
            if active is None:
                assert bundle is not None
                active, blob = PairwiseSession.initiate(self._account.identity, bundle,
                                                        plaintext=plaintext)
            else:
                blob = active.encrypt(plaintext)
            sessions = [active, *(x for x in sessions if x is not active)]
            sessions = sessions[:MAX_PAIRWISE_SESSIONS]
            out = _Out(self._next_seq, system_random(16), OUT_INBOX, b"", contact.inbox_id,
                       blob)
            self._next_seq += 1
            with self._store.transaction() as tx:
                tx.put(PAIRWISE, identity, cbor.encode([x.to_bytes() for x in sessions]))
                tx.put(CONTACTS, identity, contact.to_bytes())
                tx.put(OUTBOX, out.seq.to_bytes(8, "big"), out.to_bytes())
                if done is not None:
                    tx.delete(OUTBOX, done.seq.to_bytes(8, "big"))
            self._pairwise[identity] = sessions
            self._contacts[identity] = contact
            self._outbox[out.seq] = out
            if done is not None:
                self._outbox.pop(done.seq, None)

    async def _on_direct(self, blob: bytes, *, initial: bool) -> None:
        """A pairwise message in our inbox: an initial message starts a session (the peer is
        whoever its handshake proves), a session message is tried on every session."""
        async with self._pairwise_lock:
            if initial:
                session, plaintext, peer = PairwiseSession.respond(self._account.pairwise, blob)
                identity = peer.to_bytes()
                sessions = [session, *self._pairwise.get(identity, [])]
            else:
                identity, sessions, plaintext = self._trial_decrypt(blob)
            sessions = sessions[:MAX_PAIRWISE_SESSIONS]
            try:
                envelope: Envelope | None = Envelope.from_bytes(plaintext)
            except TripleRatchetError as exc:
                self.dropped += 1
                log.debug("direct: a message without a valid envelope: %s", type(exc).__name__)
                envelope = None
            key = b"direct" + identity + (envelope.message_id if envelope else b"")
            new = envelope is not None and key not in self._seen
            row = None
            if new and envelope is not None and envelope.kind in (TEXT, DATA):
                # Named when it is handed out (the sender's name may be learnt below).
                row = self._pending_row(DirectMessage(Member(identity, ""), envelope.text,
                                                      envelope.data, envelope.message_id))
            with self._store.transaction() as tx:
                tx.put(PAIRWISE, identity, cbor.encode([x.to_bytes() for x in sessions]))
                if initial:  # its one-time prekey is used up
                    tx.put(ACCOUNT, _SELF, self._account.to_bytes())
                if new:
                    tx.put(SEEN, key, b"")
                if row is not None:
                    tx.put(PENDING, *row)
            self._pairwise[identity] = sessions
            if new:
                self._seen.add(key)
        if envelope is None or not new:
            return
        if envelope.kind in (TEXT, DATA):
            await self._learn(identity)
            sender = self._contacts.get(identity)
            self._emit(DirectMessage(Member(identity, sender.name if sender else ""),
                                     envelope.text, envelope.data, envelope.message_id),
                       None if row is None else row[0])
        elif envelope.kind in (REJOIN_REQUEST, REPAIRED_SEALING):
            await self._on_group_payload(identity, envelope)
        elif envelope.kind == MEMBERSHIP_HINT:
            await self._on_hint(identity, envelope)
        if initial:
            await self._republish()  # refill the one-time prekey it used

    def _trial_decrypt(self, blob: bytes) -> tuple[bytes, list[PairwiseSession], bytes]:
        # The inbox does not say who wrote (the hub must not know): every session is tried;
        # a failed try leaves a session unchanged.
        for identity, sessions in self._pairwise.items():
            for x in sessions:
                try:
                    plaintext = x.decrypt(blob)
                except TripleRatchetError:
                    continue
                return identity, [x, *(y for y in sessions if y is not x)], plaintext
        raise AuthenticationError("no pairwise session opens this message")

    async def _on_hint(self, identity: bytes, envelope: Envelope) -> None:
        """A member says we are in a group we hold no session of (11.v2.31): never trusted
        as such (the members check the request, the resume notice's certificate decides). We
        keep the pending rejoin and send the request back, in one transaction."""
        known = self._groups.get(envelope.group_id)
        if (known is not None and known.session.status == "active") or (
                envelope.group_id in self._rejoins) or (
                self._rejoin_peers.get(identity) in self._rejoins):
            return  # one pending rejoin per group and per hinting peer
        if identity not in self._contacts and not any(
                identity in (g.names.keys() | {g.inviter}) for g in self._groups.values()):
            self.dropped += 1  # a hint only from someone we know (a contact, a member's name)
            return
        try:
            request, pending = GroupSession.request_rejoin(self._account.identity,
                                                           envelope.data, self._inbox_id)
        except TripleRatchetError as exc:
            self.dropped += 1
            log.debug("a membership hint refused: %s", type(exc).__name__)
            return
        if pending.group_id != envelope.group_id:
            self.dropped += 1
            return
        answer = Envelope(REJOIN_REQUEST, system_random(16), data=request,
                          group_id=pending.group_id)
        out = _Out(self._next_seq, system_random(16), OUT_PAIRWISE, pending.group_id, identity,
                   answer.to_bytes())
        self._next_seq += 1
        oldest = next(iter(self._rejoins)) if len(self._rejoins) >= MAX_PENDING_REJOINS else None
        with self._store.transaction() as tx:
            tx.put(REJOINS, pending.group_id, pending.to_bytes())
            tx.put(OUTBOX, out.seq.to_bytes(8, "big"), out.to_bytes())
            if oldest is not None:
                tx.delete(REJOINS, oldest)
        if oldest is not None:
            del self._rejoins[oldest]
        self._rejoins[pending.group_id] = pending
        self._rejoin_peers[identity] = pending.group_id
        self._outbox[out.seq] = out
        self._flush_soon()

    async def _on_group_payload(self, identity: bytes, envelope: Envelope) -> None:
        """What a member's group session sent ours over the pairwise session: a rejoin
        request (we propose the resume) or a repaired sealing (we enter the epoch)."""
        gs = self._groups.get(envelope.group_id)
        if gs is None:
            self.dropped += 1
            return
        peer = Identity.from_bytes(identity, self.suite)
        async with gs.lock:
            try:
                if envelope.kind == REJOIN_REQUEST:
                    events, out = gs.session.on_rejoin_request(envelope.data, peer,
                                                               self._clock())
                else:
                    events, out2 = gs.session.on_repaired_sealing(envelope.data, peer,
                                                                  self._clock())
                    out = list(out2)
            except TripleRatchetError as exc:
                self.dropped += 1
                log.debug("group %s: a pairwise payload refused: %s", _short(gs.group_id),
                          type(exc).__name__)
                return
            await self._step(gs, events, out)
        self._flush_soon()

    # --- the clock ----------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.tick_interval)
            self._set_state(ConnectionState.CONNECTED if _connected(self._inbox)
                            else ConnectionState.CONNECTING)
            for gs in list(self._groups.values()):
                if gs.session.status != "active" and not gs.session.mailboxes():
                    continue
                try:
                    async with gs.lock:
                        await self._tick(gs)
                except TripleRatchetError as exc:
                    log.debug("group %s: tick: %s", _short(gs.group_id), type(exc).__name__)
                except Exception as exc:  # the timer never stops
                    log.warning("group %s: tick failed: %s", _short(gs.group_id),
                                type(exc).__name__)
            try:
                if self._state is ConnectionState.CONNECTED and (
                        self._publish_due
                        or self._clock() - self._published_at > REPUBLISH_EVERY):
                    await self._republish(retry=False)
                if self._outbox:
                    self._flush_soon()
            except Exception as exc:
                log.warning("timer: %s", type(exc).__name__)

    async def _tick(self, gs: _GroupState) -> None:
        session = gs.session
        now = self._clock()
        events: list[ge.Event] = []
        out: list[ge.Outgoing] = []
        if gs.quiet and not gs.busy and gs.conn is not None and _connected(gs.conn) and (
                _nothing_queued(gs.conn)) and set(gs.followed) == set(session.mailboxes()):
            # Nothing arrived for a whole tick: every mailbox is read to its end (the session
            # acts in a control mailbox only then, and drops old group mailboxes).
            gs.catching_up = False
            for box in session.mailboxes():
                more, sends = session.caught_up(box, now)
                events += more
                out += sends
        gs.quiet = True
        app: list[Event] = []
        if not gs.announced and session.status == "active":
            # The info (the group's name) may never come (its sender went away): report the
            # join without it after a while.
            loop_now = asyncio.get_running_loop().time()
            gs.waiting_since = gs.waiting_since or loop_now
            if loop_now - gs.waiting_since > INFO_WAIT:
                gs.announced = True
                app.append(GroupJoined(Group(self, gs.group_id), self._member(gs, gs.inviter)))
        if session.status == "active":
            more, sends = session.tick(now)
            events += more
            out += sends
        if events or out or app or set(gs.followed) != set(session.mailboxes()):
            await self._step(gs, events, out)
        for event in app:
            self._emit(event)

    # --- events ---------------------------------------------------------------------------

    def _emit(self, event: Event, pending: bytes | None = None) -> None:
        self._events.put_nowait((event, pending))

    def _pending_row(self, event: Event) -> tuple[bytes, bytes] | None:
        """The `pending` row of a message event (None for any other event), committed with the
        step that marks the message seen: a message is delivered once the app took it."""
        if isinstance(event, GroupMessage):
            fields: list[cbor.CborEncodable] = [_PENDING_GROUP, event.group.id]
        elif isinstance(event, DirectMessage):
            fields = [_PENDING_DIRECT, b""]
        else:
            return None
        key = self._next_pending.to_bytes(8, "big")
        self._next_pending += 1
        return key, cbor.encode([*fields, event.sender.identity, event.sender.name,
                                 event.text, event.data, event.message_id])

    def _pending_event(self, value: bytes) -> Event:
        f = cbor.as_list(cbor.decode(value, max_size=len(value), max_items=16), "pending", 7)
        kind = cbor.as_int(f[0], "pending kind", maximum=_PENDING_DIRECT)
        identity = cbor.as_bytes(f[2], "sender", max_length=4096)
        text = None if f[4] is None else cbor.as_str(f[4], "text")
        data = cbor.as_bytes(f[5], "data")
        message_id = cbor.as_bytes(f[6], "message id", max_length=64)
        if kind == _PENDING_DIRECT:
            contact = self._contacts.get(identity)
            name = contact.name if contact else cbor.as_str(f[3], "name", max_length=256)
            return DirectMessage(Member(identity, name), text, data, message_id)
        return GroupMessage(Group(self, cbor.as_bytes(f[1], "group id", max_length=64)),
                            Member(identity, cbor.as_str(f[3], "name", max_length=256)),
                            text, data, message_id)

    def _release(self, pending: bytes) -> None:
        """The app asked for the next event: the message it took is delivered for good."""
        if pending in self._in_hand and not self._closed:
            try:
                with self._store.transaction() as tx:
                    tx.delete(PENDING, pending)
            except Exception as exc:  # e.g. a full disk: close() tries again, else it comes again
                log.warning("events: a taken message stays pending: %s", type(exc).__name__)
                return
            self._in_hand.discard(pending)

    def _take(self, item: tuple[Event, bytes | None]) -> Event:
        event, pending = item
        if pending is not None:
            self._in_hand.add(pending)
        return event

    def _set_state(self, state: ConnectionState) -> None:
        if state != self._state:
            self._state = state
            log.debug("connection %s", state.value)
            self._emit(ConnectionChanged(state))

    async def events(self) -> AsyncIterator[Event]:
        """Every event, in order, as it happens; ends after `close()`. A message counts as
        taken when the app asks for the next event (or closes the client): one the app had
        in hand when the process died is given again after a restart (spec 15 "Events")."""
        while True:
            item = await self._events.get()
            if item is None:
                self._events.put_nowait(None)  # for any other reader
                return
            event = self._take(item)
            yield event
            if item[1] is not None:
                self._release(item[1])

    async def next_event(self, timeout: float | None = None) -> Event:
        """The next event (`UsageError` once the client is closed and every event was read).
        Asking for it releases the message event the previous call returned."""
        for pending in list(self._next_in_hand):
            self._release(pending)
        self._next_in_hand.clear()
        item = await asyncio.wait_for(self._events.get(), timeout)
        if item is None:
            self._events.put_nowait(None)
            raise UsageError("the client is closed")
        if item[1] is not None:
            self._next_in_hand.append(item[1])
        return self._take(item)

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("the client is closed")


class _Unusable(Exception):
    """A directory answer that does not open (forged or corrupted), kept apart from a hub
    refusal, which has the same error types (`hub.client.error_from_frame`)."""

    def __init__(self, error: RemoteError) -> None:
        super().__init__(type(error).__name__)
        self.error = error


def _check_not_stale(gs: _GroupState) -> None:
    if gs.old_copy:
        raise StateError("this group's state is an old copy (restored from a backup?): a later "
                         "copy of it sent messages in this epoch; nothing is sent from it until "
                         "the rejoin it asked for brings a new epoch (RejoinNeeded)")


def _cursor(value: bytes) -> tuple[int, bytes | None]:
    f = cbor.as_list(cbor.decode(value, max_items=4), "cursor", 2)
    return (cbor.as_int(f[0], "cursor"),
            None if f[1] is None else cbor.as_bytes(f[1], "incarnation", max_length=64))


def _nothing_queued(conn: MailboxClient) -> bool:
    return conn.queued == 0


def _connected(conn: MailboxClient) -> bool:
    return conn.connected


def _envelope(message: str | bytes) -> Envelope:
    mid = system_random(MESSAGE_ID_LEN)
    if isinstance(message, str):
        return Envelope(TEXT, mid, message, message.encode("utf-8"))
    if isinstance(message, bytes | bytearray):
        return Envelope(DATA, mid, None, bytes(message))
    raise UsageError("a message is a str or bytes")


def _check_name(name: str) -> str:
    """Our own display or group name: at most 256 UTF-8 bytes, shown to others cleaned."""
    if not isinstance(name, str) or len(name.encode("utf-8")) > 256:
        raise UsageError("a name is a string of at most 256 UTF-8 bytes")
    return clean_name(name)


__all__ = ["Client", "Contact"]
