from __future__ import annotations

import time

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "dashboard"
    # When this process became ready to serve (epoch seconds): the dashboard's uptime counts from here.
    started_at = 0.0

    def ready(self) -> None:
        """Note when the process started serving, and make the engine use the tuner's TTLs (memoised; built-in
        TTLs while Redis is down)."""
        self.started_at = time.time()
        from cacheops.reporting import install_tuned_ttls  # cacheops' modules are imported once apps are loaded

        install_tuned_ttls()
