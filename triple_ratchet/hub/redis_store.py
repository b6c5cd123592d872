"""Redis store: one stream per mailbox, shared by several hub processes.

Every operation is one Lua script (atomic in Redis): dedup, append and exact trim happen together,
so two hubs appending to one mailbox still get one total order and no duplicate. Stream entry ids
are `<cursor>-0`, so the hub's cursor is the stream id and trimming is `XTRIM MINID` (exact, never
the approximate `~` form). After each append the script publishes the mailbox id on one pub/sub
channel; every hub process listens and wakes its own subscribers.

Keys (all share the mailbox's hash tag so a cluster keeps them on one shard):
`<prefix>{<hex id>}:m` hash kind/pinned/head/trimmed, `:s` the stream, `:d:<hex msg id>` a dedup
record "cursor:time", and for the prekey directory `:b` hash owner/bundle and `:p` list of prekeys.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import parse_url

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

# Shared Lua: group retention (count then age, as one prefix), for the mailbox in KEYS[1..2].
_TRIM = """
local function trim(meta, stream, now, maxcount, maxage)
  local m = redis.call('HMGET', meta, 'kind', 'pinned', 'head', 'trimmed')
  local trimmed = tonumber(m[4])
  if m[1] ~= '1' or m[2] == '1' then return trimmed end
  local head = tonumber(m[3])
  local new = trimmed
  if head - new > maxcount then new = head - maxcount end
  local cutoff = now - maxage
  local done = false
  local batch = 1  -- usually only the oldest entry needs a look; grow while entries expire
  while not done and new < head do
    local es = redis.call('XRANGE', stream, (new + 1) .. '-0', '+', 'COUNT', batch)
    if batch < 256 then batch = batch * 4 end
    if #es == 0 then break end
    for _, e in ipairs(es) do
      local f = e[2]
      local t = nil
      for i = 1, #f, 2 do if f[i] == 't' then t = tonumber(f[i + 1]) end end
      if t <= cutoff then
        new = tonumber(string.match(e[1], '^(%d+)-'))
      else
        done = true
        break
      end
    end
  end
  if new > trimmed then
    redis.call('XTRIM', stream, 'MINID', (new + 1) .. '-0')
    redis.call('HSET', meta, 'trimmed', new)
  end
  return new
end
"""

# KEYS: meta. ARGV: kind, pinned, may_create. -> 1 created, 0 exists, -1 kind conflict,
# -2 absent and the caller may not create
_CREATE = """
local kind = redis.call('HGET', KEYS[1], 'kind')
if not kind then
  if ARGV[3] ~= '1' then return -2 end
  redis.call('HSET', KEYS[1], 'kind', ARGV[1], 'pinned', ARGV[2], 'head', 0, 'trimmed', 0)
  return 1
end
if kind ~= ARGV[1] then return -1 end
return 0
"""

# KEYS: meta, stream. ARGV: now, maxcount, maxage. -> 1, or 0 not found
_UNPIN = _TRIM + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'pinned', '0')
trim(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
return 1
"""

# KEYS: meta, stream, dedup. ARGV: blob, now, maxcount, maxage, pinned_max, inbox_max,
# dedup_ttl, channel, mailbox id. -> {1, cursor} new, {2, cursor} duplicate, {0} not found,
# {-1} pinned full, {-2} inbox full
_APPEND = _TRIM + """
local m = redis.call('HMGET', KEYS[1], 'kind', 'pinned')
if not m[1] then return {0} end
local now = tonumber(ARGV[2])
local d = redis.call('GET', KEYS[3])
if d then
  local seq, t = string.match(d, '^(%d+):(%d+)$')
  if tonumber(t) > now - tonumber(ARGV[7]) then return {2, tonumber(seq)} end
end
local trimmed = trim(KEYS[1], KEYS[2], now, tonumber(ARGV[3]), tonumber(ARGV[4]))
local head = tonumber(redis.call('HGET', KEYS[1], 'head'))
if m[2] == '1' and head - trimmed >= tonumber(ARGV[5]) then return {-1} end
if m[1] == '2' and head - trimmed >= tonumber(ARGV[6]) then return {-2} end
head = head + 1
redis.call('XADD', KEYS[2], head .. '-0', 't', ARGV[2], 'b', ARGV[1])
redis.call('HSET', KEYS[1], 'head', head)
redis.call('SET', KEYS[3], head .. ':' .. ARGV[2], 'PX', ARGV[7])
trim(KEYS[1], KEYS[2], now, tonumber(ARGV[3]), tonumber(ARGV[4]))
redis.call('PUBLISH', ARGV[8], ARGV[9])
return {1, head}
"""

