"""`manage.py invalidate <instance> <entity> [<jnid>]`: drop what a change to a record (or entity) would drop."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cacheops.events import Change, record_and_apply
from cacheops.models import EventSource
from cacheops.rules import ENTITIES, EVENTS, normalize_entity


class Command(BaseCommand):
    help = "Invalidate a record's cached views (or an entity's lists and searches) by the rules table."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("instance")
        parser.add_argument("entity", help=f"one of {', '.join(ENTITIES)}")
        parser.add_argument("jnid", nargs="?", default="", help="the record; without it, the entity's lists")
        parser.add_argument("--event", choices=EVENTS, default="updated")
        parser.add_argument("--related", nargs="*", default=[], help="parent ids (a file's job, a job's contact)")

    def handle(self, *args: Any, **options: Any) -> None:
        instance = options["instance"]
        if instance not in settings.JOBNIMBUS_INSTANCES:
            raise CommandError(f"unknown instance {instance!r}; configured: {', '.join(settings.JOBNIMBUS_INSTANCES)}")
        entity = normalize_entity(options["entity"])
        if entity is None:
            raise CommandError(f"unknown entity {options['entity']!r}; expected one of {', '.join(ENTITIES)}")
        change = Change(instance, entity, options["event"], options["jnid"], tuple(options["related"]))
        event = record_and_apply(change, source=EventSource.MANUAL)
        if event.applied is None:
            raise CommandError(f"invalidation failed (event {event.pk}): {event.error}")
        self.stdout.write(f"event {event.pk}: dropped {event.keys_dropped} keys")
