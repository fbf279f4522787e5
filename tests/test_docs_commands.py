"""Every command in README.md and docs/ works as written: each code block is run against a live `make run` stack.

Blocks are found by their fence. ```sh blocks run in bash (`set -euo pipefail`), ```python blocks with this
interpreter, from the checkout's root. An HTML comment on the line above a fence says more:

    <!-- doc-test: skip (reason) -->             not run, with the reason (e.g. `make run` itself)
    <!-- doc-test: needs node -->                needs `npx` (Node 18+ with npm); skipped with that reason without
    <!-- doc-test: needs node, stdin mcp-handshake -->   a stdio bridge: fed an MCP handshake and a tool call
    <!-- doc-test: needs claude -->              needs the `claude` CLI (installed from npm into a cache when absent)
    <!-- doc-test: claude-desktop-config -->     a claude_desktop_config.json: each server is started as Claude
                                                 Desktop would (command, args, env; no shell) and driven over stdio

Other blocks (```json, ```text) are not commands. The stack runs on free ports, so the documented ports are the one
thing rewritten: `127.0.0.1:8000` and `:8090` become the stack's own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!-- doc-test: (?P<kind>[a-z -]+?)(?:,\s*(?P<extra>[a-z -]+?))?(?: \((?P<reason>.+)\))? -->$")
KINDS = {"skip", "needs node", "needs claude", "claude-desktop-config"}
CLAUDE_CODE = "@anthropic-ai/claude-code@2.1.337"
SANDBOX_KEY = "sandboxadminkey0001"

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@dataclass(frozen=True)
class Block:
    """One fenced code block of a document, with the doc-test marker above it (if any)."""

    path: Path
    line: int
    lang: str
    text: str
    kind: str = ""
    extra: str = ""
    reason: str = ""

    @property
    def label(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def extract_blocks(path: Path) -> list[Block]:
    """Return the fenced blocks of a Markdown file, each with the marker on the line before its fence."""
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        marker = MARKER.match(lines[i - 1].strip()) if i else None
        fields = {k: v or "" for k, v in marker.groupdict().items()} if marker else {}
        blocks.append(Block(path, i + 1, fence.group(1), "\n".join(lines[i + 1 : end]) + "\n", **fields))
        i = end + 1
    return blocks


def runnable_blocks() -> list[Block]:
    return [b for path in DOCS for b in extract_blocks(path) if b.lang in {"sh", "python"} or b.kind]


def test_every_marker_is_known_and_every_command_block_is_found() -> None:
    blocks = runnable_blocks()
    assert [b.label for b in blocks if b.kind and b.kind not in KINDS] == []
    assert [b.label for b in blocks if b.kind == "skip" and not b.reason] == [], "a skip must say why"
    stray = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in DOCS
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "doc-test" in line and not MARKER.match(line.strip())
    ]
    assert stray == [], "a malformed doc-test marker would be silently ignored"
    assert len([b for b in blocks if b.lang == "python"]) >= 1
    assert len([b for b in blocks if not b.kind]) >= 5


# --- The stack ---------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DocStack:
    web_port: int
    sandbox_port: int
    run_dir: Path
    home: Path

    def rewrite(self, text: str) -> str:
        """The documented ports become this stack's; nothing else in a command changes."""
        for host in ("127.0.0.1", "localhost"):
            text = text.replace(f"{host}:8000", f"{host}:{self.web_port}")
            text = text.replace(f"{host}:8090", f"{host}:{self.sandbox_port}")
        return text

    def env(self) -> dict[str, str]:
        # HOME is the test's own, so `claude mcp add` never edits the developer's configuration; npm keeps its cache.
        npm_cache = os.environ.get("NPM_CONFIG_CACHE") or str(Path.home() / ".npm")
        return {**os.environ, "RUN_DIR": str(self.run_dir), "HOME": str(self.home), "NPM_CONFIG_CACHE": npm_cache}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocStack]:
    tmp = tmp_path_factory.mktemp("docs-stack")
    namespace = f"test-docs-{uuid.uuid4().hex[:10]}:"
    redis_url = os.environ.get("TEST_REAL_REDIS_URL") or "redis://127.0.0.1:6379/0"
    docs = DocStack(_free_port(), _free_port(), tmp / "run", tmp / "home")
    docs.home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBNIMBUS_", "CELERY_", "DJANGO_", "CACHE_"))}
    env.update(
        PORT=str(docs.web_port),
        SANDBOX_PORT=str(docs.sandbox_port),
        REDIS_URL=redis_url,
        CACHE_KEY_NAMESPACE=namespace,
        DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}",
        RUN_DIR=str(docs.run_dir),
    )
    log = (tmp / "console.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "scripts/run_local.py"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_ready(proc, tmp / "console.log")
        yield docs
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        _delete_namespace(redis_url, namespace)


def _wait_ready(proc: subprocess.Popen[bytes], console: Path, deadline_s: float = 180.0) -> None:
    end = time.monotonic() + deadline_s
    while "is READY" not in console.read_text():
        if proc.poll() is not None or time.monotonic() > end:
            pytest.fail(f"make run did not get ready:\n{console.read_text()[-4000:]}")
        time.sleep(0.3)


def _delete_namespace(url: str, namespace: str) -> None:
    try:
        raw = redis.Redis.from_url(url, socket_timeout=2)
        for key in raw.scan_iter(match=f"{namespace}*", count=1000):
            raw.delete(key)
        raw.close()
    except redis.RedisError:
        pass  # the run used the embedded stand-in: nothing of it outlives the run


# --- Running the blocks ------------------------------------------------------------------------------------------


def _check(result: subprocess.CompletedProcess[str], block: Block) -> None:
    assert result.returncode == 0, (
        f"{block.label} failed ({result.returncode}):\n{block.text}\n--- stdout\n{result.stdout[-3000:]}"
        f"\n--- stderr\n{result.stderr[-3000:]}"
    )


def _run_shell(block: Block, stack: DocStack, env: dict[str, str], cwd: Path = ROOT) -> str:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", stack.rewrite(block.text)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    _check(result, block)
    return result.stdout


def _run_python(block: Block, stack: DocStack, tmp_path: Path) -> str:
    script = tmp_path / "example.py"
    script.write_text(stack.rewrite(block.text))
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=stack.env(), capture_output=True, text=True, timeout=120
    )
    _check(result, block)
    return result.stdout


