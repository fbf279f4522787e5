"""Freshness when a change names no parents or Redis refuses: parents looked up or dropped conservatively, Redis
outages never exhaust an event's attempts, and a write's invalidation Redis refused is stored for the sweep.

The sweep tests run at each instant of `moved_clock`: at the boundary instants the sweep's age cut-off, and the
events a minute old, are in the month (or the year) before.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from cacheops import api, invalidation
from cacheops.api import list_tag, record_tag, related_tag
from cacheops.dispatcher import dispatch
from cacheops.errors import CacheBackendError
from cacheops.events import Change, apply_event, record_event, sweep_unapplied
from cacheops.keys import entity_tag
from cacheops.models import InvalidationEvent
from cacheops.rules import tags_for
from mcp_tools.change_source import JobNimbusChangeSource
from tests.fixtures.catalog import FakeJobNimbus
from tests.fixtures.freshness import SECRET, TagSpy

pytestmark = pytest.mark.django_db

LOOKED_UP: list[tuple[str, str]] = []
PARENTS: dict[str, Sequence[str] | Exception] = {}


class ParentReader:
    """A change source that only answers `related_of`, from PARENTS (an Exception there is raised)."""

    entities: Sequence[str] = ()

    def related_of(self, entity: str, jnid: str) -> Sequence[str]:
        LOOKED_UP.append((entity, jnid))
        found = PARENTS[jnid]
        if isinstance(found, Exception):
            raise found
        return found


def reader_factory(instance: str, api_key: str) -> ParentReader:
    assert api_key == "server-key"
    return ParentReader()


@pytest.fixture
def keyed_instance() -> Iterator[None]:
    """Give instance acme a server-held key and the ParentReader as its change source."""
    LOOKED_UP.clear()
    PARENTS.clear()
    instances = {"acme": {"api_key": "server-key", "webhook_secret": SECRET}}
    freshness = {"CHANGE_SOURCE": f"{__name__}.reader_factory"}
    with override_settings(JOBNIMBUS_INSTANCES=instances, CACHEOPS_FRESHNESS=freshness):
        yield


def _stored(entity: str, jnid: str, related: Sequence[str] = (), *, age_s: float = 0) -> InvalidationEvent:
    event = record_event(Change("acme", entity, "created", jnid, tuple(related)), source="webhook", digest=jnid)
    InvalidationEvent.objects.filter(pk=event.pk).update(received=timezone.now() - timedelta(seconds=age_s))
    return event


# --- changes that name no parents ---------------------------------------------------------------------------


def test_a_change_naming_no_parents_drops_every_entry_of_the_parent_types() -> None:
    assert tags_for("file", "created", "F1", []) == [
        list_tag("file"),
        record_tag("F1"),
        entity_tag("contact"),
        entity_tag("job"),
    ]
    assert tags_for("job", "updated", "J1", []) == [list_tag("job"), record_tag("J1"), entity_tag("contact")]
    assert tags_for("contact", "updated", "C1", []) == [list_tag("contact"), record_tag("C1")]
    assert entity_tag("job") not in tags_for("file", "created", "F1", ["J1"])  # known parents: only theirs


@pytest.mark.usefixtures("keyed_instance")
def test_the_apply_step_looks_the_record_up_to_learn_its_parents(tag_spy: TagSpy) -> None:
    PARENTS["F1"] = ["J1", "C1"]
    event = _stored("file", "F1")
    apply_event(event.pk)
    assert LOOKED_UP == [("file", "F1")]
    assert tag_spy.calls[0][1] == tags_for("file", "created", "F1", ["J1", "C1"])
    assert {record_tag("J1"), related_tag("J1"), record_tag("C1")} <= set(tag_spy.calls[0][1])
    assert InvalidationEvent.objects.get(pk=event.pk).related == ["J1", "C1"]  # the history shows what was learnt


@pytest.mark.usefixtures("keyed_instance")
def test_a_failed_look_up_falls_back_to_the_conservative_drop(tag_spy: TagSpy) -> None:
    PARENTS["T1"] = RuntimeError("404: the task was deleted")
    event = _stored("task", "T1")
    assert apply_event(event.pk) is not None
    assert tag_spy.calls[0][1] == tags_for("task", "created", "T1", [])
    assert InvalidationEvent.objects.get(pk=event.pk).applied is not None


@pytest.mark.usefixtures("keyed_instance")
def test_events_naming_their_parents_are_not_looked_up(tag_spy: TagSpy) -> None:
    apply_event(_stored("file", "F2", ["J9"]).pk)
    apply_event(_stored("contact", "C2").pk)  # a contact has no parent type to learn
    assert LOOKED_UP == []


@pytest.mark.usefixtures("keyed_instance", "dead_broker")
def test_the_inline_apply_of_a_webhook_request_never_calls_jobnimbus(tag_spy: TagSpy) -> None:
    PARENTS["F3"] = ["J3"]
    event = _stored("file", "F3")
    assert dispatch(event.pk) == "inline"
    assert LOOKED_UP == []
    assert tag_spy.calls[0][1] == tags_for("file", "created", "F3", [])


def test_the_jobnimbus_change_source_reads_one_records_parents() -> None:
    fake = FakeJobNimbus(data={"files": [{"jnid": "F1", "related": [{"id": "J1"}], "primary": {"id": "C1"}}]})
    assert JobNimbusChangeSource(fake).related_of("file", "F1") == ("J1", "C1")  # type: ignore[arg-type]
    assert fake.calls == [("get", "files", {"jnid": "F1"})]


# --- a Redis outage does not use up attempts ---------------------------------------------------------------


@pytest.mark.usefixtures("moved_clock")
def test_a_redis_outage_longer_than_max_attempts_sweeps_leaves_the_event_retryable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def down(instance: str, tags: object) -> int:
        raise CacheBackendError("redis is down")

    event = _stored("job", "J1", ["C1"], age_s=60)
    monkeypatch.setattr(invalidation, "invalidate_tags", down)
    for _ in range(15):
        assert sweep_unapplied() == 0
    spy = TagSpy()
    monkeypatch.setattr(invalidation, "invalidate_tags", spy)  # Redis is back
    assert sweep_unapplied() == 1
    assert InvalidationEvent.objects.get(pk=event.pk).applied is not None


@pytest.mark.usefixtures("moved_clock")
def test_other_failures_still_use_up_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    def bug(instance: str, tags: object) -> int:
        raise TypeError("a bug")

    event = _stored("job", "J1", ["C1"], age_s=60)
    monkeypatch.setattr(invalidation, "invalidate_tags", bug)
    sweep_unapplied()
    assert InvalidationEvent.objects.get(pk=event.pk).attempts == 1


# --- a write's invalidation Redis refused is stored ---------------------------------------------------------


@pytest.mark.usefixtures("moved_clock")
def test_a_refused_invalidation_is_stored_and_the_sweep_applies_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def down(instance: str, tags: object) -> int:
        raise CacheBackendError("redis is down")

    monkeypatch.setattr(invalidation, "invalidate_tags", down)
    with pytest.raises(CacheBackendError):
        api.apply_change("acme", "task", "updated", "T7", ["J7"])
    stored = InvalidationEvent.objects.get()
    assert (stored.source, stored.entity, stored.event, stored.jnid, stored.related) == (
        "write",
        "task",
        "updated",
        "T7",
        ["J7"],
    )
    assert stored.applied is None
    spy = TagSpy()
    monkeypatch.setattr(invalidation, "invalidate_tags", spy)  # Redis is back
    assert sweep_unapplied(min_age_s=0) == 1
    assert spy.calls == [("acme", tags_for("task", "updated", "T7", ["J7"]))]


def test_a_write_tool_whose_invalidation_redis_refused_leaves_an_event(
    fake_jobnimbus: FakeJobNimbus, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mcp_tools.catalog import registry
    from mcp_tools.catalog.base import ToolContext

    def down(instance: str, tags: object) -> int:
        raise CacheBackendError("redis is down")

    monkeypatch.setattr(invalidation, "invalidate_tags", down)
    ctx = ToolContext(instance="acme", api_key="k" * 16, tenant="t-write", request_id="test")
    result = registry.call_tool(ctx, "create_contact", {"first_name": "Ada", "last_name": "Lovelace"})
    assert not result.is_error
    assert InvalidationEvent.objects.filter(source="write", jnid="new1", applied__isnull=True).count() == 1
