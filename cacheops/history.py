"""Request-path recording of cache figures into Redis per-minute buckets, for the dashboard's history.

The request path only adds to an in-process buffer (a dict update under a lock: no Redis round trip on an L1
hit). A daemon thread flushes the buffer every FLUSH_S in one pipeline: HINCRBY on each minute's hash (fields
`<tool>|<counter>`), ZINCRBY on the day's key-access sorted set, HSET of the recipes warming re-runs.
Fire-and-forget: every Redis step goes through `backend.call` (the one failure policy: an open Redis breaker
skips it, an unreachable Redis counts on the breaker like any other call), and a failed flush drops the buffered
samples and counts them in `dropped()`. Recording never raises and never waits on Redis, so a read cannot fail
or slow down because of it. A full buffer (Redis slow for long) drops new samples instead of growing.
The rollup into the database (dashboard.rollup) reads `read_minute`; nothing here knows about the database.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from cacheops import backend, keys
from cacheops.hit_rate import HIT_STATUSES
from cacheops.types import ReadRequest

log = logging.getLogger(__name__)

# Upper bounds, in milliseconds, of the latency buckets; "inf" catches the rest.
LATENCY_BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
# Reads answered from cache go to the cached latency histogram (cacheops.hit_rate defines which they are).
CACHED_STATUSES = frozenset(HIT_STATUSES)
UPSTREAM_OUTCOMES = ("ok", "error", "unavailable", "breaker_open")
UNCACHED_CALLS = "(uncached calls)"
# Minute buckets only need to outlive the rollup (every minute) with a wide margin for a stopped beat.
MINUTE_BUCKET_TTL_S = 6 * 3600
# Per-day key-access sets must outlive the longest "top queries" period the dashboard offers (30 days).
KEY_SET_TTL_S = 31 * 86400
# Bound on the per-day key-access sorted set (trimmed by `trim_key_counts`, which the rollup runs).
KEY_SET_MAX = 10_000

# Wall clock of the buckets; tests move it instead of sleeping.
clock: Callable[[], float] = time.time

FLUSH_S = 1.0
MAX_BUFFERED_SAMPLES = 100_000

_dropped = 0
_lock = threading.Lock()
_counters: dict[tuple[str, str], int] = defaultdict(int)  # (minute hash, field) -> amount
_key_counts: dict[tuple[str, str], int] = defaultdict(int)  # (day set, member) -> reads
# (recipes hash, member) -> recipe; every key is resolved when the sample is recorded, never at flush time,
# so a sample always lands under the namespace that was in force when it happened.
_recipes: dict[tuple[str, str], bytes] = {}
_samples = 0
_flusher_pid: int | None = None
_flush_lock = threading.Lock()


def _prefix() -> str:
    return keys.history_prefix()


def minute_of(ts: float) -> int:
    """Return the epoch second starting the minute of `ts`."""
    return int(ts) // 60 * 60


def minute_key(minute: int) -> str:
    """Return the Redis hash holding the counters of `minute` (epoch seconds)."""
    return keys.history_minute_key(minute)


def day_key(ts: float) -> str:
    """Return the Redis sorted set counting key accesses on the UTC day of `ts`."""
    global _last_day
    day, prefix = int(ts) // 86400, _prefix()
    if _last_day[:2] != (day, prefix):  # every read asks; formatting a date each time cost more than the rest
        _last_day = (day, prefix, keys.history_day_key(f"{datetime.fromtimestamp(ts, UTC):%Y%m%d}"))
    return _last_day[2]


_last_day: tuple[int, str, str] = (-1, "", "")


def bucket_of(seconds: float) -> str:
    """Return the histogram bucket label (upper bound in ms, or "inf") of a latency."""
    ms = seconds * 1000
    for bound in LATENCY_BUCKETS_MS:
        if ms <= bound:
            return str(bound)
    return "inf"


def dropped() -> int:
    """Return how many samples this process dropped because Redis was unavailable or the buffer was full."""
    return _dropped


def _drop(samples: int, why: str | None) -> None:
    global _dropped
    with _lock:
        _dropped += samples
    if why is not None:
        log.debug("%d history samples dropped: %s", samples, why)


def recipes_key() -> str:
    """Return the Redis hash remembering how to re-read each popular key (for warming)."""
    return keys.history_recipes_key()


def _send(fields: dict[str, int], member: str | None, ts: float, recipe: bytes | None = None) -> None:
    """Buffer one sample for the flusher; drop it when the buffer is full."""
    global _samples
    bucket = minute_key(minute_of(ts))
    with _lock:
        if _samples >= MAX_BUFFERED_SAMPLES:
            full = True
        else:
            full = False
            _samples += 1
            for field, amount in fields.items():
                _counters[(bucket, field)] += amount
            if member is not None:
                _key_counts[(day_key(ts), member)] += 1
                if recipe is not None:
                    _recipes[(recipes_key(), member)] = recipe
    if full:
        _drop(1, None)
    _ensure_flusher()


def _take() -> tuple[int, dict[tuple[str, str], int], dict[tuple[str, str], int], dict[tuple[str, str], bytes]]:
    global _samples, _counters, _key_counts, _recipes
    with _lock:
        taken = (_samples, _counters, _key_counts, _recipes)
        _samples, _counters, _key_counts, _recipes = 0, defaultdict(int), defaultdict(int), {}
    return taken


def flush() -> int:
    """Write the buffered samples to Redis in one pipeline; return how many samples were written (0 if dropped).

    Flushes are serialised, so when this returns every sample recorded before the call is in Redis (or dropped).
    """
    with _flush_lock:
        return _write(*_take())


def _write(
    samples: int,
    counters: dict[tuple[str, str], int],
    key_counts: dict[tuple[str, str], int],
    recipes: dict[tuple[str, str], bytes],
) -> int:
    if not samples:
        return 0

    def write(r: Any) -> bool:
        pipe = r.pipeline(transaction=False)
        for (bucket, field), amount in counters.items():
            pipe.hincrby(bucket, field, amount)
        for bucket in {b for b, _ in counters}:
            pipe.expire(bucket, MINUTE_BUCKET_TTL_S)
        for (day, member), reads in key_counts.items():
            pipe.zincrby(day, reads, member)
        for day in {d for d, _ in key_counts}:
            pipe.expire(day, KEY_SET_TTL_S)
        for (hash_key, member), recipe in recipes.items():
            pipe.hset(hash_key, member, recipe)
        for hash_key in {h for h, _ in recipes}:
            pipe.expire(hash_key, KEY_SET_TTL_S)
        pipe.execute()
        return True

    if not backend.degrade(lambda: backend.call(write), False):
        _drop(samples, "Redis unavailable or its breaker open")
        return 0
    return samples


def _flush_forever() -> None:
    while True:
        time.sleep(FLUSH_S)
        try:
            flush()
        except Exception:  # the flusher must outlive any surprise; the samples of that round are lost
            log.exception("history flush failed")


def _ensure_flusher() -> None:
    """Start this process's flusher thread once (again after a fork: threads do not survive it)."""
    global _flusher_pid
    pid = os.getpid()
    if _flusher_pid == pid:
        return
    with _lock:
        if _flusher_pid == pid:
            return
        _flusher_pid = pid
    threading.Thread(target=_flush_forever, name="cacheops-history", daemon=True).start()


