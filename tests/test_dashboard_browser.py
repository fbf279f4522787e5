"""The dashboard in a real headless browser: staff log in, see figures and a rendered chart, acknowledge an alert;
a non-staff user is refused. A screenshot is kept under artifacts/ (git-ignored) for CI."""

from __future__ import annotations

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
