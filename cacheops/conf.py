"""Cache engine options: one namespaced settings dict (`CACHEOPS_ENGINE`) with defaults, read lazily.

DEFAULTS is the one place the defaults are written (settings.py passes only what the environment sets; a partial
dict is merged over DEFAULTS). Resolved once per process and remembered (every read consults several; resolving
cost microseconds each), and forgotten whenever Django reports a change of `CACHEOPS_ENGINE`, so
`override_settings` and pytest's `settings` still work.
"""

from __future__ import annotations

from typing import Any

from cacheops.options import Options

DEFAULTS: dict[str, Any] = {
    # False (CACHE_ENABLED=false): every read bypasses the cache.
    "ENABLED": True,
    # Prepended to every key the engine writes; tests give each run its own so they never collide.
    "KEY_NAMESPACE": "",
    # Values whose encoded size exceeds this are served but not cached (issue 4: 512 KB).
    "MAX_ITEM_SIZE_KB": 512,
    "L1_TTL_S": 5.0,
    "L1_MAX_ENTRIES": 5000,
    "L1_MAX_BYTES": 64 * 1024 * 1024,
    # Cross-process single flight: the lock outlives the slowest fetch the client allows (20 s budget).
    "LOCK_TTL_S": 30.0,
    # A waiter gives up on the lock holder after this long and fetches itself.
    "LOCK_WAIT_S": 20.0,
    # Waiters are woken by pub/sub; this backstop re-checks in case the holder died or a message was lost.
    "LOCK_RECHECK_S": 0.5,
    "REFRESH_WORKERS": 4,
    # Request threads a process lets block on misses (fetching, or waiting on another's fetch of the same key);
    # up to MISS_QUEUE more wait MISS_QUEUE_WAIT_S for a slot, the rest are refused at once ("busy, retry in 1 s"),
    # or served stale inside stale-if-error. 0 = no limit. 48 (+8 queued) fits the Procfile's 64 request threads per
    # process (granian's --blocking-threads, WEB_THREADS), so 8 threads always remain for cached hits; a server with
    # fewer threads must lower them (threads > the two together; bench/figures_servers.py measures what happens
    # otherwise). Sized by bench/load: at 10,000 calls/min with JobNimbus at 500 +- 300 ms, followers of a hot key's
    # fill hold slots too, and 4 + 2 refused 10-20 % of calls while JobNimbus was healthy.
    "MISS_CONCURRENCY": 48,
    "MISS_QUEUE": 8,
    "MISS_QUEUE_WAIT_S": 3.0,
    # A write whose invalidation Redis refused (a failover under way) waits up to this long for Redis to take it
    # before the write is acknowledged, so a read that follows the acknowledgement cannot be answered by an entry the
    # new primary still holds. Longer outages: the write is acknowledged and the stored event is replayed later.
    "WRITE_SETTLE_S": 3.0,
    "WRITE_SETTLE_POLL_S": 0.2,
    "REFRESH_MAX_PENDING": 256,
    # XFetch beta (Vattani et al.): 1.0 is the paper's optimum; 0 disables early refresh.
    "XFETCH_BETA": 1.0,
    # Generation counters must outlive any fetch by far; a day also bounds their memory.
    "GENERATION_TTL_S": 86400,
    # While open, one thread per process PINGs Redis every PROBE_INTERVAL_S and closes the breaker on an answer
    # (0 turns probing off: then only OPEN_S's cool-down and half-open traffic close it).
    "REDIS_BREAKER": {
        "FAILURES": 5,
        "WINDOW_S": 120.0,
        "OPEN_S": 60.0,
        "HALF_OPEN_SUCCESSES": 3,
        "PROBE_INTERVAL_S": 1.0,
    },
    "UPSTREAM_BREAKER": {"FAILURES": 5, "OPEN_S": 30.0, "MAX_OPEN_S": 300.0},
    # What JobNimbus said about one caller's key (cacheops.callers): a refused key (401/403) is not sent, nor served
    # from cache, for REFUSED_KEY_TTL_S; cached answers are served to a key only while JobNimbus accepted it within
    # KEY_REVALIDATE_S (else the read asks it first); a key answered 429 waits its Retry-After (or the default), capped.
    "REFUSED_KEY_TTL_S": 60.0,
    "KEY_REVALIDATE_S": 300.0,
    "KEY_BACKOFF_DEFAULT_S": 30.0,
    "KEY_BACKOFF_MAX_S": 300.0,
    # Policy name -> fresh TTL seconds, from CACHE_TTL_<POLICY> (see settings).
    "TTL_OVERRIDES": {},
}


engine_setting = Options("CACHEOPS_ENGINE", DEFAULTS)


def cache_enabled() -> bool:
    """Return whether the cache is on (CACHEOPS_ENGINE["ENABLED"], CACHE_ENABLED); off means every read is a bypass."""
    return bool(engine_setting("ENABLED"))
