"""The invalidation rules table: every entity x event, the relation rules, aliases, and apply_change."""

from __future__ import annotations

import pytest

from cacheops import api
from cacheops.api import list_tag, record_tag, related_tag
from cacheops.rules import EVENTS, UnknownChangeError, normalize_entity, normalize_event, tags_for

LINKED = ["contact", "job", "activity", "task", "file", "estimate", "invoice", "workorder", "materialorder", "payment"]
STANDALONE = ["product", "user", "settings", "webhook"]


def _expected(entity: str, event: str) -> list[str]:
    if entity in STANDALONE:
        return [list_tag(entity), record_tag("R1")]
    own_children = [related_tag("R1")] if event == "deleted" else []
    return [list_tag(entity), record_tag("R1"), *own_children, record_tag("P1"), related_tag("P1")]


@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize("entity", LINKED + STANDALONE)
def test_every_entity_and_event_has_its_tags(entity: str, event: str) -> None:
    assert tags_for(entity, event, "R1", ["P1"]) == _expected(entity, event)


@pytest.mark.parametrize("child", ["file", "activity", "task", "estimate"])
def test_new_child_on_a_job_drops_job_detail_job_child_lists_and_own_lists(child: str) -> None:
    tags = tags_for(child, "created", "C9", ["JOB1"])
    assert {record_tag("JOB1"), related_tag("JOB1"), list_tag(child)} <= set(tags)
    assert list_tag("job") not in tags


def test_job_status_change_drops_job_lists_job_detail_and_contact_detail() -> None:
    tags = tags_for("job", "updated", "JOB1", ["CONTACT1"])
    assert {list_tag("job"), record_tag("JOB1"), record_tag("CONTACT1")} <= set(tags)


def test_related_ids_are_deduplicated_and_self_links_ignored() -> None:
    tags = tags_for("task", "updated", "T1", ["J1", "J1", "T1", ""])
    assert tags == [list_tag("task"), record_tag("T1"), record_tag("J1"), related_tag("J1")]


def test_change_without_jnid_drops_only_lists() -> None:
    assert tags_for("job", "updated", None) == [list_tag("job")]


@pytest.mark.parametrize(
    ("raw", "entity"),
    [
        ("Contact", "contact"),
        ("Job", "job"),
        ("Task", "task"),
        ("Work Order", "workorder"),
        ("Material Order", "materialorder"),
        ("Attachment", "file"),
        ("attachment", "file"),
        ("Activity", "activity"),
        ("note", "activity"),
        ("jobs", "job"),
        ("  work   order ", "workorder"),
        ("settings", "settings"),
        ("Residential", None),
    ],
)
def test_jobnimbus_type_names_map_onto_entities(raw: str, entity: str | None) -> None:
    assert normalize_entity(raw) == entity


@pytest.mark.parametrize(
    ("raw", "event"),
    [("Created", "created"), ("Modified", "updated"), ("Created or Modified", "updated"), ("Deleted", "deleted"),
     ("exploded", None)],
)  # fmt: skip
def test_event_spellings_map_onto_events(raw: str, event: str | None) -> None:
    assert normalize_event(raw) == event


@pytest.mark.parametrize(("entity", "event"), [("budget", "updated"), ("job", "archived")])
def test_unknown_entity_or_event_is_refused_by_name(entity: str, event: str) -> None:
    with pytest.raises(UnknownChangeError, match=entity if entity == "budget" else event):
        tags_for(entity, event, "X")


def test_apply_change_passes_the_rules_tags_to_the_engine(tag_spy) -> None:
    dropped = api.apply_change("acme", "file", "created", "F1", ["JOB1"])
    assert tag_spy.calls == [
        ("acme", [list_tag("file"), record_tag("F1"), record_tag("JOB1"), related_tag("JOB1")]),
    ]
    assert dropped == 4
