"""The JobNimbus client against the sandbox JobNimbus: envelopes, filters, writes, typed errors, and retries
counted by the sandbox itself (GET /__sandbox/stats), with faults injected through /__sandbox/faults.

Sleeps are injected (FakeClock), so retry waits cost no time; the HTTP is real.
"""

from __future__ import annotations

import logging
import time

import pytest

from mcp_tools.jobnimbus import stats
from mcp_tools.jobnimbus.client import JobNimbusClient
from mcp_tools.jobnimbus.errors import AuthError, NotFoundError, RateLimitedError, UnavailableError, ValidationError
from mcp_tools.jobnimbus.filters import must, range_, term, terms, wildcard
from mcp_tools.jobnimbus.transport import Clock
from tests.fixtures.sandbox import SANDBOX_ADMIN_KEY, SANDBOX_SALES_KEY, control

CONFIG = {
    "CONNECT_TIMEOUT_S": 1.0,
    "READ_TIMEOUT_S": 5.0,
    "TOTAL_BUDGET_S": 20.0,
    "MAX_RETRIES": 3,
    "BACKOFF_BASE_S": 0.25,
    "BACKOFF_MAX_S": 4.0,
    "POOL_SIZE": 4,
}


class FakeClock:
    """Time that moves only when the client sleeps; records the sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> Clock:
        return Clock(sleep=self.sleep, monotonic=lambda: self.now, wall=time.time, random=lambda: 0.5)


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


def make_client(handle, fake_clock: FakeClock, key: str = SANDBOX_ADMIN_KEY, **config) -> JobNimbusClient:
    return JobNimbusClient(key, base_url=handle.base_url, config={**CONFIG, **config}, clock=fake_clock.clock())


@pytest.fixture
def client(sandbox, fake_clock: FakeClock) -> JobNimbusClient:
    return make_client(sandbox, fake_clock)


def upstream_count(handle, key: str) -> int:
    """Return how many requests the sandbox saw for `key`, e.g. 'GET /api1/jobs'."""
    return control(handle, "GET", "stats")["requests"].get(key, 0)


# --- envelopes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("resource", ["jobs", "contacts", "activities", "files", "tasks", "estimates", "products"])
def test_every_list_is_count_and_records(client: JobNimbusClient, resource: str) -> None:
    page = client.list(resource, size=3)
    assert len(page.records) == 3
    assert page.count > 3  # count is the total of matches, not the page length
    assert all(isinstance(record["jnid"], str) for record in page.records)


def test_pages_do_not_overlap(client: JobNimbusClient) -> None:
    first = client.list("jobs", size=5, sort_field="date_created", sort_direction="asc")
    second = client.list("jobs", size=5, from_=5, sort_field="date_created", sort_direction="asc")
    assert not {r["jnid"] for r in first.records} & {r["jnid"] for r in second.records}
    assert first.count == second.count


def test_single_get_is_the_bare_record(client: JobNimbusClient) -> None:
    listed = client.list("jobs", size=1).records[0]
    record = client.get("jobs", listed["jnid"])
    assert record["jnid"] == listed["jnid"]
    assert record["type"] == "job"


def test_fields_project_the_records(client: JobNimbusClient) -> None:
    page = client.list("contacts", size=4, fields=["jnid", "display_name"])
    assert all(set(record) <= {"jnid", "display_name"} for record in page.records)


def test_account_users_and_settings(client: JobNimbusClient) -> None:
    users = client.users()
    assert users
    assert {"id", "first_name", "email"} <= set(users[0])
    settings = client.account_settings()
    assert settings["workflows"]
    assert {"id", "name", "object_type", "status"} <= set(settings["workflows"][0])


# --- filters -------------------------------------------------------------------------------------


def test_term_filter_reaches_jobnimbus(client: JobNimbusClient) -> None:
    status = client.list("jobs", size=1).records[0]["status_name"]
    page = client.list("jobs", size=1000, filter=must(term("status_name", status)))
    everything = client.list("jobs", size=1)
    assert 0 < page.count < everything.count
    assert {record["status_name"] for record in page.records} == {status}


def test_children_of_a_job_are_found_by_related_id(client: JobNimbusClient) -> None:
    parent = next(job for job in client.list("jobs", size=50).records if job.get("task_count"))
    page = client.list("tasks", filter=must(term("related.id", parent["jnid"])))
    assert page.count > 0
    assert all(parent["jnid"] in {link["id"] for link in record["related"]} for record in page.records)


def test_terms_range_and_wildcard_filters_combine(client: JobNimbusClient) -> None:
    sample = client.list("contacts", size=3, sort_field="date_created", sort_direction="asc").records
    jnids = [record["jnid"] for record in sample]
    created = [record["date_created"] for record in sample]
    page = client.list(
        "contacts",
        filter=must(terms("jnid", jnids), range_("date_created", gte=min(created), lte=max(created))),
    )
    assert sorted(record["jnid"] for record in page.records) == sorted(jnids)
    name = sample[0]["display_name"]
    fragment = name[1:4]
    found = client.list("contacts", filter=must(wildcard("display_name", fragment)), size=1000)
    assert sample[0]["jnid"] in {record["jnid"] for record in found.records}
    assert all(fragment.lower() in record["display_name"].lower() for record in found.records)


def test_date_math_range(client: JobNimbusClient) -> None:
    recent = client.list("jobs", filter=must(range_("date_updated", gte="now-36500d")), size=1)
    future = client.list("jobs", filter=must(range_("date_updated", gte="now+1d")), size=1)
    assert recent.count > 0
    assert future.count == 0


# --- writes --------------------------------------------------------------------------------------


def test_create_update_delete_round_trip(clean_sandbox, fake_clock: FakeClock) -> None:
    client = make_client(clean_sandbox, fake_clock)
    workflow = next(w for w in client.account_settings()["workflows"] if w["object_type"] == "contact")
    created = client.create(
        "contacts",
        {
            "first_name": "Ada",
            "last_name": "Client",
            "record_type_name": workflow["name"],
            "status_name": workflow["status"][0]["name"],
        },
    )
    updated = client.update("contacts", created["jnid"], {"company": "Roofs & Co"})
    assert updated["company"] == "Roofs & Co"
    assert updated["date_updated"] >= created["date_updated"]
    deleted = client.delete("contacts", created["jnid"])
    assert deleted["is_active"] is False
    assert upstream_count(clean_sandbox, "PUT /api1/contacts/{jnid}") == 2


def test_missing_required_field_is_a_validation_error_with_jobnimbus_words(client: JobNimbusClient) -> None:
    with pytest.raises(ValidationError, match="record_type_name") as caught:
        client.create("jobs", {"name": "New roof"})
    assert caught.value.upstream_message
    assert "record_type_name" in caught.value.upstream_message


# --- typed errors --------------------------------------------------------------------------------


def test_unknown_key_is_an_auth_error(sandbox, fake_clock: FakeClock) -> None:
    client = make_client(sandbox, fake_clock, key="notakeythesandboxknows")
    with pytest.raises(AuthError, match="X-JobNimbus-Api-Key"):
        client.list("jobs", size=1)


def test_unknown_jnid_is_not_found(client: JobNimbusClient) -> None:
    with pytest.raises(NotFoundError, match="no jobs record with jnid 'doesnotexist'"):
        client.get("jobs", "doesnotexist")


def test_a_record_outside_the_key_profile_is_not_found(sandbox, client: JobNimbusClient, fake_clock) -> None:
    sales = make_client(sandbox, fake_clock, key=SANDBOX_SALES_KEY)
    visible = {job["jnid"] for job in sales.list("jobs", size=1000).records}
    hidden = next(job for job in client.list("jobs", size=1000).records if job["jnid"] not in visible)
    with pytest.raises(NotFoundError):
        sales.get("jobs", hidden["jnid"])


def test_key_stays_out_of_logs_and_errors(sandbox, fake_clock: FakeClock, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    key = "wrongbutwellformedkey42"
    client = make_client(sandbox, fake_clock, key=key)
    with pytest.raises(AuthError) as caught:
        client.get("jobs", "x")
    assert key not in str(caught.value)
    assert key not in repr(client)
    assert caplog.records
    assert key not in caplog.text


# --- retries, counted by the sandbox -------------------------------------------------------------


@pytest.mark.parametrize("failures", [1, 2, 3])
def test_get_after_n_503s_costs_exactly_n_plus_one_calls(clean_sandbox, fake_clock: FakeClock, failures: int) -> None:
    control(clean_sandbox, "POST", "faults", {"status": 503, "count": failures})
    stats.reset()
    page = make_client(clean_sandbox, fake_clock).list("jobs", size=2)
    assert len(page.records) == 2
    assert upstream_count(clean_sandbox, "GET /api1/jobs") == failures + 1
    assert stats.count(method="GET", resource="jobs") == failures + 1  # the client counts what JobNimbus saw
    assert len(fake_clock.sleeps) == failures


def test_post_with_a_503_is_not_retried(clean_sandbox, fake_clock: FakeClock) -> None:
    control(clean_sandbox, "POST", "faults", {"status": 503, "count": 1, "methods": ["POST"]})
    with pytest.raises(UnavailableError, match="HTTP 503"):
        make_client(clean_sandbox, fake_clock).create("jobs", {"name": "x"})
    assert upstream_count(clean_sandbox, "POST /api1/jobs") == 1
    assert fake_clock.sleeps == []


def test_put_with_a_502_is_not_retried(clean_sandbox, fake_clock: FakeClock) -> None:
    control(clean_sandbox, "POST", "faults", {"status": 502, "count": 1, "methods": ["PUT"]})
    with pytest.raises(UnavailableError):
        make_client(clean_sandbox, fake_clock).update("jobs", "anything", {"name": "x"})
    assert upstream_count(clean_sandbox, "PUT /api1/jobs/{jnid}") == 1


def test_429_retry_after_is_waited_then_retried(clean_sandbox, fake_clock: FakeClock) -> None:
    control(clean_sandbox, "POST", "faults", {"status": 429, "count": 1, "retry_after": 2})
    make_client(clean_sandbox, fake_clock).list("jobs", size=1)
    assert fake_clock.sleeps == [2.0]
    assert upstream_count(clean_sandbox, "GET /api1/jobs") == 2


def test_429_longer_than_the_budget_is_handed_to_the_caller(clean_sandbox, fake_clock: FakeClock) -> None:
    control(clean_sandbox, "POST", "faults", {"status": 429, "retry_after": 120})
    with pytest.raises(RateLimitedError) as caught:
        make_client(clean_sandbox, fake_clock).list("jobs", size=1)
    assert caught.value.retry_after_s == 120.0
    assert upstream_count(clean_sandbox, "GET /api1/jobs") == 1
    assert fake_clock.sleeps == []


def test_budget_exhausted_stops_retrying(clean_sandbox, fake_clock: FakeClock) -> None:
    control(clean_sandbox, "POST", "faults", {"status": 503, "retry_after": 1})
    client = make_client(clean_sandbox, fake_clock, TOTAL_BUDGET_S=3.5, MAX_RETRIES=10)
    with pytest.raises(UnavailableError, match="gave up after 4 attempts"):
        client.list("jobs", size=1)
    assert fake_clock.sleeps == [1.0, 1.0, 1.0]  # a fourth wait would end past the 3.5 s budget
    assert upstream_count(clean_sandbox, "GET /api1/jobs") == 4


def test_max_retries_bounds_the_calls(clean_sandbox, fake_clock: FakeClock) -> None:
    control(clean_sandbox, "POST", "faults", {"status": 504})
    with pytest.raises(UnavailableError, match="HTTP 504"):
        make_client(clean_sandbox, fake_clock, MAX_RETRIES=2).list("jobs", size=1)
    assert upstream_count(clean_sandbox, "GET /api1/jobs") == 3
    assert fake_clock.sleeps == [0.5 * 0.25, 0.5 * 0.5]


def test_a_hung_upstream_times_out_and_is_retried_for_reads(clean_sandbox, fake_clock: FakeClock) -> None:
    control(clean_sandbox, "POST", "faults", {"hang": True, "count": 1})
    stats.reset()
    client = make_client(clean_sandbox, fake_clock, READ_TIMEOUT_S=0.2)
    assert client.list("jobs", size=1).count > 0
    assert upstream_count(clean_sandbox, "GET /api1/jobs") == 2
    assert stats.count(method="GET", resource="jobs", outcome="timeout") == 1
    assert stats.count(method="GET", resource="jobs", outcome="ok") == 1


def test_a_hung_write_is_not_retried(clean_sandbox, fake_clock: FakeClock) -> None:
    control(clean_sandbox, "POST", "faults", {"hang": True, "methods": ["POST"]})
    client = make_client(clean_sandbox, fake_clock, READ_TIMEOUT_S=0.2)
    with pytest.raises(UnavailableError, match="may or may not have been saved"):
        client.create("jobs", {"name": "x"})
    assert upstream_count(clean_sandbox, "POST /api1/jobs") == 1
