"""Gunicorn `pre_request` hook: a keep-alive connection serves a bounded number of requests and seconds.

A gthread worker keeps a keep-alive connection for as long as its client keeps using it. After a worker is replaced
(crash, timeout kill, deploy), every client that reconnected meanwhile sits on the survivors and stays there: the
new worker gets nothing while the survivor's threads queue (measured: 12 connections against 0, cached-hit p50
3.2 → 26 ms). Recycling workers (`--max-requests`) would only move the imbalance around. Instead, a connection that
has served GUNICORN_KEEPALIVE_MAX_REQUESTS requests (100) or is GUNICORN_KEEPALIVE_MAX_AGE_S old (10 s) is answered
with `Connection: close`; the client opens a new one, which the kernel hands to whichever worker accepts first, so
the load spreads over the workers again within that bound. Cost: one TCP connect per 100 requests at most (a
client's next request after the close pays it, ~0.1 ms on a LAN; a TLS proxy in front keeps its own connections).
0 turns either limit off.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Any

MAX_REQUESTS = int(os.environ.get("GUNICORN_KEEPALIVE_MAX_REQUESTS", "100") or 0)
MAX_AGE_S = float(os.environ.get("GUNICORN_KEEPALIVE_MAX_AGE_S", "10") or 0)

# When each open connection (its socket) served its first request; entries go with their sockets.
_opened: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def pre_request(worker: Any, req: Any) -> None:
    """Answer `Connection: close` once this request's connection has served enough requests or time."""
    if MAX_REQUESTS and getattr(req, "req_number", 0) >= MAX_REQUESTS:
        req.force_close()
        return
    sock = getattr(getattr(req, "unreader", None), "sock", None)
    if not MAX_AGE_S or sock is None:
        return
    now = time.monotonic()
    with _lock:
        opened = _opened.setdefault(sock, now)
    if now - opened >= MAX_AGE_S:
        req.force_close()
