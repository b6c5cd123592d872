"""Hub wire frames: a sans-IO codec (no sockets, no clock), one WebSocket binary message each.

Every frame is `type (1 byte) ‖ body`, integers big-endian, fixed-size fields at fixed offsets and
at most one variable field that runs to the end of the frame unless it carries an explicit length.
Decoding is strict: unknown types, unknown flag bits, wrong lengths, trailing bytes and anything
over a limit raise `DecodeError` or `LimitExceeded`. The layouts are in spec/10-hub.md.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from triple_ratchet.errors import DecodeError, LimitExceeded
from triple_ratchet.hub.access import (
    MAILBOX_ID_LEN,
    MAX_ACCESS_PUBLIC_KEY_LEN,
    MAX_ACCESS_SIGNATURE_LEN,
    AccessProof,
)

# Version 2: entries carry the hub's acceptance time, deliveries the hub's current time, and
# cursors travel with the store incarnation they belong to (spec 10).
PROTOCOL_VERSION = 2
NONCE_LEN = 32
MSG_ID_LEN = 16
# A store history: created with the store, new whenever the store lost data (spec 10.2).
INCARNATION_LEN = 16

# One blob is one padded group message, welcome or DKG round message; COCKTAIL round-1 messages
# for the largest groups stay well below this, and so does a 1,000-member commit of version 2
# of the epoch change (1,000 sealings of 117 bytes plus framing, spec 12.2).
MAX_BLOB_SIZE = 256 * 1024
# Batches are filled up to this many bytes of entries (at least one entry, which always fits).
MAX_BATCH_BYTES = 1024 * 1024
MAX_BATCH_ENTRIES = 256
MAX_BUNDLE_SIZE = 8 * 1024
# A one-time prekey entry is a whole signed bundle (spec 03 signs each bundle with its
# one-time prekey, ~471 B for P-256, ~1.7 KB with a hybrid suite's ML-KEM prekey) plus what the
# app wraps around it, such as its inbox id.
MAX_PREKEY_SIZE = 4096
MAX_PREKEYS_PER_PUBLISH = 200
# A group join key (ASYNC-EPOCHS R7: identity, two public keys, expiry, inbox id, signature,
# ~450 B for P-256, ~1.7 KB with a hybrid suite's KEM receive key) plus what the app wraps around
# it; opaque to the hub like a prekey.
MAX_JOIN_KEY_SIZE = 4096
MAX_JOIN_KEYS_PER_PUBLISH = 200
MAX_REASON_LEN = 200
# Per entry on the wire: cursor (8), time (8), length (4).
ENTRY_OVERHEAD = 20
# Whole-message limits for the WebSocket layer (it refuses bigger messages before we see them).
MAX_CLIENT_FRAME = 64 + MAX_BLOB_SIZE
MAX_HUB_FRAME = 128 + MAX_BATCH_BYTES + MAX_BATCH_ENTRIES * ENTRY_OVERHEAD
CURSOR_MAX = 2**64 - 1


class Kind(enum.IntEnum):
    GROUP = 1
    INBOX = 2
    CONTROL = 3  # one per epoch change (ASYNC-EPOCHS): kept by age only, never by count


class ErrorCode(enum.IntEnum):
    MALFORMED = 1  # DecodeError: the frame is not well formed (the hub then closes)
    UNAUTHENTICATED = 2  # AuthenticationError: this connection has not opened that mailbox
    BAD_SIGNATURE = 3  # InvalidSignature: the access proof did not verify
    REFUSED = 4  # ProtocolError: unknown mailbox, kind conflict, cursor not issued, not owner
    LIMIT = 5  # LimitExceeded: rate limit, mailbox full, too many subscriptions
    UNSUPPORTED = 6  # UnsupportedError: protocol version or suite
    INTERNAL = 7  # the hub failed; retry later


class T(enum.IntEnum):
    HELLO = 0x01
    AUTH = 0x02
    CREATE = 0x03
    UNPIN = 0x04
    PUT = 0x05
    FETCH = 0x06
    SUBSCRIBE = 0x07
    UNSUBSCRIBE = 0x08
    ACK = 0x09
    PUBLISH = 0x0A
    TAKE_BUNDLE = 0x0B
    PUBLISH_JOIN_KEYS = 0x0C
    TAKE_JOIN_KEY = 0x0D
    CHALLENGE = 0x81
    OK = 0x82
    PUT_OK = 0x83
    BATCH = 0x84
    PUSH = 0x85
    RESYNC = 0x86
    BUNDLE = 0x87
    ERROR = 0x88
    JOIN_KEY = 0x89


# --- Client -> hub -------------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Auth:
    req: int
    proof: AccessProof


@dataclass(frozen=True)
class Create:
    req: int
    mailbox: bytes
    kind: Kind
    pinned: bool


@dataclass(frozen=True)
class Unpin:
    req: int
    mailbox: bytes


@dataclass(frozen=True, repr=False)
class Put:
    req: int
    mailbox: bytes
    msg_id: bytes
    blob: bytes

    def __repr__(self) -> str:
        return f"Put(req={self.req}, {len(self.blob)} bytes)"


@dataclass(frozen=True)
class Fetch:
    """`after` is a cursor of the store history `incarnation` (any value when `after` is 0)."""

    req: int
    mailbox: bytes
    incarnation: bytes
    after: int
    limit: int


@dataclass(frozen=True)
class Subscribe:
    req: int
    mailbox: bytes
    incarnation: bytes
    after: int


@dataclass(frozen=True)
class Unsubscribe:
    req: int
    mailbox: bytes


@dataclass(frozen=True)
class Ack:
    req: int
    mailbox: bytes
    incarnation: bytes
    cursor: int


@dataclass(frozen=True, repr=False)
class Publish:
    req: int
    directory: bytes
    owner: bytes
    bundle: bytes
    prekeys: tuple[bytes, ...]

    def __repr__(self) -> str:
        return f"Publish(req={self.req}, {len(self.prekeys)} prekeys)"


@dataclass(frozen=True)
class TakeBundle:
    req: int
    directory: bytes


@dataclass(frozen=True, repr=False)
class PublishJoinKeys:
    """Replace the last-resort group join key (when given) and add one-time join keys."""

    req: int
    directory: bytes
    owner: bytes
    last_resort: bytes | None
    join_keys: tuple[bytes, ...]

    def __repr__(self) -> str:
        return (f"PublishJoinKeys(req={self.req}, last_resort={self.last_resort is not None}, "
                f"{len(self.join_keys)} one-time)")


@dataclass(frozen=True)
class TakeJoinKey:
    req: int
    directory: bytes


ClientFrame = (
    Hello | Auth | Create | Unpin | Put | Fetch | Subscribe | Unsubscribe | Ack | Publish
    | TakeBundle | PublishJoinKeys | TakeJoinKey
)

# --- Hub -> client -------------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    version: int
    nonce: bytes
    max_blob: int
    incarnation: bytes  # the store history this hub serves now


@dataclass(frozen=True)
class Ok:
    req: int


@dataclass(frozen=True)
class PutOk:
    req: int
    cursor: int
    t: int  # the entry's acceptance time (the original one for a duplicate)
    duplicate: bool


@dataclass(frozen=True, repr=False)
class Entry:
    """An accepted blob: its cursor and its hub acceptance time `t` (Unix ms), the same for
    every reader and never decreasing within a mailbox."""

    cursor: int
    t: int
    blob: bytes

    def __repr__(self) -> str:
        return f"Entry(cursor={self.cursor}, t={self.t}, {len(self.blob)} bytes)"


@dataclass(frozen=True)
class Batch:
    """Answer to FETCH: entries after the cursor, the next cursor, and retention news. Cursors
    are of the store history `incarnation`; `hub_time` is the hub's clock when it answered."""

    req: int
    mailbox: bytes
    incarnation: bytes
    next_cursor: int
    hub_time: int
    fell_behind: bool
    more: bool
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Push:
    """Live delivery on a subscription; same meaning as a Batch without a request."""

    mailbox: bytes
    incarnation: bytes
    next_cursor: int
    hub_time: int
    fell_behind: bool
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Resync:
    """The live queue overflowed and the subscription was dropped: fetch after `cursor`, then
    subscribe again."""

    mailbox: bytes
    cursor: int


