"""Issue 15: what the Procfile's web entry point (jobnimbus_site.web) and access log add to the Django app.

In-process, no server: the keep-alive bound (every Nth answer closes its connection), the process environment
kept out of each request's environ (granian copies os.environ into it), and granian's access records scrubbed of
credentials and written with their query string.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.utils.module_loading import import_string

from jobnimbus_site.web import process_variables, serve

ROOT = Path(__file__).resolve().parent.parent


def _app(seen: list[dict[str, Any]]) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        seen.append(dict(environ))
        start_response("200 OK", [("Content-Type", "text/plain"), ("Connection", "keep-alive")])
        return [b"ok"]

    return app


def _call(app: Any, environ: dict[str, Any]) -> list[tuple[str, str]]:
    answered: list[tuple[str, str]] = []
    app(environ, lambda status, headers, *exc: answered.extend(headers))
    return answered


def test_every_nth_answer_closes_its_connection_and_only_that_one() -> None:
    app = serve(_app([]), max_requests=5, process={})
    closing = [n for n in range(1, 13) if ("Connection", "close") in _call(app, {"PATH_INFO": "/"})]
    assert closing == [5, 10]
    headers = _call(app, {"PATH_INFO": "/"})
    assert [v for k, v in headers if k.lower() == "connection"] == ["keep-alive"]  # the app's own, untouched


def test_a_bound_of_zero_never_closes() -> None:
    app = serve(_app([]), max_requests=0, process={})
    assert all(("Connection", "close") not in _call(app, {}) for _ in range(300))


def test_the_process_environment_never_reaches_the_request() -> None:
    process = {
        "DJANGO_SECRET_KEY": "s3cret",
        "DATABASE_URL": "postgres://u:pw@db/x",
        "PATH_INFO": "/env",
        "HTTP_PROXY": "http://proxy:3128",
        "HTTP_ACCEPT": "text/plain",
    }
    seen: list[dict[str, Any]] = []
    app = serve(_app(seen), max_requests=0, process=process_variables(process))
    request = {**process, "PATH_INFO": "/mcp", "HTTP_X_JOBNIMBUS_INSTANCE": "demo", "wsgi.input": io.BytesIO()}
    request["HTTP_ACCEPT"] = "application/json"  # granian: the request's own header overrides the process's
    _call(app, request)
    assert "DJANGO_SECRET_KEY" not in seen[0]
    assert "DATABASE_URL" not in seen[0]
    assert "HTTP_PROXY" not in seen[0]  # never a client's Proxy header (httpoxy)
    assert seen[0]["HTTP_ACCEPT"] == "application/json"
    assert seen[0]["PATH_INFO"] == "/mcp"  # a request key is the request's, whatever the process environment says
    assert seen[0]["HTTP_X_JOBNIMBUS_INSTANCE"] == "demo"


def _granian_access_line(atoms: dict[str, Any]) -> str:
    """Log `atoms` as granian does (`access_logger.info(fmt, atoms)`) through the Procfile's access handler."""
    config = json.loads((ROOT / "jobnimbus_site" / "granian_logging.json").read_text())
    assert config["loggers"]["granian.access"]["handlers"] == ["access"]
    declared = config["handlers"]["access"]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)  # built from the config without touching the tests' own logging
    handler.setFormatter(import_string(config["formatters"][declared["formatter"]]["()"])())
    for name in declared["filters"]:
        handler.addFilter(import_string(config["filters"][name]["()"])())
    handler.handle(logging.LogRecord("granian.access", logging.INFO, __file__, 1, "%(path)s", (atoms,), None))
    return stream.getvalue()


def test_the_access_line_has_the_query_without_its_credentials() -> None:
    atoms = {
        "addr": "203.0.113.9",
        "time": "2026-12-08 02:00:00 +0000",
        "dt_ms": 1.25,
        "status": 400,
        "path": "/webhooks/jobnimbus/demo",
        "query_string": "token=hunter2-secret&x=1",
        "method": "POST",
        "scheme": "http",
        "protocol": "HTTP/1.1",
        "_h0": "Bearer sandboxadminkey0001",
    }
    line = _granian_access_line(atoms)
    assert "hunter2-secret" not in line
    assert "sandboxadminkey0001" not in line
    assert '"POST /webhooks/jobnimbus/demo?token=[redacted]&x=1 HTTP/1.1" 400' in line


def test_granians_advice_against_our_thread_count_is_dropped_and_its_other_lines_kept() -> None:
    config = json.loads((ROOT / "jobnimbus_site" / "granian_logging.json").read_text())
    console = config["handlers"]["console"]
    filters = [import_string(config["filters"][name]["()"])() for name in console["filters"]]

    def shown(message: str) -> bool:
        record = logging.LogRecord("_granian", logging.WARNING, __file__, 1, message, None, None)
        return all(f.filter(record) for f in filters)

    assert not shown("Configuration allows spawning up to 8 Python threads, which seems quite high ...")
    assert shown("Listening at: http://127.0.0.1:8000")
