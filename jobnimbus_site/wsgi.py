"""WSGI entry point (gunicorn in the Procfile)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobnimbus_site.settings")

application = get_wsgi_application()
