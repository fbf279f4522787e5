"""Change polling: paging, watermarks, deletions, failures; and against the sandbox with webhooks off.

The tests over the in-memory source run at each instant of `moved_clock` (`fake_source` asks for it): at the
boundary instants the overlap behind now, the hour-old watermark and the records' times are in the month, or the
year, before the poll.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from cacheops.api import list_tag, record_tag, related_tag
from cacheops.change_sources import ChangedRecord, ChangePage
from cacheops.models import InvalidationEvent, PollWatermark
from cacheops.poller import poll_all, poll_entity
from tests.fixtures.clock import Clock
from tests.fixtures.sandbox import SANDBOX_ADMIN_KEY, api, control

pytestmark = pytest.mark.django_db


@dataclass
class FakeSource:
    """A ChangeSource over in-memory records; `fail_on` makes one entity's listing raise."""

    records: dict[tuple[str, bool], list[ChangedRecord]] = field(default_factory=dict)
    entities: Sequence[str] = ("job", "task")
    fail_on: str | None = None
    asked: list[tuple[str, int, int, int, bool]] = field(default_factory=list)

    def changed_since(self, entity: str, since: int, *, offset: int, size: int, deleted: bool) -> ChangePage:
        self.asked.append((entity, since, offset, size, deleted))
        if entity == self.fail_on:
            raise ConnectionError("upstream down")
        matching = [r for r in self.records.get((entity, deleted), []) if r.date_updated >= since]
        return ChangePage(total=len(matching), records=matching[offset : offset + size])


FAKE: dict[str, FakeSource] = {}


def fake_factory(instance: str, api_key: str) -> FakeSource:
    return FAKE[instance]


@pytest.fixture
def fake_source(moved_clock: Clock) -> Iterator[FakeSource]:
    source = FakeSource()
    FAKE["acme"] = source
    instances = {
        "acme": {"api_key": "k" * 16, "webhook_secret": None},
        "nokey": {"api_key": None, "webhook_secret": None},
    }
    freshness = {"CHANGE_SOURCE": f"{__name__}.fake_factory", "POLL_PAGE_SIZE": 100, "POLL_OVERLAP_S": 120}
    with override_settings(JOBNIMBUS_INSTANCES=instances, CACHEOPS_FRESHNESS=freshness):
        yield source
    FAKE.clear()


def _now() -> int:
    """Return the (travelled, frozen) clock's now in unix seconds, as JobNimbus stamps records."""
    return int(timezone.now().timestamp())


