"""The Redis store, for several API workers and replicas.

Every key of one learner carries the hash tag ``{tenant:learner}``, so a learner lives in one
Redis Cluster slot and one Lua script updates it atomically: it checks the record's version and
the idempotency keys, appends the events to the learner's Stream, records the idempotency keys
and writes the new record, or does nothing.

Durability is Redis's: run it with ``appendonly yes`` and ``appendfsync always`` and an
acknowledged event survives a crash (Redis fsyncs the AOF before it replies). With
``appendfsync everysec`` up to one second of acknowledged events can be lost; without AOF, all
of them since the last snapshot. Learner state is a fold over the event log, so ``zpd replay``
rebuilds it from the Streams.

Deleting a learner deletes its keys and then rewrites the AOF (``BGREWRITEAOF``), since the
append-only file still holds the commands that wrote them; RDB snapshots and backups taken
before the deletion are the operator's to expire.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson
import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException
from redis.typing import EncodableT

from serving.stores.base import (
    ROSTER_CHANGES_MAX,
    ROSTER_HISTORY,
    ROSTER_PAGE,
    ApiKeyRecord,
    Commit,
    LearnerRecord,
    LearnerStore,
    RecordPages,
    RosterChanges,
    RosterKey,
    RosterRecord,
    StoredEvent,
    StoreError,
    StoreUnavailable,
    Unaligned,
    VersionConflict,
    page_of,
    parse_meta,
)

__all__ = ["RedisStore"]

log = logging.getLogger("zpd.serving")

PUT_SETTING = """
local v = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if ARGV[2] ~= '' and v ~= tonumber(ARGV[2]) then return redis.error_reply('VERSION ' .. v) end
redis.call('HSET', KEYS[1], 'version', v + 1, 'value', ARGV[1])
return v + 1
"""

COMMIT = """
local v = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if v ~= tonumber(ARGV[1]) then return redis.error_reply('VERSION ' .. v) end
local n = tonumber(ARGV[6])
for i = 0, n - 1 do
  if redis.call('HEXISTS', KEYS[3], ARGV[7 + 3 * i]) == 1 then
    return redis.error_reply('DUPLICATE ' .. ARGV[7 + 3 * i])
  end
end
for i = 0, n - 1 do
  redis.call('HSET', KEYS[3], ARGV[7 + 3 * i], ARGV[8 + 3 * i])
  redis.call('XADD', KEYS[2], '*', 'body', ARGV[9 + 3 * i])
end
local count = tonumber(redis.call('HGET', KEYS[1], 'event_count') or '0') + n
local created = redis.call('HGET', KEYS[1], 'created') or ARGV[5]
redis.call('HSET', KEYS[1], 'version', v + 1, 'model_version', ARGV[2], 'state', ARGV[3], 'meta', ARGV[4],
           'event_count', count, 'created', created, 'updated', ARGV[5])
return {v + 1, count, created}
"""

#: event-id claims of a tenant (one slot): KEYS[1] event id -> learner, KEYS[2] the marker that
#: every claim is also in its learner's set, then the learners' sets of claimed ids; ARGV in threes
#: (event id, learner, index in KEYS of the learner's set). A tenant's first claim sets the marker
#: (a tenant with claims from before the sets existed has none until they are indexed).
CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[2], '1') end
for i = 1, #ARGV, 3 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('SADD', KEYS[tonumber(ARGV[i + 2])], ARGV[i])
  end
end
return 0
"""

#: the learner ARGV[1] gives up its claims (KEYS[1] the tenant's claims, KEYS[2] the learner's set)
RELEASE_CLAIMS = """
local released = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('HGET', KEYS[1], id) == ARGV[1] then
    redis.call('HDEL', KEYS[1], id)
    released = released + 1
  end
end
redis.call('DEL', KEYS[2])
return released
"""

#: unaligned activities of a tenant (one slot: every key carries the tenant's hash tag):
#: KEYS[1] item -> earliest time, KEYS[2] item -> events, then one hash per item, learner -> events.
#: Adding: ARGV in fives (index in KEYS of the item's hash, item, learner, events, time).
NOTE_UNALIGNED = """
for i = 1, #ARGV, 5 do
  local item, n, t = ARGV[i + 1], tonumber(ARGV[i + 3]), ARGV[i + 4]
  redis.call('HINCRBY', KEYS[tonumber(ARGV[i])], ARGV[i + 2], n)
  redis.call('HINCRBY', KEYS[2], item, n)
  local first = redis.call('HGET', KEYS[1], item)
  if (not first) or tonumber(t) < tonumber(first) then redis.call('HSET', KEYS[1], item, t) end
end
return 0
"""