def observe_read(request: ReadRequest, key: str, status: str, seconds: float) -> None:
    """Record one engine read of `request` stored under `key`; never raise.

    A miss also remembers the read's recipe (instance, tenant, tool, arguments) so warming can re-run it.
    """
    recipe = None
    if status == "miss":
        scope = request.scope
        try:
            recipe = orjson.dumps(
                {
                    "instance": scope.instance,
                    "tenant": scope.tenant,
                    "tool": request.tool,
                    "policy": request.policy,
                    "args": request.args,
                },
                option=orjson.OPT_NON_STR_KEYS,
            )
        except TypeError:  # arguments that are not JSON: count the read, do not remember how to warm it
            recipe = None
    record_read(request.tool, request.policy, status, seconds, key=key, recipe=recipe)


def record_read(
    tool: str, policy: str, status: str, seconds: float, key: str | None = None, recipe: bytes | None = None
) -> None:
    """Count one read of `tool` (cache policy `policy`) that ended in `status` after `seconds`; never raise."""
    counted, duration = _read_fields(tool, policy, status, bucket_of(seconds))
    fields = dict.fromkeys(counted, 1)
    fields[duration] = int(seconds * 1_000_000)
    _send(fields, f"{tool}|{key}" if key else None, clock(), recipe)


@functools.lru_cache(maxsize=8192)
def _read_fields(tool: str, policy: str, status: str, bucket: str) -> tuple[tuple[str, ...], str]:
    """Return the hash fields a read adds 1 to, and the one its microseconds go to (formatted once per process)."""
    kind = "cached" if status in CACHED_STATUSES else "uncached"
    counted = (
        f"{tool}|requests",
        f"{tool}|{status}",
        f"{tool}|h:{kind}:{bucket}",
        f"@{policy}|requests",
        f"@{policy}|{status}",
    )
    return counted, f"{tool}|us:{kind}"


