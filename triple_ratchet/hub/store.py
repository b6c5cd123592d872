"""The store interface every hub backend implements, and the in-memory store (the model).

Semantics, shared by every backend and checked against `MemoryStore` by a stateful property
test: a mailbox has a kind, a pin flag, a head (the last cursor issued, 0 before any) and a trim
point (every cursor at or below it is gone). Cursors are per-mailbox sequence numbers 1, 2, 3...
Entries between trim point and head are exactly the retained ones. Time is passed in, in integer
milliseconds, so every backend decides retention from the same numbers.

Every entry gets its acceptance time `t = max(now, t of the mailbox's previous entry)` in the
same atomic step that gives it its cursor, so `t` never decreases within a mailbox, also when
hubs with different clocks share a store. A store has an `incarnation`: 16 bytes created with
its data and replaced whenever the data may have been lost, so a cursor of a lost history is
recognised (spec 10.2).
"""

from __future__ import annotations

import collections
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

from triple_ratchet.errors import LimitExceeded, ProtocolError
from triple_ratchet.hub.frames import INCARNATION_LEN, Entry, Kind
from triple_ratchet.random import RandomSource, system_random

# Called with a mailbox id after a new entry, or with None: "re-read everything you follow".
Listener = Callable[[bytes | None], None]


@dataclass(frozen=True)
class Retention:
    """Retention and capacity. Defaults are sized for chat groups; every number is a promise."""

    # A group mailbox keeps its entries younger than `group_max_age_ms` (RETENTION, 30 days): a
    # member catching up reads every message of each epoch it missed (spec 11.v2.31), so by
    # default nothing is trimmed by count. A deployment may set `group_max_count` to keep only
    # the newest entries (members offline longer then lose messages, reported as MessagesLost).
    group_max_count: int | None = None
    group_max_age_ms: int = 30 * 24 * 3600 * 1000
    # A control mailbox (one per epoch change) is kept by age only, never by count: a member
    # catching up must find every entry of the change (ASYNC-EPOCHS R12, RETENTION = 30 days).
    control_max_age_ms: int = 30 * 24 * 3600 * 1000
    # ... and refuses writes past this many retained entries: 1,000 members within their
    # per-epoch budget of 64 entries stay below it; it bounds an abandoned or flooded one.
    control_max_count: int = 100_000
    # A pinned (live DKG attempt) mailbox is never trimmed; it refuses writes past this count.
    pinned_max_count: int = 100_000
    # An inbox is emptied by its owner's acks; past this many unacknowledged entries it refuses.
    inbox_max_count: int = 10_000
    # A client message id stays deduplicated this long, even after its entry was trimmed, so
    # a retry after a reconnect never appends twice.
    dedup_ttl_ms: int = 24 * 3600 * 1000
    # Stored one-time prekeys, and one-time group join keys, per directory entry.
    max_prekeys: int = 1000
    max_join_keys: int = 1000
    # Live directory entries one owner (access key) may hold: an account has one per suite.
    max_directories_per_owner: int = 4
    # A directory entry not published to for this long is gone (its id free again): bounds
    # what abandoned entries cost; clients republish on start and when refilling keys.
    directory_ttl_ms: int = 30 * 24 * 3600 * 1000


@dataclass(frozen=True)
class MailboxInfo:
    kind: Kind
    pinned: bool
    head: int
    trimmed: int


@dataclass(frozen=True)
class AppendResult:
    cursor: int
    t: int  # the entry's acceptance time (the original entry's for a duplicate)
    duplicate: bool


@dataclass(frozen=True)
class ReadResult:
    entries: tuple[Entry, ...]
    next_cursor: int
    fell_behind: bool
    more: bool


@dataclass(frozen=True, repr=False)
class TakenBundle:
    bundle: bytes
    prekey: bytes | None
    remaining: int

    def __repr__(self) -> str:
        return f"TakenBundle(prekey={self.prekey is not None}, remaining={self.remaining})"


@dataclass(frozen=True, repr=False)
class TakenJoinKey:
    join_key: bytes
    last_resort: bool
    remaining: int

    def __repr__(self) -> str:
        return f"TakenJoinKey(last_resort={self.last_resort}, remaining={self.remaining})"


# The refusal when a connection out of creation quota names a mailbox that does not exist.
CREATE_QUOTA_REASON = "mailbox creation quota reached on this connection"
# Directory refusals, the same words from every store.
OTHER_OWNER_REASON = "directory entry belongs to another access key"
OWNER_CAP_REASON = "too many directory entries for one access key"
NO_DIRECTORY_REASON = "no such directory entry"
NO_JOIN_KEY_REASON = "no join key published"


