"""Staff endpoints: GET /cache/invalidations (filters, pagination) and /cache/invalidations/stats.

The hourly stats run at each instant of `moved_clock`: at the boundary instants their hours are on both sides of
the end of a month (or a year).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from cacheops.models import InvalidationEvent
from tests.fixtures.clock import Clock

pytestmark = pytest.mark.django_db


def _event(entity: str = "job", source: str = "webhook", instance: str = "acme", **extra: object) -> InvalidationEvent:
    fields = {"instance": instance, "entity": entity, "jnid": "J1", "event": "updated", "source": source,
              "payload_digest": "d", "received": timezone.now(), **extra}  # fmt: skip
    return InvalidationEvent.objects.create(**fields)


@pytest.fixture
def staff(client: Client) -> Client:
    client.force_login(User.objects.create(username="owner", is_staff=True))
    return client


@pytest.fixture
def staff_on_clock(moved_clock: Clock, client: Client) -> Client:
    """`staff` logged in after the clock moved: a session opened on the real clock has expired a year ahead."""
    client.force_login(User.objects.create(username="owner", is_staff=True))
    return client


@pytest.mark.parametrize("path", ["/cache/invalidations", "/cache/invalidations/stats"])
def test_outsiders_and_non_staff_are_refused(client: Client, path: str) -> None:
    assert client.get(path).status_code in {401, 403}
    client.force_login(User.objects.create(username="teammate"))
    assert client.get(path).status_code == 403


def test_history_filters_by_instance_entity_and_source(staff: Client) -> None:
    _event("job", "webhook")
    _event("job", "poll")
    _event("task", "poll")
    _event("job", "poll", instance="other")
    body = staff.get("/cache/invalidations", {"instance": "acme", "entity": "job", "source": "poll"}).json()
    assert body["count"] == 1
    assert body["results"][0]["source"] == "poll"
    assert body["results"][0]["entity"] == "job"


def test_history_is_paginated_newest_first(staff: Client) -> None:
    start = timezone.now() - timedelta(minutes=10)
    for minute in range(5):
        _event(jnid=f"J{minute}", received=start + timedelta(minutes=minute))
    body = staff.get("/cache/invalidations", {"page_size": 2, "page": 2}).json()
    assert body["count"] == 5
    assert [row["jnid"] for row in body["results"]] == ["J2", "J1"]
    assert body["next"] is not None


def test_history_refuses_an_unknown_source(staff: Client) -> None:
    response = staff.get("/cache/invalidations", {"source": "carrier-pigeon"})
    assert response.status_code == 400
    assert "source" in response.json()


def test_stats_per_entity_and_hour_with_latency_percentiles(staff_on_clock: Client) -> None:
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)  # the clock is frozen: the view's hour too
    for ms in (10, 20, 30, 40, 1000):
        _event("job", received=hour, applied=hour + timedelta(milliseconds=ms), keys_dropped=2)
    _event("job", received=hour)  # not applied yet
    _event("task", received=hour - timedelta(hours=1), applied=hour - timedelta(minutes=59), keys_dropped=1)
    buckets = staff_on_clock.get("/cache/invalidations/stats", {"hours": 3}).json()["buckets"]
    job = next(b for b in buckets if b["entity"] == "job")
    assert (job["events"], job["unapplied"], job["keys_dropped"]) == (6, 1, 10)
    assert (job["latency_ms_p50"], job["latency_ms_p99"]) == (30.0, 1000.0)
    task = next(b for b in buckets if b["entity"] == "task")
    assert task["latency_ms_p50"] == 60000.0


@pytest.mark.parametrize("hours", ["0", "169", "x"])
def test_stats_refuse_a_bad_window(staff: Client, hours: str) -> None:
    response = staff.get("/cache/invalidations/stats", {"hours": hours})
    assert response.status_code == 400
    assert "hours" in response.json()


def test_admin_lists_events_read_only(staff: Client) -> None:
    User.objects.filter(username="owner").update(is_superuser=True)
    event = _event(jnid="J-admin")
    listing = staff.get("/admin/cacheops/invalidationevent/")
    assert listing.status_code == 200
    assert b"J-admin" in listing.content
    assert staff.get("/admin/cacheops/invalidationevent/add/").status_code == 403
    assert staff.post(f"/admin/cacheops/invalidationevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert InvalidationEvent.objects.filter(pk=event.pk).exists()
