"""Send one call to JobNimbus: the pooled session, timeouts, retries for reads, the time budget, stats.

Retry policy, in one place: a GET is retried on connection errors, timeouts, 429, 502, 503 and 504, with
full-jitter exponential backoff or the server's Retry-After, at most MAX_RETRIES times, and never past the
TOTAL_BUDGET_S deadline (if the next wait would cross it, the last error is raised now). POST and PUT are
sent once: JobNimbus has no idempotency keys, so a repeated write could create a duplicate.
"""

from __future__ import annotations

import logging
import os
import random as random_module
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import requests
import requests.utils
from django.conf import settings
from requests.adapters import HTTPAdapter

from mcp_tools.jobnimbus import stats
from mcp_tools.jobnimbus.config import ClientConfig
from mcp_tools.jobnimbus.errors import JobNimbusError, RateLimitedError, UnavailableError, ValidationError
from mcp_tools.jobnimbus.failures import (
    Call,
    Failure,
    failure_for_exception,
    failure_for_response,
    unexpected_answer,
)
from mcp_tools.jobnimbus.retry import backoff_delay

logger = logging.getLogger(__name__)

_USER_AGENT = "jobnimbus-mcp/0.1 (+requests)"

_session: requests.Session | None = None
_session_lock = threading.Lock()


def shared_session() -> requests.Session:
    """Return the process's pooled session, creating it on first use (thread-safe)."""
    global _session
    if _session is None:
        with _session_lock:
            if _session is None:
                _session = _new_session(ClientConfig.load().pool_size)
    return _session


def forget_shared_session() -> None:
    """Drop the process's session so the next call builds a new pool (after fork, or in tests)."""
    global _session
    with _session_lock:
        old, _session = _session, None
    if old is not None:
        old.close()


def _new_session(pool_size: int) -> requests.Session:
    session = requests.Session()
    # max_retries=0: urllib3 must not retry behind our back; the budget and the read/write rule are ours.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    # The environment's proxy and CA settings are read once, here: left to requests they are re-read (and no_proxy
    # matched against the host) on every request, about a millisecond of each miss. JobNimbus is the only host.
    session.trust_env = False
    session.proxies = requests.utils.get_environ_proxies(settings.JOBNIMBUS_BASE_URL)
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return session


def _after_fork_in_child() -> None:
    # A forked worker (Celery prefork, gunicorn) must not share the parent's sockets; it builds its own pool.
    # Not closed here: closing would shut sockets the parent still uses.
    global _session
    _session = None


os.register_at_fork(after_in_child=_after_fork_in_child)


@dataclass(frozen=True)
class Clock:
    """Time sources, injectable so tests never sleep: `monotonic` for budgets, `wall` for HTTP-dates."""

    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    random: Callable[[], float] = random_module.random


