"""The load: MCP tools/call at a constant total arrival rate, phase by phase (`python -m bench.load` runs it).

Run headless by the harness with these environment variables:
  LOAD_PHASES   "name:seconds:requests_per_minute,..." e.g. "warmup:30:10000,sustained:300:10000,peak:60:50000"
  LOAD_PLAN     a JSON file the harness wrote: the read argument sets (Zipf rank order) and the write targets
  LOAD_OUT      where this process writes every call's record when the test stops (the harness reports from it)
  LOAD_WRITE_FRACTION  share of calls that are writes (default 0.05)

Arrival: one schedule for all users. Call k is due at a fixed time (t0 + the k-th slot of the phases' rates); a user
takes the next slot and sleeps until it (never sleeping for a slot already past), so the total rate stays constant
while enough users are free, however slow answers get. A call that starts over 1 s after its slot counts as "late":
the generator (or the users' number) could not hold the rate, and the report says so.

Stale read (as counted here): a get_job of a record issued after a write of that record was acknowledged (the
update_job answer received, not an error) whose answer carries an older version than the acknowledged one. Each
write sets the job's description to "loadv=<n>" with n growing per record; writes of one record never overlap.
"""

from __future__ import annotations

import os
import random
import re
import time
from bisect import bisect_left
from itertools import accumulate, pairwise
from pathlib import Path
from typing import Any

import orjson
from locust import FastHttpUser, events, task

PHASES = [
    (name, float(seconds), float(rpm) / 60.0)
    for name, seconds, rpm in (p.split(":") for p in os.environ.get("LOAD_PHASES", "sustained:60:10000").split(","))
]
PLAN: dict[str, Any] = orjson.loads(Path(os.environ["LOAD_PLAN"]).read_bytes()) if "LOAD_PLAN" in os.environ else {}
OUT = os.environ.get("LOAD_OUT", "jn-load-out.json")
WRITE_FRACTION = float(os.environ.get("LOAD_WRITE_FRACTION", "0.05"))
ZIPF_S = float(os.environ.get("LOAD_ZIPF_S", "1.1"))
VERSION_RE = re.compile(rb"loadv=(\d+)")

READS: list[list[Any]] = PLAN.get("reads", [])  # [instance, key, tool, arguments], most popular first
WRITES: list[list[Any]] = PLAN.get("writes", [])  # [instance, key, jnid]
_CUM = list(accumulate(1.0 / (rank**ZIPF_S) for rank in range(1, len(READS) + 1)))
# Bodies and headers built once: the generator's CPU is the machine's CPU too.
_READ_BODIES = [
    orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": args}})
    for _, _, tool, args in READS
]
_HEADERS = {
    (inst, key): {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "X-JobNimbus-Api-Key": key,
        "X-JobNimbus-Instance": inst,
    }
    for inst, key, *_ in READS + WRITES
}
# The record a get_job read checks for staleness: read index -> (instance, jnid) for written records only.
_WRITTEN = {(inst, jnid) for inst, _, jnid in WRITES}
_CHECKED = {
    i: (inst, args["jnid"])
    for i, (inst, _, tool, args) in enumerate(READS)
    if tool == "get_job" and (inst, args["jnid"]) in _WRITTEN
}

# --- the shared schedule -----------------------------------------------------------------------------------------
_t0 = 0.0
_slot = 0
_bounds: list[tuple[float, int, float]] = []  # per phase: (start offset s, first slot index, rate per s)


def _build_bounds() -> None:
    offset, first = 0.0, 0
    for _, seconds, rate in PHASES:
        _bounds.append((offset, first, rate))
        first += int(seconds * rate)
        offset += seconds
    _bounds.append((offset, first, 0.0))


def _due(k: int) -> float | None:
    """Offset from t0 of slot k, None past the last phase."""
    for (start, first, rate), (_, next_first, _) in pairwise(_bounds):
        if k < next_first:
            return start + (k - first) / rate
    return None


