"""The JobNimbus side of change polling: list records updated since a time, in cacheops's ChangeSource shape.

Named by dotted path in settings (CACHEOPS_FRESHNESS["CHANGE_SOURCE"]) because cacheops may not import mcp_tools.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from cacheops.api import ChangedRecord, ChangePage
from mcp_tools.entities import ENTITIES
from mcp_tools.jobnimbus.client import JobNimbusClient
from mcp_tools.jobnimbus.filters import must, range_, term

# Record types JobNimbus lists with a `date_updated` on every record (users and settings have none): entity → resource.
POLLED_RESOURCES: Mapping[str, str] = {row.name: row.resource for row in ENTITIES if row.polled and row.resource}


class JobNimbusChangeSource:
    """List changed records of one account through the JobNimbus client."""

    entities: Sequence[str] = tuple(POLLED_RESOURCES)

    def __init__(self, client: JobNimbusClient) -> None:
        self._client = client

    def changed_since(self, entity: str, since: int, *, offset: int, size: int, deleted: bool) -> ChangePage:
        """Return one page of `entity` records with date_updated >= since, oldest change first."""
        clauses = [range_("date_updated", gte=since)]
        if deleted:
            # Lists hide inactive (deleted) records unless the filter asks about is_active.
            clauses.append(term("is_active", False))
        page = self._client.list(
            POLLED_RESOURCES[entity],
            size=size,
            from_=offset,
            sort_field="date_updated",
            sort_direction="asc",
            filter=must(*clauses),
        )
        records = [changed for record in page.records if (changed := to_changed_record(record)) is not None]
        return ChangePage(total=page.count, records=records)

    def related_of(self, entity: str, jnid: str) -> tuple[str, ...]:
        """Return the related/primary ids of one record (to complete a change event that named none)."""
        return _linked_ids(self._client.get(POLLED_RESOURCES[entity], jnid))


def to_changed_record(record: Mapping[str, Any]) -> ChangedRecord | None:
    """Return what polling needs of a JobNimbus record, or None when it lacks an id or a date_updated."""
    jnid, updated = record.get("jnid"), record.get("date_updated")
    if not isinstance(jnid, str) or not isinstance(updated, int | float):
        return None
    created = record.get("date_created")
    return ChangedRecord(
        jnid=jnid,
        date_updated=int(updated),
        is_active=record.get("is_active") is not False,
        date_created=int(created) if isinstance(created, int | float) else None,
        related=_linked_ids(record),
        version=hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32],
    )


def _linked_ids(record: Mapping[str, Any]) -> tuple[str, ...]:
    links = [*(record.get("related") or []), record.get("primary") or {}]
    ids = [link.get("id") for link in links if isinstance(link, dict)]
    return tuple(dict.fromkeys(link for link in ids if isinstance(link, str) and link))


def build_change_source(instance: str, api_key: str) -> JobNimbusChangeSource:
    """Return the change source for one instance's server-held key (the ChangeSource factory)."""
    return JobNimbusChangeSource(JobNimbusClient(api_key))
