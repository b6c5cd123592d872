"""SQLite store: the embedded default (stdlib sqlite3, WAL, one process per database file).

One table of entries keyed by (mailbox, sequence); a mailbox row holds kind, pin, head, trim
point and the last acceptance time. Every method is one `BEGIN IMMEDIATE` transaction, so a hub
killed at any moment leaves either all of a write or none of it, and a put is acknowledged only
after its commit. The store incarnation is created with the file.

Tables holding blobs (entries, bundles, prekeys, join keys) are rowid tables: in a `WITHOUT
ROWID` table a row over ~1,000 bytes (a 4 KiB page) spills into an overflow page of its own,
so every 1 KiB prekey took more than 4 KiB of file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from triple_ratchet.errors import LimitExceeded, ProtocolError, UsageError
from triple_ratchet.hub.frames import INCARNATION_LEN, Entry, Kind
from triple_ratchet.hub.store import (
    CREATE_QUOTA_REASON,
    NO_DIRECTORY_REASON,
    NO_JOIN_KEY_REASON,
    OTHER_OWNER_REASON,
    OWNER_CAP_REASON,
    AppendResult,
    MailboxInfo,
    ReadResult,
    Retention,
    Store,
    TakenBundle,
    TakenJoinKey,
    check_create,
    select_entries,
)
from triple_ratchet.random import RandomSource, system_random

# The layout's version (PRAGMA user_version); a file of another layout is refused at start.
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mailboxes (
    id BLOB PRIMARY KEY, kind INTEGER NOT NULL, pinned INTEGER NOT NULL,
    head INTEGER NOT NULL, trimmed INTEGER NOT NULL, last_t INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
    mailbox BLOB NOT NULL, seq INTEGER NOT NULL, t INTEGER NOT NULL, blob BLOB NOT NULL,
    PRIMARY KEY (mailbox, seq)
);
CREATE TABLE IF NOT EXISTS dedup (
    mailbox BLOB NOT NULL, msg_id BLOB NOT NULL, seq INTEGER NOT NULL, t INTEGER NOT NULL,
    PRIMARY KEY (mailbox, msg_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_t ON dedup (t);
CREATE TABLE IF NOT EXISTS directories (
    id BLOB PRIMARY KEY, owner BLOB NOT NULL, expires INTEGER NOT NULL, bundle BLOB,
    last_resort BLOB, next_n INTEGER NOT NULL, next_j INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS directories_owner ON directories (owner);
CREATE INDEX IF NOT EXISTS directories_expires ON directories (expires);
CREATE TABLE IF NOT EXISTS prekeys (
    directory BLOB NOT NULL, n INTEGER NOT NULL, blob BLOB NOT NULL,
    PRIMARY KEY (directory, n)
);
CREATE TABLE IF NOT EXISTS join_keys (
    directory BLOB NOT NULL, n INTEGER NOT NULL, blob BLOB NOT NULL,
    PRIMARY KEY (directory, n)
);
"""

# Expired directory entries removed per publish: keeps every publish's work bounded.
_SWEEP_BATCH = 16


