"""The dashboard in a real headless browser: staff log in, see figures and a rendered chart, acknowledge an alert;
a non-staff user is refused. A screenshot is kept under artifacts/ (git-ignored) for CI."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from django.utils import timezone

from cacheops import history
from dashboard import rollup
from dashboard.models import Alert, AlertState

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


def _history(monkeypatch: pytest.MonkeyPatch) -> None:
    now = timezone.now().timestamp()
    for minutes_ago in (3, 2):
        monkeypatch.setattr(history, "clock", lambda m=minutes_ago: now - 60 * m)
        for _ in range(9):
            history.record_read("get_contacts", "contacts", "hit_l2", 0.002, key="k1")
        history.record_read("get_jobs", "jobs", "miss", 0.3, key="k2")
    rollup.rollup_recent(now)


def _login(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/admin/login/?next=/staff/cache-dashboard")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw-for-tests")
    page.click("input[type=submit]")


def test_staff_sees_figures_chart_and_acknowledges(
    hist_redis: redis.Redis, live_server: Any, browser_page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    User.objects.create_user("ops", password="pw-for-tests", is_staff=True)
    now = timezone.now()
    alert = Alert.objects.create(
        rule="low_hit_rate",
        level="warning",
        message="Hit rate 42% over 150 requests is below 60%.",
        actions=["Look at the TTL recommendations"],
        first_seen=now,
        last_seen=now,
    )
    _history(monkeypatch)
    page = browser_page
    _login(page, live_server.url, "ops")
    page.wait_for_selector("#cache-dashboard[data-refreshed]")  # the fetch of /cache/dashboard has run
    assert page.text_content("[data-field='totals.hit_rate']") == "90.0 %"
    assert page.text_content("[data-field='totals.requests']") == "20"
    assert "get_contacts" in page.text_content("#tools")
    chart = page.locator("img.chart[data-metric='requests']")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=chart.element_handle())
    page.click("button.period[data-period='7d']")
    page.wait_for_function("() => [...document.querySelectorAll('img.chart')].every(i => i.src.includes('period=7d'))")
    page.click(f"button.ack[data-id='{alert.pk}']")
    page.wait_for_selector(f"tr[data-alert='{alert.pk}'] td.state:text('acknowledged')")
    alert.refresh_from_db()
    assert alert.state == AlertState.ACKNOWLEDGED
    assert alert.acknowledged_by is not None
    assert alert.acknowledged_by.username == "ops"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)


def test_non_staff_is_refused(hist_redis: redis.Redis, live_server: Any, browser_page: Any) -> None:
    User.objects.create_user("outsider", password="pw-for-tests")
    page = browser_page
    _login(page, live_server.url, "outsider")
    assert page.locator("#cache-dashboard").count() == 0
    assert "staff account" in page.text_content(".errornote")
    response = page.goto(f"{live_server.url}/cache/dashboard")
    assert response.status == 403


def test_thirty_known_calls_show_within_seconds_readably_at_800_px(
    hist_redis: redis.Redis,
    live_server: Any,
    browser_page: Any,
    fake_jobnimbus: Any,
    tool_ctx: Any,
) -> None:
    """Issue 14's page, as a person sees it: 30 tool calls appear without beat, in words and units, at 800 px."""
    from mcp_tools.catalog import registry

    User.objects.create_user("ops", password="pw-for-tests", is_staff=True)
    fake_jobnimbus.data["jobs"] = [{"jnid": f"j{i}", "type": "job", "name": f"Job {i}"} for i in range(3)]
    for call in range(30):  # 3 argument sets: 3 misses, then 27 hits
        assert not registry.call_tool(tool_ctx, "get_jobs", {"size": 1 + call % 3}).is_error
    page = browser_page
    page.set_viewport_size({"width": 800, "height": 1000})
    _login(page, live_server.url, "ops")
    page.wait_for_selector("#cache-dashboard[data-refreshed]")
    # No beat, no rollup: the request path's minute buckets reach the page within its 10 s refresh.
    page.wait_for_function(
        "() => document.querySelector(\"[data-field='totals.requests']\").textContent.trim() === '30'", timeout=12_000
    )
    assert page.text_content("[data-field='totals.hit_rate']") == "90.0 %"
    assert "get_jobs" in page.text_content("#top-queries")
    assert page.evaluate("document.documentElement.scrollWidth") <= 800  # nothing overflows
    text = page.inner_text("body")
    assert "jn:v1" not in text
    assert "jn:hist" not in text
    assert '{"' not in text  # no raw JSON
    fraction = re.search(r".{40}\b0\.\d{3,}\b(?! ?ms).{20}", text, re.DOTALL)  # a rate as 0.xxx
    assert fraction is None, fraction
    assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d{3,}", text), "a sub-second timestamp"
    for card in page.locator(".card").all():  # every figure says over which window (or "now")
        assert card.locator("small").count() == 1
        assert card.locator("small").inner_text().strip()
    chart = page.locator("img.chart[data-metric='requests']")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=chart.element_handle())
    base = f"{live_server.url}/staff/cache-dashboard/chart.svg"
    rate = page.request.get(f"{base}?metric=hit_rate&period=1h").text()
    labels = re.findall(r">([^<>]+)</text>", rate)
    assert any(label.endswith("%") for label in labels)  # a percentage axis
    assert not any(re.fullmatch(r"0\.\d+", label.strip()) for label in labels)  # never a fraction
    empty = page.request.get(f"{base}?metric=hit_rate&period=30d").text()
    assert "Not enough data yet" in empty  # one day of data is under two points at day resolution
