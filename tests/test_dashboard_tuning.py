"""TTL tuner decisions on synthetic histories: shorten, lengthen, keep, bounds, pin, dry run, and the TTL in force.

Every test runs at each instant of `moved_clock`; the history is built in the hour before it and the tuner runs at
it (on the clock the code reads, as the beat task and the command do). At the boundary instants the tuner's 24-hour
window and the history in it span the end of a month (or a year).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
import redis
from django.core.management import call_command
from django.utils import timezone

from cacheops import tuning
from cacheops.models import InvalidationEvent
from cacheops.policies import effective_ttl
from dashboard import ttl
from dashboard.models import Dimension, MinuteStat, TtlChange, TtlPolicy
from tests.fixtures.clock import Clock

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _tuned(hist_redis: redis.Redis, settings: Any, moved_clock: Clock) -> Iterator[None]:
    settings.DASHBOARD = {"TUNER_WINDOW_H": 24, "TUNER_MIN_REQUESTS": 50}
    tuning.forget()
    yield
    tuning.forget()


def _reads(policy: str, requests: int, miss: int = 0, stale: int = 0) -> None:
    MinuteStat.objects.create(
        minute=timezone.now() - timedelta(hours=1),  # the clock is frozen: "now" is the test's instant
        dimension=Dimension.POLICY,
        name=policy,
        requests=requests,
        miss=miss,
        stale=stale,
        hit_l2=requests - miss - stale,
    )


def _changes(entity: str, n: int) -> None:
    received = timezone.now() - timedelta(minutes=15)  # at the boundary instants: the month (year) before
    InvalidationEvent.objects.bulk_create(
        InvalidationEvent(instance="demo", entity=entity, event="updated", source="webhook", received=received)
        for _ in range(n)
    )


def _decision(policy: str) -> tuning.Decision:
    return next(d for d in ttl.plan() if d.policy == policy)


def test_frequent_changes_shorten_the_ttl() -> None:
    _reads("tasks", 500, miss=50)
    _changes("task", 24 * 12)  # 12 an hour against a 10-minute TTL: 2 changes per TTL
    d = _decision("tasks")
    assert (d.current_ttl_s, d.new_ttl_s) == (600, 300)
    assert d.reason.startswith("shorten")
    assert d.evidence["invalidations_per_h"] == 12.0


def test_stable_data_losing_hits_to_expiry_lengthens() -> None:
    _reads("products", 1000, miss=400)
    d = _decision("products")
    assert (d.current_ttl_s, d.new_ttl_s) == (7200, 14400)
    assert d.reason.startswith("lengthen")


def test_thin_evidence_and_balance_keep() -> None:
    _reads("users", 10, miss=10)
    _reads("contacts", 1000, miss=20)
    assert not _decision("users").changes
    assert "too little evidence" in _decision("users").reason
    assert not _decision("contacts").changes


def test_bounds_hold() -> None:
    ttl.ensure_policies()
    TtlPolicy.objects.filter(policy="tasks").update(ttl_s=200, min_ttl_s=150)
    _reads("tasks", 500)
    _changes("task", 24 * 100)
    assert _decision("tasks").new_ttl_s == 150


def test_pinned_policies_are_untouched_and_dry_run_changes_nothing() -> None:
    ttl.ensure_policies()
    TtlPolicy.objects.filter(policy="products").update(pinned=True)
    _reads("products", 1000, miss=400)
    _reads("tasks", 500)
    _changes("task", 24 * 12)
    out = StringIO()
    call_command("tune_ttls", "--dry-run", stdout=out)
    assert "tasks" in out.getvalue()
    assert "600s -> 300s" in out.getvalue()
    assert "products" not in out.getvalue()
    assert TtlPolicy.objects.get(policy="tasks").ttl_s == 600
    assert not TtlChange.objects.exists()


def test_tune_records_evidence_and_the_engine_uses_the_new_ttl() -> None:
    _reads("tasks", 500)
    _changes("task", 24 * 12)
    assert effective_ttl("tasks") == 600
    ttl.tune()
    change = TtlChange.objects.get()
    assert (change.policy.policy, change.old_ttl_s, change.new_ttl_s) == ("tasks", 600, 300)
    assert change.evidence["changes_per_ttl"] == 2.0
    assert TtlPolicy.objects.get(policy="tasks").ttl_s == 300
    tuning.forget()
    assert effective_ttl("tasks") == 300
    ttl.tune()  # rerun: 300 s with 12 changes an hour is 1 change per TTL, still too many -> 150
    assert TtlPolicy.objects.get(policy="tasks").ttl_s == 150