class SqliteStore(Store):
    def __init__(self, path: str | Path, retention: Retention | None = None, *,
                 rng: RandomSource = system_random) -> None:
        super().__init__(retention or Retention())
        self._db = sqlite3.connect(str(path), isolation_level=None)
        # One hub process per file: notifications do not cross processes, so a second hub on
        # the same file would serve stale subscriptions. The exclusive lock makes it fail fast.
        self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
        self._db.execute("PRAGMA busy_timeout=500")
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives a killed process; only an OS crash or power
            # loss can drop the last transactions, which clients then retry by message id.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("BEGIN IMMEDIATE")  # take the lock now, not at the first request
            self._db.execute("COMMIT")
        except sqlite3.OperationalError:
            self._db.close()
            raise UsageError("the SQLite file is in use by another hub process") from None
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        tables = int(self._db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0])
        if version != SCHEMA_VERSION and (version != 0 or tables):
            self._db.close()
            raise UsageError("the SQLite file has another hub layout; start with a new file")
        # One transaction: the layout, its version and the incarnation exist together or not.
        self._db.executescript(
            "BEGIN IMMEDIATE;" + _SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};"
            f"INSERT OR IGNORE INTO meta VALUES ('incarnation', X'{rng(INCARNATION_LEN).hex()}');"
            "COMMIT;")
        row = self._db.execute("SELECT value FROM meta WHERE key = 'incarnation'").fetchone()
        self.incarnation = bytes(row[0])

    async def close(self) -> None:
        self._listeners.clear()
        self._db.close()

    def _meta(self, mailbox: bytes) -> tuple[int, int, int, int]:
        row = self._db.execute(
            "SELECT kind, pinned, head, trimmed FROM mailboxes WHERE id = ?", (mailbox,)
        ).fetchone()
        if row is None:
            raise ProtocolError("no such mailbox")
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    def _trim(self, mailbox: bytes, now_ms: int) -> int:
        """Apply group or control retention inside the current transaction; return the trim
        point."""
        kind, pinned, head, trimmed = self._meta(mailbox)
        if kind == Kind.INBOX or pinned:
            return trimmed
        ret = self.retention
        control = kind == Kind.CONTROL
        max_count = None if control else ret.group_max_count
        max_age = ret.control_max_age_ms if control else ret.group_max_age_ms
        new = trimmed if max_count is None else max(trimmed, head - max_count)
        row = self._db.execute(
            "SELECT MIN(seq) FROM entries WHERE mailbox = ? AND seq > ? AND t > ?",
            (mailbox, new, now_ms - max_age),
        ).fetchone()
        new = head if row[0] is None else max(new, int(row[0]) - 1)
        if new > trimmed:
            self._db.execute("DELETE FROM entries WHERE mailbox = ? AND seq <= ?", (mailbox, new))
            self._db.execute("UPDATE mailboxes SET trimmed = ? WHERE id = ?", (new, mailbox))
        return new

    def _transaction(self) -> _Tx:
        return _Tx(self._db)

    async def create(self, mailbox: bytes, kind: Kind, pinned: bool, now_ms: int, *,
                     may_create: bool = True) -> bool:
        check_create(kind, pinned)
        with self._transaction():
            row = self._db.execute("SELECT kind FROM mailboxes WHERE id = ?", (mailbox,)).fetchone()
            if row is None:
                if not may_create:
                    raise LimitExceeded(CREATE_QUOTA_REASON)
                self._db.execute("INSERT INTO mailboxes VALUES (?, ?, ?, 0, 0, 0)",
                                 (mailbox, int(kind), int(pinned)))
                return True
            if int(row[0]) != kind:
                raise ProtocolError("mailbox exists with another kind")
            return False

    async def info(self, mailbox: bytes) -> MailboxInfo | None:
        try:
            kind, pinned, head, trimmed = self._meta(mailbox)
        except ProtocolError:
            return None
        return MailboxInfo(Kind(kind), bool(pinned), head, trimmed)

    async def unpin(self, mailbox: bytes, now_ms: int) -> None:
        with self._transaction():
            self._meta(mailbox)
            self._db.execute("UPDATE mailboxes SET pinned = 0 WHERE id = ?", (mailbox,))
            self._trim(mailbox, now_ms)

    async def append(self, mailbox: bytes, msg_id: bytes, blob: bytes,
                     now_ms: int) -> AppendResult:
        ret = self.retention
        with self._transaction():
            self._meta(mailbox)
            cutoff = now_ms - ret.dedup_ttl_ms
            self._db.execute("DELETE FROM dedup WHERE t <= ?", (cutoff,))
            row = self._db.execute(
                "SELECT seq, t FROM dedup WHERE mailbox = ? AND msg_id = ?", (mailbox, msg_id)
            ).fetchone()
            if row is not None:
                return AppendResult(int(row[0]), int(row[1]), True)
            self._trim(mailbox, now_ms)
            kind, pinned, head, trimmed = self._meta(mailbox)
            if pinned and head - trimmed >= ret.pinned_max_count:
                raise LimitExceeded("pinned mailbox is full")
            if kind == Kind.INBOX and head - trimmed >= ret.inbox_max_count:
                raise LimitExceeded("inbox is full")
            if kind == Kind.CONTROL and head - trimmed >= ret.control_max_count:
                raise LimitExceeded("control mailbox is full")
            head += 1
            last_t = self._db.execute("SELECT last_t FROM mailboxes WHERE id = ?",
                                      (mailbox,)).fetchone()[0]
            t = max(now_ms, int(last_t))
            self._db.execute("INSERT INTO entries VALUES (?, ?, ?, ?)", (mailbox, head, t, blob))
            self._db.execute("UPDATE mailboxes SET head = ?, last_t = ? WHERE id = ?",
                             (head, t, mailbox))
            self._db.execute("INSERT INTO dedup VALUES (?, ?, ?, ?)", (mailbox, msg_id, head, t))
            self._trim(mailbox, now_ms)
        self._notify(mailbox)
        return AppendResult(head, t, False)

    async def read(self, mailbox: bytes, after: int, limit: int, max_bytes: int,
                   now_ms: int) -> ReadResult:
        with self._transaction():
            _, _, head, _ = self._meta(mailbox)
            if after > head:
                raise ProtocolError("cursor was never issued")
            trimmed = self._trim(mailbox, now_ms)
            rows = self._db.execute(
                "SELECT seq, t, blob FROM entries WHERE mailbox = ? AND seq > ? ORDER BY seq "
                "LIMIT ?", (mailbox, after, limit + 1),
            ).fetchall()
        retained = [Entry(int(seq), int(t), bytes(blob)) for seq, t, blob in rows]
        return select_entries(retained, after, trimmed, limit, max_bytes)

    async def ack(self, mailbox: bytes, cursor: int) -> None:
        with self._transaction():
            kind, _, head, trimmed = self._meta(mailbox)
            if kind != Kind.INBOX:
                raise ProtocolError("only inboxes are acknowledged")
            if cursor > head:
                raise ProtocolError("cursor was never issued")
            if cursor > trimmed:
                self._db.execute("DELETE FROM entries WHERE mailbox = ? AND seq <= ?",
                                 (mailbox, cursor))
                self._db.execute("UPDATE mailboxes SET trimmed = ? WHERE id = ?",
                                 (cursor, mailbox))

    def _drop_directories(self, ids: list[bytes]) -> None:
        for directory in ids:
            self._db.execute("DELETE FROM prekeys WHERE directory = ?", (directory,))
            self._db.execute("DELETE FROM join_keys WHERE directory = ?", (directory,))
            self._db.execute("DELETE FROM directories WHERE id = ?", (directory,))

    def _live(self, directory: bytes, now_ms: int) -> tuple[bytes, bytes | None, bytes | None,
                                                            int, int] | None:
        """(owner, bundle, last resort, next_n, next_j) of a live entry; an expired one is
        deleted. Inside a transaction."""
        row = self._db.execute(
            "SELECT owner, expires, bundle, last_resort, next_n, next_j FROM directories "
            "WHERE id = ?", (directory,)).fetchone()
        if row is None:
            return None
        if int(row[1]) <= now_ms:
            self._drop_directories([directory])
            return None
        return (bytes(row[0]), None if row[2] is None else bytes(row[2]),
                None if row[3] is None else bytes(row[3]), int(row[4]), int(row[5]))

    def _claim(self, directory: bytes, owner: bytes,
               now_ms: int) -> tuple[bytes, bytes | None, bytes | None, int, int] | None:
        """The live entry `owner` may publish to (None: a new one it may create)."""
        expired = self._db.execute("SELECT id FROM directories WHERE expires <= ? LIMIT ?",
                                   (now_ms, _SWEEP_BATCH)).fetchall()
        self._drop_directories([bytes(r[0]) for r in expired])
        entry = self._live(directory, now_ms)
        if entry is not None:
            if entry[0] != owner:
                raise ProtocolError(OTHER_OWNER_REASON)
            return entry
        owned = self._db.execute(
            "SELECT COUNT(*) FROM directories WHERE owner = ? AND expires > ?", (owner, now_ms)
        ).fetchone()[0]
        if owned >= self.retention.max_directories_per_owner:
            raise LimitExceeded(OWNER_CAP_REASON)
        self._db.execute("INSERT INTO directories VALUES (?, ?, 0, NULL, NULL, 0, 0)",
                         (directory, owner))
        return None

    async def publish(self, directory: bytes, owner: bytes, bundle: bytes,
                      prekeys: tuple[bytes, ...], now_ms: int) -> None:
        with self._transaction():
            entry = self._claim(directory, owner, now_ms)
            stored = self._db.execute(
                "SELECT COUNT(*) FROM prekeys WHERE directory = ?", (directory,)
            ).fetchone()[0]
            if stored + len(prekeys) > self.retention.max_prekeys:
                raise LimitExceeded("too many one-time prekeys")
            n = 0 if entry is None else entry[3]
            self._db.executemany(
                "INSERT INTO prekeys VALUES (?, ?, ?)",
                [(directory, n + i, pk) for i, pk in enumerate(prekeys)],
            )
            self._db.execute(
                "UPDATE directories SET bundle = ?, next_n = ?, expires = ? WHERE id = ?",
                (bundle, n + len(prekeys), now_ms + self.retention.directory_ttl_ms, directory),
            )

    async def take_bundle(self, directory: bytes, now_ms: int) -> TakenBundle:
        with self._transaction():
            entry = self._live(directory, now_ms)
            if entry is None or entry[1] is None:
                raise ProtocolError(NO_DIRECTORY_REASON)
            first = self._db.execute(
                "SELECT n, blob FROM prekeys WHERE directory = ? ORDER BY n LIMIT 1", (directory,)
            ).fetchone()
            prekey = None
            if first is not None:
                prekey = bytes(first[1])
                self._db.execute("DELETE FROM prekeys WHERE directory = ? AND n = ?",
                                 (directory, first[0]))
            remaining = self._db.execute(
                "SELECT COUNT(*) FROM prekeys WHERE directory = ?", (directory,)
            ).fetchone()[0]
        return TakenBundle(entry[1], prekey, int(remaining))

    async def publish_join_keys(self, directory: bytes, owner: bytes, last_resort: bytes | None,
                                join_keys: tuple[bytes, ...], now_ms: int) -> None:
        with self._transaction():
            entry = self._claim(directory, owner, now_ms)
            stored = self._db.execute(
                "SELECT COUNT(*) FROM join_keys WHERE directory = ?", (directory,)
            ).fetchone()[0]
            if stored + len(join_keys) > self.retention.max_join_keys:
                raise LimitExceeded("too many one-time join keys")
            j = 0 if entry is None else entry[4]
            self._db.executemany(
                "INSERT INTO join_keys VALUES (?, ?, ?)",
                [(directory, j + i, jk) for i, jk in enumerate(join_keys)],
            )
            self._db.execute(
                "UPDATE directories SET last_resort = COALESCE(?, last_resort), next_j = ?, "
                "expires = ? WHERE id = ?",
                (last_resort, j + len(join_keys), now_ms + self.retention.directory_ttl_ms,
                 directory),
            )

    async def take_join_key(self, directory: bytes, now_ms: int) -> TakenJoinKey:
        with self._transaction():
            entry = self._live(directory, now_ms)
            if entry is None:
                raise ProtocolError(NO_DIRECTORY_REASON)
            first = self._db.execute(
                "SELECT n, blob FROM join_keys WHERE directory = ? ORDER BY n LIMIT 1",
                (directory,)).fetchone()
            if first is None:
                if entry[2] is None:
                    raise ProtocolError(NO_JOIN_KEY_REASON)
                return TakenJoinKey(entry[2], True, 0)
            self._db.execute("DELETE FROM join_keys WHERE directory = ? AND n = ?",
                             (directory, first[0]))
            remaining = self._db.execute(
                "SELECT COUNT(*) FROM join_keys WHERE directory = ?", (directory,)
            ).fetchone()[0]
        return TakenJoinKey(bytes(first[1]), False, int(remaining))


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (typed refusals included)."""

    __slots__ = ("_db",)

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


__all__ = ["SqliteStore"]
