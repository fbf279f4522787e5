"""Settings for benchmarks: the project's settings plus a bench-only URLconf and a private Celery queue.

The baseline view (/bench/bare) must never reach production URLs, so it lives in bench.urls, used only here.
"""

from __future__ import annotations

import os

from jobnimbus_site.settings import *  # noqa: F403 - a settings module extends the project's on purpose
from jobnimbus_site.settings import CACHEOPS_FRESHNESS

ROOT_URLCONF = "bench.urls"

# Webhook events are applied by the bench's own worker on a queue of its own, so workers others run on the
# same broker never take them (and the bench never takes theirs).
CACHEOPS_FRESHNESS = {**CACHEOPS_FRESHNESS, "APPLY_QUEUE": os.environ.get("BENCH_CELERY_QUEUE") or None}
