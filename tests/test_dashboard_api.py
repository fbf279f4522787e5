"""Staff JSON endpoints and the dashboard page: figures, periods, analytics, alerts, actions; non-staff refused.

The tests of figures, trends, top queries, recommendations and alerts run at each instant of `moved_clock`, with the
traffic recorded ten minutes before it: at the boundary instants that is the UTC day (month, year) before.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from cacheops import history
from dashboard import rollup
from dashboard.models import Alert, AlertState, TtlPolicy
from tests.fixtures.clock import Clock

pytestmark = pytest.mark.django_db

PATHS = [
    "/cache/dashboard",
    "/cache/trends?period=7d",
    "/cache/analytics/top-queries?period=24h&limit=5",
    "/cache/analytics/performance?period=30d",
    "/cache/analytics/recommendations",
    "/cache/alerts",
]


def _log_in_staff(client: Client) -> Client:
    # No password: force_login needs none, and hashing one costs a third of a second per test.
    client.force_login(User.objects.create_user("ops", is_staff=True))
    return client


@pytest.fixture
def staff(hist_redis: redis.Redis, client: Client) -> Client:
    return _log_in_staff(client)


@pytest.fixture
def staff_on_clock(moved_clock: Clock, hist_redis: redis.Redis, client: Client) -> Client:
    """`staff` logged in after the clock moved: a session opened on the real clock has expired a year ahead."""
    return _log_in_staff(client)


def _traffic(clock: Clock) -> None:
    """Record ten reads and one JobNimbus call ten minutes ago, then roll them up now (as the beat task does)."""
    with clock.at(clock.now - timedelta(minutes=10)):
        for _ in range(8):
            history.record_read("get_contacts", "contacts", "hit_l2", 0.002, key="k1")
        history.record_read("get_contacts", "contacts", "miss", 0.3, key="k2")
        history.record_read("get_contacts", "contacts", "hit_l1", 0.00005, key="k1")
        history.record_upstream("get_contacts", "ok")
    rollup.rollup_recent()


def _alert(**kw: Any) -> Alert:
    now = timezone.now()
    return Alert.objects.create(
        rule=kw.pop("rule", "low_hit_rate"),
        level="warning",
        message="Hit rate 20%",
        actions=["check"],
        first_seen=now,
        last_seen=now,
        **kw,
    )


@pytest.mark.parametrize("path", PATHS)
def test_anonymous_and_non_staff_are_refused(path: str, client: Client) -> None:
    assert client.get(path).status_code == 403
    client.force_login(User.objects.create_user("outsider", password="pw"))
    assert client.get(path).status_code == 403


def test_non_staff_cannot_open_the_page(client: Client) -> None:
    client.force_login(User.objects.create_user("outsider", password="pw"))
    response = client.get("/staff/cache-dashboard")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_dashboard_figures(staff_on_clock: Client, moved_clock: Clock) -> None:
    _traffic(moved_clock)
    body = staff_on_clock.get("/cache/dashboard").json()
    t = body["totals"]
    assert (t["requests"], t["hits_by_tier"], t["miss"]) == (10, {"l1": 1, "l2": 8}, 1)
    assert t["hit_rate"] == 0.9
    assert t["upstream_calls"] == 1
    assert t["upstream_calls_saved"] == 9
    assert t["p95_cached_ms"] == 2.0
    assert t["p95_uncached_ms"] == 500.0
    assert t["improvement"] > 0.9
    assert body["tools"][0]["tool"] == "get_contacts"
    assert body["redis"]["keys"] >= 1
    assert body["breakers"]["redis"] == "CLOSED"


def test_trends_top_queries_performance(staff_on_clock: Client, moved_clock: Clock) -> None:
    _traffic(moved_clock)
    points = staff_on_clock.get("/cache/trends?period=24h").json()["points"]
    assert sum(p["requests"] for p in points) == 10
    top = staff_on_clock.get("/cache/analytics/top-queries?limit=1").json()["queries"]
    assert [{k: q[k] for k in ("tool", "key", "reads")} for q in top] == [
        {"tool": "get_contacts", "key": "k1", "reads": 9}
    ]
    assert top[0]["query"] == "get_contacts: a read (arguments not recorded)"  # no recipe, no entity in "k1"
    perf = staff_on_clock.get("/cache/analytics/performance?period=7d").json()
    assert perf["jobnimbus_calls_avoided"] == 9
    assert perf["time_saved_s"] > 0
    assert perf["tools"][0]["uncached_avg_ms"] == 300.0


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/cache/trends?period=1y", "period"),
        ("/cache/analytics/top-queries?limit=0", "limit"),
        ("/cache/alerts?state=closed", "state"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(staff: Client, path: str, field: str) -> None:
    response = staff.get(path)
    assert response.status_code == 400
    assert field in response.json()


def test_recommendations_and_optimize(staff_on_clock: Client) -> None:
    body = staff_on_clock.get("/cache/analytics/recommendations").json()
    assert {r["policy"] for r in body["ttl"]} >= {"contacts", "tasks"}
    assert all(r["action"] in {"up", "down", "keep"} for r in body["ttl"])
    TtlPolicy.objects.filter(policy="tasks").update(pinned=True)
    decisions = staff_on_clock.post("/cache/optimize").json()["decisions"]
    assert "tasks" not in {d["policy"] for d in decisions}


def test_alerts_list_and_acknowledge(staff_on_clock: Client) -> None:
    alert = _alert()
    _alert(rule="redis_memory", state=AlertState.RESOLVED, resolved_at=timezone.now() - timedelta(minutes=1))
    assert [a["rule"] for a in staff_on_clock.get("/cache/alerts?state=open").json()["alerts"]] == ["low_hit_rate"]
    response = staff_on_clock.post(f"/cache/alerts/{alert.pk}/acknowledge")
    assert response.status_code == 200
    assert (response.json()["state"], response.json()["acknowledged_by"]) == ("acknowledged", "ops")
    assert staff_on_clock.post(f"/cache/alerts/{alert.pk}/acknowledge").status_code == 409
    assert staff_on_clock.post("/cache/alerts/999999/acknowledge").status_code == 404


def test_warming_endpoint_reports_the_run(staff: Client, settings: Any) -> None:
    settings.DASHBOARD = {"WARMER": ""}
    response = staff.post("/cache/warming", data={"limit": 2}, content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {"considered": 0, "warmed": 0, "failed": 0, "skipped_no_key": 0}
    assert staff.post("/cache/warming", data={"limit": -1}, content_type="application/json").status_code == 400


def test_page_and_svg_chart(staff_on_clock: Client, moved_clock: Clock) -> None:
    _traffic(moved_clock)
    page = staff_on_clock.get("/staff/cache-dashboard")
    assert page.status_code == 200
    assert b"get_contacts" in page.content
    assert b"dashboard/dashboard.js" in page.content
    svg = staff_on_clock.get("/staff/cache-dashboard/chart.svg?metric=requests&period=24h")
    assert svg["Content-Type"] == "image/svg+xml"
    assert b"<polyline" in svg.content or b"<circle" in svg.content
    assert staff_on_clock.get("/staff/cache-dashboard/chart.svg?metric=nope").status_code == 400


def test_health_still_answers(client: Client) -> None:
    assert client.get("/health").status_code == 200


def test_redis_down_answers_503_with_a_reason(client: Client, settings: Any) -> None:
    from cacheops.breakers import reset_breakers
    from tests.fixtures.redis import IDENTITY, caches_setting

    settings.CACHES = caches_setting("redis://127.0.0.1:1/0", IDENTITY)
    reset_breakers()
    client.force_login(User.objects.create_user("ops", password="pw", is_staff=True))
    response = client.get("/cache/analytics/top-queries")
    assert response.status_code == 503
    assert "Redis is unavailable" in response.json()["detail"]
    assert client.get("/cache/dashboard").json()["redis"] is None  # the rest of the page still answers
    reset_breakers()
