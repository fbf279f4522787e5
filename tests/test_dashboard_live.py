"""The dashboard's JSON live and in words: reads show before any rollup, minutes are never counted twice, top
queries read as tools and arguments, breakers as reachability, figures carry their window, rates are percentages,
times are local with their zone, alert details are lists and labelled figures.

Every test builds its data at a fixed instant (`frozen_clock`, or each instant of `moved_clock`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest
import redis
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from cacheops import history
from cacheops.breakers import upstream_breaker
from cacheops.types import CacheScope, ReadRequest
from dashboard import alerts, rollup
from dashboard.models import Alert, MinuteStat
from tests.fixtures.clock import Clock

pytestmark = pytest.mark.django_db

KEY = "jn:v1:demo:7a8ebd89:invoice:list:6bc74136"
OTHER_KEY = "jn:v1:demo:7a8ebd89:invoice:get:0d1e2f3a"


def _staff(client: Client) -> Client:
    client.force_login(User.objects.create_user("ops", is_staff=True))
    return client


@pytest.fixture
def staff(moved_clock: Clock, hist_redis: redis.Redis, client: Client) -> Client:
    return _staff(client)


@pytest.fixture
def staff_frozen(frozen_clock: Clock, hist_redis: redis.Redis, client: Client) -> Client:
    return _staff(client)


def _request(**args: Any) -> ReadRequest:
    return ReadRequest(
        scope=CacheScope("demo", "7a8ebd89"),
        entity="invoice",
        op="list",
        policy="invoices",
        args=args,
        tool="get_invoices",
    )


def _thirty_reads() -> None:
    """Thirty reads as the engine records them: 6 misses (each remembering its recipe) and 24 hits."""
    request = _request(status="open", page=1)
    for _ in range(6):
        history.observe_read(request, KEY, "miss", 0.3)
    for _ in range(20):
        history.observe_read(request, KEY, "hit_l2", 0.002)
    for _ in range(4):
        history.observe_read(request, KEY, "hit_l1", 0.00005)


def test_thirty_reads_show_at_once_without_a_rollup(staff: Client) -> None:
    _thirty_reads()
    history.flush()  # what the flusher thread does within a second
    body = staff.get("/cache/dashboard").json()
    t = body["totals"]
    assert (t["requests"], t["miss"], t["hit_l2"], t["hit_l1"]) == (30, 6, 20, 4)
    assert t["hit_rate"] == 0.8
    assert (t["hit_rate_pct"], t["hit_rate_text"]) == (80.0, "80.0 %")
    assert t["window"] == "last 24 h"
    assert [row["tool"] for row in body["tools"]] == ["get_invoices"]
    assert body["tools"][0]["hit_rate_pct"] == 80.0
    assert body["live"]["minutes_from_redis"] == 1
    assert body["live"]["redis_read"] is True
    assert body["recent"]["requests"] == 30
    assert body["recent"]["text"] == "hit rate 80.0 % over the last 15 min (30 requests)"
    perf = staff.get("/cache/analytics/performance?period=24h").json()
    assert (perf["requests"], perf["hit_rate_pct"], perf["window"]) == (30, 80.0, "last 24 h")
    assert not MinuteStat.objects.exists()  # nothing rolled up: the figures came from Redis


def test_a_minute_rolled_up_and_still_in_redis_counts_once(
    staff: Client, moved_clock: Clock, hist_redis: redis.Redis
) -> None:
    old = moved_clock.now - timedelta(minutes=3)
    with moved_clock.at(old):
        for _ in range(10):
            history.record_read("get_contacts", "contacts", "hit_l2", 0.002, key="k1")
    rollup.rollup_recent()  # the minute is now in MinuteStat and still in Redis
    assert MinuteStat.objects.filter(name="get_contacts").count() == 1
    history.record_read("get_contacts", "contacts", "miss", 0.3, key="k2")  # the current minute: Redis only
    with moved_clock.at(old):  # a late flush into the rolled-up minute: Redis (its source) is ahead of the row
        history.record_read("get_contacts", "contacts", "hit_l1", 0.00005, key="k1")
    history.flush()
    assert staff.get("/cache/dashboard").json()["totals"]["requests"] == 12
    # Once Redis no longer holds the minute (expired), the rolled-up row alone counts it.
    hist_minute = history.minute_key(history.minute_of(old.timestamp()))
    hist_redis.delete(hist_minute)
    assert staff.get("/cache/dashboard").json()["totals"]["requests"] == 11  # 10 rolled up + 1 current


def test_top_queries_read_as_tool_and_arguments(staff_frozen: Client) -> None:
    _thirty_reads()
    history.record_read("get_invoice", "invoices", "hit_l2", 0.002, key=OTHER_KEY)  # no recipe: a hit
    history.flush()
    queries = staff_frozen.get("/cache/analytics/top-queries?period=24h&limit=5").json()["queries"]
    assert [q["query"] for q in queries] == ["get_invoices (page = 1, status = open)", "get_invoice: a read of invoice"]
    assert queries[0]["arguments"] == [{"name": "page", "value": "1"}, {"name": "status", "value": "open"}]
    assert (queries[0]["policy"], queries[0]["reads"], queries[0]["window"]) == ("invoices", 30, "last 24 h")
    shown = orjson.dumps([{k: v for k, v in q.items() if k != "key"} for q in queries]).decode()
    assert KEY not in shown
    assert OTHER_KEY not in shown
    recs = staff_frozen.get("/cache/analytics/recommendations").json()["warming_candidates"]
    assert recs[0]["query"] == "get_invoices (page = 1, status = open)"


def test_breakers_read_as_reachability(staff_frozen: Client) -> None:
    rows = staff_frozen.get("/cache/dashboard").json()["reachability"]
    assert [(r["service"], r["ok"], r["text"]) for r in rows] == [
        ("Redis", True, "Redis reachable"),
        ("JobNimbus", True, "JobNimbus reachable"),
    ]
    breaker, _ = upstream_breaker("demo")
    for _ in range(10):
        breaker.record_failure()
    try:
        body = staff_frozen.get("/cache/dashboard").json()
    finally:
        breaker.reset()
    jn = [r for r in body["reachability"] if r["service"] == "JobNimbus"]
    assert len(jn) == 1
    assert not jn[0]["ok"]
    assert jn[0]["text"].startswith("JobNimbus (demo) failing since 2026-11-2")  # the frozen instant, local
    assert jn[0]["text"].endswith(" UTC")
    assert jn[0]["since_local"].endswith(" UTC")
    assert jn[0]["detail"] == "circuit breaker jobnimbus:demo: OPEN"  # the raw state, for a tooltip
    assert body["breakers"]["jobnimbus:demo"] == "OPEN"  # kept for old readers


def test_times_are_local_with_their_zone_and_uptime_says_its_basis(staff_frozen: Client, settings: Any) -> None:
    body = staff_frozen.get("/cache/dashboard").json()
    assert body["generated_local"] == "2026-11-28 10:00 UTC"
    assert body["generated"].startswith("2026-11-28T10:00:00")
    assert body["window"] == "last 24 h"
    assert body["uptime"]["seconds"] == body["uptime_s"]
    assert body["uptime"]["text"]
    assert "process" in body["uptime"]["basis"]
    settings.TIME_ZONE = "Europe/Paris"
    assert staff_frozen.get("/cache/dashboard").json()["generated_local"] == "2026-11-28 11:00 CET"
    assert staff_frozen.get("/cache/trends?period=30d").json()["window"] == "last 30 days"


def test_alert_details_are_lists_and_labelled_figures(staff_frozen: Client) -> None:
    now = timezone.now()
    Alert.objects.create(
        rule="low_hit_rate",
        level="warning",
        message="Hit rate 24 % over the last 15 min (188 requests) is below 50 %.",
        actions=["Check the per-tool table", "Look at the TTL recommendations"],
        figures={"hit_rate": 0.2447, "requests": 188, "window_min": 15},
        first_seen=now,
        last_seen=now,
    )
    row = staff_frozen.get("/cache/alerts").json()["alerts"][0]
    assert row["title"] == "Low hit rate"
    assert row["actions_list"] == ["Check the per-tool table", "Look at the TTL recommendations"]
    assert [(f["label"], f["text"]) for f in row["figures_list"]] == [
        ("Hit rate", "24.5 %"),
        ("Requests", "188"),
        ("Window", "last 15 min"),
    ]
    assert row["first_seen_local"] == "2026-11-28 10:00 UTC"


def test_an_alert_and_the_tile_name_the_same_window(staff: Client, settings: Any) -> None:
    settings.DASHBOARD = {"ALERT_EMAILS": [], "SLACK_WEBHOOK_URL": "", "ALERT_MIN_REQUESTS": 20}
    for _ in range(30):
        history.record_read("get_contacts", "contacts", "miss", 0.3, key="k")
    for _ in range(10):
        history.record_read("get_contacts", "contacts", "hit_l2", 0.002, key="k")
    assert alerts.evaluate()["opened"] >= 1  # the live minutes count for alerts too, without a rollup
    alert = staff.get("/cache/alerts").json()["alerts"]
    low = next(a for a in alert if a["rule"] == "low_hit_rate")
    assert low["message"].startswith("Hit rate 25 % over the last 15 min (40 requests)")
    recent = staff.get("/cache/dashboard").json()["recent"]
    assert recent["text"] == "hit rate 25.0 % over the last 15 min (40 requests)"


def test_trends_show_the_current_minutes_at_the_period_resolution(staff: Client) -> None:
    _thirty_reads()
    history.flush()
    minute = staff.get("/cache/trends?period=1h").json()
    assert (minute["resolution"], minute["window"]) == ("minute", "last hour")
    assert [(p["requests"], p["hit_l1"], p["hit_l2"], p["miss"]) for p in minute["points"]] == [(30, 4, 20, 6)]
    point = minute["points"][0]
    assert (point["hit_rate_pct"], point["hit_rate_text"], point["upstream_calls_saved"]) == (80.0, "80.0 %", 24)
    assert point["p50_cached_ms"] == 2.0
    assert point["t_local"].endswith(" UTC")
    hourly = staff.get("/cache/trends?period=24h").json()
    assert hourly["resolution"] == "hour"
    assert sum(p["requests"] for p in hourly["points"]) == 30
    assert staff.get("/cache/trends?period=30d").json()["resolution"] == "day"


@pytest.mark.parametrize("ago", [timedelta(hours=3), timedelta(hours=8)], ids=["in-redis-horizon", "rollups-only"])
def test_trends_count_each_minute_once(staff: Client, moved_clock: Clock, ago: timedelta) -> None:
    then = moved_clock.now - ago
    with moved_clock.at(then):
        for _ in range(10):
            history.record_read("get_contacts", "contacts", "hit_l2", 0.002, key="k1")
    with moved_clock.at(then + timedelta(minutes=2)):
        rollup.rollup_recent()  # as beat did then: the minute and its hour rolled up (Redis still holds the minute)
    for _ in range(5):
        history.record_read("get_contacts", "contacts", "miss", 0.3, key="k2")
    history.flush()
    for period in ("24h", "7d", "30d"):
        points = staff.get(f"/cache/trends?period={period}").json()["points"]
        assert sum(p["requests"] for p in points) == 15, period
    assert staff.get("/cache/dashboard").json()["totals"]["requests"] == 15
