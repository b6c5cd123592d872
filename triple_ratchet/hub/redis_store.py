"""Redis store: one stream per mailbox, shared by several hub processes.

Every operation is one Lua script (atomic in Redis): dedup, append and exact trim happen together,
so two hubs appending to one mailbox still get one total order and no duplicate. Stream entry ids
are `<cursor>-0`, so the hub's cursor is the stream id and trimming is `XTRIM MINID` (exact, never
the approximate `~` form). After each append the script publishes the mailbox id on one pub/sub
channel; every hub process listens and wakes its own subscribers.

Keys (all of one mailbox share its hash tag): `<prefix>{<hex id>}:m` hash
kind/pinned/head/trimmed/t (t: the last acceptance time), `:s` the stream (fields `t`, `b`),
`:d:<hex msg id>` a dedup record "cursor:time"; for a directory entry `:b` hash
owner/expires/bundle/last_resort, `:p` list of prekeys, `:j` list of one-time join keys, and per
owner `:o` a sorted set of its entries by expiry. `<prefix>incarnation` is a hash id/run_id:
the store history. Every script checks it first and fails when it is gone or another (the data
was lost), so no operation runs against a history the hub does not know. Being a global key it
ties a deployment to one Redis server (no Redis Cluster).

Persistence (spec 10.7): a Redis restart keeps the history only when Redis runs with
`appendonly yes` and `appendfsync always` (so no acknowledged write can be lost); otherwise a
restart (seen as a new `run_id`) starts a new incarnation, because an RDB snapshot or a lost
AOF tail would re-issue cursors that readers already hold.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import parse_url
from redis.exceptions import ResponseError

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

# Prepended to every script: the last key is the incarnation hash and the last argument the
# incarnation the hub believes in; both are removed before the script proper reads KEYS/ARGV.
_CHECK_INCARNATION = """
local incarnation_key = table.remove(KEYS)
local expected = table.remove(ARGV)
if redis.call('HGET', incarnation_key, 'id') ~= expected then
  return redis.error_reply('TRH_INCARNATION store history changed')
end
"""
_INCARNATION_ERROR = "TRH_INCARNATION"

# KEYS: incarnation hash. ARGV: candidate id, run_id, durable. -> the current id. A new history
# begins when there is none, or when Redis restarted (new run_id) without durable persistence.
_ESTABLISH = """
local m = redis.call('HMGET', KEYS[1], 'id', 'run_id')
if m[1] and (m[2] == ARGV[2] or ARGV[3] == '1') then
  redis.call('HSET', KEYS[1], 'run_id', ARGV[2])
  return m[1]
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'run_id', ARGV[2])
return ARGV[1]
"""

# Shared Lua: group retention (count then age, as one prefix; maxcount < 0: age only) and
# control retention (age only), for the mailbox in KEYS[1..2].
_TRIM = """
local function trim(meta, stream, now, maxcount, maxage, controlage)
  local m = redis.call('HMGET', meta, 'kind', 'pinned', 'head', 'trimmed')
  local trimmed = tonumber(m[4])
  if m[1] == '2' or m[2] == '1' then return trimmed end
  if m[1] == '3' then
    maxcount = -1
    maxage = controlage
  end
  local head = tonumber(m[3])
  local new = trimmed
  if maxcount >= 0 and head - new > maxcount then new = head - maxcount end
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
  redis.call('HSET', KEYS[1], 'kind', ARGV[1], 'pinned', ARGV[2], 'head', 0, 'trimmed', 0,
             't', 0)
  return 1
end
if kind ~= ARGV[1] then return -1 end
return 0
"""

# KEYS: meta, stream. ARGV: now, maxcount, maxage, controlage. -> 1, or 0 not found
_UNPIN = _TRIM + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'pinned', '0')
trim(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
     tonumber(ARGV[4]))
return 1
"""

