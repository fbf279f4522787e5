"""Freshness options: one namespaced settings dict (`CACHEOPS_FRESHNESS`) with defaults, read lazily.

DEFAULTS is the one place the defaults are written (settings.py passes only what the environment sets, plus the
CHANGE_SOURCE wiring; a partial dict is merged over DEFAULTS). Resolved once per process and remembered, and
forgotten whenever Django reports a change of `CACHEOPS_FRESHNESS`, so `override_settings` and pytest's
`settings` still work.
"""

from __future__ import annotations

from typing import Any

from cacheops.options import Options

DEFAULTS: dict[str, Any] = {
    # Webhook bodies larger than this are refused with 413 (issue 5: 256 KB).
    "WEBHOOK_MAX_BYTES": 256 * 1024,
    # Signed webhooks: accepted timestamp skew; a seen signature is remembered until its timestamp is this old.
    "SIGNATURE_TOLERANCE_S": 300,
    # Wrong webhook secrets or signatures one client address may send per minute before it is refused (429) for
    # the rest of that minute; 0 turns the limit off.
    "AUTH_FAILURES_PER_MIN": 20,
    # Identical payloads received within this window while the first is still pending are applied once.
    "DEDUP_WINDOW_S": 30,
    # A claimed event whose worker vanished can be claimed again after this long. Applying holds the claim for a
    # Redis step plus, for an event naming no parents, a JobNimbus look-up; one slower than this is overtaken by
    # the conservative drop (both apply: invalidating twice is harmless).
    "CLAIM_LEASE_S": 8,
    # The process that queued a webhook's event applies it itself when it is still unapplied this long after
    # (no worker alive, or a backlog), or when its worker's claim lapsed; 0 leaves it to workers and the sweep.
    "APPLY_CHECK_S": 3.0,
    # One attempt to hand a webhook's event to the broker, with this socket timeout (Redis brokers); then inline.
    "PUBLISH_TIMEOUT_S": 0.25,
    # The sweep leaves fresh events to their own task for this long before re-applying them itself.
    "SWEEP_MIN_AGE_S": 30,
    "SWEEP_BATCH": 200,
    "MAX_ATTEMPTS": 10,
    # Applied events are history; the sweep deletes those older than this.
    "RETENTION_DAYS": 30,
    # Polling: overlap behind the watermark (late writes, equal timestamps), page size and a page cap per run.
    "POLL_OVERLAP_S": 120,
    "POLL_PAGE_SIZE": 100,
    "POLL_MAX_PAGES": 50,
    # Dotted path to a factory `(instance, api_key) -> ChangeSource`; None disables polling.
    "CHANGE_SOURCE": None,
    # Celery queue for apply tasks; None uses the default queue.
    "APPLY_QUEUE": None,
}


freshness_setting = Options("CACHEOPS_FRESHNESS", DEFAULTS)
