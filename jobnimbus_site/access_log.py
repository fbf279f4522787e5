"""Access logs that never write a credential, whichever web server writes them.

A webhook may carry its secret as `?token=` (JobNimbus automations cannot always set headers), and an access line
may hold the query string or chosen request headers. `scrub` takes credential values out of a text;
`ScrubAccessFilter` applies it to granian's access records (`granian.access`) and `AccessFormatter` writes them as
one line with the query string, both loaded by the Procfile's `--log-config jobnimbus_site/granian_logging.json`;
gunicorn_conf's ScrubbingLogger applies it to gunicorn's atoms (the benchmark's baseline server).
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"

# Query parameters that carry a credential, in a request line, query string or Referer.
_SECRET_PARAM = re.compile(r"(?i)((?:^|[?&;])(?:token|secret|api[_-]?key|key|password|signature)=)[^&;#\s\"]*")


def scrub(text: str) -> str:
    """Return `text` with the value of every credential-bearing query parameter replaced by [redacted]."""
    return _SECRET_PARAM.sub(rf"\1{REDACTED}", text)


class ScrubAccessFilter(logging.Filter):
    """Redact credentials in granian's access records before any handler formats them.

    granian logs `access_logger.info(fmt, atoms)`: the atoms dict is the record's args. Every string atom is
    scrubbed (the query string, and header atoms, which granian names `_h<n>` without the header's name); a header
    atom whose value is an HTTP credential (`Bearer ...`, `Basic ...`) is replaced whole.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict):
            record.args = {key: _clean(key, value) for key, value in record.args.items()}
        elif isinstance(record.msg, str):
            record.msg = scrub(record.msg)
        return True


_CREDENTIAL_VALUE = re.compile(r"(?i)^\s*(?:bearer|basic|token)\s")


def _clean(key: str, value: object) -> object:
    if not isinstance(value, str):
        return value
    if key.startswith("_h") and _CREDENTIAL_VALUE.match(value):
        return REDACTED
    return scrub(value) if "=" in value else value


class AccessFormatter(logging.Formatter):
    """Format granian's access records as one line with the request's query string (scrubbed), like gunicorn's.

    granian's own line has the path without the query; operators want the parameters (a webhook's `x=1`), so the
    line is built here from the record's atoms, which ScrubAccessFilter has already scrubbed.
    """

    LINE = '%(addr)s - - [%(time)s] "%(method)s %(path)s%(query)s %(protocol)s" %(status)d %(dt_ms).1fms'

    def format(self, record: logging.LogRecord) -> str:
        atoms = record.args
        if not isinstance(atoms, dict) or "path" not in atoms:
            return super().format(record)
        query = str(atoms.get("query_string") or "")
        return self.LINE % {**atoms, "query": "?" + scrub(query) if query else ""}


class DropThreadCountAdvice(logging.Filter):
    """Drop granian's start-up advice to cap Python threads with `--backpressure` (on the console at every start).

    The threads are there on purpose: up to MISS_CONCURRENCY + MISS_QUEUE of them wait on JobNimbus while the rest
    serve cached hits. And `--backpressure` caps a worker's connections, not its requests: set to the thread count,
    a worker's further keep-alive clients wait forever (tests/test_hardening_web.py, test_15_a_worker_serves...).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Configuration allows spawning up to")
