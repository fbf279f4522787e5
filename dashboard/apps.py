from __future__ import annotations

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "dashboard"

    def ready(self) -> None:
        """Make the cache engine use the tuner's TTLs (read from Redis, memoised; defaults when it is down)."""
        from cacheops import tuning

        tuning.install()
