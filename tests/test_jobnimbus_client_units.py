"""The JobNimbus client's pure parts: filters, the resource table, backoff and Retry-After, config, stats."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from django.core.exceptions import ImproperlyConfigured

from mcp_tools.jobnimbus import stats
from mcp_tools.jobnimbus.config import ClientConfig
from mcp_tools.jobnimbus.errors import UnsupportedOperationError
from mcp_tools.jobnimbus.filters import match, must, range_, term, terms, to_query_param, wildcard
from mcp_tools.jobnimbus.resources import RESOURCES, get_resource
from mcp_tools.jobnimbus.retry import backoff_delay, parse_retry_after

# --- filters -------------------------------------------------------------------------------------


def test_filter_builders_make_the_documented_bool_body() -> None:
    built = must(
        term("related.id", "job1"),
        terms("status_name", ["Lead", "Sold"]),
        range_("date_updated", gte="now-7d"),
        range_("date_created", gte=1700000000, lte=1700600000),
        wildcard("display_name", "smith"),
        match("name", "roof repair"),
    )
    assert built == {
        "must": [
            {"term": {"related.id": "job1"}},
            {"terms": {"status_name": ["Lead", "Sold"]}},
            {"range": {"date_updated": {"gte": "now-7d"}}},
            {"range": {"date_created": {"gte": 1700000000, "lte": 1700600000}}},
            {"wildcard": {"display_name": "*smith*"}},
            {"match": {"name": "roof repair"}},
        ]
    }


def test_wildcard_keeps_a_pattern_the_caller_already_wrote() -> None:
    assert wildcard("name", "Smi?h*") == {"wildcard": {"name": "Smi?h*"}}


def test_filter_serialises_to_compact_json() -> None:
    text = to_query_param(must(term("status_name", "Lead")))
    assert text == '{"must":[{"term":{"status_name":"Lead"}}]}'
    assert json.loads(text) == {"must": [{"term": {"status_name": "Lead"}}]}


@pytest.mark.parametrize(
    ("build", "says"),
    [
        (lambda: must(), "at least one clause"),
        (lambda: terms("jnid", []), "at least one value"),
        (lambda: terms("jnid", "abc"), "not one string"),
        (lambda: range_("date_updated"), "gte, lte or both"),
        (lambda: wildcard("name", ""), "non-empty"),
        (lambda: match("name", ""), "non-empty"),
        (lambda: term("", "x"), "field name"),
        (lambda: term("jnid", ["a"]), "string, number or boolean"),  # type: ignore[arg-type]
    ],
)
def test_filter_builders_refuse_clauses_jobnimbus_would_misread(build, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        build()


# --- resources -----------------------------------------------------------------------------------


def test_resource_table_has_every_documented_resource_and_envelope() -> None:
    assert set(RESOURCES) == {
        "contacts",
        "jobs",
        "activities",
        "tasks",
        "files",
        "estimates",
        "invoices",
        "workorders",
        "materialorders",
        "products",
        "payments",
        "budgets",
    }
    assert get_resource("activities").envelope == "activity"
    assert get_resource("files").envelope == "files"
    assert get_resource("jobs").envelope == "results"
    assert get_resource("estimates").path("get") == "/v2/estimates/{jnid}"
    assert get_resource("files").record_type == "attachment"


def test_resource_lookup_accepts_the_cache_entity_name() -> None:
    assert get_resource("job") is get_resource("jobs")
    assert get_resource("file") is get_resource("files")


def test_unknown_resource_and_missing_endpoint_are_named() -> None:
    with pytest.raises(UnsupportedOperationError, match=r"'notes'.*known: contacts"):
        get_resource("notes")
    with pytest.raises(
        UnsupportedOperationError, match=r"no 'get' endpoint for payments.*supported here: list, create"
    ):
        get_resource("payments").path("get")


# --- backoff and Retry-After ---------------------------------------------------------------------


@pytest.mark.parametrize("retry_index", [0, 1, 2, 3, 6, 12])
@pytest.mark.parametrize("draw", [0.0, 0.37, 0.999999])
def test_backoff_is_full_jitter_within_the_exponential_ceiling(retry_index: int, draw: float) -> None:
    ceiling = min(4.0, 0.25 * 2**retry_index)
    delay = backoff_delay(retry_index, base_s=0.25, max_s=4.0, random=lambda: draw)
    assert delay == pytest.approx(draw * ceiling)
    assert 0.0 <= delay <= ceiling


def test_backoff_ceiling_doubles_then_caps() -> None:
    ceilings = [backoff_delay(i, base_s=0.25, max_s=4.0, random=lambda: 1.0) for i in range(7)]
    assert ceilings == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = 1_700_000_000.0
    in_90_s = format_datetime(datetime.fromtimestamp(now + 90, tz=UTC), usegmt=True)
    assert parse_retry_after("7", now=now) == 7.0
    assert parse_retry_after(in_90_s, now=now) == pytest.approx(90.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 0.0  # in the past: now
    assert parse_retry_after(None, now=now) is None
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("-5", now=now) is None


# --- config --------------------------------------------------------------------------------------


def test_config_reads_settings_and_applies_overrides(settings) -> None:
    settings.JOBNIMBUS_CLIENT = {**settings.JOBNIMBUS_CLIENT, "MAX_RETRIES": 5}
    config = ClientConfig.load({"READ_TIMEOUT_S": 1.5})
    assert config.max_retries == 5
    assert config.read_timeout_s == 1.5


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"READ_TIMEOUT": 1}, "unknown keys"),
        ({"MAX_RETRIES": -1}, "non-negative"),
        ({"POOL_SIZE": 0}, "POOL_SIZE >= 1"),
        ({"TOTAL_BUDGET_S": "soon"}, "non-negative number"),
    ],
)
def test_config_names_the_bad_option(overrides: dict, says: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=says):
        ClientConfig.load(overrides)


# --- stats ---------------------------------------------------------------------------------------


@pytest.fixture
def clean_stats():
    stats.reset()
    yield
    stats.reset()


def _call(outcome: str = "ok", duration: float = 0.5) -> stats.UpstreamCall:
    return stats.UpstreamCall(method="GET", resource="jobs", outcome=outcome, duration_s=duration, status=200)


def test_stats_count_per_method_resource_and_outcome(clean_stats) -> None:
    stats.record(_call(duration=0.5))
    stats.record(_call(duration=1.5))
    stats.record(_call(outcome="server_error", duration=0.1))
    snap = stats.snapshot()
    assert snap["calls"] == 3
    assert snap["total_s"] == pytest.approx(2.1)
    ok = next(row for row in snap["by_call"] if row["outcome"] == "ok")
    assert ok == {"method": "GET", "resource": "jobs", "outcome": "ok", "count": 2, "total_s": 2.0, "max_s": 1.5}
    assert stats.count(resource="jobs") == 3
    assert stats.count(outcome="server_error") == 1
    stats.reset()
    assert stats.snapshot() == {"calls": 0, "total_s": 0.0, "by_call": []}


def test_stats_are_thread_safe(clean_stats) -> None:
    def hammer() -> None:
        for _ in range(500):
            stats.record(_call())

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stats.count() == 4000


@pytest.mark.parametrize(
    ("no_proxy", "expected"),
    [("", {"https": "http://proxy.internal:3128"}), ("app.jobnimbus.test", {})],
)
def test_the_shared_session_takes_its_proxy_from_the_environment_once(
    monkeypatch: pytest.MonkeyPatch, settings, no_proxy: str, expected: dict[str, str]
) -> None:
    from mcp_tools.jobnimbus import transport

    settings.JOBNIMBUS_BASE_URL = "https://app.jobnimbus.test/api1"
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("https_proxy", "http://proxy.internal:3128")
    monkeypatch.setenv("no_proxy", no_proxy)
    transport.forget_shared_session()
    try:
        session = transport.shared_session()
        assert session.proxies == expected
        assert session.trust_env is False  # requests must not re-read the environment on every call
    finally:
        transport.forget_shared_session()
