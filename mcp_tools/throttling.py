"""Per-tenant request throttling: a fixed-window counter in Redis, keyed by the tenant id, failing open."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, cast

from django.conf import settings
from django.http import HttpRequest
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError, ResponseError
from rest_framework.throttling import SimpleRateThrottle

from cacheops.errors import CacheBackendError
from mcp_tools.protocol.errors import Throttled

logger = logging.getLogger(__name__)

_BACKEND_ERRORS = (ConnectionInterrupted, CacheBackendError, RedisError, OSError)


class TenantRateThrottle(SimpleRateThrottle):
    """Allow MCP_THROTTLE_RATE requests per tenant and window.

    DRF's own throttle keeps a list of timestamps and reads and rewrites it on every request: two Redis round
    trips and a list that grows with the rate, which cost more than a cached tool call itself. This counts in
    fixed windows instead, and each process reserves a block of the window's budget at once (one pipelined
    INCRBY + EXPIRE) and spends it locally, so most requests pay no round trip at all. The Redis counter is the
    sum of what every process reserved, so a tenant never gets more than the rate in a window across all
    processes; the price is that tokens reserved by an idle process are lost for that window (at most a block,
    1/50 of the rate, per process). A tenant may burst up to twice the rate across a window boundary, which is
    fine for a guard whose job is to keep one noisy tenant off JobNimbus. When Redis fails the request is
    allowed: throttling must not take the server down.
    """

    scope = "mcp_tenant"

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.window_ends_at = 0.0
        super().__init__()
        limit, window_s = self.parse_rate(self.rate)
        # settings validated MCP_THROTTLE_RATE at start-up, so both parts are present
        self.limit, self.window_s = int(limit or 0), int(window_s or 1)

    def get_rate(self) -> str:
        return str(settings.MCP_THROTTLE_RATE)

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.tenant}

    # After a cache failure the throttle stands aside for a while, so a Redis that hangs until its socket
    # timeout costs one request that delay, not every request (shared by the threads of this process).
    pause_after_failure_s = 30.0
    _paused_until = 0.0

    # This process's unspent reservations: tenant -> (window number, tokens left), shared by its threads.
    blocks_per_window = 50
    _leases: dict[str, tuple[int, int]] = {}
    _leases_lock = threading.Lock()
    _max_leases = 10_000

    def allow_request(self, request: Any, view: Any) -> bool:
        if time.monotonic() < TenantRateThrottle._paused_until:
            return True
        window = int(self.timer() // self.window_s)
        self.window_ends_at = (window + 1) * self.window_s
        self.key = f"{self.get_cache_key(request, view)}:{window}"
        verdict = self._local_verdict(window)
        if verdict is not None:
            return verdict
        try:
            return self._reserve(window)
        except ResponseError:
            # Something that is not a counter sits under the key (another deploy's format): start afresh.
            logger.warning("throttle counter unreadable; starting a fresh window for this tenant")
            self._forget()
            return True
        except _BACKEND_ERRORS as exc:
            logger.warning("throttle paused for %.0f s, cache unavailable: %s", self.pause_after_failure_s, exc)
            TenantRateThrottle._paused_until = time.monotonic() + self.pause_after_failure_s
            return True

    def wait(self) -> float:
        return max(0.0, self.window_ends_at - self.timer())

    def _local_verdict(self, window: int) -> bool | None:
        """Answer from this process's lease for the window: True spends a token, False means the window's budget
        is gone everywhere (the counter never goes down), None means ask Redis."""
        with self._leases_lock:
            leased_window, left = self._leases.get(self.tenant, (window - 1, 0))
            if leased_window != window or left == 0:
                return None
            if left < 0:
                return False
            self._leases[self.tenant] = (window, left - 1)
            return True

    def _reserve(self, window: int) -> bool:
        """Reserve a block of the window's budget in Redis; allow this request if any of it was granted."""
        block = max(1, self.limit // self.blocks_per_window)
        total = self._count(self.key or "", block)
        granted = min(block, max(0, self.limit - (total - block)))
        with self._leases_lock:
            if len(self._leases) >= self._max_leases:
                self._leases.clear()  # a crowd of tenants: forget spare tokens rather than grow without bound
            self._leases[self.tenant] = (window, granted - 1 if granted else -1)
        return granted > 0

    def _count(self, key: str, amount: int) -> int:
        """Add `amount` to the window's counter and return the new total, in one round trip."""
        redis = cast(Any, self.cache).client.get_client(write=True)  # django-redis's raw client
        pipe = redis.pipeline(transaction=False)
        full_key = self.cache.make_key(key)
        # Created with its expiry if absent (SET NX EX: any Redis; EXPIRE NX would need Redis 7), then counted.
        pipe.set(full_key, 0, ex=self.window_s + 1, nx=True)
        pipe.incrby(full_key, amount)
        _, count = pipe.execute()
        return int(count)

    def _forget(self) -> None:
        try:
            self.cache.delete(self.key)
        except _BACKEND_ERRORS:
            logger.warning("could not drop an unreadable throttle counter")


def enforce(request: HttpRequest, tenant: str | None) -> None:
    """Raise 429 with Retry-After when the tenant has used up its rate.

    Callers without a key are not counted: they can only list tools and shake hands, which never reach
    JobNimbus, and keying them by address would make every client behind one NAT share a budget.
    """
    if tenant is None:
        return
    throttle = TenantRateThrottle(tenant)
    if throttle.allow_request(request, None):
        return
    wait = throttle.wait()
    retry_after = max(1, round(wait)) if wait is not None else 1
    raise Throttled(
        f"Too many requests for this API key; retry in {retry_after} s (limit {throttle.rate})",
        headers={"Retry-After": str(retry_after)},
        data={"retry_after_s": retry_after},
    )
