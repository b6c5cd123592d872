"""Where a client keeps its state: a small storage-provider interface and two stores.

`Store` is the interface (like OpenMLS's StorageProvider): named tables of byte keys and byte
values, changed only inside a transaction that commits whole or not at all. `SQLiteStore` keeps
them in one SQLite file per device (WAL, `synchronous=FULL`: a commit survives a power cut);
`MemoryStore` keeps them in memory for tests.

`SealedStore` puts every value through `storage.seal_state` before it reaches the store, so no
key material or session state is ever on disk in the clear (spec/15-client.md "The store"). Its
key comes from the application: 32 bytes from the platform keystore (`StorageKey`), or a
passphrase through Argon2id (`Passphrase`). The salt and the KDF's parameters are in the store's
header row, with a check value that makes a wrong key an `AuthenticationError` before anything
is read or written.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from triple_ratchet import cbor
from triple_ratchet.errors import AuthenticationError, DecodeError, UsageError
from triple_ratchet.random import system_random
from triple_ratchet.storage import STORAGE_KEY_LEN, open_state, seal_state

LABEL_CLIENT_STORE_SEAL = b"triple-ratchet client store seal"
LABEL_CLIENT_STORE_ROW = b"triple-ratchet client store row"
_HEADER_WIRE = "triple-ratchet client store"
_HEADER_VERSION = 1
_HEADER_TABLE = "header"
STORE_ID_LEN = 16
SALT_LEN = 16
MAX_VALUE_LEN = 80 * 1024 * 1024  # a group session state may reach 64 MiB


class Transaction(Protocol):
    """What a store's transaction offers: reads see the transaction's own writes."""

    def get(self, table: str, key: bytes) -> bytes | None: ...
    def put(self, table: str, key: bytes, value: bytes) -> None: ...
    def delete(self, table: str, key: bytes) -> None: ...
    def items(self, table: str) -> list[tuple[bytes, bytes]]: ...


class Store(Protocol):
    """A storage provider: `with store.transaction() as tx:` commits on a normal exit and
    changes nothing when the block raises."""

    def transaction(self) -> contextlib.AbstractContextManager[Transaction]: ...
    def close(self) -> None: ...


# --- the two stores -------------------------------------------------------------------------


class MemoryStore:
    """Tables in a dict (tests, or an app that keeps its state elsewhere)."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[bytes, bytes]] = {}

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        working = {name: dict(rows) for name, rows in self.tables.items()}
        yield _DictTransaction(working)
        self.tables = working  # only reached when the block did not raise

    def close(self) -> None:
        pass


@dataclass
class _DictTransaction:
    tables: dict[str, dict[bytes, bytes]]

    def get(self, table: str, key: bytes) -> bytes | None:
        return self.tables.get(table, {}).get(key)

    def put(self, table: str, key: bytes, value: bytes) -> None:
        self.tables.setdefault(table, {})[bytes(key)] = bytes(value)

    def delete(self, table: str, key: bytes) -> None:
        self.tables.get(table, {}).pop(key, None)

    def items(self, table: str) -> list[tuple[bytes, bytes]]:
        return sorted(self.tables.get(table, {}).items())


