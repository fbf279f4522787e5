from __future__ import annotations

from django.apps import AppConfig


class ManagedConfig(AppConfig):
    name = "managed"
    verbose_name = "Managed mode (OAuth and server-held JobNimbus keys)"
    default_auto_field = "django.db.models.BigAutoField"
