"""What the source of truth last said about one caller's key (per instance and tenant): refused, accepted, or wait.

Kept in Redis (cacheops.keys `caller_key`, `caller_backoff_key`, each expiring on its own) so every process knows,
and mirrored in a bounded in-process memory that alone answers while Redis is away:

- refused (401/403): for REFUSED_KEY_TTL_S the key is not sent upstream and none of its cached entries is served.
  A refusal is never overwritten by an acceptance before it expires (a call sent before the key was revoked may
  still come back 200).
- accepted: the source answered the key within KEY_REVALIDATE_S. Only then are its cached entries served; otherwise
  the read asks the source first (the stored value is served only if the source is unavailable). This bounds how
  long a revoked key that only ever hits cache is served: KEY_REVALIDATE_S after the source last accepted it.
- backing off (429): until the Retry-After (KEY_BACKOFF_DEFAULT_S without one, at most KEY_BACKOFF_MAX_S) the key is
  not sent upstream; its cached answers are still served. Rate limits are per key: other keys never wait for it.

The periods run in real time (time.monotonic here, PX in Redis), never on the engine's movable wall clock, which
measures entries' windows.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from cacheops import backend, keys
from cacheops.conf import engine_setting
from cacheops.errors import CacheBackendError, KeyBackoffError, KeyRefusedError, whole_seconds

logger = logging.getLogger(__name__)

REFUSED = b"refused"
ACCEPTED = b"ok"
# Tenants remembered in process; past it the oldest are forgotten (Redis still knows them), so callers minting
# keys by the million cannot grow a worker's memory.
MAX_REMEMBERED = 10_000

# Record an acceptance unless a refusal is in force: the refusal must hold its whole period.
_ACCEPT_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[2] then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3]) end
return 1
"""


@dataclass(frozen=True)
class Standing:
    """A key's standing now: the seconds a refusal or a back-off still holds (0: none), and whether it is trusted."""

    refused_s: float = 0.0
    backoff_s: float = 0.0
    accepted: bool = False


@dataclass(frozen=True)
class _Deadlines:
    """When (time.monotonic) the refusal, the acceptance and the back-off of one key end; 0 for never set."""

    refused: float = 0.0
    accepted: float = 0.0
    backoff: float = 0.0

    def standing(self, now: float) -> Standing:
        refused = max(0.0, self.refused - now)
        return Standing(refused, max(0.0, self.backoff - now), accepted=not refused and self.accepted > now)


_NEVER = _Deadlines()


