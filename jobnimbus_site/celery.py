"""The Celery app, wired as in Celery's "First steps with Django" guide."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import beat_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobnimbus_site.settings")

app = Celery("jobnimbus_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _mark_ready(name: str) -> None:
    """Leave a marker in JOBNIMBUS_READY_DIR, where `make run`'s supervisor waits for it (unset elsewhere)."""
    ready_dir = os.environ.get("JOBNIMBUS_READY_DIR")
    if ready_dir:
        Path(ready_dir).mkdir(parents=True, exist_ok=True)
        (Path(ready_dir) / name).touch()


@worker_ready.connect
def _worker_ready(**_: Any) -> None:
    _mark_ready("worker")


@beat_init.connect
def _beat_ready(**_: Any) -> None:
    _mark_ready("beat")
