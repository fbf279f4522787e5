"""`manage.py run_sandbox`: option parsing, and a start/stop round trip."""

from __future__ import annotations

import io

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError

from sandbox.management.commands import run_sandbox
from sandbox.management.commands.run_sandbox import Command


def parse(*argv):
    return vars(Command().create_parser("manage.py", "run_sandbox").parse_args(list(argv)))


def test_defaults_are_realistic_latency_on_8090():
    options = parse()
    assert options["port"] == 8090
    assert options["host"] == "127.0.0.1"
    assert (options["latency_ms"], options["jitter_ms"]) == (500, 300)
    assert (options["seed"], options["scale"]) == (1, 1.0)
    assert options["webhook_url"] is None


def test_all_options_parse():
    options = parse("--port", "9000", "--host", "0.0.0.0", "--latency-ms", "0", "--jitter-ms", "0", "--seed", "7",
                    "--scale", "0.5", "--webhook-url", "http://127.0.0.1:8000/webhooks/jobnimbus/demo",
                    "--webhook-token", "tok")  # fmt: skip
    assert options["port"] == 9000
    assert options["latency_ms"] == 0
    assert options["seed"] == 7
    assert options["scale"] == 0.5
    assert options["webhook_token"] == "tok"


@pytest.mark.parametrize("argv", [["--port", "x"], ["--latency-ms", "-1"], ["--scale", "0"]])
def test_bad_options_are_refused(argv):
    with pytest.raises(CommandError):
        call_command("run_sandbox", *argv)


def test_command_serves_until_interrupted(monkeypatch):
    started, health = [], []
    real_start = run_sandbox.start_sandbox

    def start(**kwargs):
        handle = real_start(**kwargs)
        started.append((kwargs, handle))
        return handle

    def probe_then_interrupt():
        health.append(requests.get(started[0][1].url + "/__sandbox/health", timeout=5).json())
        raise KeyboardInterrupt

    monkeypatch.setattr(run_sandbox, "start_sandbox", start)
    monkeypatch.setattr(run_sandbox, "wait_forever", probe_then_interrupt)
    out = io.StringIO()
    call_command(
        "run_sandbox", "--port", "0", "--latency-ms", "0", "--jitter-ms", "0", "--scale", "0.1", "--quiet", stdout=out
    )
    ((kwargs, handle),) = started
    assert kwargs["scale"] == 0.1
    assert health == [{"status": "ok"}]
    assert handle.base_url in out.getvalue()
    with pytest.raises(requests.ConnectionError):
        requests.get(handle.url + "/__sandbox/health", timeout=2)


def test_port_in_use_is_a_command_error(sandbox):
    port = sandbox.url.rsplit(":", 1)[1]
    with pytest.raises(CommandError, match="cannot listen"):
        call_command("run_sandbox", "--port", port, "--scale", "0.1", "--quiet")