def check_create(kind: Kind, pinned: bool) -> None:
    if pinned and kind != Kind.GROUP:
        raise ProtocolError("only group mailboxes can be pinned")


def select_entries(
    retained: list[Entry], after: int, trimmed: int, limit: int, max_bytes: int
) -> ReadResult:
    """The read rule, shared by the backends: `retained` holds the entries after max(after,
    trimmed) in order (backends may pass one more than `limit` to tell whether there is more)."""
    out: list[Entry] = []
    size = 0
    for e in retained:
        if len(out) == limit or (out and size + len(e.blob) > max_bytes):
            break
        out.append(e)
        size += len(e.blob)
    more = len(out) < len(retained)
    start = max(after, trimmed)
    return ReadResult(tuple(out), out[-1].cursor if out else start, after < trimmed, more)


class Store(ABC):
    """A hub backend. Methods raise `ProtocolError` (unknown mailbox, kind conflict, cursor never
    issued, wrong owner) or `LimitExceeded` (full); nothing else is expected."""

    retention: Retention
    # The store history (spec 10.2): valid after `start()`; cursors belong to one incarnation.
    incarnation: bytes

    def __init__(self, retention: Retention) -> None:
        self.retention = retention
        self._listeners: list[Listener] = []
        self.incarnation = bytes(INCARNATION_LEN)

    def add_listener(self, listener: Listener) -> None:
        """`listener(mailbox_id)` runs after every new entry, from any hub sharing the store;
        `listener(None)` when notifications may have been lost."""
        self._listeners.append(listener)

    def _notify(self, mailbox: bytes) -> None:
        for listener in self._listeners:
            listener(mailbox)

    async def start(self) -> None:  # noqa: B027 (optional hook, not abstract)
        """Open connections and background listeners (no-op where there are none)."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def create(self, mailbox: bytes, kind: Kind, pinned: bool, now_ms: int, *,
                     may_create: bool = True) -> bool:
        """Create the mailbox if absent; an existing one must have the same kind (its pin flag
        is left as it is: the flag is set at creation and can only be cleared). Returns whether
        it was created. With `may_create` false an absent mailbox is refused (`LimitExceeded`)
        in the same atomic step, so a connection out of creation quota can still open existing
        mailboxes and no race lets it create one."""

    @abstractmethod
    async def info(self, mailbox: bytes) -> MailboxInfo | None: ...

    @abstractmethod
    async def unpin(self, mailbox: bytes, now_ms: int) -> None:
        """Clear the pin (the attempt ended); normal group retention applies from now on."""

    @abstractmethod
    async def append(self, mailbox: bytes, msg_id: bytes, blob: bytes,
                     now_ms: int) -> AppendResult:
        """Append with `t = max(now_ms, t of the mailbox's last entry)`, atomically."""

    @abstractmethod
    async def read(self, mailbox: bytes, after: int, limit: int, max_bytes: int,
                   now_ms: int) -> ReadResult: ...

    @abstractmethod
    async def ack(self, mailbox: bytes, cursor: int) -> None:
        """Inbox only: delete every entry up to and including `cursor`."""

    @abstractmethod
    async def publish(self, directory: bytes, owner: bytes, bundle: bytes,
                      prekeys: tuple[bytes, ...], now_ms: int) -> None:
        """Set the bundle and add one-time prekeys. The first publisher's access mailbox id
        becomes the entry's owner; later publishes must come from it. Every publish keeps the
        entry alive for `directory_ttl_ms`; an owner holds at most `max_directories_per_owner`
        live entries."""

    @abstractmethod
    async def take_bundle(self, directory: bytes, now_ms: int) -> TakenBundle:
        """The bundle and one one-time prekey, which is removed (handed out at most once)."""

    @abstractmethod
    async def publish_join_keys(self, directory: bytes, owner: bytes, last_resort: bytes | None,
                                join_keys: tuple[bytes, ...], now_ms: int) -> None:
        """Replace the last-resort group join key (if given) and add one-time join keys, under
        the same ownership, cap and expiry as `publish`."""

    @abstractmethod
    async def take_join_key(self, directory: bytes, now_ms: int) -> TakenJoinKey:
        """The oldest one-time join key, removed (handed out at most once), else the
        last-resort one (not removed)."""


@dataclass
class _Mailbox:
    kind: Kind
    pinned: bool
    head: int = 0
    trimmed: int = 0
    last_t: int = 0  # acceptance time of the last entry ever appended
    entries: collections.deque[tuple[int, int, bytes]] = field(
        default_factory=collections.deque)  # (cursor, time ms, blob)


@dataclass
class _Directory:
    owner: bytes
    expires: int
    bundle: bytes | None = None
    last_resort: bytes | None = None
    prekeys: collections.deque[bytes] = field(default_factory=collections.deque)
    join_keys: collections.deque[bytes] = field(default_factory=collections.deque)


class MemoryStore(Store):
    """Everything in dicts: for tests, and the model the other stores are checked against."""

    def __init__(self, retention: Retention | None = None, *,
                 rng: RandomSource = system_random) -> None:
        super().__init__(retention or Retention())
        self.incarnation = rng(INCARNATION_LEN)  # memory is lost with the process
        self._mailboxes: dict[bytes, _Mailbox] = {}
        self._dedup: dict[tuple[bytes, bytes], tuple[int, int]] = {}
        self._dedup_order: collections.deque[tuple[int, bytes, bytes]] = collections.deque()
        self._directories: dict[bytes, _Directory] = {}

    async def close(self) -> None:
        self._listeners.clear()

    def _get(self, mailbox: bytes) -> _Mailbox:
        box = self._mailboxes.get(mailbox)
        if box is None:
            raise ProtocolError("no such mailbox")
        return box

    def _trim(self, box: _Mailbox, now_ms: int) -> None:
        if box.kind == Kind.INBOX or box.pinned:
            return
        ret = self.retention
        control = box.kind == Kind.CONTROL
        max_count = None if control else ret.group_max_count
        max_age = ret.control_max_age_ms if control else ret.group_max_age_ms
        while box.entries and (
            (max_count is not None and len(box.entries) > max_count)
            or box.entries[0][1] <= now_ms - max_age
        ):
            box.trimmed = box.entries.popleft()[0]

    async def create(self, mailbox: bytes, kind: Kind, pinned: bool, now_ms: int, *,
                     may_create: bool = True) -> bool:
        check_create(kind, pinned)
        box = self._mailboxes.get(mailbox)
        if box is None:
            if not may_create:
                raise LimitExceeded(CREATE_QUOTA_REASON)
            self._mailboxes[mailbox] = _Mailbox(kind, pinned)
            return True
        if box.kind != kind:
            raise ProtocolError("mailbox exists with another kind")
        return False

    async def info(self, mailbox: bytes) -> MailboxInfo | None:
        box = self._mailboxes.get(mailbox)
        if box is None:
            return None
        return MailboxInfo(box.kind, box.pinned, box.head, box.trimmed)

    async def unpin(self, mailbox: bytes, now_ms: int) -> None:
        box = self._get(mailbox)
        box.pinned = False
        self._trim(box, now_ms)

    def _expire_dedup(self, now_ms: int) -> None:
        cutoff = now_ms - self.retention.dedup_ttl_ms
        while self._dedup_order and self._dedup_order[0][0] <= cutoff:
            _, mailbox, msg_id = self._dedup_order.popleft()
            record = self._dedup.get((mailbox, msg_id))
            if record is not None and record[1] <= cutoff:
                del self._dedup[(mailbox, msg_id)]

    async def append(self, mailbox: bytes, msg_id: bytes, blob: bytes,
                     now_ms: int) -> AppendResult:
        box = self._get(mailbox)
        self._expire_dedup(now_ms)
        seen = self._dedup.get((mailbox, msg_id))
        # Times are per-mailbox monotone only, so the expiry queue may hold an expired record
        # behind a younger one: check the record's own age too.
        if seen is not None and seen[1] > now_ms - self.retention.dedup_ttl_ms:
            return AppendResult(seen[0], seen[1], True)
        self._trim(box, now_ms)
        ret = self.retention
        if box.pinned and len(box.entries) >= ret.pinned_max_count:
            raise LimitExceeded("pinned mailbox is full")
        if box.kind == Kind.INBOX and len(box.entries) >= ret.inbox_max_count:
            raise LimitExceeded("inbox is full")
        if box.kind == Kind.CONTROL and len(box.entries) >= ret.control_max_count:
            raise LimitExceeded("control mailbox is full")
        box.head += 1
        box.last_t = t = max(now_ms, box.last_t)
        box.entries.append((box.head, t, blob))
        self._dedup[(mailbox, msg_id)] = (box.head, t)
        self._dedup_order.append((t, mailbox, msg_id))
        self._trim(box, now_ms)
        self._notify(mailbox)
        return AppendResult(box.head, t, False)

    async def read(self, mailbox: bytes, after: int, limit: int, max_bytes: int,
                   now_ms: int) -> ReadResult:
        box = self._get(mailbox)
        if after > box.head:
            raise ProtocolError("cursor was never issued")
        self._trim(box, now_ms)
        retained = []
        for cursor, t, blob in box.entries:
            if cursor > after:
                retained.append(Entry(cursor, t, blob))
                if len(retained) > limit:
                    break
        return select_entries(retained, after, box.trimmed, limit, max_bytes)

    async def ack(self, mailbox: bytes, cursor: int) -> None:
        box = self._get(mailbox)
        if box.kind != Kind.INBOX:
            raise ProtocolError("only inboxes are acknowledged")
        if cursor > box.head:
            raise ProtocolError("cursor was never issued")
        while box.entries and box.entries[0][0] <= cursor:
            box.entries.popleft()
        box.trimmed = max(box.trimmed, cursor)

    def _live(self, directory: bytes, now_ms: int) -> _Directory | None:
        entry = self._directories.get(directory)
        if entry is not None and entry.expires <= now_ms:
            del self._directories[directory]
            return None
        return entry

    def _claim(self, directory: bytes, owner: bytes, now_ms: int) -> _Directory | None:
        """The live entry `owner` may publish to (None: a new one it may create)."""
        for d in [d for d, e in self._directories.items() if e.expires <= now_ms]:
            del self._directories[d]  # expired entries cost nothing from here on
        entry = self._directories.get(directory)
        if entry is not None:
            if entry.owner != owner:
                raise ProtocolError(OTHER_OWNER_REASON)
            return entry
        owned = sum(1 for e in self._directories.values() if e.owner == owner)
        if owned >= self.retention.max_directories_per_owner:
            raise LimitExceeded(OWNER_CAP_REASON)
        return None

    async def publish(self, directory: bytes, owner: bytes, bundle: bytes,
                      prekeys: tuple[bytes, ...], now_ms: int) -> None:
        entry = self._claim(directory, owner, now_ms)
        stored = len(entry.prekeys) if entry is not None else 0
        if stored + len(prekeys) > self.retention.max_prekeys:
            raise LimitExceeded("too many one-time prekeys")
        if entry is None:
            entry = self._directories[directory] = _Directory(owner, 0)
        entry.expires = now_ms + self.retention.directory_ttl_ms
        entry.bundle = bundle
        entry.prekeys.extend(prekeys)

    async def take_bundle(self, directory: bytes, now_ms: int) -> TakenBundle:
        entry = self._live(directory, now_ms)
        if entry is None or entry.bundle is None:
            raise ProtocolError(NO_DIRECTORY_REASON)
        prekey = entry.prekeys.popleft() if entry.prekeys else None
        return TakenBundle(entry.bundle, prekey, len(entry.prekeys))

    async def publish_join_keys(self, directory: bytes, owner: bytes, last_resort: bytes | None,
                                join_keys: tuple[bytes, ...], now_ms: int) -> None:
        entry = self._claim(directory, owner, now_ms)
        stored = len(entry.join_keys) if entry is not None else 0
        if stored + len(join_keys) > self.retention.max_join_keys:
            raise LimitExceeded("too many one-time join keys")
        if entry is None:
            entry = self._directories[directory] = _Directory(owner, 0)
        entry.expires = now_ms + self.retention.directory_ttl_ms
        if last_resort is not None:
            entry.last_resort = last_resort
        entry.join_keys.extend(join_keys)

    async def take_join_key(self, directory: bytes, now_ms: int) -> TakenJoinKey:
        entry = self._live(directory, now_ms)
        if entry is None:
            raise ProtocolError(NO_DIRECTORY_REASON)
        if entry.join_keys:
            key = entry.join_keys.popleft()
            return TakenJoinKey(key, False, len(entry.join_keys))
        if entry.last_resort is None:
            raise ProtocolError(NO_JOIN_KEY_REASON)
        return TakenJoinKey(entry.last_resort, True, 0)


__all__ = [
    "AppendResult",
    "MailboxInfo",
    "MemoryStore",
    "ReadResult",
    "Retention",
    "Store",
    "TakenBundle",
    "TakenJoinKey",
]
