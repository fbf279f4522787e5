"""`manage.py replay_events`: apply stored change events that never got applied."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from cacheops.events import sweep_unapplied


class Command(BaseCommand):
    help = "Re-apply stored invalidation events that were never applied (what the beat sweep does)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--min-age", type=float, default=0.0, help="skip events younger than this (seconds)")
        parser.add_argument("--limit", type=int, default=1000)

    def handle(self, *args: Any, **options: Any) -> None:
        applied = sweep_unapplied(min_age_s=options["min_age"], limit=options["limit"])
        self.stdout.write(f"applied {applied} events")
