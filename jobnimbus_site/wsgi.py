"""WSGI entry point (gunicorn in the Procfile)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobnimbus_site.settings")

application = get_wsgi_application()
# Import the URLconf (and with it the MCP views, tool catalog and wire models) while the worker boots, so its
# first request does not pay ~0.4 s of imports — seconds when four workers import at once on a small machine.
URL_PATTERNS = get_resolver().url_patterns
