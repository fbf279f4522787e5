"""Alert rules fire, de-duplicate, auto-resolve and are acknowledged; notifications by email and Slack."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from django.core import mail

from cacheops import status
from cacheops.models import InvalidationEvent
from dashboard import alerts
from dashboard.models import Alert, AlertState, MinuteStat
from tests.fixtures.browser import T0

pytestmark = pytest.mark.django_db

NOW = datetime.fromtimestamp(T0, UTC)


def _minute(ago: int, **counters: Any) -> None:
    MinuteStat.objects.create(
        minute=NOW - timedelta(minutes=ago), name=counters.pop("name", "get_contacts"), **counters
    )


def _low_hit_rate_traffic() -> None:
    _minute(1, requests=150, hit_l2=30, miss=120, cached_hist={"2": 30}, uncached_hist={"250": 120})


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
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def quiet_notify(settings: Any) -> None:
    settings.DASHBOARD = {"ALERT_EMAILS": [], "SLACK_WEBHOOK_URL": ""}


def test_low_hit_rate_fires_once_and_auto_resolves(hist_redis: redis.Redis, quiet_notify: None) -> None:
    _low_hit_rate_traffic()
    assert alerts.evaluate(NOW)["opened"] == 1
    assert alerts.evaluate(NOW + timedelta(minutes=1))["opened"] == 0  # refreshed, not duplicated
    alert = Alert.objects.get(rule="low_hit_rate")
    assert alert.level == "warning"
    assert "20%" in alert.message
    assert alert.actions
    assert alert.last_seen == NOW + timedelta(minutes=1)
    later = NOW + timedelta(hours=1)  # the window has no traffic any more
    assert alerts.evaluate(later)["resolved"] == 1
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED
    assert alert.resolved_at == later


def test_too_few_requests_do_not_fire(hist_redis: redis.Redis, quiet_notify: None) -> None:
    _minute(1, requests=100, miss=100)
    alerts.evaluate(NOW)
    assert not Alert.objects.filter(rule="low_hit_rate").exists()


def test_invalidation_storm_per_instance(hist_redis: redis.Redis, quiet_notify: None) -> None:
    events = [
        InvalidationEvent(instance=inst, entity="contact", event="updated", source="webhook", received=NOW)
        for inst, n in (("storm", 51), ("calm", 50))
        for _ in range(n)
    ]
    InvalidationEvent.objects.bulk_create(events)
    alerts.evaluate(NOW)
    assert list(Alert.objects.filter(rule="invalidation_storm").values_list("scope", flat=True)) == ["storm"]


def test_upstream_errors_and_slow_cache(hist_redis: redis.Redis, quiet_notify: None) -> None:
    _minute(1, upstream_ok=5, upstream_error=5, cached_hist={"100": 10})
    alerts.evaluate(NOW)
    assert set(Alert.objects.values_list("rule", flat=True)) == {"upstream_errors", "slow_cache"}


def test_redis_memory_pressure(hist_redis: redis.Redis, quiet_notify: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status, "redis_figures", lambda: {"usedMemory": 81, "maxMemory": 100})
    alerts.evaluate(NOW)
    assert Alert.objects.get(rule="redis_memory").figures == {"used": 81, "max": 100}


def test_redis_down_is_critical(settings: Any, quiet_notify: None) -> None:
    from cacheops.breakers import reset_breakers
    from tests.fixtures.redis import IDENTITY, caches_setting

    settings.CACHES = caches_setting("redis://127.0.0.1:1/0", IDENTITY)
    reset_breakers()
    alerts.evaluate(NOW)
    assert Alert.objects.get(rule="redis_breaker_open").level == "critical"
    reset_breakers()


def test_acknowledge_records_who_and_when(hist_redis: redis.Redis, quiet_notify: None) -> None:
    _low_hit_rate_traffic()
    alerts.evaluate(NOW)
    staff = User.objects.create_user("ops", is_staff=True)
    alert = Alert.objects.get()
    assert alerts.acknowledge(alert, staff, NOW)
    assert not alerts.acknowledge(alert, staff, NOW)  # only open alerts
    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_by, alert.acknowledged_at) == (AlertState.ACKNOWLEDGED, staff, NOW)
    alerts.evaluate(NOW + timedelta(minutes=1))  # still firing: stays acknowledged, no new row
    assert Alert.objects.get().state == AlertState.ACKNOWLEDGED


@pytest.mark.parametrize("slack", [1], indirect=True)
def test_new_alert_notifies_email_and_slack_with_retry(
    hist_redis: redis.Redis, settings: Any, slack: SlackReceiver
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.DASHBOARD = {"ALERT_EMAILS": ["ops@example.com"], "SLACK_WEBHOOK_URL": slack.url, "NOTIFY_BACKOFF_S": 0}
    _low_hit_rate_traffic()
    alerts.evaluate(NOW)
    alerts.evaluate(NOW + timedelta(minutes=1))  # not new: no second notification
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ops@example.com"]
    assert "low_hit_rate" in mail.outbox[0].subject
    assert len(slack.bodies) == 2  # the first post failed (500) and was retried
    assert "Hit rate 20%" in slack.bodies[1]["text"]


def test_failing_notifications_never_break_evaluation(hist_redis: redis.Redis, settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 1
    settings.DASHBOARD = {
        "ALERT_EMAILS": ["ops@example.com"],
        "SLACK_WEBHOOK_URL": "http://127.0.0.1:1/hook",
        "NOTIFY_BACKOFF_S": 0,
    }
    _low_hit_rate_traffic()
    assert alerts.evaluate(NOW)["opened"] == 1
    assert Alert.objects.filter(rule="low_hit_rate").exists()
