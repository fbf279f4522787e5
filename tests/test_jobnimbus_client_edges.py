"""The JobNimbus client against a scripted HTTP server: error mapping, retries, budget, timeouts, secrecy, pool.

The sandbox tests (test_jobnimbus_client_sandbox.py) check behaviour against a faithful JobNimbus; these
check the answers the sandbox is not asked for: HTML bodies, Retry-After dates, 500s with and without a
message, bodies echoing the key, dropped connections.
"""

from __future__ import annotations

import logging
import socket
import threading
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from requests.adapters import HTTPAdapter

from mcp_tools.jobnimbus import stats, transport
from mcp_tools.jobnimbus.client import JobNimbusClient
from mcp_tools.jobnimbus.errors import (
    AuthError,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
    UnsupportedOperationError,
    ValidationError,
)
from mcp_tools.jobnimbus.transport import Clock
from tests.jobnimbus_scripted_server import Reply, ScriptedServer

KEY = "edgecasekey0000000001"
CONFIG = {
    "CONNECT_TIMEOUT_S": 1.0,
    "READ_TIMEOUT_S": 2.0,
    "TOTAL_BUDGET_S": 20.0,
    "MAX_RETRIES": 3,
    "BACKOFF_BASE_S": 0.25,
    "BACKOFF_MAX_S": 4.0,
    "POOL_SIZE": 4,
}


class FakeClock:
    """Monotonic and wall time that move only when the client sleeps; records each sleep."""

    def __init__(self, draw: float = 0.5) -> None:
        self.now = 1_000.0
        self.wall_now = 1_700_000_000.0
        self.sleeps: list[float] = []
        self.draw = draw

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.wall_now += seconds

    def clock(self) -> Clock:
        return Clock(sleep=self.sleep, monotonic=lambda: self.now, wall=lambda: self.wall_now, random=lambda: self.draw)


@pytest.fixture
def server():
    scripted = ScriptedServer().start()
    yield scripted
    scripted.stop()


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(server: ScriptedServer, fake_clock: FakeClock) -> JobNimbusClient:
    return JobNimbusClient(KEY, base_url=server.base_url, config=CONFIG, clock=fake_clock.clock())


# --- requests as sent ----------------------------------------------------------------------------


def test_list_sends_bearer_key_and_jobnimbus_query(server: ScriptedServer, client: JobNimbusClient) -> None:
    server.then(Reply(body={"count": 0, "results": []}))
    client.list(
        "jobs",
        size=5,
        from_=10,
        sort_field="date_updated",
        sort_direction="asc",
        fields=["jnid", "name"],
        filter={"must": [{"term": {"status_name": "Lead"}}]},
    )
    seen = server.seen[0]
    assert seen.headers["Authorization"] == f"Bearer {KEY}"
    assert seen.path == (
        "/api1/jobs?size=5&from=10&sort_field=date_updated&sort_direction=asc&fields=jnid%2Cname"
        "&filter=%7B%22must%22%3A%5B%7B%22term%22%3A%7B%22status_name%22%3A%22Lead%22%7D%7D%5D%7D"
    )


def test_jnid_is_escaped_so_it_cannot_reach_another_path(server: ScriptedServer, client: JobNimbusClient) -> None:
    server.then(Reply(body={"jnid": "x"}))
    client.get("jobs", "../account/settings")
    assert server.seen[0].path == "/api1/jobs/..%2Faccount%2Fsettings"


def test_delete_is_a_put_of_is_active_false(server: ScriptedServer, client: JobNimbusClient) -> None:
    server.then(Reply(body={"jnid": "j1", "is_active": False}))
    assert client.delete("jobs", "j1") == {"jnid": "j1", "is_active": False}
    assert (server.seen[0].method, server.seen[0].path, server.seen[0].body) == (
        "PUT",
        "/api1/jobs/j1",
        b'{"is_active": false}',
    )


