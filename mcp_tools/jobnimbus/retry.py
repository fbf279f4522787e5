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


# The longest wait a Retry-After may ask for. The header is foreign text: 400 nines parse as inf (math.ceil of which
# raises), 5000 exceed int()'s digit limit. No caller waits this long anyway: the breaker and the per-key back-off
# cap what they honour (cacheops UPSTREAM_BREAKER MAX_OPEN_S, KEY_BACKOFF_MAX_S).
MAX_RETRY_AFTER_S = 86_400.0


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Return Retry-After as seconds from `now` (unix time), or None when absent or unreadable.

    RFC 9110 §10.2.3 allows delay-seconds or an HTTP-date; a date in the past means "now" (0). The result is
    always finite, from 0 to MAX_RETRY_AFTER_S.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():  # str.isdigit alone accepts "²", which float() refuses
        return MAX_RETRY_AFTER_S if len(text) > 9 else min(float(text), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" parses zone-less; an HTTP-date is GMT by definition
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, when.timestamp() - now), MAX_RETRY_AFTER_S)