@dataclass(frozen=True, repr=False)
class Bundle:
    req: int
    bundle: bytes
    prekey: bytes | None
    remaining: int

    def __repr__(self) -> str:
        return f"Bundle(req={self.req}, prekey={self.prekey is not None}, left={self.remaining})"


@dataclass(frozen=True)
class Error:
    req: int  # 0: about the connection, not a request
    code: ErrorCode
    reason: str


@dataclass(frozen=True, repr=False)
class JoinKey:
    """Answer to TAKE_JOIN_KEY: the oldest one-time join key (now removed), or the last-resort
    one when none is left (`last_resort`); `remaining` one-time keys are left."""

    req: int
    last_resort: bool
    join_key: bytes
    remaining: int

    def __repr__(self) -> str:
        return f"JoinKey(req={self.req}, last_resort={self.last_resort}, left={self.remaining})"


HubFrame = Challenge | Ok | PutOk | Batch | Push | Resync | Bundle | Error | JoinKey


# --- Encoding ------------------------------------------------------------------------------


def _u32(v: int) -> bytes:
    return struct.pack(">I", v)


def _u64(v: int) -> bytes:
    return struct.pack(">Q", v)


def _entries(entries: tuple[Entry, ...]) -> bytes:
    out = [struct.pack(">H", len(entries))]
    for e in entries:
        out.append(struct.pack(">QQI", e.cursor, e.t, len(e.blob)))
        out.append(e.blob)
    return b"".join(out)


