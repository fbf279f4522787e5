"""The WSGI entry point the Procfile's web server (granian) serves: the Django app plus two things granian lacks.

1. A bounded keep-alive. A keep-alive client stays on the worker process that accepted its connection. After a
   worker is replaced (crash, deploy), every client that reconnected meanwhile sits on the survivors and stays
   there: the new worker gets nothing while the survivors queue. granian gives the app no handle on the connection
   (no socket, no client port), so the bound is per process: one response in WEB_KEEPALIVE_MAX_REQUESTS (100) says
   `Connection: close` (granian then closes the connection after it), so a connection serves that many requests on
   average, and exactly that many when it is the worker's only one; the client reconnects and the kernel hands
   the new connection to whichever worker accepts first. 0 turns it off.
2. No process environment in `request.META`. granian builds each WSGI environ from a copy of `os.environ`, so
   without this DJANGO_SECRET_KEY, DATABASE_URL (with its password) and every other variable would sit in each
   request's META, where an error report or a debugging print could copy them, and an `HTTP_PROXY` variable
   would read as the client's `Proxy` header. A key holding the process's value is dropped; the request's own stay.

Run it as `granian --interface wsgi jobnimbus_site.web:application` (the Procfile's web line).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable
from typing import Any

from jobnimbus_site.wsgi import application as django_application

KEEPALIVE_MAX_REQUESTS = int(os.environ.get("WEB_KEEPALIVE_MAX_REQUESTS", "100") or 0)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

# Keys a WSGI server sets from the request itself (PEP 3333); an os.environ variable of the same name is the
# request's value in the environ, never dropped.
_REQUEST_KEYS = {
    *("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH"),
    *("SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "SERVER_SOFTWARE", "REMOTE_ADDR", "GATEWAY_INTERFACE"),
}


def process_variables(environment: dict[str, str]) -> dict[str, str]:
    """Return the process environment's variables granian copies into every environ, less the request's own keys.

    `HTTP_*` variables are among them (an `HTTP_PROXY` would read as a client's `Proxy` header: "httpoxy").
    """
    return {k: v for k, v in environment.items() if k not in _REQUEST_KEYS and not k.startswith("wsgi.")}


def serve(app: WSGIApp, max_requests: int, process: dict[str, str]) -> WSGIApp:
    """Return `app` with the process's variables dropped from each environ and every max_requests-th answer closing.

    A key is dropped when it holds the process's value; a request header of the same name (its own value) stays.
    """
    served = itertools.count(1)  # next() on a count is atomic under the GIL: no lock on the hot path

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        for key, value in process.items():
            if environ.get(key) == value:
                del environ[key]
        if not max_requests or next(served) % max_requests:
            return app(environ, start_response)

        def start_closing(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            headers = [(k, v) for k, v in headers if k.lower() != "connection"]
            return start_response(status, [*headers, ("Connection", "close")], *exc_info)

        return app(environ, start_closing)

    return application


application = serve(django_application, KEEPALIVE_MAX_REQUESTS, process_variables(dict(os.environ)))