# KEYS: meta, stream. ARGV: after, count, now, maxcount, maxage.
# -> {1, trimmed, id, blob, id, blob...}, {0} not found, {-1} cursor never issued
_READ = _TRIM + """
local head = redis.call('HGET', KEYS[1], 'head')
if not head then return {0} end
local after = tonumber(ARGV[1])
if after > tonumber(head) then return {-1} end
local trimmed = trim(KEYS[1], KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
local out = {1, trimmed}
local es = redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', '+', 'COUNT', tonumber(ARGV[2]))
for _, e in ipairs(es) do
  local f = e[2]
  local b = nil
  for i = 1, #f, 2 do if f[i] == 'b' then b = f[i + 1] end end
  out[#out + 1] = tonumber(string.match(e[1], '^(%d+)-'))
  out[#out + 1] = b
end
return out
"""

# KEYS: meta, stream. ARGV: cursor. -> 1, 0 not found, -1 not an inbox, -2 never issued
_ACK = """
local m = redis.call('HMGET', KEYS[1], 'kind', 'head', 'trimmed')
if not m[1] then return 0 end
if m[1] ~= '2' then return -1 end
local cursor = tonumber(ARGV[1])
if cursor > tonumber(m[2]) then return -2 end
if cursor > tonumber(m[3]) then
  redis.call('XTRIM', KEYS[2], 'MINID', (cursor + 1) .. '-0')
  redis.call('HSET', KEYS[1], 'trimmed', cursor)
end
return 1
"""