#: a learner (ARGV[1]) leaves every listed activity (ARGV[2..], their hashes KEYS[3..]); an
#: activity left with no learner leaves the list
FORGET_UNALIGNED = """
local removed = 0
for i = 3, #KEYS do
  local item = ARGV[i - 1]
  local n = redis.call('HGET', KEYS[i], ARGV[1])
  if n then
    redis.call('HDEL', KEYS[i], ARGV[1])
    removed = removed + 1
    if redis.call('HLEN', KEYS[i]) == 0 then
      redis.call('HDEL', KEYS[1], item)
      redis.call('HDEL', KEYS[2], item)
    else
      redis.call('HINCRBY', KEYS[2], item, -tonumber(n))
    end
  end
end
return removed
"""

#: activities (ARGV, their hashes KEYS[3..]) leave the list
DROP_UNALIGNED = """
for i = 3, #KEYS do
  redis.call('DEL', KEYS[i])
  redis.call('HDEL', KEYS[1], ARGV[i - 2])
  redis.call('HDEL', KEYS[2], ARGV[i - 2])
end
return 0
"""

#: a tenant's roster, record by record (one slot): KEYS[1] the version and the last record number
#: given, KEYS[2] "kind US id" -> record number, KEYS[3] number -> [kind, id, record], KEYS[4] the
#: numbers by the version that wrote them, KEYS[5] the numbers removed, by the version that removed
#: them. ARGV: expected version, the count of removals, the versions of removals kept, the removed
#: records' "kind US id", then pairs ("kind US id", [kind, id, record]) to write.
WRITE_ROSTER = """
local v = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if v ~= tonumber(ARGV[1]) then return redis.error_reply('VERSION ' .. v) end
local new, n, gone = v + 1, tonumber(ARGV[2]), 0
for i = 4, 3 + n do
  local rid = redis.call('HGET', KEYS[2], ARGV[i])
  if rid then
    redis.call('HDEL', KEYS[2], ARGV[i])
    redis.call('HDEL', KEYS[3], rid)
    redis.call('ZREM', KEYS[4], rid)
    redis.call('ZADD', KEYS[5], new, rid)
    gone = gone + 1
  end
end
for i = 4 + n, #ARGV, 2 do
  local rid = redis.call('HGET', KEYS[2], ARGV[i])
  if not rid then
    rid = redis.call('HINCRBY', KEYS[1], 'last', 1)
    redis.call('HSET', KEYS[2], ARGV[i], rid)
  end
  redis.call('HSET', KEYS[3], rid, ARGV[i + 1])
  redis.call('ZADD', KEYS[4], new, rid)
end
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', new - tonumber(ARGV[3]))
redis.call('HSET', KEYS[1], 'version', new)
return {new, gone}
"""

#: what changed in a roster after version ARGV[1] (the keys of WRITE_ROSTER; ARGV[2] the versions
#: of removals kept; ARGV[3] the most records written this script returns). Beyond ARGV[3] records,
#: with ARGV[4] "0" the roster is to be read page by page instead (a script runs alone); with "1",
#: the changes of the first versions, as many whole versions as fit (one at least): a reader
#: catching up with a long write takes them a part at a time. {version now, 1 if the whole roster
#: is to be read instead, the version the changes reach, number -> record pairs, numbers removed}
READ_ROSTER = """
local v = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local since = tonumber(ARGV[1])
if since <= 0 or since > v or since < v - tonumber(ARGV[2]) then return {v, 1, v, {}, {}} end
local upto = v
local most = tonumber(ARGV[3])
if redis.call('ZCOUNT', KEYS[4], '(' .. since, '+inf') > most then
  if ARGV[4] ~= '1' then return {v, 1, v, {}, {}} end
  local over = redis.call('ZRANGEBYSCORE', KEYS[4], '(' .. since, '+inf', 'WITHSCORES', 'LIMIT', most, 1)
  upto = math.max(since + 1, tonumber(over[2]) - 1)
end
local rids = redis.call('ZRANGEBYSCORE', KEYS[4], '(' .. since, upto)
local written = {}
for i = 1, #rids, 1000 do
  local chunk = {}
  for j = i, math.min(i + 999, #rids) do chunk[#chunk + 1] = rids[j] end
  local values = redis.call('HMGET', KEYS[3], unpack(chunk))
  for j = 1, #chunk do
    written[#written + 1] = chunk[j]
    written[#written + 1] = values[j]
  end
end
return {v, 0, upto, written, redis.call('ZRANGEBYSCORE', KEYS[5], '(' .. since, upto)}
"""

#: the log from its ARGV[1]-th entry on, newest first (a stream is indexed by id, not position)
LOG_TAIL = """
local wanted = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[1])
if wanted <= 0 then return {} end
return redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', wanted)
"""


def _tag(tenant: str, learner_id: str) -> str:
    return f"zpd:{{{tenant}:{learner_id}}}"


def _unaligned_keys(tenant: str, item_ids: Sequence[str]) -> list[str]:
    base = f"zpd:{{{tenant}}}:unaligned"
    return [base + ":first", base + ":events", *(f"{base}:item:{item}" for item in item_ids)]