def record_upstream(tool: str, outcome: str) -> None:
    """Count one call to JobNimbus made for `tool` with `outcome` (ok, error, unavailable, breaker_open)."""
    # Writes and other uncached calls reach the engine without a tool name ("-").
    name = tool if tool and tool != "-" else UNCACHED_CALLS
    _send({f"{name}|up:{outcome}": 1}, None, clock())


def read_minute(minute: int) -> dict[str, dict[str, int]]:
    """Return {tool or "@policy": {counter: value}} recorded in `minute`; CacheBackendError when Redis fails."""
    flush()  # this process's own recent samples first
    raw: dict[bytes, bytes] = backend.call(lambda r: r.hgetall(minute_key(minute)))  # type: ignore[arg-type,return-value]
    grouped: dict[str, dict[str, int]] = defaultdict(dict)
    for field, value in raw.items():
        name, _, counter = field.decode().partition("|")
        grouped[name][counter] = int(value)
    return dict(grouped)


def read_minutes(minutes: list[int]) -> dict[int, dict[str, dict[str, int]]]:
    """Return read_minute() of each of `minutes` in one pipeline (minutes with no bucket are left out).

    The dashboard's live view: the minutes not rolled up yet, straight from the flushed buckets.
    """
    if not minutes:
        return {}
    flush()  # this process's own recent samples first

    def read(r: Any) -> list[dict[bytes, bytes]]:
        pipe = r.pipeline(transaction=False)
        for minute in minutes:
            pipe.hgetall(minute_key(minute))
        return list(pipe.execute())

    raws: list[dict[bytes, bytes]] = backend.call(read)
    out: dict[int, dict[str, dict[str, int]]] = {}
    for minute, raw in zip(minutes, raws, strict=True):
        if not raw:
            continue
        grouped: dict[str, dict[str, int]] = defaultdict(dict)
        for field, value in raw.items():
            name, _, counter = field.decode().partition("|")
            grouped[name][counter] = int(value)
        out[minute] = dict(grouped)
    return out


def recipes(members: list[str]) -> dict[str, dict[str, Any]]:
    """Return the remembered recipes of `tool|key` members (one HMGET); members without one are left out."""
    if not members:
        return {}
    flush()  # this process's own recent samples first
    raws: Any = backend.call(lambda r: r.hmget(recipes_key(), members))
    out: dict[str, dict[str, Any]] = {}
    for member, raw in zip(members, raws, strict=True):
        if raw:
            try:
                out[member] = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
    return out


def top_keys(day_ts: float, limit: int) -> list[tuple[str, int]]:
    """Return the `limit` most-read `tool|key` members of the UTC day of `day_ts` with their counts."""
    flush()  # this process's own recent samples first
    rows: Any = backend.call(lambda r: r.zrevrange(day_key(day_ts), 0, limit - 1, withscores=True))
    return [(member.decode(), int(score)) for member, score in rows]


def recipe(member: str) -> dict[str, Any] | None:
    """Return the remembered recipe of a `tool|key` member, or None."""
    return recipes([member]).get(member)


def trim_key_counts(day_ts: float, keep: int = KEY_SET_MAX) -> int:
    """Drop all but the `keep` most-read members of the day's sorted set (and their recipes); return how many."""
    return int(backend.call(lambda r: _trim(r, day_key(day_ts), keep)))


def _trim(r: Any, day: str, keep: int) -> int:
    if int(r.hlen(recipes_key())) > 2 * keep:
        # Recipes outlive days; when they outgrow the bound, start over (misses re-learn the popular ones).
        r.delete(recipes_key())
    dropped_members = r.zrange(day, 0, -(keep + 1))
    if not dropped_members:
        return 0
    pipe = r.pipeline(transaction=False)
    pipe.zrem(day, *dropped_members)
    pipe.hdel(recipes_key(), *dropped_members)
    pipe.execute()
    return len(dropped_members)
