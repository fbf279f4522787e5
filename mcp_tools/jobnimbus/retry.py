"""How long to wait before the next attempt: full-jitter backoff, and JobNimbus's Retry-After.

Pure functions of their inputs (the random source and the wall clock are passed in) so the bounds are
testable without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from email.utils import parsedate_to_datetime


def backoff_delay(retry_index: int, *, base_s: float, max_s: float, random: Callable[[], float]) -> float:
    """Return the wait before retry number `retry_index` (0-based): uniform in [0, min(max_s, base_s * 2**i)].

    Full jitter (AWS architecture blog, "Exponential Backoff And Jitter") spreads clients that failed
    together so they do not retry together.
    """
    ceiling = min(max_s, base_s * (2**retry_index))
    return max(0.0, min(ceiling, random() * ceiling))


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Return Retry-After as seconds from `now` (unix time), or None when absent or unreadable.

    RFC 9110 §10.2.3 allows delay-seconds or an HTTP-date; a date in the past means "now" (0).
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" parses zone-less; an HTTP-date is GMT by definition
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)