def test_payments_are_created_on_the_api2_path(server: ScriptedServer, client: JobNimbusClient) -> None:
    server.then(Reply(body={"jnid": "p1"}))
    client.create("payments", {"total": 10})
    assert server.seen[0].path == "/api2/v2/payments"


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda c: c.list("jobs", size=0), "size must be a positive"),
        (lambda c: c.list("jobs", from_=-1), "from must be"),
        (lambda c: c.list("jobs", sort_direction="up"), "sort_direction"),
        (lambda c: c.get("jobs", " "), "jnid must be a non-empty"),
        (lambda c: c.update("jobs", "j1", ["name"]), "JSON object"),
        (lambda c: c.get("payments", "p1"), "no 'get' endpoint for payments"),
        (lambda c: c.update("products", "p1", {}), "no 'update' endpoint for products"),
    ],
)
def test_bad_input_is_refused_without_calling_upstream(
    server: ScriptedServer, client: JobNimbusClient, call, says: str
) -> None:
    with pytest.raises(ValidationError, match=says):
        call(client)
    assert server.seen == []


def test_unsupported_operation_is_a_validation_error() -> None:
    assert issubclass(UnsupportedOperationError, ValidationError)


@pytest.mark.parametrize("bad_key", ["short", "has space in the key!!", "newline\r\nX-Evil: 1aaaaaaaaaa", "", None])
def test_malformed_key_is_refused_before_any_request_and_not_echoed(bad_key) -> None:
    with pytest.raises(AuthError, match="malformed") as caught:
        JobNimbusClient(bad_key, base_url="http://127.0.0.1:9/api1")
    if bad_key:
        assert bad_key not in str(caught.value)


# --- envelopes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "body"),
    [
        ("jobs", {"count": 57, "results": [{"jnid": "a"}, {"jnid": "b"}]}),
        ("activities", {"count": 57, "activity": [{"jnid": "a"}, {"jnid": "b"}]}),
        ("files", {"count": 57, "files": [{"jnid": "a"}, {"jnid": "b"}]}),
    ],
)
def test_every_envelope_becomes_count_and_records(
    server: ScriptedServer, client: JobNimbusClient, resource: str, body: dict
) -> None:
    server.then(Reply(body=body))
    page = client.list(resource)
    assert (page.count, page.records) == (57, [{"jnid": "a"}, {"jnid": "b"}])


def test_a_bare_list_is_a_page_too(server: ScriptedServer, client: JobNimbusClient) -> None:
    server.then(Reply(body=[{"jnid": "a"}]))
    page = client.list("budgets")
    assert (page.count, page.records) == (1, [{"jnid": "a"}])


def test_users_unwrap_their_list(server: ScriptedServer, client: JobNimbusClient) -> None:
    server.then(Reply(body={"users": [{"id": "u1"}], "date_updated": 1}))
    assert client.users() == [{"id": "u1"}]
    assert server.seen[0].path == "/api1/account/users"


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        (Reply(body="<html>maintenance</html>", headers={"Content-Type": "text/html"}), "text/html, not JSON"),
        (Reply(body={"count": 1, "items": []}), "without 'results'"),
        (Reply(body={"count": "many", "results": []}), "non-numeric count"),
        (Reply(body={"count": 1, "results": ["a"]}), "not a list of objects"),
        (Reply(body="42"), "int instead of a list"),
    ],
)
def test_an_unexpected_answer_is_unavailable_not_a_crash(
    server: ScriptedServer, client: JobNimbusClient, reply: Reply, says: str
) -> None:
    server.then(reply)
    with pytest.raises(UnavailableError, match=f"JobNimbus answered something unexpected.*{says}"):
        client.list("jobs")
    assert len(server.seen) == 1


# --- typed errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_refused_key_is_an_auth_error_telling_what_to_check(
    server: ScriptedServer, client: JobNimbusClient, status: int
) -> None:
    server.then(Reply(status=status, body={"message": "Unauthorized"}))
    with pytest.raises(AuthError, match="check the key in X-JobNimbus-Api-Key and its access profile") as caught:
        client.list("jobs")
    assert caught.value.status == status
    assert len(server.seen) == 1