# KEYS: meta, stream, dedup. ARGV: blob, now, maxcount, maxage, controlage, pinned_max,
# inbox_max, control_max, dedup_ttl, channel, mailbox id. -> {1, cursor, t} new,
# {2, cursor, t} duplicate, {0} not found, {-1} pinned full, {-2} inbox full, {-3} control full.
# The entry's time is max(now, the mailbox's last time): never decreasing, whatever the clocks
# of the hubs sharing this store.
_APPEND = _TRIM + """
local m = redis.call('HMGET', KEYS[1], 'kind', 'pinned', 't')
if not m[1] then return {0} end
local now = tonumber(ARGV[2])
local d = redis.call('GET', KEYS[3])
if d then
  local seq, t = string.match(d, '^(%d+):(%d+)$')
  if tonumber(t) > now - tonumber(ARGV[9]) then return {2, tonumber(seq), tonumber(t)} end
end
local maxcount, maxage, controlage = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local trimmed = trim(KEYS[1], KEYS[2], now, maxcount, maxage, controlage)
local head = tonumber(redis.call('HGET', KEYS[1], 'head'))
if m[2] == '1' and head - trimmed >= tonumber(ARGV[6]) then return {-1} end
if m[1] == '2' and head - trimmed >= tonumber(ARGV[7]) then return {-2} end
if m[1] == '3' and head - trimmed >= tonumber(ARGV[8]) then return {-3} end
local t = now
local last = tonumber(m[3] or '0')
if last > t then t = last end
head = head + 1
redis.call('XADD', KEYS[2], head .. '-0', 't', t, 'b', ARGV[1])
redis.call('HSET', KEYS[1], 'head', head, 't', t)
redis.call('SET', KEYS[3], head .. ':' .. t, 'PX', ARGV[9])
trim(KEYS[1], KEYS[2], now, maxcount, maxage, controlage)
redis.call('PUBLISH', ARGV[10], ARGV[11])
return {1, head, t}
"""

# KEYS: meta, stream. ARGV: after, count, now, maxcount, maxage, controlage.
# -> {1, trimmed, id, t, blob, id, t, blob...}, {0} not found, {-1} cursor never issued
_READ = _TRIM + """
local head = redis.call('HGET', KEYS[1], 'head')
if not head then return {0} end
local after = tonumber(ARGV[1])
if after > tonumber(head) then return {-1} end
local trimmed = trim(KEYS[1], KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]),
                     tonumber(ARGV[6]))
local out = {1, trimmed}
local es = redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', '+', 'COUNT', tonumber(ARGV[2]))
for _, e in ipairs(es) do
  local f = e[2]
  local b = nil
  local t = nil
  for i = 1, #f, 2 do
    if f[i] == 'b' then b = f[i + 1] elseif f[i] == 't' then t = f[i + 1] end
  end
  out[#out + 1] = tonumber(string.match(e[1], '^(%d+)-'))
  out[#out + 1] = tonumber(t)
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

# Shared Lua for directory entries in KEYS[1..3] (hash, prekeys, join keys): the owner of the
# live entry, or nil (an expired one is deleted: expiry is judged on the hub's clock).
_DIRECTORY = """
local function live_owner(now)
  local m = redis.call('HMGET', KEYS[1], 'owner', 'expires')
  if not m[1] then return nil end
  if tonumber(m[2]) <= now then
    redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
    return nil
  end
  return m[1]
end
"""

# KEYS: directory hash, prekey list, join key list, owner's set. ARGV: owner, now, ttl,
# owner cap, max keys, list ('p' or 'j'), value (bundle or last resort), has value, keys...
# -> 1, -1 other owner, -2 too many keys, -3 owner cap
_PUBLISH = _DIRECTORY + """
local now = tonumber(ARGV[2])
local owner = live_owner(now)
if owner and owner ~= ARGV[1] then return -1 end
if not owner then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[4]) then return -3 end
end
local list = KEYS[3]
local field = 'last_resort'
if ARGV[6] == 'p' then
  list = KEYS[2]
  field = 'bundle'
