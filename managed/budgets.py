"""Per-address budgets on the authorization server's open doors: client registration and sign-in.

Registration is open (MCP clients register themselves) and sign-in takes passwords, so one address could fill the
applications table or guess passwords as fast as it can send. Each door counts attempts per client address
(`cacheops.http.client_address`, TRUSTED_PROXY_COUNT-aware) in fixed windows in Redis, through the process's Redis
breaker like the /mcp budgets; when Redis fails the attempt is let through (a budget must not take sign-in down).
"""

from __future__ import annotations

import time

from django.conf import settings
from django.http import HttpRequest

from cacheops.api import count_in_window, throttle_budget, throttle_window_key
from cacheops.errors import CacheBackendError
from cacheops.http import client_address

# A rate's period by its unit's first letter, as the /mcp budgets read it (DRF's SimpleRateThrottle.parse_rate).
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def refusal_wait(door: str, request: HttpRequest) -> int | None:
    """Count one attempt at `door` ("registration" or "sign_in") from the request's address; return None when it is
    within the budget, else the whole seconds until the window ends."""
    count, _, unit = str(settings.MANAGED_DOOR_RATES[door]).partition("/")
    period = _PERIODS[unit[0]]
    now = time.time()
    window = int(now // period)
    key = throttle_window_key(throttle_budget(f"oauth_{door}", client_address(request)), window)
    try:
        seen = count_in_window(key, period)
    except CacheBackendError:
        return None
    if seen <= int(count):
        return None
    return max(1, int(period - now % period + 0.999))
