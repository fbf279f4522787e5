"""The client's options: `settings.JOBNIMBUS_CLIENT` over DEFAULTS, with per-client overrides on top, read lazily.

DEFAULTS is the one place the defaults are written (settings.py passes only what the environment sets). Read on
every `ClientConfig.load()`, so `override_settings` and pytest's `settings` apply to the next client built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    # Per attempt: connecting (just over a TCP retransmit) and reading an answer.
    "CONNECT_TIMEOUT_S": 3.05,
    "READ_TIMEOUT_S": 10.0,
    # A call with its retries never takes longer than this.
    "TOTAL_BUDGET_S": 20.0,
    "MAX_RETRIES": 3,
    # Exponential backoff between retries (full jitter), capped.
    "BACKOFF_BASE_S": 0.25,
    "BACKOFF_MAX_S": 4.0,
    # Pooled connections per process (one HTTP session per process).
    "POOL_SIZE": 32,
}

# Setting key → field name.
_KEYS = {
    "CONNECT_TIMEOUT_S": "connect_timeout_s",
    "READ_TIMEOUT_S": "read_timeout_s",
    "TOTAL_BUDGET_S": "total_budget_s",
    "MAX_RETRIES": "max_retries",
    "BACKOFF_BASE_S": "backoff_base_s",
    "BACKOFF_MAX_S": "backoff_max_s",
    "POOL_SIZE": "pool_size",
}


@dataclass(frozen=True)
class ClientConfig:
    """Timeouts, retry budget and pool size of the JobNimbus client."""

    connect_timeout_s: float
    read_timeout_s: float
    total_budget_s: float
    max_retries: int
    backoff_base_s: float
    backoff_max_s: float
    pool_size: int

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None) -> ClientConfig:
        """Return settings.JOBNIMBUS_CLIENT over DEFAULTS with `overrides` (same keys) applied; raise naming a bad
        key."""
        merged = {**DEFAULTS, **getattr(settings, "JOBNIMBUS_CLIENT", {}), **(overrides or {})}
        unknown = sorted(set(merged) - set(_KEYS))
        if unknown:
            raise ImproperlyConfigured(f"JOBNIMBUS_CLIENT has unknown keys {unknown}; known: {sorted(_KEYS)}")
        config = cls(**{_KEYS[key]: value for key, value in merged.items()})
        config._check()
        return config

    def _check(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ImproperlyConfigured(f"JOBNIMBUS_CLIENT {item.name} must be a non-negative number, got {value!r}")
        if self.pool_size < 1 or self.total_budget_s <= 0:
            raise ImproperlyConfigured("JOBNIMBUS_CLIENT needs POOL_SIZE >= 1 and TOTAL_BUDGET_S > 0")
