"""`manage.py release_key_binding <key id>...`: forget which instance an API key is bound to (first-seen mode)."""

from __future__ import annotations

import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mcp_tools import binding


class Command(BaseCommand):
    help = (
        "Release API keys' instance bindings (JOBNIMBUS_KEY_INSTANCE_BINDING=first-seen), by the key id the 403 "
        "names; the key is bound again on its next tool call. Web processes may go on refusing it for up to 5 min."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key_ids", nargs="+", metavar="key_id", help="32 hex digits, as the refusal names it")

    def handle(self, *args: Any, **options: Any) -> None:
        for key_id in options["key_ids"]:
            if not re.fullmatch(r"[0-9a-f]{32}", key_id):
                raise CommandError(f"{key_id!r} is not a key id (32 hex digits)")
            released = binding.release(key_id)
            self.stdout.write(f"{key_id}: {'released' if released else 'was not bound'}")