def test_not_found_names_the_resource_and_jnid(server: ScriptedServer, client: JobNimbusClient) -> None:
    server.then(Reply(status=404, body="Not Found", headers={"Content-Type": "text/plain"}))
    with pytest.raises(NotFoundError, match="no jobs record with jnid 'nope'") as caught:
        client.get("jobs", "nope")
    assert (caught.value.resource, caught.value.jnid, caught.value.status) == ("jobs", "nope", 404)


def test_validation_error_carries_jobnimbus_message(server: ScriptedServer, client: JobNimbusClient) -> None:
    server.then(Reply(status=400, body={"message": "record_type_name is required"}))
    with pytest.raises(ValidationError, match="record_type_name is required") as caught:
        client.create("jobs", {"name": "Roof"})
    assert caught.value.upstream_message == "record_type_name is required"
    assert caught.value.status == 400


def test_500_with_a_message_on_a_write_is_a_validation_error(server: ScriptedServer, client: JobNimbusClient) -> None:
    server.then(Reply(status=500, body="status_name is required", headers={"Content-Type": "text/plain"}))
    with pytest.raises(ValidationError, match="status_name is required"):
        client.create("contacts", {"first_name": "Ann"})


def test_500_without_a_message_on_a_write_is_unavailable(server: ScriptedServer, client: JobNimbusClient) -> None:
    server.then(Reply(status=500, body="<html>oops</html>", headers={"Content-Type": "text/html"}))
    with pytest.raises(UnavailableError, match="HTTP 500"):
        client.create("contacts", {"first_name": "Ann"})


# --- retries, Retry-After, budget ----------------------------------------------------------------


@pytest.mark.parametrize("status", [502, 503, 504])
def test_get_retries_transient_statuses_with_jittered_backoff(
    server: ScriptedServer, client: JobNimbusClient, fake_clock: FakeClock, status: int
) -> None:
    server.then(Reply(status=status), Reply(status=status), Reply(body={"count": 0, "results": []}))
    assert client.list("jobs").count == 0
    assert len(server.seen) == 3
    assert fake_clock.sleeps == [0.5 * 0.25, 0.5 * 0.5]  # draw 0.5 of ceilings 0.25, 0.5


def test_500_on_a_read_is_not_retried(server: ScriptedServer, client: JobNimbusClient) -> None:
    server.then(Reply(status=500, body={"message": "boom"}))
    with pytest.raises(UnavailableError, match="HTTP 500"):
        client.list("jobs")
    assert len(server.seen) == 1


def test_retries_stop_after_max_retries(server: ScriptedServer, client: JobNimbusClient, fake_clock: FakeClock) -> None:
    server.default = Reply(status=503)
    with pytest.raises(UnavailableError, match="gave up after 4 attempts") as caught:
        client.list("jobs")
    assert len(server.seen) == 4
    assert len(fake_clock.sleeps) == 3
    assert caught.value.status == 503


def test_retry_after_seconds_is_honoured(
    server: ScriptedServer, client: JobNimbusClient, fake_clock: FakeClock
) -> None:
    server.then(Reply(status=429, headers={"Retry-After": "3"}), Reply(body={"count": 0, "results": []}))
    client.list("jobs")
    assert fake_clock.sleeps == [3.0]


def test_retry_after_http_date_is_honoured(
    server: ScriptedServer, client: JobNimbusClient, fake_clock: FakeClock
) -> None:
    when = format_datetime(datetime.fromtimestamp(fake_clock.wall_now + 7, tz=UTC), usegmt=True)
    server.then(Reply(status=503, headers={"Retry-After": when}), Reply(body={"count": 0, "results": []}))
    client.list("jobs")
    assert fake_clock.sleeps == [pytest.approx(7.0)]


