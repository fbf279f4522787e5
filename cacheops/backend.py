"""The engine's Redis layer: the raw clients behind django-redis's caches, the codec, and the Lua steps.

Every Redis call goes through `call`, which consults the Redis breaker and wraps Redis errors ONCE into
CacheBackendError. A caller that can do without Redis wraps its step in `degrade`, which turns that error into
a fallback value: the one place where "Redis failed" becomes "go on without it".

`call(op, instance=...)` runs on the Redis holding that JobNimbus instance's keys (cacheops.redis_topology: the
`default` cache unless REDIS_URL_<INSTANCE> gives it its own), under that Redis's own breaker; without `instance`
it runs on `default`, where the global families live. The Lua steps route by their keys' hash tag (the instance),
so each runs on the Redis, and in a cluster on the one slot, of the instance it serves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from django.core.cache import caches
from django_redis import get_redis_connection
from django_redis.exceptions import CompressorError
from redis.cluster import RedisCluster
from redis.exceptions import ClusterError, RedisClusterException, SlotNotCoveredError

from cacheops import keys, metrics
from cacheops.breakers import redis_breaker, set_redis_probe
from cacheops.errors import CacheBackendError
from cacheops.keys import hash_tag
from cacheops.redis_topology import alias_for

# Redis did not answer: its breaker counts a failure. A cluster that lost a slot's primary, or whose redirections
# ran out, is down for the keys asked (ClusterError: TTL exhausted; ClusterDownError; a slot no node covers).
_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, OSError, ClusterError, SlotNotCoveredError)
# Redis (or redis-py's cluster routing, e.g. keys of two slots) refused the command: it is up.
_REFUSED = (redis.RedisError, RedisClusterException)

T = TypeVar("T")

# "Redis did not answer" is not "nothing stored" (Django's _missing_key idea): degrade's default fallback.
DOWN: Any = object()

# Store only if no generation counter of the entry (its tags', the clear epochs) moved since the fetch began
# (generation guard), then index it under its tags; an index lives at least as long as its longest-lived entry.
_STORE_STEP = """
local n = tonumber(ARGV[3])
local m = tonumber(ARGV[4])
local stored = 1
for i = 1, n do
  if tonumber(redis.call('GET', KEYS[1 + i]) or '0') ~= tonumber(ARGV[4 + i]) then stored = 0 break end
end
if stored == 1 then
  local px = tonumber(ARGV[2])
  redis.call('SET', KEYS[1], ARGV[1], 'PX', px)
  for i = 1, m do
    local idx = KEYS[1 + n + i]
    redis.call('SADD', idx, KEYS[1])
    if redis.call('PTTL', idx) < px then redis.call('PEXPIRE', idx, px) end
  end
end
"""
STORE_LUA = _STORE_STEP + "return stored\n"
# The store step, then the single-flight release (as RELEASE_LUA): a miss's last two steps in one round trip.
STORE_AND_RELEASE_LUA = (
    _STORE_STEP
    + """
