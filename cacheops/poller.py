"""Change polling: for instances with a server-held key, list what changed since the watermark and emit events.

`cacheops` must not import the JobNimbus client (dependency direction: mcp_tools → cacheops), so the upstream
reader is a `ChangeSource` built by a factory named in CACHEOPS_FRESHNESS["CHANGE_SOURCE"] (a dotted path).
Without one, polling is a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from cacheops.events import Change, apply_event, digest_change, record_event
from cacheops.freshness_conf import freshness_setting
from cacheops.models import EventSource, InvalidationEvent, PollWatermark

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChangedRecord:
    """What polling needs of a record: its id, version time, liveness and the records it hangs off."""

    jnid: str
    date_updated: int
    is_active: bool = True
    date_created: int | None = None
    related: Sequence[str] = field(default_factory=tuple)
    # What tells two states of the record apart (a content hash); date_updated alone has one-second resolution.
    version: str = ""


@dataclass(frozen=True)
class ChangePage:
    """One page of changed records; `total` counts every match, not just this page."""

    total: int
    records: Sequence[ChangedRecord]


class ChangeSource(Protocol):
    """Read records of an entity updated at or after a time, sorted by `date_updated` ascending, a page at a time.

    Lists show active records only, so deletions (records gone inactive) are a second stream: `deleted=True`
    asks for the inactive ones. A source may also offer `related_of(entity, jnid) -> Sequence[str]` (one record's
    related/primary ids): cacheops.events uses it to complete change events that name no parents.
    """

    entities: Sequence[str]

    def changed_since(self, entity: str, since: int, *, offset: int, size: int, deleted: bool) -> ChangePage:
        """Return records of `entity` with date_updated >= `since` (unix seconds), from `offset`, at most `size`."""
        ...


def build_change_source(instance: str, api_key: str) -> ChangeSource | None:
    """Return the configured change source for an instance, or None when polling is not configured."""
    path = freshness_setting("CHANGE_SOURCE")
    if not path:
        return None
    factory = import_string(path)
    source: ChangeSource = factory(instance, api_key)
    return source


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
