"""`manage.py warm_cache [--limit N]`: warm the most-used keys now, with a progress bar."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from cacheops.reporting import run_warming
from dashboard.conf import configured_warmer, dashboard_setting

BAR_WIDTH = 30


class Command(BaseCommand):
    help = "Re-read the most-used cache keys of instances with a server-held key (bounded by --limit)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--limit", type=int, default=None, help="at most this many reads (default: settings)")

    def handle(self, *args: Any, limit: int | None = None, **options: Any) -> None:
        limit = int(dashboard_setting("WARM_MAX_PER_RUN")) if limit is None else limit
        report = run_warming(limit, configured_warmer(), progress=self._bar)
        self.stdout.write("")
        self.stdout.write(
            self.style.SUCCESS(
                f"warmed {report.warmed}, failed {report.failed}, considered {report.considered}, "
                f"skipped {report.skipped_no_key} without a server-held key"
            )
        )

    def _bar(self, done: int, total: int) -> None:
        filled = BAR_WIDTH * done // max(total, 1)
        self.stdout.write(f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total}", ending="")
        self.stdout.flush()