#: where a tenant's learners are listed: a sorted set (all scores 0: ordered by id, read a page at
#: a time); stores written before kept a set under ``_OLD_LISTING + tenant``
def _listing(tenant: str) -> str:
    return f"zpd:learner-ids:{tenant}"


_OLD_LISTING = "zpd:learners:"


def _chunks(items: Iterable[Any], size: int) -> list[list[Any]]:
    out: list[list[Any]] = [[]]
    for item in items:
        if len(out[-1]) == size:
            out.append([])
        out[-1].append(item)
    return [chunk for chunk in out if chunk]


#: seconds a whole roster's read may take to catch up with a long write (a district's import)
_ROSTER_READ_S = 120.0


def _kept_changing(tenant: str) -> StoreUnavailable:
    return StoreUnavailable(f"the roster of tenant {tenant!r} kept changing while it was read; retry")


def _roster_keys(tenant: str) -> list[str]:
    base = f"zpd:{{{tenant}}}:roster"
    return [base, base + ":ids", base + ":records", base + ":versions", base + ":removed"]


def _roster_page(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    """A roster hash's (number, [kind, id, record]) pairs as one page of :class:`RecordPages`."""
    return page_of(b"[" + rid + b"," + payload[1:] for rid, payload in pairs)


def _refs_key(tenant: str, learner_id: str) -> str:
    return f"zpd:{{{tenant}}}:refs:{learner_id}"


def _claim_keys(tenant: str, learners: Sequence[str]) -> list[str]:
    base = f"zpd:{{{tenant}}}:event-ids"
    return [base, base + ":indexed", *(f"{base}:of:{learner}" for learner in learners)]


def _commit_keys(c: Commit) -> list[str]:
    tag = _tag(c.record.tenant, c.record.learner_id)
    return [tag + ":rec", tag + ":log", tag + ":ids"]


def _commit_args(c: Commit, now: float) -> list[Any]:
    args: list[Any] = [
        c.expected_version,
        c.record.model_version,
        c.record.state,
        c.record.meta_json(),
        repr(now),
        len(c.events),
    ]
    for event in c.events:
        args += [event.id, event.content_hash, event.to_json()]
    return args


def _record(tenant: str, learner_id: str, data: dict[bytes, bytes]) -> LearnerRecord:
    return LearnerRecord(
        tenant,
        learner_id,
        int(data[b"version"]),
        data[b"model_version"].decode(),
        bytes(data[b"state"]),
        parse_meta(data[b"meta"]),
        int(data[b"event_count"]),
        float(data[b"created"]),
        float(data[b"updated"]),
    )


class RedisStore(LearnerStore):
    #: Redis runs one command at a time, a script included, and a worker's request waits for its
    #: reads on the event loop: 5,000 records were a 50-75 ms script, back to back for a district's
    #: 600,000, and ``/next`` fell seconds behind while they ran. 500 records take about 6 ms, and
    #: a step leaves Redis to the others as long again (``docs/benchmarks/roster_import.md``).
    roster_step = 500
    bulk_share = 0.5

    def __init__(self, url: str, timeout_s: float = 2.0):
        """``redis://HOST:PORT/DB`` for one server, ``redis+cluster://HOST:PORT`` for a Redis Cluster
        (any node; the client finds the others)."""
        self.url = url
        self.cluster = url.startswith("redis+cluster://")
        self.client: Any  # redis.Redis or RedisCluster: the same commands, one pipeline interface
        try:
            if self.cluster:
                self.client = RedisCluster.from_url(
                    "redis://" + url.removeprefix("redis+cluster://"),
                    socket_timeout=timeout_s,
                    socket_connect_timeout=timeout_s,
                )
            else:
                self.client = redis.Redis.from_url(
                    url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, health_check_interval=30
                )
        except ValueError as exc:
            raise StoreError(f"bad Redis URL {url!r}: {exc}") from None
        except (redis.ConnectionError, redis.TimeoutError, RedisClusterException) as exc:
            raise StoreUnavailable(f"Redis store {url} is unavailable: {exc}") from None
        self._commit = self.client.register_script(COMMIT)
        self._put_setting = self.client.register_script(PUT_SETTING)
        self._log_tail = self.client.register_script(LOG_TAIL)
        self._claim = self.client.register_script(CLAIM)
        self._release_claims = self.client.register_script(RELEASE_CLAIMS)
        self._note_unaligned = self.client.register_script(NOTE_UNALIGNED)
        self._forget_unaligned = self.client.register_script(FORGET_UNALIGNED)
        self._drop_unaligned = self.client.register_script(DROP_UNALIGNED)
        self._write_roster = self.client.register_script(WRITE_ROSTER)
        self._read_roster = self.client.register_script(READ_ROSTER)
        self._claims_indexed: set[str] = set()  # tenants whose claims are all in their learners' sets
        self._lock = threading.Lock()
        self._rewrite_wanted = threading.Event()
        self._rewriter: threading.Thread | None = None
        self._starting = False  # the rewriter is asking the servers to rewrite: not yet in their INFO
        self._closed = False

    def _call(self, fn):
        try:
            return fn()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"Redis store {self.url} is unavailable: {exc}") from None

    def _versioned(self, what: str, script):
        """Run a script that checks a version first: its ``VERSION`` error is a
        :class:`VersionConflict` naming ``what``, any other a :class:`StoreError`."""
        try:
            return self._call(script)
        except redis.ResponseError as exc:
            if str(exc).startswith("VERSION"):
                raise VersionConflict(f"{what} changed ({exc})") from None
            raise StoreError(f"Redis write of {what} failed: {exc}") from None

    # ------------------------------------------------------------------ learners
    def get(self, tenant: str, learner_id: str) -> LearnerRecord | None:
        data = self._call(lambda: self.client.hgetall(_tag(tenant, learner_id) + ":rec"))
        return _record(tenant, learner_id, data) if data else None

    def get_many(self, tenant: str, learner_ids: Sequence[str]) -> dict[str, LearnerRecord]:
        ids = list(dict.fromkeys(learner_ids))
        if not ids:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for learner_id in ids:
            pipe.hgetall(_tag(tenant, learner_id) + ":rec")
        rows = self._call(pipe.execute)
        return {i: _record(tenant, i, data) for i, data in zip(ids, rows) if data}

    def event_hashes_many(self, tenant: str, event_ids: Mapping[str, Sequence[str]]) -> dict[str, dict[str, str]]:
        wanted = {learner: list(dict.fromkeys(ids)) for learner, ids in event_ids.items() if ids}
        if not wanted:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for learner, ids in wanted.items():
            pipe.hmget(_tag(tenant, learner) + ":ids", ids)
        found: dict[str, dict[str, str]] = {}
        for (learner, ids), values in zip(wanted.items(), self._call(pipe.execute)):
            hits = {i: v.decode() for i, v in zip(ids, values) if v is not None}
            if hits:
                found[learner] = hits
        return found

    def commit_many(self, commits: Sequence[Commit]) -> list[VersionConflict | None]:
        """One pipeline of commit scripts: one round trip, and the scripts of one pipeline share
        Redis's AOF flush (with ``appendfsync always`` it fsyncs before replying). On a cluster,
        one pipeline per primary (every key of one learner lives in one slot)."""
        if not commits:
            return []
        now = time.time()
        if self.cluster:
            replies = self._commit_on_cluster(commits, now)
        else:
            pipe = self.client.pipeline(transaction=False)
            for c in commits:
                # listed in the same round trip, before its commit: a crash can leave a listed
                # learner without a record (readers skip it), never a stored learner nothing lists
                pipe.zadd(_listing(c.record.tenant), {c.record.learner_id: 0})
                self._commit(keys=_commit_keys(c), args=_commit_args(c, now), client=pipe)
            replies = self._call(lambda: pipe.execute(raise_on_error=False))[1::2]
        outcome: list[VersionConflict | None] = []
        for c, reply in zip(commits, replies):
            if isinstance(reply, redis.ResponseError):
                message = str(reply)
                if not message.startswith(("VERSION", "DUPLICATE", "NOSCRIPT")):  # NOSCRIPT: Redis restarted; retried
                    raise StoreError(f"Redis commit of learner {c.record.learner_id} failed: {message}")
                outcome.append(VersionConflict(f"learner {c.record.learner_id} changed concurrently ({message})"))
                continue
            version, count, created = reply
            c.record.version, c.record.event_count = int(version), int(count)
            c.record.created, c.record.updated = float(created), now
            outcome.append(None)
        return outcome

    def _commit_on_cluster(self, commits: Sequence[Commit], now: float) -> list[Any]:
        """The commit scripts grouped into one pipeline per primary (a cluster client does not
        pipeline scripts); the listings go first, in their own pipelines."""

        def pipeline_of(pipes: dict[str, Any], key: str) -> Any:
            node = self.client.get_node_from_key(key)
            if node.name not in pipes:
                pipes[node.name] = self.client.get_redis_connection(node).pipeline(transaction=False)
            return pipes[node.name]

        def execute_all(pipes: dict[str, Any]) -> dict[str, list[Any]]:
            return {name: self._call(lambda p=p: p.execute(raise_on_error=False)) for name, p in pipes.items()}

        listings: dict[str, Any] = {}
        for c in commits:
            key = _listing(c.record.tenant)
            pipeline_of(listings, key).zadd(key, {c.record.learner_id: 0})
        execute_all(listings)
        pipes: dict[str, Any] = {}
        where = []
        for c in commits:
            keys = _commit_keys(c)
            pipe = pipeline_of(pipes, keys[0])
            where.append((self.client.get_node_from_key(keys[0]).name, len(pipe)))
            self._commit(keys=keys, args=_commit_args(c, now), client=pipe)
        replies = execute_all(pipes)
        return [replies[name][index] for name, index in where]

    # event ids are unique per tenant: one hash per tenant (its own Cluster slot) maps id -> learner
    def claim_event_ids(self, tenant: str, claims: Mapping[str, str]) -> dict[str, str]:
        if not claims:
            return {}
        learners = list(dict.fromkeys(claims.values()))
        slot = {learner: k + 3 for k, learner in enumerate(learners)}  # KEYS is 1-based; the sets follow two
        args: list[EncodableT] = []
        for event_id, learner in claims.items():
            args += [event_id, learner, slot[learner]]
        self._call(lambda: self._claim(keys=_claim_keys(tenant, learners), args=args))
        return self.event_owners(tenant, list(claims))

    def event_owners(self, tenant: str, event_ids: Sequence[str]) -> dict[str, str]:
        ids = list(dict.fromkeys(event_ids))
        if not ids:
            return {}
        values = self._call(lambda: self.client.hmget(f"zpd:{{{tenant}}}:event-ids", ids))
        return {i: v.decode() for i, v in zip(ids, values) if v is not None}

    def events(self, tenant: str, learner_id: str, start: int = 0) -> list[StoredEvent]:
        key = _tag(tenant, learner_id) + ":log"
        if start <= 0:
            entries = self._call(lambda: self.client.xrange(key))
            return [StoredEvent.from_json(fields[b"body"]) for _, fields in entries]
        newest_first = self._call(lambda: self._log_tail(keys=[key], args=[start]))
        # a script answers each entry as [id, [field, value, ...]]
        return [StoredEvent.from_json(dict(zip(f[::2], f[1::2]))[b"body"]) for _, f in reversed(newest_first)]

    def learners(self, tenant: str | None = None) -> Iterator[tuple[str, str]]:
        if tenant is not None:
            tenants = [tenant]
        else:
            found = self._call(
                lambda: list(self.client.scan_iter(_listing("*"))) + list(self.client.scan_iter(_OLD_LISTING + "*"))
            )
            tenants = sorted({k.decode().removeprefix(_listing("")).removeprefix(_OLD_LISTING) for k in found})
        pairs = []
        for t in tenants:
            self._move_listing(t)
            members = self._call(lambda t=t: self.client.zrange(_listing(t), 0, -1))
            pairs += [(t, m.decode()) for m in members]
        return iter(pairs)

    def learner_page(self, tenant: str, limit: int, *, after: str = "", offset: int = 0) -> tuple[list[str], int]:
        self._move_listing(tenant)
        key = _listing(tenant)
        pipe = self.client.pipeline(transaction=False)
        pipe.zrangebylex(key, "(" + after if after else "-", "+", start=offset, num=limit)
        pipe.zcard(key)
        page, total = self._call(pipe.execute)
        return [m.decode() for m in page], int(total)

    def _move_listing(self, tenant: str) -> None:
        """Stores written before listed a tenant's learners in a set, which cannot be read a page at
        a time in order: move its members into the sorted set (a worker that still adds to the old
        set has its additions moved the next time)."""
        old = _OLD_LISTING + tenant
        if not self._call(lambda: self.client.exists(old)):
            return
        for members in self._call(lambda: _chunks(self.client.sscan_iter(old, count=5000), 5000)):
            self._call(lambda m=members: self.client.zadd(_listing(tenant), dict.fromkeys(m, 0)))
            self._call(lambda m=members: self.client.srem(old, *m))

    def delete_learner(self, tenant: str, learner_id: str) -> bool:
        """Delete the learner's keys, then have Redis rewrite its append-only file: until then the
        AOF still holds the commands that wrote them. The rewrite runs in the background (one
        more follows if a deletion lands while one is running)."""
        tag = _tag(tenant, learner_id)
        removed = self._call(lambda: self.client.delete(tag + ":rec", tag + ":log", tag + ":ids"))
        self._move_listing(tenant)
        member = self._call(lambda: self.client.zrem(_listing(tenant), learner_id))
        refs = self._call(lambda: self.client.delete(_refs_key(tenant, learner_id)))
        self._index_claims(tenant)
        claims, _, theirs = _claim_keys(tenant, [learner_id])
        held = self._call(lambda: self._release_claims(keys=[claims, theirs], args=[learner_id]))
        items = [i.decode() for i in self._call(lambda: self.client.hkeys(_unaligned_keys(tenant, [])[0]))]
        listed = 0
        if items:
            keys = _unaligned_keys(tenant, items)
            listed = self._call(lambda: self._forget_unaligned(keys=keys, args=[learner_id, *items]))
        self._rewrite_soon()
        return bool(removed or member or held or listed or refs)

    def _rewrite_soon(self) -> None:
        """Have the background thread rewrite the AOF (see :meth:`delete_learner`). The wish and
        the thread's decision to end are taken under one lock: a wish made as the thread ended
        was left to no thread."""
        with self._lock:
            self._rewrite_wanted.set()
            if self._rewriter is None:
                self._rewriter = threading.Thread(target=self._rewrite_aof, name="zpd-aof-rewrite", daemon=True)
                self._rewriter.start()

    def _index_claims(self, tenant: str) -> None:
        """Put every claim of a tenant whose claims predate the learners' sets into its learner's
        set, once (a deletion then reads the learner's set, not every claim of the tenant)."""
        if tenant in self._claims_indexed:
            return
        keys = _claim_keys(tenant, [])
        if self._call(lambda: self.client.exists(keys[1])):
            self._claims_indexed.add(tenant)
            return
        claims: dict[str, list[bytes]] = {}
        for event_id, owner in self._call(lambda: list(self.client.hscan_iter(keys[0], count=5000))):
            claims.setdefault(owner.decode(), []).append(event_id)
        pipe = self.client.pipeline(transaction=False)
        for learner, ids in claims.items():
            for start in range(0, len(ids), 5000):
                pipe.sadd(_claim_keys(tenant, [learner])[2], *ids[start : start + 5000])
        pipe.set(keys[1], "1")
        self._call(pipe.execute)
        self._claims_indexed.add(tenant)
        log.info("tenant %s: %d event-id claims indexed by learner", tenant, sum(map(len, claims.values())))

    # ------------------------------------------------------------------ rosters
    def roster_version(self, tenant: str) -> int:
        return int(self._call(lambda: self.client.hget(_roster_keys(tenant)[0], "version")) or 0)

    def roster_changes(self, tenant: str, since: int, pace: Callable[[], None] | None = None) -> RosterChanges:
        keys = _roster_keys(tenant)
        version, full, _, changed, gone = self._changes_since(keys, since, part=False)
        if not full:
            return RosterChanges(version, False, list(RecordPages([_roster_page(changed)])), gone)

        # the whole roster: read page by page outside a script (one command of a district's
        # roster held Redis, and every worker's reads, for a good part of a second), between two
        # reads of the version. A write meanwhile (an import's steps) leaves pages of mixed
        # versions: the changes since the first read of the version, applied over them, bring
        # them to one (every record present throughout is in the pages; every one written or
        # removed meanwhile is in the changes). The changes are read a part at a time while a
        # long write goes on (see _catch_up), so the reader does not wait for it to end.
        # The records stay as Redis sent them until their reader iterates (see RecordPages).
        deadline = time.monotonic() + _ROSTER_READ_S
        while True:
            before = self.roster_version(tenant)
            pages = self._roster_pages(keys[2], pace)
            if self.roster_version(tenant) == before:
                return RosterChanges(before, True, RecordPages(pages, unique=True), [])
            caught = self._catch_up(tenant, before, pace, deadline)
            if caught is not None:
                version, records, removed = caught
                stale = {int(rid) for rid in records} | removed
                then = RecordPages([_roster_page(records.items())])
                return RosterChanges(version, True, RecordPages(pages, stale, then, unique=True), [])
            # fell more than ROSTER_HISTORY versions behind the writer: read the pages again
            if time.monotonic() > deadline:
                raise _kept_changing(tenant)

    def _roster_pages(self, name: str, pace: Callable[[], None] | None) -> list[bytes]:
        """The records of a roster hash, an ``HSCAN`` page at a time, each page kept as one
        block of bytes (see RecordPages)."""
        pages: list[bytes] = []
        cursor = 0
        while True:
            cursor, page = self._call(lambda c=cursor: self.client.hscan(name, c, count=ROSTER_PAGE))
            pages.append(_roster_page(page.items()))  # a field is a record's number
            if pace is not None:
                pace()
            if not cursor:
                return pages

    def _changes_since(
        self, keys: list[str], since: int, part: bool
    ) -> tuple[int, bool, int, list[tuple[bytes, bytes]], list[int]]:
        """READ_ROSTER: (version now, the whole roster to be read instead, the version the changes
        reach, the (number, payload) pairs written, the numbers removed)."""
        now, full, upto, written, removed = self._call(
            lambda: self._read_roster(keys=keys, args=[since, ROSTER_HISTORY, ROSTER_CHANGES_MAX, "1" if part else "0"])
        )
        return int(now), bool(full), int(upto), list(zip(written[::2], written[1::2])), [int(r) for r in removed]

    def _catch_up(
        self, tenant: str, since: int, pace: Callable[[], None] | None, deadline: float
    ) -> tuple[int, dict[bytes, bytes], set[int]] | None:
        """The changes after version ``since`` up to a version the roster had, read a part of at
        most ``ROSTER_CHANGES_MAX`` records at a time (each a short script), ``pace`` called
        between parts: (that version, number -> payload of the records written and not removed
        since, the numbers removed). A record written again moves to its newer version, so the
        parts read in order hold each record as last written; the last part reaches the version
        the roster then has. None when ``since`` falls out of the removals kept (the writer ran
        ``ROSTER_HISTORY`` versions ahead). A writer faster than the reader for ``deadline``
        (monotonic) raises StoreUnavailable."""
        keys = _roster_keys(tenant)
        records: dict[bytes, bytes] = {}
        removed: set[int] = set()
        while True:
            now, full, upto, written, gone = self._changes_since(keys, since, part=True)
            if full:
                return None
            records.update(written)
            removed.update(gone)
            since = upto
            if upto == now:
                for rid in removed:
                    records.pop(str(rid).encode(), None)
                return now, records, removed
            if time.monotonic() > deadline:
                raise _kept_changing(tenant)
            if pace is not None:
                pace()

    def write_roster(
        self, tenant: str, expected: int, written: Sequence[RosterRecord], removed: Sequence[RosterKey]
    ) -> int:
        args: list[EncodableT] = [expected, len(removed), ROSTER_HISTORY]
        args += [f"{kind}\x1f{key}" for kind, key in removed]
        for kind, key, record in written:
            args += [f"{kind}\x1f{key}", orjson.dumps([kind, key, record])]
        version, gone = self._versioned(
            f"the roster of tenant {tenant!r}", lambda: self._write_roster(keys=_roster_keys(tenant), args=args)
        )
        if gone:  # the AOF still holds the commands that wrote the removed records
            self._rewrite_soon()
        return int(version)

    # ------------------------------------------------------------------ references
    def note_references(self, tenant: str, pairs: Sequence[tuple[str, str]]) -> None:
        by_learner: dict[str, list[str]] = {}
        for learner, name in pairs:
            by_learner.setdefault(learner, []).append(name)
        if not by_learner:
            return
        pipe = self.client.pipeline(transaction=False)
        for learner, names in by_learner.items():
            pipe.sadd(_refs_key(tenant, learner), *names)
        self._call(pipe.execute)

    def references(self, tenant: str, learner_id: str) -> list[str]:
        return sorted(n.decode() for n in self._call(lambda: self.client.smembers(_refs_key(tenant, learner_id))))

    # ------------------------------------------------------------------ unaligned activities
    def note_unaligned(self, tenant: str, seen: Sequence[tuple[str, str, int, float]]) -> None:
        if not seen:
            return
        items = list(dict.fromkeys(item for item, _, _, _ in seen))
        slot = {item: k + 3 for k, item in enumerate(items)}  # KEYS is 1-based; the hashes follow two
        args: list[EncodableT] = []
        for item, learner, n, t in seen:
            args += [slot[item], item, learner, n, repr(float(t))]
        self._call(lambda: self._note_unaligned(keys=_unaligned_keys(tenant, items), args=args))

    def unaligned(self, tenant: str) -> list[Unaligned]:
        first_key, events_key = _unaligned_keys(tenant, [])
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(first_key)
        pipe.hgetall(events_key)
        first, events = self._call(pipe.execute)
        items = sorted(i.decode() for i in first)
        if not items:
            return []
        pipe = self.client.pipeline(transaction=False)
        for key in _unaligned_keys(tenant, items)[2:]:
            pipe.hlen(key)
        counts = self._call(pipe.execute)
        return [
            Unaligned(item, int(events.get(item.encode(), 0)), int(n), float(first[item.encode()]))
            for item, n in zip(items, counts)
        ]

    def unaligned_learners(self, tenant: str, item_ids: Sequence[str]) -> list[str]:
        items = list(dict.fromkeys(item_ids))
        if not items:
            return []
        pipe = self.client.pipeline(transaction=False)
        for key in _unaligned_keys(tenant, items)[2:]:
            pipe.hkeys(key)
        return sorted({learner.decode() for found in self._call(pipe.execute) for learner in found})

    def drop_unaligned(self, tenant: str, item_ids: Sequence[str]) -> None:
        items = list(dict.fromkeys(item_ids))
        if items:
            self._call(lambda: self._drop_unaligned(keys=_unaligned_keys(tenant, items), args=items))

    def _servers(self) -> list[Any]:
        """One client per server holding data: the server, or every primary of the cluster."""
        if not self.cluster:
            return [self.client]
        return [self.client.get_redis_connection(node) for node in self.client.get_primaries()]

    def _rewrite_aof(self) -> None:
        """Start an AOF rewrite on every server once none is running there, as long as deletions
        ask for one. A rewrite that was already running may have copied the deleted keys, so it
        does not count."""
        try:
            while True:
                with self._lock:
                    if not self._rewrite_wanted.is_set() or self._closed:
                        return
                try:
                    infos = [server.info("persistence") for server in self._servers()]
                    if not any(info.get("aof_enabled") for info in infos):
                        self._rewrite_wanted.clear()  # no AOF: nothing on disk holds the history
                        continue  # (ended at the top, under the lock)
                    if any(info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled") for info in infos):
                        time.sleep(0.2)
                        continue
                    with self._lock:  # until the servers say so, the rewrite is pending here
                        self._starting = True
                        self._rewrite_wanted.clear()
                    try:
                        for server, info in zip(self._servers(), infos):
                            if info.get("aof_enabled"):
                                server.bgrewriteaof()
                    finally:
                        self._starting = False
                except redis.ResponseError:  # a rewrite started meanwhile: wait for it, then ask again
                    self._rewrite_wanted.set()
                    time.sleep(0.2)
                except redis.RedisError as exc:  # unreachable: the next deletion asks again
                    log.warning("AOF rewrite after a learner deletion failed: %s", exc)
                    return
        finally:
            with self._lock:
                self._rewriter = None

    def aof_rewrite_pending(self) -> bool:
        """True while a deletion's AOF rewrite is wanted or running (for operators and tests)."""
        if self._rewrite_wanted.is_set() or self._starting:
            return True
        infos = self._call(lambda: [server.info("persistence") for server in self._servers()])
        return any(bool(info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled")) for info in infos)

    # ------------------------------------------------------------------ keys
    def put_key(self, key: ApiKeyRecord) -> None:
        mapping: dict[EncodableT, EncodableT] = {
            "tenant": key.tenant,
            "scopes": ",".join(key.scopes),
            "secret_hash": key.secret_hash,
            "created": repr(key.created),
            "revoked": int(key.revoked),
            "label": key.label,
            "user": key.user,
        }
        if not self._call(lambda: self.client.hsetnx(f"zpd:key:{key.key_id}", "tenant", key.tenant)):
            raise StoreError(f"API key id {key.key_id} already exists")
        self._call(lambda: self.client.hset(f"zpd:key:{key.key_id}", mapping=mapping))
        self._call(lambda: self.client.sadd("zpd:keys", key.key_id))

    def get_key(self, key_id: str) -> ApiKeyRecord | None:
        data = self._call(lambda: self.client.hgetall(f"zpd:key:{key_id}"))
        if not data or b"secret_hash" not in data:
            return None
        d = {k.decode(): v.decode() for k, v in data.items()}
        return ApiKeyRecord(
            key_id,
            d["tenant"],
            tuple(s for s in d["scopes"].split(",") if s),
            d["secret_hash"],
            float(d["created"]),
            d["revoked"] == "1",
            d.get("label", ""),
            d.get("user", ""),
        )

    def list_keys(self, tenant: str | None = None) -> list[ApiKeyRecord]:
        ids = sorted(m.decode() for m in self._call(lambda: self.client.smembers("zpd:keys")))
        keys = [k for k in (self.get_key(i) for i in ids) if k is not None]
        keys = [k for k in keys if tenant is None or k.tenant == tenant]
        return sorted(keys, key=lambda k: k.created)

    def revoke_key(self, key_id: str) -> bool:
        if not self._call(lambda: self.client.exists(f"zpd:key:{key_id}")):
            return False
        self._call(lambda: self.client.hset(f"zpd:key:{key_id}", "revoked", 1))
        return True

    # ------------------------------------------------------------------ settings
    def get_setting(self, name: str) -> tuple[int, str] | None:
        data = self._call(lambda: self.client.hmget(f"zpd:setting:{name}", ["version", "value"]))
        return (int(data[0]), data[1].decode()) if data[0] is not None else None

    def setting_versions(self, names: Sequence[str]) -> dict[str, int]:
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hget(f"zpd:setting:{name}", "version")
        return {n: int(v) for n, v in zip(names, self._call(pipe.execute)) if v is not None}

    def put_setting(self, name: str, value: str, expected_version: int | None = None) -> int:
        args = [value, "" if expected_version is None else expected_version]
        return int(
            self._versioned(f"setting {name!r}", lambda: self._put_setting(keys=[f"zpd:setting:{name}"], args=args))
        )

    def delete_settings(self, names: Sequence[str]) -> None:
        if not names:
            return
        pipe = self.client.pipeline(transaction=False)  # one key each: a cluster spreads them over slots
        for name in names:
            pipe.delete(f"zpd:setting:{name}")
        if any(self._call(pipe.execute)):
            self._rewrite_soon()

    # ------------------------------------------------------------------ lifecycle
    def ping(self) -> None:
        self._call(self.client.ping)

    def close(self) -> None:
        rewriter = self._rewriter
        if rewriter is not None and self._rewrite_wanted.is_set():
            rewriter.join(timeout=5)  # let a deletion's rewrite start before closing
        self._closed = True
        self.client.close()