class SQLiteStore:
    """One SQLite file per device. Every change is one `BEGIN IMMEDIATE ... COMMIT`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        # isolation_level=None: we write BEGIN/COMMIT ourselves (no implicit transactions).
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=1.0)
        try:
            # One process per device file: the lock is taken now and held until close (a
            # killed process's lock goes with it).
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("CREATE TABLE IF NOT EXISTS rows (tbl TEXT NOT NULL, "
                             "id BLOB NOT NULL, value BLOB NOT NULL, PRIMARY KEY (tbl, id)) "
                             "WITHOUT ROWID")
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            self._db.close()
            if "locked" in str(exc):
                raise UsageError("the store is open in another process") from None
            raise DecodeError("not a client store (the file is not an SQLite database)") from None
        except sqlite3.DatabaseError:
            self._db.close()
            raise DecodeError("not a client store (the file is not an SQLite database)") from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield _SQLiteTransaction(self._db)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()


@dataclass
class _SQLiteTransaction:
    db: sqlite3.Connection

    def get(self, table: str, key: bytes) -> bytes | None:
        row = self.db.execute("SELECT value FROM rows WHERE tbl = ? AND id = ?",
                              (table, key)).fetchone()
        return None if row is None else bytes(row[0])

    def put(self, table: str, key: bytes, value: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO rows VALUES (?, ?, ?)", (table, key, value))

    def delete(self, table: str, key: bytes) -> None:
        self.db.execute("DELETE FROM rows WHERE tbl = ? AND id = ?", (table, key))

    def items(self, table: str) -> list[tuple[bytes, bytes]]:
        return [(bytes(k), bytes(v)) for k, v in self.db.execute(
            "SELECT id, value FROM rows WHERE tbl = ? ORDER BY id", (table,))]


# --- the storage key ------------------------------------------------------------------------


@dataclass(frozen=True)
class StorageKey:
    """32 bytes the application keeps in the platform keystore."""

    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key, bytes) or len(self.key) != STORAGE_KEY_LEN:
            raise UsageError(f"a storage key is {STORAGE_KEY_LEN} bytes")

    @classmethod
    def generate(cls) -> StorageKey:
        return cls(system_random(STORAGE_KEY_LEN))


@dataclass(frozen=True)
class Passphrase:
    """A passphrase, stretched with Argon2id (RFC 9106's second recommended setting by
    default: 64 MiB, 3 passes). A new store records the parameters in its header; an existing
    one uses the recorded ones."""

    text: str = field(repr=False)
    memory_kib: int = 64 * 1024
    iterations: int = 3
    lanes: int = 4

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text:
            raise UsageError("a passphrase is a non-empty string")
        if not (8 * self.lanes <= self.memory_kib <= 4 * 1024 * 1024
                and 1 <= self.iterations <= 64 and 1 <= self.lanes <= 16):
            raise UsageError("Argon2id parameters out of range")


def _argon2id(text: str, salt: bytes, memory_kib: int, iterations: int, lanes: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id  # cryptography >= 44

    return Argon2id(salt=salt, length=STORAGE_KEY_LEN, iterations=iterations, lanes=lanes,
                    memory_cost=memory_kib).derive(text.encode("utf-8"))


def _expand(master: bytes, label: bytes, store_id: bytes) -> bytes:
    return HKDF(hashes.SHA256(), STORAGE_KEY_LEN, salt=None,
                info=label + store_id).derive(master)


# --- the sealed store ----------------------------------------------------------------------


class SealedStore:
    """A `Store` whose values are sealed (XChaCha20-Poly1305, `storage.seal_state`) and whose
    row ids are keyed hashes: the file shows table names, row counts and sizes, nothing else.
    Each sealed value names its table, key and store, so a row moved to another place or copied
    from another store is an `AuthenticationError` when read, like a changed one."""

    def __init__(self, store: Store, secret: StorageKey | Passphrase) -> None:
        self.store = store
        with store.transaction() as tx:
            raw = tx.get(_HEADER_TABLE, b"")
            if raw is None:
                header = self._new_header(secret)
                tx.put(_HEADER_TABLE, b"", header)
            else:
                self._master(raw, secret)

    def _new_header(self, secret: StorageKey | Passphrase) -> bytes:
        self.store_id = system_random(STORE_ID_LEN)
        if isinstance(secret, Passphrase):
            salt = system_random(SALT_LEN)
            params = [secret.memory_kib, secret.iterations, secret.lanes]
            master = _argon2id(secret.text, salt, *params)
            kdf = "argon2id"
        else:
            salt, params, master, kdf = b"", [], secret.key, "key"
        self._keys(master)
        check = seal_state(self._seal_key, cbor.encode(["check", self.store_id]))
        return cbor.encode([_HEADER_WIRE, _HEADER_VERSION, self.store_id, kdf, salt, params,
                            check])

    def _master(self, raw: bytes, secret: StorageKey | Passphrase) -> None:
        f = cbor.as_list(cbor.decode(raw, max_size=1024, max_items=16), "store header", 7)
        if f[0] != _HEADER_WIRE or f[1] != _HEADER_VERSION:
            raise DecodeError("not a client store header of a known version")
        self.store_id = cbor.as_bytes(f[2], "store id", length=STORE_ID_LEN)
        kdf = cbor.as_str(f[3], "kdf", max_length=16)
        salt = cbor.as_bytes(f[4], "salt", max_length=64)
        params = [cbor.as_int(p, "kdf parameter", maximum=4 * 1024 * 1024)
                  for p in cbor.as_list(f[5], "kdf parameters")]
        if kdf == "key":
            if not isinstance(secret, StorageKey):
                raise UsageError("this store was made with a storage key, not a passphrase")
            master = secret.key
        elif kdf == "argon2id" and len(params) == 3:
            if not isinstance(secret, Passphrase):
                raise UsageError("this store was made with a passphrase, not a storage key")
            Passphrase(secret.text, *params)  # the recorded parameters are in range
            master = _argon2id(secret.text, salt, *params)
        else:
            raise DecodeError("store header names an unknown key derivation")
        self._keys(master)
        check = open_state(self._seal_key, cbor.as_bytes(f[6], "check"))  # AuthenticationError
        if check != cbor.encode(["check", self.store_id]):
            raise AuthenticationError("store header check value is wrong")

    def _keys(self, master: bytes) -> None:
        self._seal_key = _expand(master, LABEL_CLIENT_STORE_SEAL, self.store_id)
        self._row_key = _expand(master, LABEL_CLIENT_STORE_ROW, self.store_id)

    def row_id(self, table: str, key: bytes) -> bytes:
        return hmac.new(self._row_key, table.encode() + b"\x00" + key, hashlib.sha256).digest()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self.store.transaction() as tx:
            yield _SealedTransaction(self, tx)

    def seal(self, table: str, key: bytes, value: bytes) -> bytes:
        return seal_state(self._seal_key, cbor.encode([table, key, self.store_id, value]))

    def open(self, table: str, key: bytes | None, sealed: bytes) -> tuple[bytes, bytes]:
        """(key, value) of a sealed row; `AuthenticationError` if it was changed, moved or
        copied from another store."""
        plain = open_state(self._seal_key, sealed)
        f = cbor.as_list(cbor.decode(plain, max_size=MAX_VALUE_LEN, max_items=8), "row", 4)
        row_key = cbor.as_bytes(f[1], "row key", max_length=1024)
        if f[0] != table or f[2] != self.store_id or (key is not None and row_key != key):
            raise AuthenticationError("a stored row is not the one asked for")
        return row_key, cbor.as_bytes(f[3], "row value")

    def close(self) -> None:
        self.store.close()


@dataclass
class _SealedTransaction:
    sealed: SealedStore
    tx: Transaction

    def get(self, table: str, key: bytes) -> bytes | None:
        raw = self.tx.get(table, self.sealed.row_id(table, key))
        return None if raw is None else self.sealed.open(table, key, raw)[1]

    def put(self, table: str, key: bytes, value: bytes) -> None:
        self.tx.put(table, self.sealed.row_id(table, key), self.sealed.seal(table, key, value))

    def delete(self, table: str, key: bytes) -> None:
        self.tx.delete(table, self.sealed.row_id(table, key))

    def items(self, table: str) -> list[tuple[bytes, bytes]]:
        out = []
        for row_id, raw in self.tx.items(table):
            key, value = self.sealed.open(table, None, raw)
            if not hmac.compare_digest(row_id, self.sealed.row_id(table, key)):
                raise AuthenticationError("a stored row is not where its key puts it")
            out.append((key, value))
        return sorted(out)


__all__ = [
    "LABEL_CLIENT_STORE_ROW",
    "LABEL_CLIENT_STORE_SEAL",
    "MemoryStore",
    "Passphrase",
    "SQLiteStore",
    "SealedStore",
    "StorageKey",
    "Store",
    "Transaction",
]
