"""Alert rules fire, de-duplicate, auto-resolve and are acknowledged; notifications by email and Slack.

Every test runs at each instant of `moved_clock` and evaluates at it (`now`) or after it. The traffic is recorded
ten minutes, the invalidations half an hour, before it: at the boundary instants the data is on the day (month,
year) before the evaluation, and the 15-minute and 1-hour windows span the boundary.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from django.core import mail
from django.utils import timezone

from cacheops import status
from cacheops.models import InvalidationEvent
from dashboard import alerts
from dashboard.models import Alert, AlertState, MinuteStat
from tests.fixtures.clock import Clock

pytestmark = pytest.mark.django_db


@pytest.fixture
def now(moved_clock: Clock) -> datetime:
    """Return the instant the test runs at; the clock stays frozen there."""
    return moved_clock.now


def _minute(ago: int, **counters: Any) -> None:
    MinuteStat.objects.create(
        minute=timezone.now() - timedelta(minutes=ago), name=counters.pop("name", "get_contacts"), **counters
    )


def _low_hit_rate_traffic() -> None:
    _minute(10, requests=150, hit_l2=30, miss=120, cached_hist={"2": 30}, uncached_hist={"250": 120})


class SlackReceiver(ThreadingHTTPServer):
    """A local HTTP server standing in for Slack: records bodies, answers 500 for the first `fail_first` posts."""

    def __init__(self, fail_first: int) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.fail_first = fail_first
        super().__init__(("127.0.0.1", 0), _SlackHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _SlackHandler(BaseHTTPRequestHandler):
    server: SlackReceiver

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)
        code = 500 if len(self.server.bodies) <= self.server.fail_first else 200
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


@pytest.fixture
def slack(request: pytest.FixtureRequest) -> Iterator[SlackReceiver]:
    server = SlackReceiver(fail_first=getattr(request, "param", 0))
    # A short poll interval: shutdown() waits for it, at every instant of the moved clock.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def quiet_notify(settings: Any) -> None:
    settings.DASHBOARD = {"ALERT_EMAILS": [], "SLACK_WEBHOOK_URL": ""}


def test_low_hit_rate_fires_once_and_auto_resolves(hist_redis: redis.Redis, quiet_notify: None, now: datetime) -> None:
    _low_hit_rate_traffic()
    assert alerts.evaluate()["opened"] == 1  # as the beat task does: at the clock's now
    assert alerts.evaluate(now + timedelta(minutes=1))["opened"] == 0  # refreshed, not duplicated
    alert = Alert.objects.get(rule="low_hit_rate")
    assert alert.level == "warning"
    assert "Hit rate 20 % over the last 15 min (" in alert.message
    assert alert.actions
    assert alert.last_seen == now + timedelta(minutes=1)
    later = now + timedelta(hours=1)  # the window has no traffic any more
    assert alerts.evaluate(later)["resolved"] == 1
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED
    assert alert.resolved_at == later


def test_too_few_requests_do_not_fire(hist_redis: redis.Redis, quiet_notify: None, now: datetime) -> None:
    _minute(1, requests=100, miss=100)
    alerts.evaluate(now)
    assert not Alert.objects.filter(rule="low_hit_rate").exists()


def test_invalidation_storm_per_instance(hist_redis: redis.Redis, quiet_notify: None, now: datetime) -> None:
    received = now - timedelta(minutes=30)  # inside the last hour
    events = [
        InvalidationEvent(instance=inst, entity="contact", event="updated", source="webhook", received=received)
        for inst, n in (("storm", 51), ("calm", 50))
        for _ in range(n)
    ]
    InvalidationEvent.objects.bulk_create(events)
    alerts.evaluate(now)
    assert list(Alert.objects.filter(rule="invalidation_storm").values_list("scope", flat=True)) == ["storm"]


def test_upstream_errors_and_slow_cache(hist_redis: redis.Redis, quiet_notify: None, now: datetime) -> None:
    _minute(10, upstream_ok=5, upstream_error=5, cached_hist={"100": 10})
    alerts.evaluate(now)
    assert set(Alert.objects.values_list("rule", flat=True)) == {"upstream_errors", "slow_cache"}


def test_redis_memory_pressure(
    hist_redis: redis.Redis, quiet_notify: None, monkeypatch: pytest.MonkeyPatch, now: datetime
) -> None:
    monkeypatch.setattr(status, "redis_figures", lambda: {"usedMemory": 81, "maxMemory": 100})
    alerts.evaluate(now)
    assert Alert.objects.get(rule="redis_memory").figures == {"used": 81, "max": 100}


def test_redis_down_is_critical(settings: Any, quiet_notify: None, now: datetime) -> None:
    from cacheops.breakers import reset_breakers
    from tests.fixtures.redis import IDENTITY, caches_setting

    settings.CACHES = caches_setting("redis://127.0.0.1:1/0", IDENTITY)
    reset_breakers()
    alerts.evaluate(now)
    assert Alert.objects.get(rule="redis_breaker_open").level == "critical"
    reset_breakers()


def test_acknowledge_records_who_and_when(hist_redis: redis.Redis, quiet_notify: None, now: datetime) -> None:
    _low_hit_rate_traffic()
    alerts.evaluate(now)
    staff = User.objects.create_user("ops", is_staff=True)
    alert = Alert.objects.get()
    assert alerts.acknowledge(alert, staff, now)
    assert not alerts.acknowledge(alert, staff, now)  # only open alerts
    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_by, alert.acknowledged_at) == (AlertState.ACKNOWLEDGED, staff, now)
    alerts.evaluate(now + timedelta(minutes=1))  # still firing: stays acknowledged, no new row
    assert Alert.objects.get().state == AlertState.ACKNOWLEDGED


@pytest.mark.parametrize("slack", [1], indirect=True)
def test_new_alert_notifies_email_and_slack_with_retry(
    hist_redis: redis.Redis, settings: Any, slack: SlackReceiver, now: datetime
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.DASHBOARD = {"ALERT_EMAILS": ["ops@example.com"], "SLACK_WEBHOOK_URL": slack.url, "NOTIFY_BACKOFF_S": 0}
    _low_hit_rate_traffic()
    alerts.evaluate(now)
    alerts.evaluate(now + timedelta(minutes=1))  # not new: no second notification
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ops@example.com"]
    assert "low_hit_rate" in mail.outbox[0].subject
    assert len(slack.bodies) == 2  # the first post failed (500) and was retried
    assert "Hit rate 20 %" in slack.bodies[1]["text"]


def test_failing_notifications_never_break_evaluation(hist_redis: redis.Redis, settings: Any, now: datetime) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 1
    settings.DASHBOARD = {
        "ALERT_EMAILS": ["ops@example.com"],
        "SLACK_WEBHOOK_URL": "http://127.0.0.1:1/hook",
        "NOTIFY_BACKOFF_S": 0,
    }
    _low_hit_rate_traffic()
    assert alerts.evaluate(now)["opened"] == 1
    assert Alert.objects.filter(rule="low_hit_rate").exists()
