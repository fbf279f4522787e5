"""The clock fixtures themselves: every clock the code reads travels together, and the moved instants straddle the
boundaries the date-sensitive tests rely on."""

from __future__ import annotations

import time
from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from cacheops import engine, history
from tests.fixtures.clock import BASE, INSTANTS, Clock


def test_frozen_clock_freezes_every_wall_clock_at_the_base_instant(frozen_clock: Clock) -> None:
    assert frozen_clock.now == timezone.now() == BASE
    assert history.clock() == engine.wall_clock() == time.time() == BASE.timestamp()
    frozen_clock.shift(timedelta(minutes=3))
    assert history.clock() == BASE.timestamp() + 180
    with frozen_clock.at(BASE - timedelta(days=1)):
        assert timezone.now() == BASE - timedelta(days=1)
    assert frozen_clock.now == BASE + timedelta(minutes=3)


@pytest.mark.parametrize(("name", "month_before"), [("month-boundary", (2027, 1)), ("year-boundary", (2027, 12))])
def test_the_boundary_instants_straddle_what_the_tests_rely_on(name: str, month_before: tuple[int, int]) -> None:
    now = INSTANTS[name]
    assert now.tzinfo is UTC
    assert now.second  # not minute-aligned: buckets must be found by flooring
    # The shortest window the tests move across (the webhook dedup window, 30 s) already starts the month before.
    earlier = now - timedelta(seconds=30)
    assert (earlier.year, earlier.month) == month_before


def test_the_instants_are_named_as_the_ids_say() -> None:
    assert list(INSTANTS) == ["base", "year-ahead", "month-boundary", "year-boundary"]
    assert INSTANTS["year-ahead"] - BASE == timedelta(days=365)
