"""`manage.py tune_ttls [--dry-run]`: run the TTL tuner now and show each policy's decision."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from dashboard import ttl


class Command(BaseCommand):
    help = "Tune cache TTLs from the history (invalidation rate, hit rate, staleness); --dry-run changes nothing."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="show what the tuner would do, change nothing")

    def handle(self, *args: Any, dry_run: bool = False, **options: Any) -> None:
        decisions = ttl.tune(dry_run=dry_run)
        for d in decisions:
            arrow = f"{d.current_ttl_s}s -> {d.new_ttl_s}s" if d.changes else f"{d.current_ttl_s}s"
            self.stdout.write(f"{d.policy:16} {arrow:18} {d.reason}")
        changed = sum(d.changes for d in decisions)
        verb = "would change" if dry_run else "changed"
        self.stdout.write(self.style.SUCCESS(f"{verb} {changed} of {len(decisions)} unpinned policies"))
