from __future__ import annotations

import time

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "dashboard"
    # When this process became ready to serve (epoch seconds): the dashboard's uptime counts from here.
    started_at = 0.0

    def ready(self) -> None:
        """Note when the process started serving."""
        self.started_at = time.time()
