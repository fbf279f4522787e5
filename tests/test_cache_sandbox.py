"""The engine in front of the sandbox JobNimbus: stale-if-error on 503, fail-fast, refused keys."""

from __future__ import annotations

import pytest
import requests

from cacheops import engine
from cacheops.errors import UpstreamUnavailableError
from sandbox.server import SandboxHandle
from tests.cache_helpers import contacts_request, sandbox_fetch
from tests.fixtures.redis import CacheEnv
from tests.fixtures.sandbox import SANDBOX_ADMIN_KEY, control

HOUR = 3600


def read(sandbox: SandboxHandle, key: str = SANDBOX_ADMIN_KEY, size: int = 5):
    return engine.engine().read(contacts_request(key, size), lambda: sandbox_fetch(sandbox.base_url, key, size))


def test_stale_if_error_when_jobnimbus_answers_503(
    cache_backend: CacheEnv, clean_sandbox: SandboxHandle, cache_clock: list[float]
) -> None:
    fresh = read(clean_sandbox)
    control(clean_sandbox, "POST", "faults", {"status": 503, "retry_after": 5})
    cache_clock[0] += HOUR * 1.6
    engine.engine().l1.clear()
    stale = read(clean_sandbox)
    assert (fresh.status, stale.status) == ("miss", "stale")
    assert stale.value == fresh.value
    assert control(clean_sandbox, "GET", "stats")["total"] == 2


def test_fail_fast_when_jobnimbus_answers_503_and_nothing_is_cached(
    cache_backend: CacheEnv, clean_sandbox: SandboxHandle
) -> None:
    control(clean_sandbox, "POST", "faults", {"status": 503})
    with pytest.raises(UpstreamUnavailableError, match="503"):
        read(clean_sandbox)


def test_a_key_jobnimbus_refuses_is_not_answered_from_another_keys_cache(
    cache_backend: CacheEnv, clean_sandbox: SandboxHandle
) -> None:
    assert read(clean_sandbox).status == "miss"
    for _ in range(2):
        with pytest.raises(requests.HTTPError, match="401"):
            read(clean_sandbox, key="not-a-valid-key-0001")
    assert control(clean_sandbox, "GET", "stats")["total"] == 3
