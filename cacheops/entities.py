"""The JobNimbus record types the cache knows: ONE row each, from which the rules and policy tables derive.

A row says how the type hangs off others (which invalidation rules apply), which spellings JobNimbus automations
and record `type` fields use for it, and its cache policies with their fresh TTLs. `cacheops.rules` builds the
entity-by-event table and the aliases from these rows, `cacheops.policies` the policies, `cacheops.tuning` which
entity's changes each policy sees. A leaf module: it imports nothing of cacheops.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

MINUTE = 60
HOUR = 3600
# A linked record with no parents named in its change drops every cached entry of these types (see rules).
CONTACT_AND_JOB = ("contact", "job")


@dataclass(frozen=True, kw_only=True)
class Entity:
    """One record type: `linked` when it hangs off contacts and jobs through `related`/`primary`.

    `policies` maps each cache policy of the type to its fresh TTL (seconds); `aliases` are the spellings other
    than the name and its plural; `unknown_parents` the types whose entries a change naming no parents drops.
    """

    name: str
    linked: bool
    policies: Mapping[str, int]
    aliases: tuple[str, ...] = ()
    plural: bool = True
    unknown_parents: tuple[str, ...] = ()


ENTITY_ROWS: tuple[Entity, ...] = (
    Entity(
        name="contact",
        linked=True,
        policies={"contacts": 1 * HOUR, "contact_detail": 1 * HOUR, "contact_search": 30 * MINUTE},
    ),
    Entity(
        name="job",
        linked=True,
        policies={"jobs": 30 * MINUTE, "job_detail": 1 * HOUR, "job_search": 15 * MINUTE},
        unknown_parents=("contact",),  # a job's parent is its customer contact
    ),
    Entity(
        name="activity",
        linked=True,
        policies={"activities": 15 * MINUTE},
        aliases=("note", "notes", "activities"),
        unknown_parents=CONTACT_AND_JOB,
    ),
    Entity(
        name="task",
        linked=True,
        policies={"tasks": 10 * MINUTE, "calendar": 15 * MINUTE},
        unknown_parents=CONTACT_AND_JOB,
    ),
    Entity(
        name="file",
        linked=True,
        policies={"attachments": 15 * MINUTE},
        aliases=("attachment", "attachments"),
        unknown_parents=CONTACT_AND_JOB,
    ),
    Entity(name="estimate", linked=True, policies={"estimates": 30 * MINUTE}, unknown_parents=CONTACT_AND_JOB),
    Entity(name="invoice", linked=True, policies={"invoices": 30 * MINUTE}, unknown_parents=CONTACT_AND_JOB),
    Entity(
        name="workorder",
        linked=True,
        policies={"workorders": 30 * MINUTE},
        aliases=("work order", "work_order", "work-order", "work orders"),
        unknown_parents=CONTACT_AND_JOB,
    ),
    Entity(
        name="materialorder",
        linked=True,
        policies={"materialorders": 30 * MINUTE},
        aliases=("material order", "material_order", "material-order", "material orders"),
        unknown_parents=CONTACT_AND_JOB,
    ),
    Entity(name="payment", linked=True, policies={"payments": 15 * MINUTE}, unknown_parents=CONTACT_AND_JOB),
    # Catalogue-like data changes rarely; account-wide records link to nothing.
    Entity(name="product", linked=False, policies={"products": 2 * HOUR}),
    Entity(name="user", linked=False, policies={"users": 2 * HOUR}),
    Entity(name="settings", linked=False, policies={"settings": 3 * HOUR}, aliases=("setting",), plural=False),
    Entity(name="webhook", linked=False, policies={"webhooks": 3 * HOUR}),
)


def policy_entities() -> dict[str, str]:
    """Return each policy's entity (the type whose changes make that policy's entries stale)."""
    return {policy: row.name for row in ENTITY_ROWS for policy in row.policies}


def aliases() -> dict[str, str]:
    """Return every spelling of every entity (name, plural, aliases) → the entity's name."""
    spelled: dict[str, str] = {}
    for row in ENTITY_ROWS:
        spelled[row.name] = row.name
        if row.plural:
            spelled[f"{row.name}s"] = row.name
    for row in ENTITY_ROWS:
        spelled.update(dict.fromkeys(row.aliases, row.name))
    return spelled
