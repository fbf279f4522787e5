"""The rules table through the real cache engine (real Redis): what a change drops, and what it leaves alone."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from cacheops.api import (
    CacheScope,
    ReadRequest,
    apply_change,
    list_tag,
    read_through,
    record_tag,
    related_tag,
    tenant_id,
)

pytestmark = pytest.mark.redis


def _reader(instance: str, tenant_key: str) -> Callable[..., Any]:
    scope = CacheScope(instance, tenant_id(tenant_key))

    def read(tool: str, policy: str, entity: str, op: str, tags: tuple[str, ...], value: object) -> Any:
        request = ReadRequest(scope=scope, entity=entity, op=op, policy=policy, args={"tags": list(tags)}, tool=tool,
                              tags=tags)  # fmt: skip
        return read_through(request, lambda: value)

    return read


@pytest.fixture
def instance() -> str:
    return f"fr-{uuid.uuid4().hex[:10]}"


def test_a_file_added_to_a_job_refreshes_its_attachments_and_the_job_but_not_other_jobs(instance: str) -> None:
    read = _reader(instance, "tenantkey0123456789")
    views = {
        "get_job": ("job_detail", "job", "get", (record_tag("J1"),)),
        "get_attachments": ("attachments", "file", "list", (list_tag("file"), related_tag("J1"))),
        "other_job": ("job_detail", "job", "get", (record_tag("J2"),)),
    }
    for tool, (policy, entity, op, tags) in views.items():
        read(tool, policy, entity, op, tags, "old")
    assert apply_change(instance, "file", "created", "F1", ["J1"]) >= 2
    after = {tool: read(tool, policy, entity, op, tags, "new") for tool, (policy, entity, op, tags) in views.items()}
    assert after["get_job"].value == "new"
    assert after["get_attachments"].value == "new"
    assert after["other_job"].value == "old"


def test_a_change_reaches_every_tenant_of_the_instance_and_no_other_instance(instance: str) -> None:
    other_instance = f"{instance}-b"
    readers = [_reader(instance, "tenantkeyA0123456789"), _reader(instance, "tenantkeyB0123456789"),
               _reader(other_instance, "tenantkeyA0123456789")]  # fmt: skip
    view = ("get_job", "job_detail", "job", "get", (record_tag("J1"),))
    for read in readers:
        read(*view, "old")
    apply_change(instance, "job", "updated", "J1", ["C1"])
    assert [read(*view, "new").value for read in readers] == ["new", "new", "old"]
