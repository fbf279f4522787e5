"""Stored change events: claiming (one worker applies), failures kept for retry, the sweep, manual invalidation.

The tests of the claim lease, the sweep and pruning run at each instant of `moved_clock`: at the boundary instants
the events' ages (a minute, two minutes, forty days) reach back into the month, or the year, before.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from cacheops import events, invalidation
from cacheops.api import list_tag, record_tag
from cacheops.errors import CacheBackendError
from cacheops.events import Change, apply_event, claim_event, record_event, sweep_unapplied
from cacheops.models import InvalidationEvent
from cacheops.tasks import apply_invalidation_event, sweep_invalidation_events

pytestmark = pytest.mark.django_db


def _stored(jnid: str = "J1", *, age_s: float = 0, digest: str | None = None) -> InvalidationEvent:
    event = record_event(Change("acme", "job", "updated", jnid, ("C1",)), source="webhook", digest=digest or jnid)
    InvalidationEvent.objects.filter(pk=event.pk).update(received=timezone.now() - timedelta(seconds=age_s))
    return event


def test_an_event_is_claimed_exactly_once() -> None:
    event = _stored()
    assert claim_event(event.pk) is True
    assert claim_event(event.pk) is False  # a second worker loses the conditional UPDATE


@pytest.mark.usefixtures("moved_clock")
def test_a_claim_whose_worker_vanished_can_be_taken_over_after_the_lease() -> None:
    event = _stored()
    assert claim_event(event.pk)
    InvalidationEvent.objects.filter(pk=event.pk).update(claimed_at=timezone.now() - timedelta(seconds=121))
    assert claim_event(event.pk) is True
    assert InvalidationEvent.objects.get(pk=event.pk).attempts == 2


def test_apply_event_records_keys_and_time_and_a_second_run_is_a_no_op(tag_spy) -> None:
    event = _stored()
    assert apply_event(event.pk) == 4
    assert apply_invalidation_event(event.pk) is None
    stored = InvalidationEvent.objects.get(pk=event.pk)
    assert stored.applied is not None
    assert stored.keys_dropped == 4
    assert len(tag_spy.calls) == 1


def test_a_failed_apply_keeps_the_event_unapplied_with_its_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def down(instance: str, tags: object) -> int:
        raise CacheBackendError("redis is down")

    monkeypatch.setattr(invalidation, "invalidate_tags", down)
    event = _stored()
    assert apply_event(event.pk) is None
    stored = InvalidationEvent.objects.get(pk=event.pk)
    assert stored.applied is None
    assert stored.claimed_at is None
    assert "redis is down" in stored.error


@pytest.mark.usefixtures("moved_clock")
def test_sweep_applies_old_unapplied_events_once_and_leaves_fresh_ones_to_their_task(tag_spy) -> None:
    old, fresh = _stored("OLD", age_s=60), _stored("NEW")
    assert sweep_unapplied() == 1
    assert sweep_invalidation_events() == 0  # the second sweep finds nothing left
    assert InvalidationEvent.objects.get(pk=old.pk).applied is not None
    assert InvalidationEvent.objects.get(pk=fresh.pk).applied is None
    assert [tags for _, tags in tag_spy.calls] == [[list_tag("job"), record_tag("OLD"), record_tag("C1"), "rel:C1"]]


@pytest.mark.usefixtures("moved_clock")
def test_two_sweeps_racing_apply_each_event_once(tag_spy, monkeypatch: pytest.MonkeyPatch) -> None:
    _stored("A", age_s=60)
    _stored("B", age_s=60)
    inner_apply = events.apply_event
    nested: list[int] = []

    def apply_while_another_sweep_runs(event_id: int) -> int | None:
        if not nested:
            nested.append(-1)
            nested[0] = sweep_unapplied()  # the other worker runs its whole batch while this one is mid-batch
        return inner_apply(event_id)

    monkeypatch.setattr(events, "apply_event", apply_while_another_sweep_runs)
    first = sweep_unapplied()
    assert nested[0] == 2
    assert first == 0
    assert sorted(tags[1] for _, tags in tag_spy.calls) == [record_tag("A"), record_tag("B")]


@pytest.mark.usefixtures("moved_clock")
def test_sweep_gives_up_after_max_attempts(tag_spy) -> None:
    event = _stored(age_s=60)
    InvalidationEvent.objects.filter(pk=event.pk).update(attempts=10)
    assert sweep_unapplied() == 0
    assert tag_spy.calls == []


@pytest.mark.usefixtures("moved_clock")
def test_replay_events_command_applies_everything_unapplied(tag_spy, capsys: pytest.CaptureFixture[str]) -> None:
    _stored("X")
    call_command("replay_events")
    assert "applied 1 events" in capsys.readouterr().out
    assert InvalidationEvent.objects.filter(applied__isnull=True).count() == 0


@pytest.mark.usefixtures("webhook_instances")
def test_invalidate_command_records_a_manual_event_and_applies_it(tag_spy, capsys) -> None:
    call_command("invalidate", "acme", "Work Order", "WO1", "--related", "JOB1")
    event = InvalidationEvent.objects.get()
    assert (event.source, event.entity, event.jnid, event.related) == ("manual", "workorder", "WO1", ["JOB1"])
    assert tag_spy.calls == [("acme", [list_tag("workorder"), record_tag("WO1"), record_tag("JOB1"), "rel:JOB1"])]
    assert "dropped 4 keys" in capsys.readouterr().out


@pytest.mark.usefixtures("webhook_instances")
def test_invalidate_command_without_jnid_drops_the_entity_lists(tag_spy) -> None:
    call_command("invalidate", "acme", "contact")
    assert tag_spy.calls == [("acme", [list_tag("contact")])]


@pytest.mark.usefixtures("webhook_instances")
@pytest.mark.parametrize(("args", "says"), [(("nobody", "job"), "unknown instance"), (("acme", "budget"), "entity")])
def test_invalidate_command_refuses_unknown_names(args: tuple[str, ...], says: str) -> None:
    with pytest.raises(CommandError, match=says):
        call_command("invalidate", *args)
    assert not InvalidationEvent.objects.exists()


@pytest.mark.usefixtures("moved_clock")
def test_prune_history_deletes_only_old_applied_events(tag_spy) -> None:
    old_applied, old_pending, recent = _stored("A", age_s=40 * 86400), _stored("B", age_s=40 * 86400), _stored("C")
    apply_event(old_applied.pk)
    apply_event(recent.pk)
    assert events.prune_history() == 1
    assert sorted(InvalidationEvent.objects.values_list("jnid", flat=True)) == ["B", "C"]
    assert old_pending.pk in InvalidationEvent.objects.values_list("pk", flat=True)
