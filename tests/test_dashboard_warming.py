"""Warming: popular keys re-warmed after invalidation, bounded per run, only for the server-held key's tenant,
expiring entries refreshed before they go; and the hit rate after warming.

Every test runs at each instant of `moved_clock`: keys are read ten minutes before it and warming runs at it, so at
the boundary instants the reads were on the UTC day (month, year) before the run.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
import redis
from django.core.management import call_command

from cacheops import engine as engine_module
from cacheops import history, warming
from cacheops.api import CacheScope, ReadRequest, invalidate_tags, list_tag, read_through, tenant_id
from cacheops.policies import effective_policy
from dashboard.conf import configured_warmer
from tests.fixtures.clock import Clock

pytestmark = pytest.mark.django_db

SERVER_KEY = "server-held-key"
FETCHES: list[dict[str, Any]] = []
# How long before the warming run the keys were read.
READ_AGO = timedelta(minutes=10)


def _request(tenant: str, args: dict[str, Any]) -> ReadRequest:
    return ReadRequest(
        scope=CacheScope("demo", tenant),
        entity="contact",
        op="list",
        policy="contacts",
        args=args,
        tool="get_contacts",
        tags=(list_tag("contact"),),
    )


def _fetch(args: dict[str, Any]) -> Any:
    def fetch() -> Any:
        FETCHES.append(args)
        return {"results": [args], "n": len(FETCHES)}

    return fetch


def warm_with_fetch(instance: str, api_key: str, tool: str, args: dict[str, Any]) -> bool:
    """The test's WARMER: what mcp_tools.warmer does, with a counting fetch instead of JobNimbus."""
    read_through(_request(tenant_id(api_key), args), _fetch(args))
    return True


@pytest.fixture(autouse=True)
def _instances(hist_redis: redis.Redis, settings: Any, moved_clock: Clock) -> None:
    settings.JOBNIMBUS_INSTANCES = {"demo": {"api_key": SERVER_KEY, "webhook_secret": None}}
    settings.DASHBOARD = {"WARMER": "tests.test_dashboard_warming.warm_with_fetch", "WARM_MAX_PER_RUN": 3}
    FETCHES.clear()


def _prime(clock: Clock, page: int, reads: int, tenant: str | None = None) -> str:
    """Read a contacts page READ_AGO (a miss, remembered with its recipe) and count `reads` more reads of it."""
    request = _request(tenant or tenant_id(SERVER_KEY), {"page": page})
    with clock.at(clock.now - READ_AGO):
        read_through(request, _fetch({"page": page}))
        key = engine_module.plan(request).key
        history.observe_read(request, key, "miss", 0.2)
        for _ in range(reads):
            history.record_read("get_contacts", "contacts", "hit_l2", 0.001, key=key)
    return key


def _hit_rate(pages: range) -> float:
    statuses = [read_through(_request(tenant_id(SERVER_KEY), {"page": p}), _fetch({"page": p})).status for p in pages]
    return sum(s != "miss" for s in statuses) / len(statuses)


def test_invalidated_popular_keys_are_rewarmed_most_read_first_and_bounded(moved_clock: Clock) -> None:
    for page in range(5):
        _prime(moved_clock, page, reads=10 + page)
    invalidate_tags("demo", [list_tag("contact")])
    engine_module.engine().l1.clear()
    FETCHES.clear()
    report = warming.run(3, configured_warmer())
    assert (report.warmed, report.failed) == (3, 0)
    assert sorted(f["page"] for f in FETCHES) == [2, 3, 4]  # the three most read, three upstream calls
    engine_module.engine().l1.clear()
    assert _hit_rate(range(2, 5)) == 1.0
    assert _hit_rate(range(2)) == 0.0  # beyond the bound: not warmed


def test_keys_of_callers_tenants_are_never_warmed(moved_clock: Clock) -> None:
    _prime(moved_clock, 1, reads=50, tenant="a-callers-tenant")
    invalidate_tags("demo", [list_tag("contact")])
    FETCHES.clear()
    report = warming.run(3, configured_warmer())
    assert report.warmed == 0
    assert report.skipped_no_key == 1
    assert FETCHES == []


def test_fresh_keys_are_left_alone_and_expiring_ones_refreshed(
    hist_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch, moved_clock: Clock
) -> None:
    fresh_key = _prime(moved_clock, 1, reads=5)
    old_key = _prime(moved_clock, 2, reads=5)
    policy = effective_policy("contacts")
    # Age the second entry past its fresh window: Redis keeps it for the policy's lifetime from its store time.
    hist_redis.pexpire(old_key, (policy.lifetime_s - policy.fresh_s - 10) * 1000)
    wall_clock = engine_module.wall_clock
    monkeypatch.setattr(engine_module, "wall_clock", lambda: wall_clock() + policy.fresh_s + 10)
    engine_module.engine().l1.clear()
    FETCHES.clear()
    report = warming.run(3, configured_warmer())
    assert report.warmed == 1
    assert engine_module.engine().wait_idle()
    assert FETCHES == [{"page": 2}]  # the background refresh of the aging entry; the fresh one untouched
    assert hist_redis.pttl(old_key) > (policy.lifetime_s - 60) * 1000
    assert hist_redis.pttl(fresh_key) > 0


def test_without_a_warmer_or_a_server_key_nothing_happens(settings: Any, moved_clock: Clock) -> None:
    _prime(moved_clock, 1, reads=5)
    invalidate_tags("demo", [list_tag("contact")])
    settings.DASHBOARD = {"WARMER": ""}
    assert warming.run(3, configured_warmer()).warmed == 0
    settings.DASHBOARD = {"WARMER": "tests.test_dashboard_warming.warm_with_fetch"}
    settings.JOBNIMBUS_INSTANCES = {"demo": {"api_key": None, "webhook_secret": None}}
    assert warming.run(3, configured_warmer()).warmed == 0


def test_warm_cache_command_shows_progress(moved_clock: Clock) -> None:
    for page in range(4):
        _prime(moved_clock, page, reads=5)
    invalidate_tags("demo", [list_tag("contact")])
    out = StringIO()
    call_command("warm_cache", "--limit", "2", stdout=out)
    assert "[" + "#" * 30 + "] 2/2" in out.getvalue()
    assert "warmed 2, failed 0" in out.getvalue()


def test_warm_cache_progress_ends_full_when_fewer_keys_need_warming_than_the_limit(moved_clock: Clock) -> None:
    # A run that warmed everything there was must not look aborted ("3/50").
    for page in range(3):
        _prime(moved_clock, page, reads=5)
    invalidate_tags("demo", [list_tag("contact")])
    out = StringIO()
    call_command("warm_cache", "--limit", "50", stdout=out)
    assert "[" + "#" * 30 + "] 3/3" in out.getvalue()
    assert "/50" not in out.getvalue()
    assert "warmed 3, failed 0" in out.getvalue()


def test_popularity_sums_today_and_yesterday(moved_clock: Clock) -> None:
    # Per-UTC-day counts: just after midnight today's alone would forget the keys read a minute before.
    def read(key: str, times: int, ago: timedelta = timedelta(0)) -> None:
        with moved_clock.at(moved_clock.now - ago):
            for _ in range(times):
                history.record_read("get_contacts", "contacts", "hit_l2", 0.001, key=key)

    read("a", 5, ago=timedelta(days=1))
    read("a", 1)
    read("b", 4)
    read("c", 100, ago=timedelta(days=2))  # the day before yesterday: no longer popular
    assert warming.popular_keys(moved_clock.ts, 10) == ["get_contacts|a", "get_contacts|b"]