local lock, waiters = KEYS[2 + n + m], KEYS[3 + n + m]
if redis.call('GET', lock) == ARGV[5 + n] then redis.call('DEL', lock) end
if redis.call('DEL', waiters) == 1 then redis.call('PUBLISH', ARGV[6 + n], KEYS[1]) end
return stored
"""
)

# Delete every member of every tag index, the indexes themselves, and bump the tags' generations: one atomic step.
INVALIDATE_LUA = """
local n = tonumber(ARGV[1])
local dropped = 0
for i = 1, n do
  local members = redis.call('SMEMBERS', KEYS[i])
  for j = 1, #members, 500 do
    dropped = dropped + redis.call('UNLINK', unpack(members, j, math.min(j + 499, #members)))
  end
  redis.call('UNLINK', KEYS[i])
  redis.call('INCR', KEYS[n + i])
  redis.call('EXPIRE', KEYS[n + i], tonumber(ARGV[2]))
end
return dropped
"""

# Release the single-flight lock if still ours, and wake waiting processes if any announced themselves.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if redis.call('DEL', KEYS[2]) == 1 then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return 1
"""

_scripts: dict[str, Any] = {}


def client(instance: str | None = None) -> redis.Redis:
    """Return the raw client of the Redis holding `instance`'s keys (None: `default`, django-redis's pool).

    A Redis, a RedisCluster (same commands; multi-key ones within one slot), or a Sentinel set's master.
    """
    return _client_of(alias_for(instance))


def _client_of(alias: str) -> redis.Redis:
    return get_redis_connection(alias)


def publish(r: Any, channel: str, payload: bytes) -> Any:
    """PUBLISH `payload` where the subscribers listen.

    On a cluster every process's subscription sits on the primary of its first channel's slot (the fill channel:
    redis-py's ClusterPubSub, cacheops.broadcast). A PUBLISH sent to that node reaches them before it returns; sent
    to another node it travels over the cluster bus afterwards, so a write's answer could overtake its own
    invalidation on the way to the other processes' L1.
    """
    if isinstance(r, RedisCluster):
        try:
            return r.publish(channel, payload, target_nodes=r.get_node_from_key(keys.fill_channel()))
        except (redis.RedisError, RedisClusterException):
            # redis-py does not retry a command sent to a named node; its own routing (a refreshed slot map, its
            # retries) at least gets the message onto the cluster bus during a failover.
            pass
    return r.publish(channel, payload)


def encode(value: Any) -> bytes:
    """Return `value` encoded by the cache's configured serializer and compressor."""
    return caches["default"].client.encode(value, allow_int=False)  # type: ignore[attr-defined]


def decode(raw: bytes) -> Any:
    """Return the value encoded in `raw`."""
    return caches["default"].client.decode(raw)  # type: ignore[attr-defined]


def encode_sized(value: Any) -> tuple[bytes, int]:
    """Return `value` encoded (as `encode`) and the length of its serialized text before compression.

    The length is what the L1 tier's memory estimate starts from (cacheops.l1.decoded_size); django-redis's own
    encode does not tell it, so its two steps are run here.
    """
    codec = caches["default"].client  # type: ignore[attr-defined]
    text: bytes = codec._serializer.dumps(value)
    return codec._compressor.compress(text), len(text)


def decode_sized(raw: bytes) -> tuple[Any, int]:
    """Return the value encoded in `raw` (never an int: envelopes are objects) and the length of its text."""
    codec = caches["default"].client  # type: ignore[attr-defined]
    try:
        text: bytes = codec._compressor.decompress(raw)
    except CompressorError:  # stored uncompressed (small, or compression off)
        text = raw
    return codec._serializer.loads(text), len(text)


def call(operation: Callable[[redis.Redis], T], instance: str | None = None) -> T:
    """Run `operation` on the Redis of `instance` (None: `default`) under its breaker; raise CacheBackendError when
    it fails or the breaker is open."""
    alias = alias_for(instance)
    breaker = redis_breaker(alias)
    if not breaker.allow():
        raise CacheBackendError("Redis breaker is open")
    try:
        # client() called bare for `default`: the one seam tests replace to take Redis away.
        result = operation(client(instance) if instance is not None else client())
    except _UNREACHABLE as exc:
        breaker.record_failure()
        metrics.ERRORS.labels("redis").inc()
        raise CacheBackendError(f"Redis is unreachable: {exc.__class__.__name__}") from exc
    except _REFUSED as exc:
        # Redis answered (an error reply): it is up, so the breaker is not told of a failure.
        breaker.record_success()
        metrics.ERRORS.labels("redis_reply").inc()
        raise CacheBackendError(f"Redis refused the command: {exc}") from exc
    breaker.record_success()
    return result


def run_script(name: str, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """Run a Lua script by SHA (loading it once), through `call`, on the Redis of its first key's instance.

    A script's keys share that hash tag (cacheops.keys), so a cluster runs it on one node: the first key routes it.
    """

    def operation(r: redis.Redis) -> Any:
        script = _scripts.get(name)
        if script is None:
            script = _scripts[name] = r.register_script(source)
        return script(keys=list(keys), args=list(args), client=r)

    return call(operation, instance=hash_tag(keys[0]) if keys else None)


@dataclass
class Release:
    """A key's single-flight lock to release, and its waiters to wake; `done` once Redis has run the release."""

    key: str
    lock_key: str
    waiters_key: str
    token: str
    channel: str
    done: bool = False


def store(
    key: str,
    raw: bytes,
    px: int,
    gen_keys: Sequence[str],
    seen: Sequence[int],
    index_keys: Sequence[str],
    release: Release | None = None,
) -> bool:
    """Store `raw` under `key` for `px` ms unless a generation moved; return whether it was stored.

    With `release`, the lock is released and its waiters woken in the same call, stored or not.
    """
    keys = [key, *gen_keys, *index_keys]
    args = [raw, px, len(gen_keys), len(index_keys), *seen]
    if release is None:
        return bool(run_script("store", STORE_LUA, keys, args))
    keys += [release.lock_key, release.waiters_key]
    args += [release.token, release.channel]
    stored = bool(run_script("store_and_release", STORE_AND_RELEASE_LUA, keys, args))
    release.done = True
    return stored


def invalidate(index_keys: Sequence[str], gen_keys: Sequence[str], generation_ttl_s: int) -> int:
    """Drop every entry indexed under `index_keys` and bump `gen_keys`; return the number dropped."""
    return int(run_script("invalidate", INVALIDATE_LUA, [*index_keys, *gen_keys], [len(index_keys), generation_ttl_s]))


def bump(gen_key: str, generation_ttl_s: int) -> None:
    """Increment one generation counter (refusing stores of fetches that read it before) and renew its TTL."""

    def operation(r: redis.Redis) -> None:
        with r.pipeline(transaction=False) as pipe:
            pipe.incr(gen_key)
            pipe.expire(gen_key, generation_ttl_s)
            pipe.execute()

    call(operation, instance=hash_tag(gen_key))


def release(lock: Release) -> None:
    """Release a single-flight lock and announce the fill to waiting processes."""
    run_script("release", RELEASE_LUA, [lock.lock_key, lock.waiters_key], [lock.token, lock.channel, lock.key])
    lock.done = True


def reset_scripts() -> None:
    """Forget registered scripts (a new client or server needs them loaded again)."""
    _scripts.clear()


def ping(alias: str = "default") -> float | None:
    """Return the round trip to Redis `alias` in ms, or None when it does not answer (health only: no breaker).

    A cluster answers when every primary does (RedisCluster pings them all).
    """
    started = time.perf_counter()
    try:
        _client_of(alias).ping()
    except (redis.RedisError, RedisClusterException, OSError):
        return None
    return round((time.perf_counter() - started) * 1000, 3)


def degrade(operation: Callable[[], T], fallback: Any = DOWN) -> T | Any:
    """Run a Redis step; when Redis fails or its breaker is open, return `fallback` instead (the one place)."""
    try:
        return operation()
    except CacheBackendError:
        return fallback


set_redis_probe(lambda alias: ping(alias) is not None)
