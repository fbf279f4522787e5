"""The Celery app, wired as in Celery's "First steps with Django" guide."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobnimbus_site.settings")

app = Celery("jobnimbus_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
