"""What a person sees on the dashboard page and the admin pages around it: charts with readable axes at the
period's resolution and an empty state, figures with units and windows (never a cache key, raw JSON or a fraction
as a rate), the admin's guides (TTL hint, warm/tune now), no "Tokens" app, and /favicon.ico."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from kombu.exceptions import OperationalError

from cacheops import history
from cacheops.models import InvalidationEvent
from dashboard import charts, reports, rollup, tasks, views
from dashboard.models import Alert, TtlChange, TtlPolicy

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 8, 12, 30, tzinfo=UTC)


def _labels(svg: str, kind: str) -> list[str]:
    return re.findall(rf'class="{kind}"[^>]*>([^<]*)<', svg)


@pytest.mark.parametrize(
    ("span", "step", "label"),
    [
        (timedelta(hours=1), timedelta(minutes=1), r"^\d\d:\d0$"),
        (timedelta(hours=24), timedelta(hours=1), r"^\d\d:00$"),
        (timedelta(days=7), timedelta(hours=1), r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d\d$"),
        (timedelta(days=30), timedelta(days=1), r"^[A-Z][a-z]{2} \d\d$"),
    ],
)
def test_time_axis_at_the_period_resolution(span: timedelta, step: timedelta, label: str) -> None:
    assert charts.resolution(span) == step
    times = charts.buckets(NOW - span, NOW, step)
    assert times[0] <= NOW - span + step
    assert times[-1] <= NOW
    svg = charts.line_chart(
        "t", times, [charts.Series("a", [1.0] * len(times))], unit="", start=NOW - span, end=NOW, observed=5
    )
    ticks = _labels(svg, "x-tick")
    assert len(ticks) >= 3
    assert len(set(ticks)) == len(ticks)
    assert all(re.match(label, t) for t in ticks), ticks


def test_y_axis_has_units_room_and_a_zero_line() -> None:
    times = charts.buckets(NOW - timedelta(hours=24), NOW, timedelta(hours=1))
    values: list[float | None] = [None] * len(times)
    values[-1], values[-2] = 0.378, 0.41
    svg = charts.line_chart(
        "lat", times, [charts.Series("p50", values)], unit="ms", start=NOW - timedelta(hours=24), end=NOW
    )
    ticks = _labels(svg, "y-tick")
    assert ticks[0] == "0 ms"
    assert all(t.endswith(" ms") for t in ticks)
    assert ticks[-1] == "0.60 ms"  # round steps of a fraction of a millisecond, the top above 0.41
    assert f'x="{charts.LEFT - 6}"' in svg
    assert charts.LEFT >= 60
    assert 'stroke="#888"' in svg  # the zero line
    rate = charts.line_chart("hr", times, [charts.Series("hit", values)], unit="%", start=times[0], end=NOW)
    assert _labels(rate, "y-tick") == ["0 %", "25 %", "50 %", "75 %", "100 %"]


def test_under_two_points_says_not_enough_data() -> None:
    times = charts.buckets(NOW - timedelta(hours=24), NOW, timedelta(hours=1))
    one: list[float | None] = [None] * len(times)
    one[-1] = 3.0
    svg = charts.line_chart("r", times, [charts.Series("r", one)], start=times[0], end=NOW)
    assert charts.EMPTY in svg
    assert "<circle" in svg
    two = list(one)
    two[-2] = 4.0
    assert charts.EMPTY not in charts.line_chart("r", times, [charts.Series("r", two)], start=times[0], end=NOW)


@pytest.fixture
def staff(hist_redis: redis.Redis, client: Client) -> Client:
    client.force_login(User.objects.create_user("ops", is_staff=True, is_superuser=True))
    return client


def _traffic() -> None:
    for _ in range(5):
        history.record_read("get_contacts", "contacts", "hit_l2", 0.002, key="k1")
    history.record_read("get_jobs", "jobs", "miss", 0.3, key="k2")
    rollup.rollup_recent()


@pytest.mark.parametrize("metric", list(views.CHARTS))
@pytest.mark.parametrize("period", list(reports.PERIODS))
def test_every_chart_renders_with_units_and_window(staff: Client, metric: str, period: str) -> None:
    _traffic()
    now = timezone.now()
    InvalidationEvent.objects.create(
        instance="demo", entity="contact", event="updated", source="webhook", payload_digest="d", received=now
    )
    svg = staff.get(f"/staff/cache-dashboard/chart.svg?metric={metric}&period={period}").content.decode()
    assert svg.startswith("<svg")
    assert "last" in svg
    if views.CHARTS[metric][1]:
        assert all(t.endswith(views.CHARTS[metric][1]) for t in _labels(svg, "y-tick"))


def test_24h_and_7d_charts_differ(staff: Client) -> None:
    _traffic()
    day = staff.get("/staff/cache-dashboard/chart.svg?metric=requests&period=24h").content
    week = staff.get("/staff/cache-dashboard/chart.svg?metric=requests&period=7d").content
    assert day != week


def test_page_shows_words_not_internals(staff: Client) -> None:
    _traffic()
    now = timezone.now()
    Alert.objects.create(
        rule="low_hit_rate",
        level="warning",
        message="Hit rate 24 % over 188 requests",
        actions=["Look at the TTL recommendations"],
        figures={"hit_rate": 0.2447, "requests": 188},
        first_seen=now,
        last_seen=now,
    )
    html = staff.get("/staff/cache-dashboard").content.decode()
    text = re.sub(r"<[^>]+>", " ", html)
    assert "jn:v1:" not in text
    assert "k1" not in text
    assert not re.search(r"\b0\.\d{3,}\b", text)  # no fraction as a rate
    assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d{6}", text)  # no microsecond timestamp
    assert "100.0 %" in text
    assert " ms" in text
    assert "last 24 h" in text
    assert "<li>Look at the TTL recommendations</li>" in html


def test_alert_admin_shows_lists_not_json(staff: Client) -> None:
    now = timezone.now()
    alert = Alert.objects.create(
        rule="low_hit_rate",
        level="warning",
        message="low",
        actions=["Check the TTLs", "Look at invalidations"],
        figures={"hit_rate": 0.2447, "requests": 188},
        first_seen=now,
        last_seen=now,
    )
    html = staff.get(f"/admin/dashboard/alert/{alert.pk}/change/").content.decode()
    assert "<li>Check the TTLs</li>" in html
    assert "24.5 %" in html
    assert "0.2447" not in html
    assert '["Check' not in html
    listing = staff.get("/admin/dashboard/alert/?q=low").content.decode()
    assert "low" in listing
    assert "dashboard/admin.css" in listing


def test_empty_ttl_page_says_how_it_fills(staff: Client) -> None:
    html = staff.get("/admin/dashboard/ttlpolicy/").content.decode()
    assert 'id="ttl-empty-hint"' in html
    assert 'make manage ARGS="tune_ttls"' in html
    assert "Warm now" in html
    assert "Tune now" in html


def test_tune_and_warm_now_queue_the_beat_jobs(staff: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    queued: list[str] = []
    monkeypatch.setattr(tasks.tune_ttls, "apply_async", lambda **kw: queued.append("tune"))
    monkeypatch.setattr(tasks.warm_cache, "apply_async", lambda **kw: queued.append("warm"))
    page = staff.post("/admin/dashboard/ttlpolicy/tune-now/", follow=True).content.decode()
    assert "TTL tuning queued" in page
    page = staff.post("/admin/dashboard/ttlpolicy/warm-now/", follow=True).content.decode()
    assert "Warming queued" in page
    assert queued == ["tune", "warm"]
    assert staff.get("/admin/dashboard/ttlpolicy/tune-now/").status_code == 405


def test_tune_now_runs_inline_when_the_broker_refuses(staff: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**kw: Any) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(tasks.tune_ttls, "apply_async", refuse)
    page = staff.post("/admin/dashboard/ttlpolicy/tune-now/", follow=True).content.decode()
    assert "could not be queued" in page
    assert "ran here instead" in page


def test_admin_hides_tokens_and_links_the_dashboard(staff: Client) -> None:
    html = staff.get("/admin/").content.decode()
    assert "authtoken" not in html
    assert ">Tokens<" not in html
    assert 'href="/staff/cache-dashboard"' in html  # the front page's link and the header's "View site"


def test_favicon_is_not_a_404(client: Client) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"


def test_tuner_evidence_reads_with_units(staff: Client) -> None:
    policy = TtlPolicy.objects.create(policy="contacts", default_ttl_s=300, ttl_s=600, min_ttl_s=75, max_ttl_s=1200)
    TtlChange.objects.create(
        policy=policy,
        old_ttl_s=300,
        new_ttl_s=600,
        reason="few invalidations",
        evidence={"hit_rate": 0.8123, "invalidations_per_h": 0.5, "stale_share": 0.01, "window_h": 24},
        at=timezone.now(),
    )
    html = staff.get(f"/admin/dashboard/ttlpolicy/{policy.pk}/change/").content.decode()
    assert "81.2 %" in html
    assert "0.5 per hour" in html
    assert "24 h" in html
    assert "0.8123" not in html
    listing = staff.get("/admin/dashboard/ttlpolicy/").content.decode()
    assert "300 s → 600 s" in listing
    assert 'id="ttl-empty-hint"' not in listing
