"""Gunicorn settings the Procfile's `web:` line loads (`--config jobnimbus_site/gunicorn_conf.py`).

The command line keeps the bind address, workers, threads and log files; this file adds what a command line cannot
say: an access log that never writes a credential. A webhook may carry its secret as `?token=` (JobNimbus
automations cannot always set headers), and the default access log line holds the whole request line.
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

from jobnimbus_site.gunicorn_keepalive import pre_request as close_after_bound

REDACTED = "[redacted]"

# Query parameters that carry a credential, in a request line, query string or Referer.
_SECRET_PARAM = re.compile(r"(?i)((?:^|[?&;])(?:token|secret|api[_-]?key|key|password|signature)=)[^&;#\s\"]*")
# Atoms of headers (`%({name}i)s`) and environ entries (`%({name}e)s`) that carry a credential.
_SECRET_ATOM = re.compile(
    r"(?i)^\{(?:[^}]*(?:authorization|token|secret|api[_-]key|api_key|signature|cookie)[^}]*)\}[ie]$"
)


def scrub(text: str) -> str:
    """Return `text` with the value of every credential-bearing query parameter replaced by [redacted]."""
    return _SECRET_PARAM.sub(rf"\1{REDACTED}", text)


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
