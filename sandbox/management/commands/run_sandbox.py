"""`python manage.py run_sandbox`: serve the JobNimbus stand-in until interrupted."""

from __future__ import annotations

import os
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sandbox.access import ADMIN_KEY, SALES_KEY
from sandbox.server import start_sandbox


def non_negative(text: str) -> int:
    """Parse a non-negative integer option."""
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def positive_float(text: str) -> float:
    """Parse a positive number option."""
    value = float(text)
    if value <= 0:
        raise ValueError(text)
    return value


def wait_forever() -> None:
    """Block until the process is interrupted."""
    threading.Event().wait()


class Command(BaseCommand):
    help = "Run the local JobNimbus sandbox (API under /api1, control API under /__sandbox/)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=non_negative, default=8090)
        parser.add_argument("--latency-ms", type=non_negative, default=500, help="mean added latency on /api1")
        parser.add_argument("--jitter-ms", type=non_negative, default=300, help="latency varies by ± this much")
        parser.add_argument("--seed", type=int, default=1, help="data generator seed")
        parser.add_argument("--scale", type=positive_float, default=1.0, help="multiply the record counts")
        parser.add_argument("--webhook-url", default=None, help="POST automation webhooks here on every change")
        parser.add_argument(
            "--webhook-token",
            # From the environment by preference: a command line is visible to every user of the machine.
            default=os.environ.get("SANDBOX_WEBHOOK_TOKEN") or None,
            help="sent in the X-Webhook-Token header (default: $SANDBOX_WEBHOOK_TOKEN)",
        )
        parser.add_argument("--quiet", action="store_true", help="do not log each request")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            handle = start_sandbox(
                host=options["host"],
                port=options["port"],
                latency_ms=options["latency_ms"],
                jitter_ms=options["jitter_ms"],
                seed=options["seed"],
                scale=options["scale"],
                webhook_url=options["webhook_url"],
                webhook_token=options["webhook_token"],
                verbose=not options["quiet"],
            )
        except OSError as exc:
            raise CommandError(f"cannot listen on {options['host']}:{options['port']}: {exc}") from exc
        self.stdout.write(f"JobNimbus sandbox at {handle.base_url} (keys: {ADMIN_KEY} all, {SALES_KEY} one sales rep)")
        self.stdout.write(f"control API at {handle.url}/__sandbox/ ; Ctrl-C stops")
        try:
            wait_forever()
        except KeyboardInterrupt:
            pass
        finally:
            handle.stop()