def next_slot() -> tuple[float, float]:
    """Take the next slot: (seconds to sleep, the slot's due wall time)."""
    global _t0, _slot
    if not _t0:
        _t0 = time.time()
        with open(OUT + ".t0", "w") as handle:
            handle.write(repr(_t0))
    due = _due(_slot)
    _slot += 1
    if due is None:
        return 3600.0, 0.0  # the plan is done: idle until the run time ends
    at = _t0 + due
    return max(0.0, at - time.time()), at


# --- what each call records ---------------------------------------------------------------------------------------
# (start wall time, latency s, kind r/w, outcome, late, checked for staleness) with outcome "" ok, "http:<code>",
# "rpc", "tool" or "stale"
RECORDS: list[tuple[float, float, str, str, bool, bool]] = []
_acked: dict[tuple[str, str], tuple[int, float]] = {}  # record -> (last acknowledged version, ack wall time)
_version: dict[tuple[str, str], int] = {}
_busy: set[tuple[str, str]] = set()
_stale_detail: list[tuple[float, str, int, int, float]] = []
_error_sample: list[str] = []


def outcome_of(status: int, body: bytes | None) -> str:
    if status != 200 or not body:
        return f"http:{status}"
    if b'"isError":true' in body:
        return "tool"
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "http:badjson"
    if "error" in answer:
        return "rpc"
    return ""


class McpUser(FastHttpUser):
    connection_timeout = 10.0
    network_timeout = 60.0

    def wait_time(self) -> float:
        delay, self._due_at = next_slot()
        return delay

    _due_at = 0.0

    @task
    def call(self) -> None:
        due = self._due_at
        if not due:
            return
        if WRITES and random.random() < WRITE_FRACTION:
            self.write(due)
        else:
            self.read(due)

    def read(self, due: float) -> None:
        i = min(len(READS) - 1, bisect_left(_CUM, random.random() * _CUM[-1]))
        inst, key, _, _ = READS[i]
        checked = _CHECKED.get(i)
        acked = _acked.get(checked) if checked else None
        start = time.time()
        response = self.client.post("/mcp", data=_READ_BODIES[i], headers=_HEADERS[(inst, key)], name="read")  # type: ignore[arg-type]
        latency = time.time() - start
        body = response.content
        outcome = outcome_of(response.status_code or 0, body)
        if not outcome and checked and acked:
            found = VERSION_RE.search(body or b"")
            seen = int(found.group(1)) if found else 0
            if seen < acked[0]:
                outcome = "stale"
                _stale_detail.append((start, checked[1], seen, acked[0], start - acked[1]))
        if outcome and outcome != "stale" and len(_error_sample) < 20:
            _error_sample.append(f"{READS[i][2]} {outcome}: {(body or b'')[:300]!r}")
        RECORDS.append((start, latency, "r", outcome, start - due > 1.0, bool(checked and acked)))

    def write(self, due: float) -> None:
        free = [w for w in random.sample(WRITES, min(4, len(WRITES))) if (w[0], w[2]) not in _busy]
        if not free:
            self.read(due)
            return
        inst, key, jnid = free[0]
        record = (inst, jnid)
        _busy.add(record)
        version = _version[record] = _version.get(record, 0) + 1
        body = orjson.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "update_job", "arguments": {"jnid": jnid, "description": f"loadv={version}"}},
            }
        )
        start = time.time()
        try:
            response = self.client.post("/mcp", data=body, headers=_HEADERS[(inst, key)], name="write")  # type: ignore[arg-type]
            latency = time.time() - start
            outcome = outcome_of(response.status_code or 0, response.content)
            if not outcome:
                _acked[record] = (version, time.time())
            elif len(_error_sample) < 20:
                _error_sample.append(f"update_job {outcome}: {(response.content or b'')[:300]!r}")
        finally:
            _busy.discard(record)
        RECORDS.append((start, latency, "w", outcome, start - due > 1.0, False))


_build_bounds()


@events.quitting.add_listener
def _dump(environment: Any, **_: Any) -> None:
    with open(OUT, "wb") as handle:
        handle.write(
            orjson.dumps(
                {
                    "t0": _t0,
                    "phases": [[n, s, r] for n, s, r in PHASES],
                    "records": RECORDS,
                    "stale": _stale_detail,
                    "error_sample": _error_sample,
                    "slots_taken": _slot,
                }
            )
        )
