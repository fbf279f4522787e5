"""End to end: a change in the sandbox fires its automation webhook at the live server, which stores the event and
queues it to a real Celery worker that applies it, and a cached read of the record is fresh afterwards."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from cacheops.api import CacheScope, ReadRequest, read_through, record_tag, related_tag, tenant_id
from cacheops.models import InvalidationEvent
from tests.fixtures.celery import WorkerHandle
from tests.fixtures.sandbox import SANDBOX_ADMIN_KEY, api, control

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SECRET = "whsec-e2e-0123456789"


@pytest.fixture
def wired(clean_sandbox: Any, live_server: Any, celery_worker_process: WorkerHandle) -> Iterator[tuple[Any, str]]:
    """Point the sandbox's webhooks at the live server under a fresh instance name, tasks at the worker's queue."""
    instance = f"fr-{uuid.uuid4().hex[:10]}"
    freshness = {**getattr(settings, "CACHEOPS_FRESHNESS", {}), "APPLY_QUEUE": celery_worker_process.queue}
    instances = {instance: {"api_key": SANDBOX_ADMIN_KEY, "webhook_secret": SECRET}}
    url = f"{live_server.url}/webhooks/jobnimbus/{instance}"
    with override_settings(JOBNIMBUS_INSTANCES=instances, CACHEOPS_FRESHNESS=freshness):
        control(clean_sandbox, "POST", "webhooks", {"url": url, "token": SECRET, "enabled": True})
        yield clean_sandbox, instance
    control(clean_sandbox, "POST", "webhooks", {"url": None, "enabled": False})


def _applied_event(instance: str, jnid: str, timeout_s: float = 30.0) -> InvalidationEvent | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        event = InvalidationEvent.objects.filter(instance=instance, jnid=jnid, applied__isnull=False).first()
        if event is not None:
            return event
        time.sleep(0.05)
    return None


def test_a_file_added_in_the_sandbox_refreshes_the_jobs_cached_attachments(wired: tuple[Any, str]) -> None:
    handle, instance = wired
    job = api(handle, "GET", "/jobs?size=1").json()["results"][0]
    attachments = ReadRequest(
        scope=CacheScope(instance, tenant_id(SANDBOX_ADMIN_KEY)),
        entity="file",
        op="list",
        policy="attachments",
        args={"related": job["jnid"]},
        tool="get_attachments",
        tags=(related_tag(job["jnid"]), record_tag(job["jnid"])),
    )
    assert read_through(attachments, lambda: ["before"]).value == ["before"]
    assert read_through(attachments, lambda: ["after"]).value == ["before"]  # cached
    created = api(handle, "POST", "/files", json={"filename": "roof.jpg", "related": [{"id": job["jnid"]}],
                                                  "data": "aGVsbG8=", "content_type": "image/jpeg"})  # fmt: skip
    assert created.ok, created.text
    event = _applied_event(instance, created.json()["jnid"])
    assert event is not None, control(handle, "GET", "webhooks")
    assert (event.source, event.entity, event.event) == ("webhook", "file", "created")
    assert job["jnid"] in event.related
    assert read_through(attachments, lambda: ["after"]).value == ["after"]