def test_retry_after_past_the_budget_gives_up_at_once_with_the_hint(
    server: ScriptedServer, client: JobNimbusClient, fake_clock: FakeClock
) -> None:
    server.then(Reply(status=429, headers={"Retry-After": "60"}))
    with pytest.raises(RateLimitedError, match="retry after 60 s") as caught:
        client.list("jobs")
    assert caught.value.retry_after_s == 60.0
    assert fake_clock.sleeps == []
    assert len(server.seen) == 1


def test_budget_is_never_slept_past(server: ScriptedServer, fake_clock: FakeClock) -> None:
    config = {**CONFIG, "TOTAL_BUDGET_S": 1.0, "MAX_RETRIES": 10, "BACKOFF_MAX_S": 10.0}
    client = JobNimbusClient(KEY, base_url=server.base_url, config=config, clock=fake_clock.clock())
    fake_clock.draw = 1.0  # every wait at its ceiling: 0.25, 0.5, then 1.0 would cross the 1 s budget
    server.default = Reply(status=503)
    with pytest.raises(UnavailableError, match="gave up after 3 attempts"):
        client.list("jobs")
    assert fake_clock.sleeps == [0.25, 0.5]
    assert sum(fake_clock.sleeps) < 1.0


@pytest.mark.parametrize("method", ["create", "update"])
def test_writes_are_never_retried(server: ScriptedServer, client: JobNimbusClient, method: str) -> None:
    server.default = Reply(status=503, headers={"Retry-After": "1"})
    send = {
        "create": lambda: client.create("jobs", {"name": "Roof"}),
        "update": lambda: client.update("jobs", "j1", {"name": "Roof"}),
    }[method]
    with pytest.raises(UnavailableError):
        send()
    assert len(server.seen) == 1


# --- timeouts and connection failures (real sockets, short real timeouts) ------------------------


def test_read_timeout_is_retried_for_a_get_then_unavailable(server: ScriptedServer, fake_clock: FakeClock) -> None:
    config = {**CONFIG, "READ_TIMEOUT_S": 0.2, "MAX_RETRIES": 1}
    client = JobNimbusClient(KEY, base_url=server.base_url, config=config, clock=fake_clock.clock())
    server.default = Reply(delay_s=0.6)
    with pytest.raises(UnavailableError, match=r"did not answer GET jobs within 0.2 s.*gave up after 2 attempts"):
        client.list("jobs")
    assert len(server.seen) == 2


def test_read_timeout_on_a_write_warns_the_change_may_have_been_saved(
    server: ScriptedServer, fake_clock: FakeClock
) -> None:
    config = {**CONFIG, "READ_TIMEOUT_S": 0.2}
    client = JobNimbusClient(KEY, base_url=server.base_url, config=config, clock=fake_clock.clock())
    server.default = Reply(delay_s=0.6)
    with pytest.raises(UnavailableError, match="may or may not have been saved"):
        client.create("jobs", {"name": "Roof"})
    assert len(server.seen) == 1


def test_read_timeout_is_cut_to_the_remaining_budget(server: ScriptedServer, fake_clock: FakeClock) -> None:
    config = {**CONFIG, "READ_TIMEOUT_S": 30.0, "TOTAL_BUDGET_S": 0.3, "MAX_RETRIES": 0}
    client = JobNimbusClient(KEY, base_url=server.base_url, config=config, clock=fake_clock.clock())
    server.default = Reply(delay_s=0.8)
    with pytest.raises(UnavailableError, match=r"within 0\.3 s"):
        client.list("jobs")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_connection_refused_is_retried_then_unavailable(fake_clock: FakeClock) -> None:
    client = JobNimbusClient(
        KEY, base_url=f"http://127.0.0.1:{_closed_port()}/api1", config=CONFIG, clock=fake_clock.clock()
    )
    stats.reset()
    with pytest.raises(UnavailableError, match=r"could not be reached.*gave up after 4 attempts"):
        client.list("jobs")
    assert stats.count(method="GET", resource="jobs", outcome="connection_error") == 4
    assert len(fake_clock.sleeps) == 3