end
if redis.call('LLEN', list) + #ARGV - 8 > tonumber(ARGV[5]) then return -2 end
local expires = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'expires', expires)
if ARGV[8] == '1' then redis.call('HSET', KEYS[1], field, ARGV[7]) end
for i = 9, #ARGV do redis.call('RPUSH', list, ARGV[i]) end
redis.call('ZADD', KEYS[4], expires, KEYS[1])
-- Redis itself forgets the keys a day after the hub would: a backstop, whatever the clocks.
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[3]) + 86400000) end
return 1
"""

# KEYS: directory hash, prekey list, join key list. ARGV: now.
# -> {bundle, prekey or false, remaining} or {} if absent
_TAKE = _DIRECTORY + """
if not live_owner(tonumber(ARGV[1])) then return {} end
local bundle = redis.call('HGET', KEYS[1], 'bundle')
if not bundle then return {} end
local pk = redis.call('LPOP', KEYS[2])
return {bundle, pk, redis.call('LLEN', KEYS[2])}
"""

# KEYS: directory hash, prekey list, join key list. ARGV: now.
# -> {1, key, remaining} one-time, {2, key} last resort, {0} no entry, {-1} no join key
_TAKE_JOIN = _DIRECTORY + """
if not live_owner(tonumber(ARGV[1])) then return {0} end
local key = redis.call('LPOP', KEYS[3])
if key then return {1, key, redis.call('LLEN', KEYS[3])} end
local last = redis.call('HGET', KEYS[1], 'last_resort')
if not last then return {-1} end
return {2, last}
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
                 prefix: str = "trh:", rng: RandomSource = system_random,
                 pool_size: int | None = None, pool_timeout: float | None = None) -> None:
        super().__init__(retention or Retention())
        self.pool = aioredis.BlockingConnectionPool(**pool_options(url, pool_size,
                                                                   pool_timeout))
        self._redis: Any = aioredis.Redis.from_pool(self.pool)
        self._prefix = prefix
        self._channel = f"{prefix}notify".encode()
        self._scripts = {
            name: self._redis.register_script(_CHECK_INCARNATION + src)
            for name, src in (("create", _CREATE), ("unpin", _UNPIN), ("append", _APPEND),
                              ("read", _READ), ("ack", _ACK), ("publish", _PUBLISH),
                              ("take", _TAKE), ("take_join", _TAKE_JOIN))
        }
        self._listener_task: asyncio.Task[None] | None = None
        self._rng = rng
        self._incarnation_key = f"{prefix}incarnation"
        self._establish_script = self._redis.register_script(_ESTABLISH)
        # Cleared while the pub/sub link is down: Redis may be restarting, and no operation
        # may run before the incarnation was checked again.
        self._checked = asyncio.Event()

    def _key(self, ident: bytes, suffix: str) -> str:
        return f"{self._prefix}{{{ident.hex()}}}:{suffix}"

    def _mbx(self, mailbox: bytes) -> list[str]:
        return [self._key(mailbox, "m"), self._key(mailbox, "s")]

    async def _durable(self) -> bool:
        """Whether Redis runs so that no acknowledged write can be lost (AOF, fsync always).
        When CONFIG is not allowed (managed Redis), the answer is no: a restart then starts a
        new history, which costs readers a re-read, never a silent skip."""
        try:
            aof = await self._redis.config_get("appendonly")
            fsync = await self._redis.config_get("appendfsync")
        except Exception:
            return False
        return bool(aof.get("appendonly") == "yes" and fsync.get("appendfsync") == "always")

    async def _establish(self) -> None:
        """Learn (or begin) the store history: atomic across hubs sharing the store."""
        info = await self._redis.info("server")
        run_id = str(info.get("run_id", ""))
        durable = await self._durable()
        current = await self._establish_script(
            keys=[self._incarnation_key],
            args=[self._rng(INCARNATION_LEN), run_id, int(durable)])
        self.incarnation = bytes(current)

    async def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run a script in the store history this hub knows; when the history changed (the
        data was lost), learn the new one and fail this call (the client retries)."""
        if not self._checked.is_set():
            raise ConnectionError("store link is being re-checked")
        try:
            return await self._scripts[name](keys=[*keys, self._incarnation_key],
                                             args=[*args, self.incarnation])
        except ResponseError as exc:
            if _INCARNATION_ERROR not in str(exc):
                raise
        await self._establish()
        self._notify_all()
        raise ConnectionError("the store lost data: a new store history began")

    def _notify_all(self) -> None:
        for listener in self._listeners:
            listener(None)

    async def start(self) -> None:
        await self._redis.ping()
        await self._establish()
        self._checked.set()
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
                if not self._checked.is_set():  # the link was lost: Redis may have restarted
                    await self._establish()
                    self._checked.set()
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
                self._checked.clear()
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
        max_count = -1 if r.group_max_count is None else r.group_max_count
        return [now_ms, max_count, r.group_max_age_ms, r.control_max_age_ms]

    async def create(self, mailbox: bytes, kind: Kind, pinned: bool, now_ms: int, *,
                     may_create: bool = True) -> bool:
        check_create(kind, pinned)
        result = int(await self._run(
            "create", [self._key(mailbox, "m")], [int(kind), int(pinned), int(may_create)]))
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
        result = await self._run("unpin", self._mbx(mailbox), self._trim_args(now_ms))
        if int(result) == 0:
            raise ProtocolError("no such mailbox")

    async def append(self, mailbox: bytes, msg_id: bytes, blob: bytes,
                     now_ms: int) -> AppendResult:
        r = self.retention
        now, max_count, max_age, control_age = self._trim_args(now_ms)
        result = await self._run(
            "append", [*self._mbx(mailbox), self._key(mailbox, "d:" + msg_id.hex())],
            [blob, now, max_count, max_age, control_age, r.pinned_max_count, r.inbox_max_count,
             r.control_max_count, r.dedup_ttl_ms, self._channel, mailbox],
        )
        code = int(result[0])
        if code == 0:
            raise ProtocolError("no such mailbox")
        if code == -1:
            raise LimitExceeded("pinned mailbox is full")
        if code == -2:
            raise LimitExceeded("inbox is full")
        if code == -3:
            raise LimitExceeded("control mailbox is full")
        # No local notification: the script's PUBLISH reaches this process too, and a second
        # wake would only cost every local subscriber another read.
        return AppendResult(int(result[1]), int(result[2]), code == 2)

    async def read(self, mailbox: bytes, after: int, limit: int, max_bytes: int,
                   now_ms: int) -> ReadResult:
        result = await self._run(
            "read", self._mbx(mailbox), [after, limit + 1, *self._trim_args(now_ms)])
        code = int(result[0])
        if code == 0:
            raise ProtocolError("no such mailbox")
        if code == -1:
            raise ProtocolError("cursor was never issued")
        trimmed = int(result[1])
        flat = result[2:]
        retained = [Entry(int(flat[i]), int(flat[i + 1]), bytes(flat[i + 2]))
                    for i in range(0, len(flat), 3)]
        return select_entries(retained, after, trimmed, limit, max_bytes)

    async def ack(self, mailbox: bytes, cursor: int) -> None:
        result = int(await self._run("ack", self._mbx(mailbox), [cursor]))
        if result == 0:
            raise ProtocolError("no such mailbox")
        if result == -1:
            raise ProtocolError("only inboxes are acknowledged")
        if result == -2:
            raise ProtocolError("cursor was never issued")

    def _directory(self, directory: bytes) -> list[str]:
        return [self._key(directory, "b"), self._key(directory, "p"), self._key(directory, "j")]

    async def _publish(self, directory: bytes, owner: bytes, now_ms: int, which: str,
                       value: bytes | None, keys: tuple[bytes, ...], max_keys: int) -> None:
        r = self.retention
        result = int(await self._run(
            "publish", [*self._directory(directory), self._key(owner, "o")],
            [owner, now_ms, r.directory_ttl_ms, r.max_directories_per_owner, max_keys, which,
             value or b"", int(value is not None), *keys],
        ))
        if result == -1:
            raise ProtocolError(OTHER_OWNER_REASON)
        if result == -3:
            raise LimitExceeded(OWNER_CAP_REASON)
        if result == -2:
            raise LimitExceeded("too many one-time prekeys" if which == "p"
                                else "too many one-time join keys")

    async def publish(self, directory: bytes, owner: bytes, bundle: bytes,
                      prekeys: tuple[bytes, ...], now_ms: int) -> None:
        await self._publish(directory, owner, now_ms, "p", bundle, prekeys,
                            self.retention.max_prekeys)

    async def take_bundle(self, directory: bytes, now_ms: int) -> TakenBundle:
        result = await self._run("take", self._directory(directory), [now_ms])
        if not result:
            raise ProtocolError(NO_DIRECTORY_REASON)
        prekey = bytes(result[1]) if result[1] is not None else None
        return TakenBundle(bytes(result[0]), prekey, int(result[2]))

    async def publish_join_keys(self, directory: bytes, owner: bytes, last_resort: bytes | None,
                                join_keys: tuple[bytes, ...], now_ms: int) -> None:
        await self._publish(directory, owner, now_ms, "j", last_resort, join_keys,
                            self.retention.max_join_keys)

    async def take_join_key(self, directory: bytes, now_ms: int) -> TakenJoinKey:
        result = await self._run("take_join", self._directory(directory), [now_ms])
        code = int(result[0])
        if code == 0:
            raise ProtocolError(NO_DIRECTORY_REASON)
        if code == -1:
            raise ProtocolError(NO_JOIN_KEY_REASON)
        if code == 1:
            return TakenJoinKey(bytes(result[1]), False, int(result[2]))
        return TakenJoinKey(bytes(result[1]), True, 0)


__all__ = ["RedisStore"]