HANDSHAKE = [
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "doc-test", "version": "1"},
        },
    },
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "get_users", "arguments": {}}},
]


def drive_stdio(argv: list[str], env: dict[str, str], cwd: Path, timeout_s: float = 240.0) -> dict:
    """Start a stdio MCP bridge, send the handshake and one tool call; return the call's answer."""
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    answers: dict[int, dict] = {}
    stderr: list[str] = []
    stdin, stdout, errors = proc.stdin, proc.stdout, proc.stderr
    assert stdin is not None
    assert stdout is not None
    assert errors is not None
    threading.Thread(target=lambda: stderr.extend(errors), daemon=True).start()
    threading.Thread(target=_collect, args=(stdout, answers), daemon=True).start()
    try:
        for message in HANDSHAKE:
            stdin.write(json.dumps(message) + "\n")
            stdin.flush()
        end = time.monotonic() + timeout_s
        while not {1, 2} <= answers.keys():  # a bridge may forward both at once: either can come back first
            assert proc.poll() is None, f"the bridge exited ({proc.returncode}):\n{''.join(stderr)[-3000:]}"
            assert time.monotonic() < end, f"no answer to tools/call:\n{''.join(stderr)[-3000:]}"
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert answers[1]["result"]["serverInfo"]["name"] == "jobnimbus-mcp"
    return answers[2]


def _collect(stream: object, answers: dict[int, dict]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        try:
            message = json.loads(line)
        except ValueError:
            continue  # a bridge may print other lines on stdout
        if isinstance(message, dict) and isinstance(message.get("id"), int):
            answers[message["id"]] = message


def _require_npx() -> None:
    if shutil.which("npx") is None:
        pytest.skip("npx not found: this example needs Node 18+ with npm")


def _claude_path() -> Path:
    """Return the directory holding a `claude` CLI: the one on PATH, or one installed from npm into a cache."""
    found = shutil.which("claude")
    if found:
        return Path(found).parent
    if shutil.which("npm") is None:
        pytest.skip("the claude CLI is not installed and npm is not available to install it")
    prefix = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jobnimbus-mcp-tests" / "claude-code"
    binary = prefix / "node_modules" / ".bin" / "claude"
    if not binary.exists():
        subprocess.run(["npm", "install", "--no-save", "--prefix", str(prefix), CLAUDE_CODE], check=True, timeout=600)
    return binary.parent


@pytest.mark.parametrize("block", runnable_blocks(), ids=lambda b: b.label)
def test_documented_command_works(block: Block, stack: DocStack, tmp_path: Path) -> None:
    if block.kind == "skip":
        pytest.skip(block.reason)
    if block.kind == "claude-desktop-config":
        _require_npx()
        servers = json.loads(block.text)["mcpServers"]
        for server in servers.values():
            argv = [server["command"], *[stack.rewrite(arg) for arg in server["args"]]]
            answer = drive_stdio(argv, {**stack.env(), **server.get("env", {})}, tmp_path)
            assert answer["result"]["isError"] is False, answer
        return
    if block.kind == "needs node":
        _require_npx()
    if block.extra == "stdin mcp-handshake":
        answer = drive_stdio(["bash", "-euo", "pipefail", "-c", stack.rewrite(block.text)], stack.env(), tmp_path)
        assert answer["result"]["isError"] is False, answer
        return
    if block.kind == "needs claude":
        env = {**stack.env(), "PATH": f"{_claude_path()}{os.pathsep}{os.environ['PATH']}"}
        output = _run_shell(block, stack, env, cwd=tmp_path)
        assert "✔ Connected" in output, output  # `claude mcp list` checks the server answers
        return
    output = _run_python(block, stack, tmp_path) if block.lang == "python" else _run_shell(block, stack, stack.env())
    assert '"isError":true' not in output.replace(" ", ""), output
    assert '"success":false' not in output.replace(" ", ""), output
