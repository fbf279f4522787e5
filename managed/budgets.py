"""Per-address budgets on the authorization server's open doors: client registration and sign-in.

Registration is open (MCP clients register themselves) and sign-in takes passwords, so one address could fill the
applications table or guess passwords as fast as it can send. Each door counts attempts per client address
(`cacheops.http.client_address`, TRUSTED_PROXY_COUNT-aware) in fixed windows in Redis, through the process's Redis
breaker like the /mcp budgets; when Redis fails the attempt is let through (a budget must not take sign-in down).
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest
from django_redis import get_redis_connection

from cacheops.api import redis_step, throttle_budget, throttle_window_key
from cacheops.errors import CacheBackendError
from cacheops.http import client_address

_PERIODS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}


def refusal_wait(door: str, request: HttpRequest) -> int | None:
    """Count one attempt at `door` ("registration" or "sign_in") from the request's address; return None when it is
    within the budget, else the whole seconds until the window ends."""
    count, _, unit = str(settings.MANAGED_DOOR_RATES[door]).partition("/")
    period = _PERIODS[unit]
    now = time.time()
    window = int(now // period)
    key = throttle_window_key(throttle_budget(f"oauth_{door}", client_address(request)), window)
    try:
        seen = redis_step(lambda: _count(key, period))
    except CacheBackendError:
        return None
    if seen <= int(count):
        return None
    return max(1, int(period - now % period + 0.999))


def _count(key: str, period: int) -> int:
    full_key = caches["default"].make_key(key)
    pipe = get_redis_connection("default").pipeline(transaction=False)
    pipe.set(full_key, 0, ex=period + 1, nx=True)
    pipe.incrby(full_key, 1)
    _, total = pipe.execute()
    return int(total)
