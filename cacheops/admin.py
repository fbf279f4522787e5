"""Admin: the freshness history, read-only (events are facts; operators replay them with a command)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from cacheops.models import InvalidationEvent, PollWatermark


class ReadOnlyAdmin(admin.ModelAdmin):
    """Show rows, never add, change or delete them from the admin."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(InvalidationEvent)
class InvalidationEventAdmin(ReadOnlyAdmin):
    list_display = ("received", "instance", "entity", "jnid", "event", "source", "applied", "keys_dropped", "error")
    list_filter = ("instance", "entity", "source", "event")
    search_fields = ("jnid",)
    date_hierarchy = "received"


@admin.register(PollWatermark)
class PollWatermarkAdmin(ReadOnlyAdmin):
    list_display = ("instance", "entity", "last_seen", "updated")
    list_filter = ("instance",)
