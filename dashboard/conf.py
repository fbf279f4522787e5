"""Dashboard options: one namespaced settings dict (`DASHBOARD`) with defaults, read lazily."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "MINUTE_RETENTION_H": 48,
    "HOUR_RETENTION_D": 90,
    # Minutes re-read from Redis on each rollup: a stopped beat catches up, a rerun overwrites (never adds).
    "ROLLUP_LOOKBACK_MIN": 15,
    "ALERT_WINDOW_MIN": 15,
    "ALERT_LOW_HIT_RATE": 0.60,
    "ALERT_MIN_REQUESTS": 100,
    "ALERT_INVALIDATIONS_PER_H": 50,
    "ALERT_REDIS_MEMORY_RATIO": 0.80,
    "ALERT_UPSTREAM_ERROR_RATE": 0.20,
    "ALERT_UPSTREAM_MIN_CALLS": 10,
    "ALERT_P95_CACHED_MS": 50.0,
    "ALERT_EMAILS": [],
    "SLACK_WEBHOOK_URL": "",
    "NOTIFY_ATTEMPTS": 3,
    "NOTIFY_BACKOFF_S": 1.0,
    "NOTIFY_TIMEOUT_S": 5.0,
    "TUNER_WINDOW_H": 24,
    "TUNER_MIN_REQUESTS": 50,
    "WARM_MAX_PER_RUN": 50,
    "WARMER": "",
}


def dashboard_setting(name: str) -> Any:
    """Return the dashboard option `name`, from settings.DASHBOARD or its default."""
    return getattr(settings, "DASHBOARD", {}).get(name, DEFAULTS[name])