# --- the key stays secret ------------------------------------------------------------------------


def test_key_never_appears_in_errors_or_logs(
    server: ScriptedServer, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = {**CONFIG, "READ_TIMEOUT_S": 0.2, "MAX_RETRIES": 1}
    client = JobNimbusClient(KEY, base_url=server.base_url, config=config, clock=fake_clock.clock())
    server.then(
        Reply(status=401, body={"message": f"invalid key {KEY}"}),
        Reply(status=400, body={"message": f"bad request for Bearer {KEY}"}),
        Reply(status=503, body=KEY),
        Reply(status=503, body=KEY),
        Reply(delay_s=0.6),
    )
    errors = []
    for call in (
        lambda: client.list("jobs"),
        lambda: client.create("jobs", {"name": "x"}),
        lambda: client.list("jobs"),
        lambda: client.create("jobs", {"name": "x"}),
    ):
        with pytest.raises(Exception) as caught:  # noqa: PT011 - each call raises its own type; text is checked
            call()
        errors.append(caught.value)
    texts = [str(e) for e in errors] + [repr(e) for e in errors] + [repr(client)]
    texts += [getattr(e, "upstream_message", None) or "" for e in errors]
    assert "[redacted]" in str(errors[1])
    assert all(KEY not in text for text in texts)
    assert caplog.records, "the client logs its retries and calls"
    assert KEY not in caplog.text
    assert all(KEY not in record.getMessage() for record in caplog.records)


# --- the pool ------------------------------------------------------------------------------------


def test_clients_share_one_session_and_reuse_its_connection(server: ScriptedServer) -> None:
    transport.forget_shared_session()
    server.default = Reply(body={"count": 0, "results": []})
    first = JobNimbusClient(KEY, base_url=server.base_url, config=CONFIG)
    second = JobNimbusClient("anotherkey0000000002", base_url=server.base_url, config=CONFIG)
    for _ in range(3):
        first.list("jobs")
        second.list("contacts")
    assert first._transport.session is second._transport.session is transport.shared_session()
    assert len({seen.client_port for seen in server.seen}) == 1  # one keep-alive connection for all six calls
    assert [seen.headers["Authorization"] for seen in server.seen[:2]] == [
        f"Bearer {KEY}",
        "Bearer anotherkey0000000002",
    ]


def test_shared_session_is_created_once_across_threads_with_the_configured_pool(settings) -> None:
    settings.JOBNIMBUS_CLIENT = {**settings.JOBNIMBUS_CLIENT, "POOL_SIZE": 7}
    transport.forget_shared_session()
    sessions = []
    barrier = threading.Barrier(8)

    def grab() -> None:
        barrier.wait()
        sessions.append(transport.shared_session())

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert len({id(session) for session in sessions}) == 1
        adapter = sessions[0].get_adapter("https://app.jobnimbus.com/api1")
        assert isinstance(adapter, HTTPAdapter)
        assert adapter.poolmanager.connection_pool_kw["maxsize"] == 7
        assert adapter.max_retries.total == 0  # urllib3 never retries behind the client's back
    finally:
        transport.forget_shared_session()


def test_upstream_calls_are_counted_with_outcome(server: ScriptedServer, client: JobNimbusClient) -> None:
    stats.reset()
    server.then(Reply(status=503), Reply(body={"count": 0, "results": []}), Reply(status=404, body="Not Found"))
    client.list("jobs")
    with pytest.raises(NotFoundError):
        client.get("jobs", "gone")
    assert stats.count(method="GET", resource="jobs", outcome="server_error") == 1
    assert stats.count(method="GET", resource="jobs", outcome="ok") == 1
    assert stats.count(method="GET", resource="jobs", outcome="not_found") == 1
    assert stats.snapshot()["calls"] == 3
