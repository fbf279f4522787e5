"""The change-source plug-in: what polling and parent look-ups read from JobNimbus, and how one is built.

`cacheops` must not import the JobNimbus client (dependency direction: mcp_tools → cacheops), so the upstream
reader is a `ChangeSource` built by a factory named in CACHEOPS_FRESHNESS["CHANGE_SOURCE"] (a dotted path).
Without one, polling is a no-op and change events naming no parents get the conservative drop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from django.utils.module_loading import import_string

from cacheops.freshness_conf import freshness_setting


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
