"""`manage.py poll_changes [--instance NAME]`: one polling round, what the beat task runs."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from cacheops.poller import poll_all


class Command(BaseCommand):
    help = "Poll JobNimbus for records changed since the last watermark and invalidate them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--instance", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        stored = poll_all(options["instance"])
        self.stdout.write(f"stored {stored} change events")