def encode(frame: ClientFrame | HubFrame) -> bytes:
    """Serialize a frame. Values are checked on decode; encode trusts its own callers."""
    match frame:
        case Hello(version):
            return bytes([T.HELLO, version])
        case Auth(req, p):
            return (
                bytes([T.AUTH]) + _u32(req) + p.mailbox_id + struct.pack(">HB", p.suite_id,
                                                                            len(p.public_key))
                + p.public_key + p.signature
            )
        case Create(req, mbx, kind, pinned):
            return bytes([T.CREATE]) + _u32(req) + mbx + bytes([kind, int(pinned)])
        case Unpin(req, mbx):
            return bytes([T.UNPIN]) + _u32(req) + mbx
        case Put(req, mbx, msg_id, blob):
            return bytes([T.PUT]) + _u32(req) + mbx + msg_id + blob
        case Fetch(req, mbx, inc, after, limit):
            return (bytes([T.FETCH]) + _u32(req) + mbx + inc + _u64(after)
                    + struct.pack(">H", limit))
        case Subscribe(req, mbx, inc, after):
            return bytes([T.SUBSCRIBE]) + _u32(req) + mbx + inc + _u64(after)
        case Unsubscribe(req, mbx):
            return bytes([T.UNSUBSCRIBE]) + _u32(req) + mbx
        case Ack(req, mbx, inc, cursor):
            return bytes([T.ACK]) + _u32(req) + mbx + inc + _u64(cursor)
        case Publish(req, directory, owner, bundle, prekeys):
            parts = [bytes([T.PUBLISH]), _u32(req), directory, owner, _u32(len(bundle)), bundle,
                     struct.pack(">H", len(prekeys))]
            for pk in prekeys:
                parts += [struct.pack(">H", len(pk)), pk]
            return b"".join(parts)
        case TakeBundle(req, directory):
            return bytes([T.TAKE_BUNDLE]) + _u32(req) + directory
        case PublishJoinKeys(req, directory, owner, last_resort, join_keys):
            parts = [bytes([T.PUBLISH_JOIN_KEYS]), _u32(req), directory, owner]
            parts += ([b"\x00"] if last_resort is None
                      else [b"\x01", struct.pack(">H", len(last_resort)), last_resort])
            parts.append(struct.pack(">H", len(join_keys)))
            for jk in join_keys:
                parts += [struct.pack(">H", len(jk)), jk]
            return b"".join(parts)
        case TakeJoinKey(req, directory):
            return bytes([T.TAKE_JOIN_KEY]) + _u32(req) + directory
        case Challenge(version, nonce, max_blob, inc):
            return bytes([T.CHALLENGE, version]) + nonce + _u32(max_blob) + inc
        case Ok(req):
            return bytes([T.OK]) + _u32(req)
        case PutOk(req, cursor, t, duplicate):
            return (bytes([T.PUT_OK]) + _u32(req) + _u64(cursor) + _u64(t)
                    + bytes([int(duplicate)]))
        case Batch(req, mbx, inc, nxt, now, behind, more, entries):
            flags = int(behind) | (int(more) << 1)
            return (bytes([T.BATCH]) + _u32(req) + mbx + inc + _u64(nxt) + _u64(now)
                    + bytes([flags]) + _entries(entries))
        case Push(mbx, inc, nxt, now, behind, entries):
            return (bytes([T.PUSH]) + mbx + inc + _u64(nxt) + _u64(now) + bytes([int(behind)])
                    + _entries(entries))
        case Resync(mbx, cursor):
            return bytes([T.RESYNC]) + mbx + _u64(cursor)
        case Bundle(req, bundle, prekey, remaining):
            pk = b"\x00" if prekey is None else b"\x01" + struct.pack(">H", len(prekey)) + prekey
            return bytes([T.BUNDLE]) + _u32(req) + _u32(len(bundle)) + bundle + pk + _u32(
                remaining)
        case Error(req, code, reason):
            return bytes([T.ERROR]) + _u32(req) + bytes([code]) + reason.encode("ascii")
        case JoinKey(req, last_resort, join_key, remaining):
            return (bytes([T.JOIN_KEY]) + _u32(req) + bytes([int(last_resort)])
                    + struct.pack(">H", len(join_key)) + join_key + _u32(remaining))
    raise TypeError(f"not a frame: {type(frame).__name__}")