# KEYS: directory hash, prekey list. ARGV: owner, bundle, max_prekeys, prekeys...
# -> 1, -1 other owner, -2 too many
_PUBLISH = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] then return -1 end
if redis.call('LLEN', KEYS[2]) + #ARGV - 3 > tonumber(ARGV[3]) then return -2 end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'bundle', ARGV[2])
for i = 4, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
return 1
"""

# KEYS: directory hash, prekey list. -> {bundle, prekey or false, remaining} or {} if absent
_TAKE = """
local bundle = redis.call('HGET', KEYS[1], 'bundle')
if not bundle then return {} end
local pk = redis.call('LPOP', KEYS[2])
return {bundle, pk, redis.call('LLEN', KEYS[2])}
"""


# The connection pool: blocking and bounded. Redis runs one script at a time, so a few dozen
# links keep it busy; store calls beyond the pool wait (up to POOL_TIMEOUT) for a free link
# instead of failing with "Too many connections" (the client library's default pool). One link
# stays with the pub/sub listener.
POOL_SIZE = 64
POOL_TIMEOUT = 10.0
# A dead Redis must be noticed, not waited for: connecting and each reply are bounded.
SOCKET_CONNECT_TIMEOUT = 5.0
SOCKET_TIMEOUT = 10.0


def pool_options(url: str, pool_size: int | None = None,
                 pool_timeout: float | None = None) -> dict[str, Any]:
    """The pool's settings: the defaults above, then the URL's query parameters
    (`max_connections`, `timeout`, `socket_timeout`, ...), then explicit arguments."""
    options: dict[str, Any] = {"max_connections": POOL_SIZE, "timeout": POOL_TIMEOUT,
                               "socket_connect_timeout": SOCKET_CONNECT_TIMEOUT,
                               "socket_timeout": SOCKET_TIMEOUT}
    try:
        options.update(parse_url(url))
    except ValueError as exc:
        raise UsageError(f"bad Redis URL: {exc}") from None
    if pool_size is not None:
        options["max_connections"] = pool_size
    if pool_timeout is not None:
        options["timeout"] = pool_timeout
    if not isinstance(options["max_connections"], int) or options["max_connections"] < 2:
        raise UsageError("the Redis pool needs at least 2 connections (one is pub/sub's)")
    return options


class RedisStore(Store):
    def __init__(self, url: str, retention: Retention | None = None, *,
                 prefix: str = "trh:", pool_size: int | None = None,
                 pool_timeout: float | None = None) -> None:
        super().__init__(retention or Retention())
        self.pool = aioredis.BlockingConnectionPool(**pool_options(url, pool_size,
                                                                   pool_timeout))
        self._redis: Any = aioredis.Redis.from_pool(self.pool)
        self._prefix = prefix
        self._channel = f"{prefix}notify".encode()
        self._scripts = {
            name: self._redis.register_script(src)
            for name, src in (("create", _CREATE), ("unpin", _UNPIN), ("append", _APPEND),
                              ("read", _READ), ("ack", _ACK), ("publish", _PUBLISH),
                              ("take", _TAKE))
        }
        self._listener_task: asyncio.Task[None] | None = None

    def _key(self, ident: bytes, suffix: str) -> str:
        return f"{self._prefix}{{{ident.hex()}}}:{suffix}"

    def _mbx(self, mailbox: bytes) -> list[str]:
        return [self._key(mailbox, "m"), self._key(mailbox, "s")]

    async def start(self) -> None:
        await self._redis.ping()
        ready = asyncio.Event()
        self._listener_task = asyncio.create_task(self._listen(ready))
        await ready.wait()

    async def _listen(self, ready: asyncio.Event) -> None:
        """Forward pub/sub notifications to the listeners, resubscribing after a lost link.

        Pub/sub is at-most-once, so after every (re)subscription every subscriber is woken
        (`None`) to re-read the store: a notification lost while the link was down costs a read,
        never a message.
        """
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                for listener in self._listeners:
                    listener(None)
                ready.set()
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is not None and msg.get("type") == "message":
                        data = msg["data"]
                        if isinstance(data, bytes) and len(data) == 32:
                            for listener in self._listeners:
                                listener(data)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                raise
            except Exception:  # the Redis link dropped: retry, then wake everyone
                ready.set()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                await asyncio.sleep(0.2)

    async def close(self) -> None:
        self._listeners.clear()
        if self._listener_task is not None:
            self._listener_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener_task
        await self._redis.aclose()

    def _trim_args(self, now_ms: int) -> list[int]:
        r = self.retention
        return [now_ms, r.group_max_count, r.group_max_age_ms]

    async def create(self, mailbox: bytes, kind: Kind, pinned: bool, now_ms: int, *,
                     may_create: bool = True) -> bool:
        check_create(kind, pinned)
        result = int(await self._scripts["create"](
            keys=[self._key(mailbox, "m")], args=[int(kind), int(pinned), int(may_create)]))
        if result == -1:
            raise ProtocolError("mailbox exists with another kind")
        if result == -2:
            raise LimitExceeded(CREATE_QUOTA_REASON)
        return result == 1

    async def info(self, mailbox: bytes) -> MailboxInfo | None:
        m = await self._redis.hmget(self._key(mailbox, "m"), "kind", "pinned", "head", "trimmed")
        if m[0] is None:
            return None
        return MailboxInfo(Kind(int(m[0])), m[1] == b"1", int(m[2]), int(m[3]))

    async def unpin(self, mailbox: bytes, now_ms: int) -> None:
        result = await self._scripts["unpin"](keys=self._mbx(mailbox),
                                              args=self._trim_args(now_ms))
        if int(result) == 0:
            raise ProtocolError("no such mailbox")

    async def append(self, mailbox: bytes, msg_id: bytes, blob: bytes,
                     now_ms: int) -> AppendResult:
        r = self.retention
        result = await self._scripts["append"](
            keys=[*self._mbx(mailbox), self._key(mailbox, "d:" + msg_id.hex())],
            args=[blob, now_ms, r.group_max_count, r.group_max_age_ms, r.pinned_max_count,
                  r.inbox_max_count, r.dedup_ttl_ms, self._channel, mailbox],
        )
        code = int(result[0])
        if code == 0:
            raise ProtocolError("no such mailbox")
        if code == -1:
            raise LimitExceeded("pinned mailbox is full")
        if code == -2:
            raise LimitExceeded("inbox is full")
        # No local notification: the script's PUBLISH reaches this process too, and a second
        # wake would only cost every local subscriber another read.
        return AppendResult(int(result[1]), code == 2)

    async def read(self, mailbox: bytes, after: int, limit: int, max_bytes: int,
                   now_ms: int) -> ReadResult:
        r = self.retention
        result = await self._scripts["read"](
            keys=self._mbx(mailbox),
            args=[after, limit + 1, now_ms, r.group_max_count, r.group_max_age_ms],
        )
        code = int(result[0])
        if code == 0:
            raise ProtocolError("no such mailbox")
        if code == -1:
            raise ProtocolError("cursor was never issued")
        trimmed = int(result[1])
        flat = result[2:]
        retained = [Entry(int(flat[i]), bytes(flat[i + 1])) for i in range(0, len(flat), 2)]
        return select_entries(retained, after, trimmed, limit, max_bytes)

    async def ack(self, mailbox: bytes, cursor: int) -> None:
        result = int(await self._scripts["ack"](keys=self._mbx(mailbox), args=[cursor]))
        if result == 0:
            raise ProtocolError("no such mailbox")
        if result == -1:
            raise ProtocolError("only inboxes are acknowledged")
        if result == -2:
            raise ProtocolError("cursor was never issued")

    async def publish(self, directory: bytes, owner: bytes, bundle: bytes,
                      prekeys: tuple[bytes, ...]) -> None:
        result = int(await self._scripts["publish"](
            keys=[self._key(directory, "b"), self._key(directory, "p")],
            args=[owner, bundle, self.retention.max_prekeys, *prekeys],
        ))
        if result == -1:
            raise ProtocolError("directory entry belongs to another access key")
        if result == -2:
            raise LimitExceeded("too many one-time prekeys")

    async def take_bundle(self, directory: bytes) -> TakenBundle:
        result = await self._scripts["take"](
            keys=[self._key(directory, "b"), self._key(directory, "p")], args=[])
        if not result:
            raise ProtocolError("no such directory entry")
        prekey = bytes(result[1]) if result[1] is not None else None
        return TakenBundle(bytes(result[0]), prekey, int(result[2]))


__all__ = ["RedisStore"]
