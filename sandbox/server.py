"""Run the sandbox on a threaded WSGI server, in-process (tests, bench) or from `manage.py run_sandbox`.

Each request gets its own daemon thread, so many requests are in flight at once and injected latency does not
serialise. `start_sandbox()` returns once the socket listens; `SandboxHandle.stop()` releases hung requests,
stops serving and closes the socket.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson

from sandbox.access import ADMIN_KEY, SALES_KEY, Keys
from sandbox.app import Sandbox
from sandbox.seed import generate
from sandbox.store import Store
from sandbox.webhooks import Webhooks


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """A WSGI server answering each connection on its own daemon thread."""

    daemon_threads = True
    request_queue_size = 128


class QuietHandler(WSGIRequestHandler):
    """A request handler that logs only when asked to."""

    verbose = False

    def log_message(self, format: str, *args: Any) -> None:
        if self.verbose:
            super().log_message(format, *args)


class VerboseHandler(QuietHandler):
    verbose = True


@dataclass
class SandboxHandle:
    """A running sandbox: where it listens and how to stop it."""

    url: str
    app: Sandbox
    server: ThreadingWSGIServer
    thread: threading.Thread
    admin_key: str = ADMIN_KEY
    sales_key: str = SALES_KEY

    @property
    def base_url(self) -> str:
        """Return the JobNimbus base URL (`url` + "/api1")."""
        return self.url + "/api1"

    @property
    def sales_rep_id(self) -> str:
        """Return the user id whose book the built-in sales key sees."""
        profile = self.app.keys.keys[SALES_KEY]
        return profile.sales_rep or ""

    def stop(self) -> None:
        """Release hung requests, stop serving and close the socket."""
        self.app.faults.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.app.webhooks.stop()
        self.thread.join(timeout=5)


def build_app(
    latency_ms: int = 0,
    jitter_ms: int = 0,
    seed: int = 1,
    scale: float = 1.0,
    webhook_url: str | None = None,
    webhook_token: str | None = None,
) -> Sandbox:
    """Return a seeded sandbox app."""
    dataset = generate(seed, scale, int(time.time()))
    store = Store(orjson.dumps(dataset))
    keys = Keys(sales_rep=dataset["users"][0]["id"])
    return Sandbox(store, keys, Webhooks(webhook_url, webhook_token), latency_ms, jitter_ms)


def start_sandbox(
    host: str = "127.0.0.1",
    port: int = 0,
    latency_ms: int = 0,
    jitter_ms: int = 0,
    seed: int = 1,
    scale: float = 1.0,
    webhook_url: str | None = None,
    webhook_token: str | None = None,
    verbose: bool = False,
) -> SandboxHandle:
    """Start a sandbox on a background thread and return its handle (port 0 picks a free port)."""
    app = build_app(latency_ms, jitter_ms, seed, scale, webhook_url, webhook_token)
    handler = VerboseHandler if verbose else QuietHandler
    server = make_server(host, port, app, server_class=ThreadingWSGIServer, handler_class=handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="sandbox", daemon=True)
    thread.start()
    bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
    return SandboxHandle(url=f"http://{bound_host}:{bound_port}", app=app, server=server, thread=thread)
