"""Change polling: for instances with a server-held key, list what changed since the watermark and emit events.

The upstream reader is the configured `ChangeSource` (cacheops.change_sources); without one, polling is a no-op.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from cacheops.change_sources import ChangedRecord, ChangeSource, build_change_source
from cacheops.events import Change, apply_event, digest_change, record_event
from cacheops.freshness_conf import freshness_setting
from cacheops.models import EventSource, InvalidationEvent, PollWatermark

log = logging.getLogger(__name__)


def poll_all(instance: str | None = None) -> int:
    """Poll every instance with a server-held key (or just `instance`); return how many events were stored."""
    stored = 0
    for name, config in settings.JOBNIMBUS_INSTANCES.items():
        api_key = config.get("api_key")
        if not api_key or (instance and name != instance):
            continue
        source = build_change_source(name, api_key)
        if source is not None:
            stored += sum(_poll_guarded(name, entity, source) for entity in source.entities)
    return stored


def _poll_guarded(instance: str, entity: str, source: ChangeSource) -> int:
    # One entity's failure (upstream down, a refused filter) must not stop the others; its watermark stays put,
    # so the next run covers the same span again.
    try:
        return poll_entity(instance, entity, source)
    except Exception as exc:  # noqa: BLE001
        log.warning("polling %s %s failed: %s", instance, entity, exc)
        return 0


def poll_entity(instance: str, entity: str, source: ChangeSource) -> int:
    """Emit an event for each record of `entity` changed since the watermark; advance it only after success."""
    watermark = _watermark(instance, entity)
    since = int(((watermark or timezone.now()) - timedelta(seconds=freshness_setting("POLL_OVERLAP_S"))).timestamp())
    stored, newest = 0, watermark
    for deleted in (False, True):
        count, seen = _poll_stream(instance, entity, source, since, deleted=deleted)
        stored += count
        newest = seen if newest is None or (seen is not None and seen > newest) else newest
    if newest is not None:
        _advance(instance, entity, newest)
    return stored


def _poll_stream(
    instance: str, entity: str, source: ChangeSource, since: int, *, deleted: bool
) -> tuple[int, datetime | None]:
    stored, offset, newest = 0, 0, None
    for _ in range(int(freshness_setting("POLL_MAX_PAGES"))):
        size = int(freshness_setting("POLL_PAGE_SIZE"))
        page = source.changed_since(entity, since, offset=offset, size=size, deleted=deleted)
        for record in page.records:
            stored += emit_change(instance, entity, record, since)
            seen = datetime.fromtimestamp(record.date_updated, tz=UTC)
            newest = seen if newest is None or seen > newest else newest
        offset += len(page.records)
        if not page.records or offset >= page.total:
            break
    return stored, newest


def emit_change(instance: str, entity: str, record: ChangedRecord, since: int) -> int:
    """Store and apply the event for one polled record version; return 0 when that version was already seen."""
    change = Change(instance, entity, _event_of(record, since), record.jnid, tuple(record.related))
    digest = digest_change(change, [record.date_updated, record.version])
    # The overlap re-reads recent versions every run: a version already recorded was already applied.
    if InvalidationEvent.objects.filter(instance=instance, payload_digest=digest).exists():
        return 0
    event = record_event(change, source=EventSource.POLL, digest=digest)
    apply_event(event.pk, look_up=False)  # the polled record already said what it links to
    return 1


def _event_of(record: ChangedRecord, since: int) -> str:
    if not record.is_active:
        return "deleted"
    if record.date_created is not None and record.date_created >= since:
        return "created"
    return "updated"


def _watermark(instance: str, entity: str) -> datetime | None:
    row = PollWatermark.objects.filter(instance=instance, entity=entity).first()
    return row.last_seen if row else None


def _advance(instance: str, entity: str, newest: datetime) -> None:
    row, created = PollWatermark.objects.get_or_create(instance=instance, entity=entity, defaults={"last_seen": newest})
    # Never move backwards: two overlapping polls may finish out of order.
    if not created and newest > row.last_seen:
        PollWatermark.objects.filter(pk=row.pk, last_seen__lt=newest).update(last_seen=newest)
