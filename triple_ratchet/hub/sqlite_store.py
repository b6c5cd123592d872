"""SQLite store: the embedded default (stdlib sqlite3, WAL, one process per database file).

One table of entries keyed by (mailbox, sequence); a mailbox row holds kind, pin, head and trim
point. Every method is one `BEGIN IMMEDIATE` transaction, so a hub killed at any moment leaves
either all of a write or none of it, and a put is acknowledged only after its commit.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from triple_ratchet.errors import LimitExceeded, ProtocolError, UsageError
from triple_ratchet.hub.frames import Entry, Kind
from triple_ratchet.hub.store import (
    CREATE_QUOTA_REASON,
    AppendResult,
    MailboxInfo,
    ReadResult,
    Retention,
    Store,
    TakenBundle,
    check_create,
    select_entries,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mailboxes (
    id BLOB PRIMARY KEY, kind INTEGER NOT NULL, pinned INTEGER NOT NULL,
    head INTEGER NOT NULL, trimmed INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
    mailbox BLOB NOT NULL, seq INTEGER NOT NULL, t INTEGER NOT NULL, blob BLOB NOT NULL,
    PRIMARY KEY (mailbox, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedup (
    mailbox BLOB NOT NULL, msg_id BLOB NOT NULL, seq INTEGER NOT NULL, t INTEGER NOT NULL,
    PRIMARY KEY (mailbox, msg_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_t ON dedup (t);
CREATE TABLE IF NOT EXISTS directories (
    id BLOB PRIMARY KEY, owner BLOB NOT NULL, bundle BLOB NOT NULL, next_n INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS prekeys (
    directory BLOB NOT NULL, n INTEGER NOT NULL, blob BLOB NOT NULL,
    PRIMARY KEY (directory, n)
) WITHOUT ROWID;
"""


class SqliteStore(Store):
    def __init__(self, path: str | Path, retention: Retention | None = None) -> None:
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
            self._db.executescript(_SCHEMA)
            self._db.execute("BEGIN IMMEDIATE")  # take the lock now, not at the first request
            self._db.execute("COMMIT")
        except sqlite3.OperationalError:
            self._db.close()
            raise UsageError("the SQLite file is in use by another hub process") from None

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
        """Apply group retention inside the current transaction; return the trim point."""
        kind, pinned, head, trimmed = self._meta(mailbox)
        if kind != Kind.GROUP or pinned:
            return trimmed
        ret = self.retention
        new = max(trimmed, head - ret.group_max_count)
        row = self._db.execute(
            "SELECT MIN(seq) FROM entries WHERE mailbox = ? AND seq > ? AND t > ?",
            (mailbox, new, now_ms - ret.group_max_age_ms),
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
                self._db.execute("INSERT INTO mailboxes VALUES (?, ?, ?, 0, 0)",
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
                "SELECT seq FROM dedup WHERE mailbox = ? AND msg_id = ?", (mailbox, msg_id)
            ).fetchone()
            if row is not None:
                return AppendResult(int(row[0]), True)
            self._trim(mailbox, now_ms)
            kind, pinned, head, trimmed = self._meta(mailbox)
            if pinned and head - trimmed >= ret.pinned_max_count:
                raise LimitExceeded("pinned mailbox is full")
            if kind == Kind.INBOX and head - trimmed >= ret.inbox_max_count:
                raise LimitExceeded("inbox is full")
            head += 1
            self._db.execute("INSERT INTO entries VALUES (?, ?, ?, ?)",
                             (mailbox, head, now_ms, blob))
            self._db.execute("UPDATE mailboxes SET head = ? WHERE id = ?", (head, mailbox))
            self._db.execute("INSERT INTO dedup VALUES (?, ?, ?, ?)",
                             (mailbox, msg_id, head, now_ms))
            self._trim(mailbox, now_ms)
        self._notify(mailbox)
        return AppendResult(head, False)

    async def read(self, mailbox: bytes, after: int, limit: int, max_bytes: int,
                   now_ms: int) -> ReadResult:
        with self._transaction():
            _, _, head, _ = self._meta(mailbox)
            if after > head:
                raise ProtocolError("cursor was never issued")
            trimmed = self._trim(mailbox, now_ms)
            rows = self._db.execute(
                "SELECT seq, blob FROM entries WHERE mailbox = ? AND seq > ? ORDER BY seq LIMIT ?",
                (mailbox, after, limit + 1),
            ).fetchall()
        retained = [Entry(int(seq), bytes(blob)) for seq, blob in rows]
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

    async def publish(self, directory: bytes, owner: bytes, bundle: bytes,
                      prekeys: tuple[bytes, ...]) -> None:
        with self._transaction():
            row = self._db.execute(
                "SELECT owner, next_n FROM directories WHERE id = ?", (directory,)
            ).fetchone()
            if row is not None and bytes(row[0]) != owner:
                raise ProtocolError("directory entry belongs to another access key")
            stored = self._db.execute(
                "SELECT COUNT(*) FROM prekeys WHERE directory = ?", (directory,)
            ).fetchone()[0]
            if stored + len(prekeys) > self.retention.max_prekeys:
                raise LimitExceeded("too many one-time prekeys")
            n = 0 if row is None else int(row[1])
            self._db.executemany(
                "INSERT INTO prekeys VALUES (?, ?, ?)",
                [(directory, n + i, pk) for i, pk in enumerate(prekeys)],
            )
            self._db.execute(
                "INSERT INTO directories VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "bundle = excluded.bundle, next_n = excluded.next_n",
                (directory, owner, bundle, n + len(prekeys)),
            )

    async def take_bundle(self, directory: bytes) -> TakenBundle:
        with self._transaction():
            row = self._db.execute(
                "SELECT bundle FROM directories WHERE id = ?", (directory,)
            ).fetchone()
            if row is None:
                raise ProtocolError("no such directory entry")
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
        return TakenBundle(bytes(row[0]), prekey, int(remaining))


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
