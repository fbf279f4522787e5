"""Integration: a webhook is stored, queued to a REAL Celery worker over the real Redis broker, and applied there."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator

import orjson
import pytest
from django.conf import settings
from django.test import Client, override_settings

from cacheops.api import CacheScope, ReadRequest, read_through, record_tag, tenant_id
from cacheops.models import InvalidationEvent
from tests.fixtures.celery import WorkerHandle
from tests.fixtures.freshness import INSTANCES, SECRET

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def to_worker(celery_worker_process: WorkerHandle) -> Iterator[WorkerHandle]:
    """Route apply tasks to the session worker's private queue."""
    freshness = {**getattr(settings, "CACHEOPS_FRESHNESS", {}), "APPLY_QUEUE": celery_worker_process.queue}
    with override_settings(CACHEOPS_FRESHNESS=freshness, JOBNIMBUS_INSTANCES=INSTANCES):
        yield celery_worker_process


def _wait_applied(event_id: int, timeout_s: float = 30.0) -> InvalidationEvent:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        event = InvalidationEvent.objects.get(pk=event_id)
        if event.applied is not None or event.error:
            return event
        time.sleep(0.05)
    return InvalidationEvent.objects.get(pk=event_id)


def test_webhook_is_applied_by_the_worker(
    client: Client, to_worker: WorkerHandle, caplog: pytest.LogCaptureFixture
) -> None:
    jnid = f"file-{uuid.uuid4().hex[:8]}"
    body = {"event": "created", "type": "attachment", "jnid": jnid, "related": [{"id": "job-1", "type": "job"}]}
    response = client.post("/webhooks/jobnimbus/acme", data=orjson.dumps(body), content_type="application/json",
                           headers={"X-Webhook-Token": SECRET})  # fmt: skip
    assert response.status_code == 202
    event = _wait_applied(response.json()["event_id"])
    assert event.applied is not None, to_worker.log()
    assert event.error == ""
    assert event.attempts == 1
    # Applied by the worker, not inline: the worker logged running this very task.
    assert re.search(r"Task cacheops\.apply_invalidation_event\[[0-9a-f-]+\] succeeded", to_worker.log())
    assert not [r for r in caplog.records if "inline" in r.getMessage()]


def test_webhook_makes_the_next_read_fresh(client: Client, to_worker: WorkerHandle) -> None:
    instance, jnid = f"fr-{uuid.uuid4().hex[:10]}", f"job-{uuid.uuid4().hex[:8]}"
    request = ReadRequest(
        scope=CacheScope(instance, tenant_id("tenantkey0123456789")),
        entity="job",
        op="get",
        policy="job_detail",
        args={"jnid": jnid},
        tool="get_job",
        tags=(record_tag(jnid),),
    )
    with override_settings(JOBNIMBUS_INSTANCES={instance: {"api_key": None, "webhook_secret": SECRET}}):
        read_through(request, lambda: {"status_name": "Lead"})
        cached = read_through(request, lambda: {"status_name": "Won"})
        assert (cached.value, cached.status) == ({"status_name": "Lead"}, "hit_l1")
        body = {"event": "updated", "type": "job", "jnid": jnid, "primary": {"id": "contact-1"}}
        response = client.post(f"/webhooks/jobnimbus/{instance}", data=orjson.dumps(body),
                                content_type="application/json", headers={"X-Webhook-Token": SECRET})  # fmt: skip
        event = _wait_applied(response.json()["event_id"])
        assert event.applied is not None, to_worker.log()
        assert event.keys_dropped >= 1
        fresh = read_through(request, lambda: {"status_name": "Won"})
    assert fresh.value == {"status_name": "Won"}
    assert fresh.status == "miss"
