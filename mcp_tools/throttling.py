"""Per-tenant request throttling: DRF's sliding-window throttle, keyed by the tenant id, failing open."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError
from rest_framework.throttling import SimpleRateThrottle

from cacheops.errors import CacheBackendError
from mcp_tools.protocol.errors import Throttled

logger = logging.getLogger(__name__)

_BACKEND_ERRORS = (ConnectionInterrupted, CacheBackendError, RedisError, OSError)


class TenantRateThrottle(SimpleRateThrottle):
    """Allow MCP_THROTTLE_RATE requests per tenant.

    The history lives in Django's cache (Redis), so the limit holds across processes. When Redis fails the
    request is allowed: throttling protects JobNimbus from one noisy tenant, it must not take the server down.
    """

    scope = "mcp_tenant"

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        super().__init__()

    def get_rate(self) -> str:
        return str(settings.MCP_THROTTLE_RATE)

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.tenant}

    # After a cache failure the throttle stands aside for a while, so a Redis that hangs until its socket
    # timeout costs one request that delay, not every request (shared by the threads of this process).
    pause_after_failure_s = 30.0
    _paused_until = 0.0

    def allow_request(self, request: Any, view: Any) -> bool:
        if time.monotonic() < TenantRateThrottle._paused_until:
            return True
        try:
            return super().allow_request(request, view)
        except _BACKEND_ERRORS as exc:
            logger.warning("throttle paused for %.0f s, cache unavailable: %s", self.pause_after_failure_s, exc)
            TenantRateThrottle._paused_until = time.monotonic() + self.pause_after_failure_s
            return True
        except Exception:
            # An unreadable history (e.g. written by a deploy with another cache serializer) must not fail
            # the request: drop it and let the tenant start a fresh window.
            logger.exception("throttle history unreadable; starting a fresh window for this tenant")
            self._forget()
            return True

    def _forget(self) -> None:
        try:
            self.cache.delete(self.key)
        except _BACKEND_ERRORS:
            logger.warning("could not drop an unreadable throttle history")


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