class Transport:
    """Send calls for one API key. The key lives only in the Authorization header of each request."""

    def __init__(
        self, api_key: str, config: ClientConfig, session: requests.Session | None, clock: Clock | None = None
    ) -> None:
        self._api_key = api_key
        self._config = config
        self._session = session
        self._clock = clock or Clock()

    def __repr__(self) -> str:
        return f"<Transport budget={self._config.total_budget_s:g}s>"

    @property
    def session(self) -> requests.Session:
        """Return the session in use: the injected one, else the process's shared pool."""
        return self._session or shared_session()

    def send(self, call: Call) -> Any:
        """Return the JSON body of a successful call; raise typed."""
        try:
            return self._send(call)
        except JobNimbusError as error:
            _scrub_key(error, self._api_key)
            raise

    def _send(self, call: Call) -> Any:
        started = self._clock.monotonic()
        deadline = started + self._config.total_budget_s
        attempt = 0
        while True:
            attempt += 1
            result = self._attempt(call, deadline)
            if not isinstance(result, Failure):
                return result
            delay = self._retry_delay(call, result, attempt, deadline)
            if delay is None:
                raise _give_up(result, attempt, self._clock.monotonic() - started)
            logger.warning(
                "JobNimbus %s failed (%s); retry %d of %d in %.2f s",
                call.describe(),
                result.status or result.outcome,
                attempt,
                self._config.max_retries,
                delay,
            )
            self._clock.sleep(delay)

    def _retry_delay(self, call: Call, failure: Failure, attempt: int, deadline: float) -> float | None:
        """Return how long to wait before the next attempt, or None when there is to be no next attempt."""
        if not (call.is_read and failure.transient) or attempt > self._config.max_retries:
            return None
        delay = failure.retry_after_s
        if delay is None:
            delay = backoff_delay(
                attempt - 1,
                base_s=self._config.backoff_base_s,
                max_s=self._config.backoff_max_s,
                random=self._clock.random,
            )
        if self._clock.monotonic() + delay >= deadline:
            return None
        return delay

    def _attempt(self, call: Call, deadline: float) -> Any:
        """Send once; return the answer, or the Failure it came to."""
        remaining = deadline - self._clock.monotonic()
        if remaining <= 0:
            message = f"JobNimbus did not answer {call.describe()} within the {self._config.total_budget_s:g} s budget"
            return Failure(UnavailableError(message), "timeout", transient=False)
        read_timeout = min(self._config.read_timeout_s, remaining)
        started = self._clock.monotonic()
        try:
            response = self.session.request(
                call.method,
                call.url,
                params=call.params,
                json=call.body,
                headers=self._headers(),
                timeout=(min(self._config.connect_timeout_s, remaining), read_timeout),
            )
        except requests.RequestException as exc:
            failure = failure_for_exception(call, exc, read_timeout_s=read_timeout)
            if failure.error.reached_upstream:  # an unsendable body is no call JobNimbus saw
                self._record(call, failure.outcome, started, None)
            return failure
        result = self._read(call, response)
        outcome = result.outcome if isinstance(result, Failure) else "ok"
        self._record(call, outcome, started, response.status_code)
        return result

    def _read(self, call: Call, response: requests.Response) -> Any:
        """Return the answer in `response`, or the Failure it means."""
        with response:
            if not 200 <= response.status_code < 300:
                return failure_for_response(call, response, now=self._clock.wall())
            try:
                return orjson.loads(response.content)  # a page of records: orjson parses it several times faster
            except ValueError:  # orjson.JSONDecodeError is one
                kind = response.headers.get("Content-Type", "no content type")
                return unexpected_answer(call, f"HTTP {response.status_code} with {kind}, not JSON")

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json", "User-Agent": _USER_AGENT}

    def _record(self, call: Call, outcome: str, started: float, status: int | None) -> None:
        duration = max(0.0, self._clock.monotonic() - started)
        stats.record(stats.UpstreamCall(call.method, call.resource, outcome, duration, status))
        logger.debug("JobNimbus %s → %s in %.0f ms", call.describe(), status or outcome, duration * 1000)


def _give_up(failure: Failure, attempts: int, elapsed_s: float) -> JobNimbusError:
    """Return the error to raise after the last attempt, saying how many were made when more than one."""
    error = failure.error
    if attempts == 1 or not isinstance(error, RateLimitedError | UnavailableError):
        return error
    message = f"{error} (gave up after {attempts} attempts in {elapsed_s:.1f} s)"
    return type(error)(message, retry_after_s=error.retry_after_s, status=error.status)


def _scrub_key(error: JobNimbusError, api_key: str) -> None:
    """Remove the key from the error's text: upstream bodies are foreign text, so trust none of it."""
    if api_key and any(api_key in str(arg) for arg in error.args):
        error.args = tuple(str(arg).replace(api_key, "[redacted]") for arg in error.args)
    if isinstance(error, ValidationError) and error.upstream_message and api_key in error.upstream_message:
        error.upstream_message = error.upstream_message.replace(api_key, "[redacted]")
