"""The invalidation rules: ONE table, entity x event -> the tags a change drops.

`cacheops` knows JobNimbus only here and in `cacheops.entities` (one row per record type: linked or not, its
spellings, its policies): this module turns those rows into which cached views a change to each one makes stale.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence

from cacheops.entities import ENTITY_ROWS, aliases
from cacheops.keys import entity_tag, list_tag, record_tag, related_tag

LINKED_ENTITIES: tuple[str, ...] = tuple(row.name for row in ENTITY_ROWS if row.linked)
STANDALONE_ENTITIES: tuple[str, ...] = tuple(row.name for row in ENTITY_ROWS if not row.linked)
ENTITIES: tuple[str, ...] = LINKED_ENTITIES + STANDALONE_ENTITIES
EVENTS: tuple[str, ...] = ("created", "updated", "deleted")


class Drop(enum.Enum):
    """One kind of cached view a change makes stale."""

    OWN_LISTS = "every list/search of the changed record's entity"
    OWN_RECORD = "the changed record's detail (and every entry showing it)"
    OWN_CHILDREN = "the lists of the changed record's children (files, notes, tasks... of a deleted job)"
    PARENT_RECORDS = "the detail of each related/primary record (the job of a new file, the contact of a job)"
    PARENT_CHILDREN = "the child lists of each related/primary record (get_attachments(job), get_jobs(contact))"


_LINKED = frozenset({Drop.OWN_LISTS, Drop.OWN_RECORD, Drop.PARENT_RECORDS, Drop.PARENT_CHILDREN})
_LINKED_DELETE = _LINKED | {Drop.OWN_CHILDREN}
_STANDALONE = frozenset({Drop.OWN_LISTS, Drop.OWN_RECORD})

# A change to a linked record also drops its parents' details and child lists. `created` drops the record tag
# too: a cached "not found" or a search that included the id must not survive the creation. A deleted record also
# takes its own child lists with it.
RULES: Mapping[tuple[str, str], frozenset[Drop]] = {
    **{
        (entity, event): (_LINKED_DELETE if event == "deleted" else _LINKED)
        for entity in LINKED_ENTITIES
        for event in EVENTS
    },
    **{(entity, event): _STANDALONE for entity in STANDALONE_ENTITIES for event in EVENTS},
}

# The record types a linked record's parents can be, for a change that names no parents: JobNimbus automations
# usually send only {event, type, jnid}, and the record could not be looked up (no server-held key, JobNimbus
# down, record deleted). Then every cached entry of those types is dropped (their `entity:` tag): heavy, but the
# parent's detail and child lists are certainly fresh, which dropping only `list:job`/`list:contact` would miss.
UNKNOWN_PARENT_TYPES: Mapping[str, tuple[str, ...]] = {
    row.name: row.unknown_parents for row in ENTITY_ROWS if row.linked
}

# JobNimbus automation subjects and record `type` values, from each entity's row.
ENTITY_ALIASES: Mapping[str, str] = aliases()

EVENT_ALIASES: Mapping[str, str] = {
    "created": "created",
    "create": "created",
    "new": "created",
    "updated": "updated",
    "update": "updated",
    "modified": "updated",
    "changed": "updated",
    # JobNimbus's "Created or Modified" trigger cannot tell which; updated drops the same tags here.
    "created or modified": "updated",
    "deleted": "deleted",
    "delete": "deleted",
    "removed": "deleted",
}


class UnknownChangeError(ValueError):
    """The entity or event of a change is not one the rules table knows."""


def normalize_entity(raw: str) -> str | None:
    """Return the entity a JobNimbus type name stands for (Attachment → file), or None when unknown."""
    return ENTITY_ALIASES.get(" ".join(raw.strip().lower().split()))


def normalize_event(raw: str) -> str | None:
    """Return created/updated/deleted for an event name in any of its spellings, or None when unknown."""
    return EVENT_ALIASES.get(" ".join(raw.strip().lower().split()))


def drops_for(entity: str, event: str) -> frozenset[Drop]:
    """Return what a change of `entity` by `event` makes stale; raise UnknownChangeError when not in the table."""
    try:
        return RULES[(entity, event)]
    except KeyError:
        raise UnknownChangeError(
            f"no invalidation rule for entity {entity!r} and event {event!r}; "
            f"entities: {', '.join(ENTITIES)}; events: {', '.join(EVENTS)}"
        ) from None


def tags_for(entity: str, event: str, jnid: str | None, related: Sequence[str] = ()) -> list[str]:
    """Return the tags to drop for one change, without duplicates, in a stable order.

    A linked record's change that names no parents drops every entry of its possible parent types instead
    (see UNKNOWN_PARENT_TYPES); callers that can learn the parents first (cacheops.events) should.
    """
    drops = drops_for(entity, event)
    parents = [parent for parent in _unique(related) if parent and parent != jnid]
    tags: list[str] = []
    if Drop.OWN_LISTS in drops:
        tags.append(list_tag(entity))
    if jnid and Drop.OWN_RECORD in drops:
        tags.append(record_tag(jnid))
    if jnid and Drop.OWN_CHILDREN in drops:
        tags.append(related_tag(jnid))
    if Drop.PARENT_RECORDS in drops:
        tags.extend(record_tag(parent) for parent in parents)
    if Drop.PARENT_CHILDREN in drops:
        tags.extend(related_tag(parent) for parent in parents)
    if jnid and not parents and Drop.PARENT_RECORDS in drops:
        tags.extend(entity_tag(kind) for kind in UNKNOWN_PARENT_TYPES[entity])
    return tags


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))