# --- Decoding ------------------------------------------------------------------------------


class _Reader:
    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, n: int, what: str) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise DecodeError(f"frame truncated in {what}")
        out = self._data[self._pos:end]
        self._pos = end
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int(struct.unpack(">H", self.take(2, what))[0])

    def u32(self, what: str) -> int:
        return int(struct.unpack(">I", self.take(4, what))[0])

    def u64(self, what: str) -> int:
        return int(struct.unpack(">Q", self.take(8, what))[0])

    def flag(self, what: str) -> bool:
        v = self.u8(what)
        if v > 1:
            raise DecodeError(f"{what} must be 0 or 1")
        return v == 1

    def mailbox(self) -> bytes:
        return self.take(MAILBOX_ID_LEN, "mailbox id")

    def incarnation(self) -> bytes:
        return self.take(INCARNATION_LEN, "store incarnation")

    def rest(self) -> bytes:
        out = self._data[self._pos:]
        self._pos = len(self._data)
        return out

    def sized(self, length: int, limit: int, what: str) -> bytes:
        if length > limit:
            raise LimitExceeded(f"{what} longer than {limit} bytes")
        return self.take(length, what)

    def done(self) -> None:
        if self._pos != len(self._data):
            raise DecodeError("trailing bytes after frame")


def _blob(r: _Reader, what: str, limit: int) -> bytes:
    blob = r.rest()
    if not blob:
        raise DecodeError(f"{what} must not be empty")
    if len(blob) > limit:
        raise LimitExceeded(f"{what} longer than {limit} bytes")
    return blob


def _decode_entries(r: _Reader) -> tuple[Entry, ...]:
    count = r.u16("entry count")
    if count > MAX_BATCH_ENTRIES:
        raise LimitExceeded(f"more than {MAX_BATCH_ENTRIES} entries")
    entries: list[Entry] = []
    last, last_t = -1, 0
    for _ in range(count):
        cursor = r.u64("entry cursor")
        if cursor <= last:
            raise DecodeError("entry cursors must strictly increase")
        t = r.u64("entry time")
        if t < last_t:
            raise DecodeError("entry times must not decrease")
        last, last_t = cursor, t
        entries.append(Entry(cursor, t, r.sized(r.u32("entry length"), MAX_BLOB_SIZE, "entry")))
    return tuple(entries)


def _start(data: bytes, limit: int) -> tuple[_Reader, int]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError("frames are binary messages")
    # The size is checked before a bytearray or memoryview is copied.
    size = data.nbytes if isinstance(data, memoryview) else len(data)
    if size > limit:
        raise LimitExceeded(f"frame longer than {limit} bytes")
    data = bytes(data)
    r = _Reader(data)
    return r, r.u8("frame type")


