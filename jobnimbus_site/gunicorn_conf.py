"""Gunicorn settings for running the app under gunicorn: the benchmark's baseline (bench/figures_servers.py).

The Procfile's web server is granian (jobnimbus_site/web.py says why and what it adds); gunicorn stays a dev
dependency so the benchmark can compare against it. This file adds what a gunicorn command line cannot say: an
access log that never writes a credential (a webhook may carry its secret as `?token=`), and the keep-alive bound.
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

from jobnimbus_site.access_log import REDACTED, scrub
from jobnimbus_site.gunicorn_keepalive import pre_request as close_after_bound

__all__ = ("REDACTED", "ScrubbingLogger", "logger_class", "pre_request", "scrub")

# Atoms of headers (`%({name}i)s`) and environ entries (`%({name}e)s`) that carry a credential.
_SECRET_ATOM = re.compile(
    r"(?i)^\{(?:[^}]*(?:authorization|token|secret|api[_-]key|api_key|signature|cookie)[^}]*)\}[ie]$"
)


class ScrubbingLogger(Logger):
    """Gunicorn's logger, with credentials taken out of every access-log atom before the line is formatted."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        """Return gunicorn's atoms with secret query values and secret headers redacted."""
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for name, value in atoms.items():
            if _SECRET_ATOM.match(name):
                atoms[name] = REDACTED
            elif isinstance(value, str) and "=" in value:
                atoms[name] = scrub(value)
        return atoms


logger_class = ScrubbingLogger

# A keep-alive connection is closed after a bounded number of requests and seconds, so clients spread over the
# workers again after one is replaced (issue 11, finding 17; the bound is in that module).
pre_request = close_after_bound
