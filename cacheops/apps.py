from __future__ import annotations

from django.apps import AppConfig


class CacheopsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "cacheops"

    def ready(self) -> None:
        """Make the engine use the tuner's TTLs (memoised; built-in TTLs while Redis is down)."""
        from cacheops.tuning import install  # cacheops' modules are imported once apps are loaded

        install()