class CallerMemory:
    """One process's memory of callers' keys, shared with the others through Redis."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._deadlines: dict[tuple[str, str], _Deadlines] = {}

    # --- reading ---------------------------------------------------------------------------------------
    def local(self, instance: str, tenant: str) -> Standing:
        """Return what this process knows, without Redis (the L1 path: a dictionary read)."""
        return self._deadlines.get((instance, tenant), _NEVER).standing(self.clock())

    def shared(self, instance: str, tenant: str) -> Standing:
        """Return what any process knows, in one Redis round trip (this process's alone when Redis is away)."""

        def run(r: Any) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            queue_reads(pipe, instance, tenant)
            answers: list[Any] = pipe.execute()
            return answers

        try:
            answers = backend.call(run, instance)
        except CacheBackendError:
            return self.local(instance, tenant)
        return self.merge(instance, tenant, answers)

    def merge(self, instance: str, tenant: str, answers: Sequence[Any]) -> Standing:
        """Fold the answers of `queue_reads` into this process's memory; return the standing now.

        A refusal wins over an acceptance, here or in Redis: it is the later news about a key.
        """
        verdict, verdict_ms, backoff_ms = answers
        now = self.clock()
        with self._lock:
            current = self._deadlines.get((instance, tenant), _NEVER)
            learned = current
            if verdict == REFUSED and verdict_ms > 0:
                learned = replace(learned, refused=max(learned.refused, now + verdict_ms / 1000), accepted=0.0)
            elif verdict == ACCEPTED and verdict_ms > 0 and learned.refused <= now:
                learned = replace(learned, accepted=max(learned.accepted, now + verdict_ms / 1000))
            if backoff_ms > 0:
                learned = replace(learned, backoff=max(learned.backoff, now + backoff_ms / 1000))
            if learned != current:
                self._put((instance, tenant), learned)
        return learned.standing(now)

    # --- recording -------------------------------------------------------------------------------------
    def refuse(self, instance: str, tenant: str) -> None:
        """Remember that the source refused the key: no upstream call and no cached answer for REFUSED_KEY_TTL_S."""
        period = float(engine_setting("REFUSED_KEY_TTL_S"))
        self._update(instance, tenant, lambda d, now: replace(d, refused=now + period, accepted=0.0))
        _quietly(
            lambda: backend.call(lambda r: r.set(keys.caller_key(instance, tenant), REFUSED, px=_ms(period)), instance)
        )
        logger.warning("JobNimbus refused the key of tenant %s on %s; not sent for %g s", tenant[:8], instance, period)

    def accept(self, instance: str, tenant: str) -> None:
        """Remember that the source answered the key: its cached entries may be served for KEY_REVALIDATE_S."""
        period = float(engine_setting("KEY_REVALIDATE_S"))
        now = self.clock()
        current = self._deadlines.get((instance, tenant), _NEVER)
        if current.refused > now or current.accepted - now > period / 2:
            return  # refused meanwhile (the refusal holds), or renewed lately: spare Redis the write
        self._update(instance, tenant, lambda d, at: replace(d, accepted=at + period))
        key = keys.caller_key(instance, tenant)
        _quietly(lambda: backend.run_script("caller_accept", _ACCEPT_LUA, [key], [ACCEPTED, REFUSED, _ms(period)]))

    def back_off(self, instance: str, tenant: str, retry_after_s: float | None) -> float:
        """Hold the key back after a 429 for its Retry-After (default and cap from settings); return the wait."""
        wait = backoff_period(retry_after_s)
        self._update(instance, tenant, lambda d, now: replace(d, backoff=max(d.backoff, now + wait)))
        _quietly(
            lambda: backend.call(
                lambda r: r.set(keys.caller_backoff_key(instance, tenant), b"1", px=_ms(wait)), instance
            )
        )
        logger.warning("JobNimbus rate limited the key of tenant %s on %s; held back %g s", tenant[:8], instance, wait)
        return wait

    def _update(self, instance: str, tenant: str, change: Callable[[_Deadlines, float], _Deadlines]) -> None:
        with self._lock:
            key = (instance, tenant)
            self._put(key, change(self._deadlines.get(key, _NEVER), self.clock()))

    def _put(self, key: tuple[str, str], deadlines: _Deadlines) -> None:
        """Store under the lock; re-inserted last, so the oldest-touched tenant is forgotten first."""
        self._deadlines.pop(key, None)
        self._deadlines[key] = deadlines
        while len(self._deadlines) > MAX_REMEMBERED:
            del self._deadlines[next(iter(self._deadlines))]


def queue_reads(pipe: Any, instance: str, tenant: str) -> None:
    """Add the three reads `CallerMemory.merge` expects to a Redis pipeline (so a read can share its round trip)."""
    pipe.get(keys.caller_key(instance, tenant))
    pipe.pttl(keys.caller_key(instance, tenant))
    pipe.pttl(keys.caller_backoff_key(instance, tenant))


def backoff_period(retry_after_s: float | None) -> float:
    """Return how long a key answered 429 is held back: its Retry-After within [1 s, KEY_BACKOFF_MAX_S]."""
    if retry_after_s is None or math.isnan(retry_after_s):
        retry_after_s = float(engine_setting("KEY_BACKOFF_DEFAULT_S"))
    return max(1.0, min(retry_after_s, float(engine_setting("KEY_BACKOFF_MAX_S"))))


def raise_if_refused(standing: Standing) -> None:
    """Raise KeyRefusedError while a refusal of the key holds."""
    if standing.refused_s > 0:
        wait = whole_seconds(standing.refused_s, 1)
        raise KeyRefusedError(
            f"it was refused moments ago, so for the next {wait} s it is not sent again and no cached answer is "
            "served for it",
            retry_after_s=wait,
        )


def raise_if_held(standing: Standing) -> None:
    """Raise while the key may not be sent upstream: refused, or backing off after a 429."""
    raise_if_refused(standing)
    if standing.backoff_s > 0:
        wait = whole_seconds(standing.backoff_s, 1)
        raise KeyBackoffError(f"JobNimbus is rate limiting this key: retry in {wait} s", retry_after_s=wait)


def _quietly(write: Callable[[], Any]) -> None:
    # Redis away: this process still knows; the other processes learn it from their own calls.
    try:
        write()
    except CacheBackendError:
        return


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))
