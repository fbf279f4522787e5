"""Dashboard options: one namespaced settings dict (`DASHBOARD`) with defaults, read lazily.

DEFAULTS is the one place the defaults are written (settings.py passes only what the environment sets, plus the
WARMER wiring; a partial dict is merged over DEFAULTS). Resolved once per process and remembered, and forgotten
whenever Django reports a change of `DASHBOARD`, so `override_settings` and pytest's `settings` still work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.utils.module_loading import import_string

from cacheops.options import Options

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
    # Dotted path to the re-read warming runs, `(instance, api_key, tool, args) -> bool` (cacheops.warming);
    # "" turns warming off. settings names mcp_tools.warmer.warm_read.
    "WARMER": "",
}


dashboard_setting = Options("DASHBOARD", DEFAULTS)


def configured_warmer() -> Callable[[str, str, str, dict[str, Any]], bool] | None:
    """Return the function WARMER names, or None when warming is off."""
    path = str(dashboard_setting("WARMER") or "")
    return import_string(path) if path else None