def decode_client_frame(data: bytes) -> ClientFrame:
    """Decode a frame sent by a client (hub side)."""
    r, t = _start(data, MAX_CLIENT_FRAME)
    frame: ClientFrame
    if t == T.HELLO:
        frame = Hello(r.u8("version"))
    elif t == T.AUTH:
        req, mbx = r.u32("req"), r.mailbox()
        suite_id, pk_len = r.u16("suite id"), r.u8("key length")
        pk = r.sized(pk_len, MAX_ACCESS_PUBLIC_KEY_LEN, "access key")
        sig = _blob(r, "signature", MAX_ACCESS_SIGNATURE_LEN)
        frame = Auth(req, AccessProof(mbx, suite_id, pk, sig))
    elif t == T.CREATE:
        req, mbx, kind = r.u32("req"), r.mailbox(), r.u8("kind")
        if kind not in (Kind.GROUP, Kind.INBOX, Kind.CONTROL):
            raise DecodeError("unknown mailbox kind")
        frame = Create(req, mbx, Kind(kind), r.flag("pinned"))
    elif t == T.UNPIN:
        frame = Unpin(r.u32("req"), r.mailbox())
    elif t == T.PUT:
        req, mbx, msg_id = r.u32("req"), r.mailbox(), r.take(MSG_ID_LEN, "message id")
        frame = Put(req, mbx, msg_id, _blob(r, "blob", MAX_BLOB_SIZE))
    elif t == T.FETCH:
        req, mbx, inc = r.u32("req"), r.mailbox(), r.incarnation()
        after, limit = r.u64("cursor"), r.u16("limit")
        if not 1 <= limit <= MAX_BATCH_ENTRIES:
            raise DecodeError(f"fetch limit must be 1..{MAX_BATCH_ENTRIES}")
        frame = Fetch(req, mbx, inc, after, limit)
    elif t == T.SUBSCRIBE:
        frame = Subscribe(r.u32("req"), r.mailbox(), r.incarnation(), r.u64("cursor"))
    elif t == T.UNSUBSCRIBE:
        frame = Unsubscribe(r.u32("req"), r.mailbox())
    elif t == T.ACK:
        frame = Ack(r.u32("req"), r.mailbox(), r.incarnation(), r.u64("cursor"))
    elif t == T.PUBLISH:
        req, directory, owner = r.u32("req"), r.mailbox(), r.mailbox()
        bundle = r.sized(r.u32("bundle length"), MAX_BUNDLE_SIZE, "bundle")
        if not bundle:
            raise DecodeError("bundle must not be empty")
        count = r.u16("prekey count")
        if count > MAX_PREKEYS_PER_PUBLISH:
            raise LimitExceeded(f"more than {MAX_PREKEYS_PER_PUBLISH} prekeys in one publish")
        prekeys = []
        for _ in range(count):
            pk = r.sized(r.u16("prekey length"), MAX_PREKEY_SIZE, "prekey")
            if not pk:
                raise DecodeError("prekey must not be empty")
            prekeys.append(pk)
        frame = Publish(req, directory, owner, bundle, tuple(prekeys))
    elif t == T.TAKE_BUNDLE:
        frame = TakeBundle(r.u32("req"), r.mailbox())
    elif t == T.PUBLISH_JOIN_KEYS:
        req, directory, owner = r.u32("req"), r.mailbox(), r.mailbox()
        last_resort = _join_key(r) if r.flag("has last resort") else None
        count = r.u16("join key count")
        if count > MAX_JOIN_KEYS_PER_PUBLISH:
            raise LimitExceeded(f"more than {MAX_JOIN_KEYS_PER_PUBLISH} join keys in one publish")
        join_keys = tuple(_join_key(r) for _ in range(count))
        if last_resort is None and not join_keys:
            raise DecodeError("a join key publish must carry a key")
        frame = PublishJoinKeys(req, directory, owner, last_resort, join_keys)
    elif t == T.TAKE_JOIN_KEY:
        frame = TakeJoinKey(r.u32("req"), r.mailbox())
    else:
        raise DecodeError(f"unknown client frame type 0x{t:02x}")
    r.done()
    return frame