def test_pages_through_every_change_and_advances_the_watermark(fake_source: FakeSource, tag_spy) -> None:
    base = _now() - 60
    fake_source.records[("job", False)] = [ChangedRecord(f"J{i}", base + i // 10, related=("C1",)) for i in range(250)]
    assert poll_all() == 250
    assert [(offset, deleted) for entity, _, offset, _, deleted in fake_source.asked if entity == "job"] == [
        (0, False), (100, False), (200, False), (0, True)]  # fmt: skip
    watermark = PollWatermark.objects.get(instance="acme", entity="job")
    assert int(watermark.last_seen.timestamp()) == base + 24
    assert InvalidationEvent.objects.filter(source="poll", applied__isnull=False).count() == 250
    assert tag_spy.calls[0] == ("acme", [list_tag("job"), record_tag("J0"), record_tag("C1"), related_tag("C1")])


def test_the_overlap_does_not_re_emit_versions_already_seen(fake_source: FakeSource, tag_spy) -> None:
    fake_source.records[("job", False)] = [ChangedRecord("J1", _now() - 5, version="v1")]
    assert poll_all() == 1
    assert poll_all() == 0
    fake_source.records[("job", False)] = [ChangedRecord("J1", _now() - 5, version="v2")]  # changed in the same second
    assert poll_all() == 1
    assert len(tag_spy.calls) == 2


def test_deleted_and_created_records_get_their_events(fake_source: FakeSource, tag_spy) -> None:
    now = _now()
    fake_source.records[("task", False)] = [ChangedRecord("T-new", now - 1, date_created=now - 1, related=("J1",))]
    fake_source.records[("task", True)] = [ChangedRecord("T-gone", now - 2, is_active=False, related=("J1",))]
    poll_all()
    events = dict(InvalidationEvent.objects.values_list("jnid", "event"))
    assert events == {"T-new": "created", "T-gone": "deleted"}
    assert ("acme", [list_tag("task"), record_tag("T-gone"), related_tag("T-gone"), record_tag("J1"),
                     related_tag("J1")]) in tag_spy.calls  # fmt: skip


def test_a_failing_entity_keeps_its_watermark_and_the_others_still_poll(fake_source: FakeSource, tag_spy) -> None:
    fake_source.records[("task", False)] = [ChangedRecord("T1", _now() - 1)]
    fake_source.records[("job", False)] = [ChangedRecord("J1", _now() - 1)]
    fake_source.fail_on = "job"
    assert poll_all() == 1
    assert not PollWatermark.objects.filter(entity="job").exists()
    assert PollWatermark.objects.filter(entity="task").exists()


def test_watermark_minus_overlap_is_the_lower_bound(fake_source: FakeSource) -> None:
    fake_source.records[("job", False)] = [ChangedRecord("J1", _now() - 1000)]
    poll_entity("acme", "job", fake_source)
    assert fake_source.asked[0][1] >= _now() - 121  # no watermark yet: the overlap behind now
    assert InvalidationEvent.objects.count() == 0
    old = PollWatermark.objects.create(instance="acme", entity="job", last_seen=timezone.now() - timedelta(hours=1))
    fake_source.asked.clear()
    poll_entity("acme", "job", fake_source)
    assert fake_source.asked[0][1] == int(old.last_seen.timestamp()) - 120
    assert InvalidationEvent.objects.get().jnid == "J1"
    assert (
        int(PollWatermark.objects.get(entity="job").last_seen.timestamp())
        == fake_source.records[("job", False)][0].date_updated
    )


def test_no_change_source_configured_is_a_no_op(tag_spy) -> None:
    with override_settings(CACHEOPS_FRESHNESS={"CHANGE_SOURCE": None}):
        assert poll_all() == 0
    assert tag_spy.calls == []


def test_poll_changes_command(fake_source: FakeSource, tag_spy, capsys: pytest.CaptureFixture[str]) -> None:
    fake_source.records[("job", False)] = [ChangedRecord("J1", _now() - 1)]
    call_command("poll_changes", "--instance", "acme")
    assert "stored 1 change events" in capsys.readouterr().out


# --- against the sandbox, with its webhooks off ------------------------------------------------


@pytest.fixture
def sandbox_instance(clean_sandbox: Any) -> Iterator[Any]:
    instances = {"acme": {"api_key": SANDBOX_ADMIN_KEY, "webhook_secret": None}}
    with override_settings(JOBNIMBUS_BASE_URL=clean_sandbox.base_url, JOBNIMBUS_INSTANCES=instances):
        yield clean_sandbox


def _first(handle: Any, path: str) -> dict[str, Any]:
    body = api(handle, "GET", f"{path}?size=1").json()
    return next(iter(body.get("results") or body.get("activity") or body.get("files")))


def test_poller_finds_a_change_made_in_the_sandbox(sandbox_instance: Any, tag_spy) -> None:
    assert control(sandbox_instance, "GET", "webhooks")["config"]["enabled"] is False
    poll_all()  # sets the watermarks
    job = _first(sandbox_instance, "/jobs")
    contact = (job.get("primary") or {}).get("id")
    seen_before = InvalidationEvent.objects.filter(jnid=job["jnid"]).count()
    tag_spy.calls.clear()
    assert api(sandbox_instance, "PUT", f"/jobs/{job['jnid']}", json={"description": "changed by the test"}).ok
    poll_all()
    assert InvalidationEvent.objects.filter(jnid=job["jnid"]).count() == seen_before + 1
    event = InvalidationEvent.objects.filter(source="poll", entity="job", jnid=job["jnid"]).latest("received")
    assert event.event == "updated"
    assert event.applied is not None
    expected = [list_tag("job"), record_tag(job["jnid"])] + ([record_tag(contact)] if contact else [])
    assert any(instance == "acme" and set(expected) <= set(tags) for instance, tags in tag_spy.calls)


def test_poller_sees_a_deletion_in_the_sandbox(sandbox_instance: Any, tag_spy) -> None:
    poll_all()
    task = _first(sandbox_instance, "/tasks")
    tag_spy.calls.clear()
    assert api(sandbox_instance, "PUT", f"/tasks/{task['jnid']}", json={"is_active": False}).ok
    poll_all()
    event = InvalidationEvent.objects.filter(source="poll", entity="task", jnid=task["jnid"]).latest("received")
    assert event.event == "deleted"
    assert any(record_tag(task["jnid"]) in tags and related_tag(task["jnid"]) in tags for _, tags in tag_spy.calls)
