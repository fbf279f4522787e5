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
