"""Project wiring: settings, URLs, Celery app, WSGI/ASGI entry points. No logic lives here."""

from __future__ import annotations

from jobnimbus_site.celery import app as celery_app

__all__ = ("celery_app",)