def decode_hub_frame(data: bytes) -> HubFrame:
    """Decode a frame sent by the hub (client side)."""
    r, t = _start(data, MAX_HUB_FRAME)
    frame: HubFrame
    if t == T.CHALLENGE:
        frame = Challenge(r.u8("version"), r.take(NONCE_LEN, "nonce"), r.u32("max blob"),
                          r.incarnation())
    elif t == T.OK:
        frame = Ok(r.u32("req"))
    elif t == T.PUT_OK:
        frame = PutOk(r.u32("req"), r.u64("cursor"), r.u64("time"), r.flag("duplicate"))
    elif t == T.BATCH:
        req, mbx, inc = r.u32("req"), r.mailbox(), r.incarnation()
        nxt, now, flags = r.u64("cursor"), r.u64("hub time"), r.u8("flags")
        if flags & ~0x03:
            raise DecodeError("unknown batch flags")
        entries = _decode_entries(r)
        _check_next(nxt, entries)
        frame = Batch(req, mbx, inc, nxt, now, bool(flags & 1), bool(flags & 2), entries)
    elif t == T.PUSH:
        mbx, inc = r.mailbox(), r.incarnation()
        nxt, now, behind = r.u64("cursor"), r.u64("hub time"), r.flag("fell behind")
        entries = _decode_entries(r)
        _check_next(nxt, entries)
        frame = Push(mbx, inc, nxt, now, behind, entries)
    elif t == T.RESYNC:
        frame = Resync(r.mailbox(), r.u64("cursor"))
    elif t == T.BUNDLE:
        req = r.u32("req")
        bundle = r.sized(r.u32("bundle length"), MAX_BUNDLE_SIZE, "bundle")
        prekey = (
            r.sized(r.u16("prekey length"), MAX_PREKEY_SIZE, "prekey")
            if r.flag("has prekey") else None
        )
        frame = Bundle(req, bundle, prekey, r.u32("remaining"))
    elif t == T.ERROR:
        req, code = r.u32("req"), r.u8("code")
        try:
            error_code = ErrorCode(code)
        except ValueError:
            raise DecodeError("unknown error code") from None
        raw = r.rest()
        if len(raw) > MAX_REASON_LEN or not raw.isascii():
            raise DecodeError("error reason must be short ASCII")
        frame = Error(req, error_code, raw.decode("ascii"))
    elif t == T.JOIN_KEY:
        req, last_resort = r.u32("req"), r.flag("last resort")
        frame = JoinKey(req, last_resort, _join_key(r), r.u32("remaining"))
    else:
        raise DecodeError(f"unknown hub frame type 0x{t:02x}")
    r.done()
    return frame


def _join_key(r: _Reader) -> bytes:
    key = r.sized(r.u16("join key length"), MAX_JOIN_KEY_SIZE, "join key")
    if not key:
        raise DecodeError("join key must not be empty")
    return key


def _check_next(next_cursor: int, entries: tuple[Entry, ...]) -> None:
    if entries and next_cursor != entries[-1].cursor:
        raise DecodeError("next cursor must be the last entry's cursor")


__all__ = [
    "INCARNATION_LEN",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_ENTRIES",
    "MAX_BLOB_SIZE",
    "MAX_CLIENT_FRAME",
    "MAX_HUB_FRAME",
    "MAX_JOIN_KEYS_PER_PUBLISH",
    "MAX_JOIN_KEY_SIZE",
    "MSG_ID_LEN",
    "PROTOCOL_VERSION",
    "Ack",
    "Auth",
    "Batch",
    "Bundle",
    "Challenge",
    "ClientFrame",
    "Create",
    "Entry",
    "Error",
    "ErrorCode",
    "Fetch",
    "Hello",
    "HubFrame",
    "JoinKey",
    "Kind",
    "Ok",
    "Publish",
    "PublishJoinKeys",
    "Push",
    "Put",
    "PutOk",
    "Resync",
    "Subscribe",
    "TakeBundle",
    "TakeJoinKey",
    "Unpin",
    "Unsubscribe",
    "decode_client_frame",
    "decode_hub_frame",
    "encode",
]
