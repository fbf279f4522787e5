"""The tool catalog's weight and portability (issue 13): tools/list bytes by part, tool count, portability findings,
before (commit 8534a84) and now, against the targets (at most 26,600 bytes; no finding).

    python bench/figures_catalog.py            # seconds: no server, the catalog is built in-process
    python bench/figures_catalog.py --quick    # the same (accepted so bench/run_all.py can pass it through)

The bytes are those of `orjson.dumps(tools)`, `tools` being every page of a tools/list result joined (the `Tool`
JSON exactly as the wire carries it, compact), built through `mcp_tools.protocol.tools.list_page`. "Before" is the
same measurement of commit 8534a84, extracted with `git archive` into a temporary directory and imported there in a
subprocess (read-only git; when git or the commit is not at hand, the figures measured at the start of issue 13
are printed instead, labelled so). Findings come from `mcp_tools.protocol.portability` over both catalogs: the MCP
Inspector's `--strict` rules (inspector/*) and the model providers' common schema subset (provider/*, catalog/*);
its docstring says where each rule comes from. Exits 0 whatever the figures: they are a report.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobnimbus_site.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret")
os.environ.setdefault("DJANGO_DEBUG", "false")

BASE_COMMIT = "8534a84"
TARGET_BYTES = 26_600
PARTS = ("inputSchema", "outputSchema", "annotations", "description")
# Measured at 8534a84 with this script's method, for when the commit cannot be extracted.
RECORDED_BEFORE: dict[str, Any] = {
    "tools": 38,
    "bytes": 66_920,
    "parts": {"inputSchema": 39_335, "outputSchema": 14_526, "annotations": 3_355, "description": 5_484},
}

# Run inside the checkout being measured: print the tools array of every tools/list page, as JSON.
_DUMP_TOOLS = """
import django, orjson, sys
django.setup()
from mcp_tools.protocol.tools import list_page
tools, cursor = list_page(None)
while cursor is not None:
    page, cursor = list_page(cursor)
    tools.extend(page)
sys.stdout.buffer.write(orjson.dumps(tools))
"""


def current_tools() -> list[dict[str, Any]]:
    """Return this checkout's tools/list `tools`, every page, built in-process."""
    import django

    django.setup()
    from mcp_tools.protocol.tools import list_page

    tools, cursor = list_page(None)
    while cursor is not None:
        page, cursor = list_page(cursor)
        tools.extend(page)
    return tools


def base_tools() -> list[dict[str, Any]] | None:
    """Return commit BASE_COMMIT's tools/list `tools`, or None when it cannot be extracted and imported."""
    with tempfile.TemporaryDirectory(prefix="catalog-base-") as tmp:
        try:
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", BASE_COMMIT], capture_output=True, check=True, timeout=60
            ).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True, timeout=60)
            env = {**os.environ, "PYTHONPATH": tmp, "DJANGO_SETTINGS_MODULE": "jobnimbus_site.settings"}
            out = subprocess.run(
                [sys.executable, "-c", _DUMP_TOOLS], cwd=tmp, env=env, capture_output=True, check=True, timeout=120
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return None
    tools: list[dict[str, Any]] = orjson.loads(out)
    return tools


def figures(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the catalog's bytes (total and by part), tool count and portability findings."""
    from mcp_tools.protocol.portability import findings

    found = findings(tools)
    return {
        "tools": len(tools),
        "bytes": len(orjson.dumps(tools)),
        "parts": {part: sum(len(orjson.dumps(t[part])) for t in tools if part in t) for part in PARTS},
        "inspector": sum(1 for f in found if f.rule.startswith("inspector/")),
        "inspector_tools": len({f.tool for f in found if f.rule.startswith("inspector/")}),
        "findings": len(found),
        "rules": Counter(f.rule for f in found),
        "list": found,
    }


def main(argv: list[str] | None = None) -> int:
    """Print the before/after table; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="accepted for run_all.py; the run is seconds anyway")
    parser.add_argument("--verbose", action="store_true", help="print every finding of the current catalog")
    args = parser.parse_args(argv)
    now = figures(current_tools())
    base = base_tools()
    before = figures(base) if base is not None else None
    label = f"before ({BASE_COMMIT})" if before else f"before ({BASE_COMMIT}, recorded)"
    then = before or {**RECORDED_BEFORE, "inspector": 75, "inspector_tools": 28, "findings": None}

    def row(name: str, old: Any, new: Any, note: str = "") -> None:
        print(f"  {name:<30}{old!s:>26}{new!s:>16}  {note}")

    print("tools/list catalog (compact JSON of the tools array, all pages)")
    row("", label, "now")
    row(
        "bytes",
        then["bytes"],
        now["bytes"],
        f"target <= {TARGET_BYTES}: {'met' if now['bytes'] <= TARGET_BYTES else 'NOT met'}",
    )
    for part in PARTS:
        row(f"  {part}", then["parts"][part], now["parts"][part])
    row("tools", then["tools"], now["tools"])
    row(
        "Inspector --strict warnings",
        f"{then['inspector']} in {then['inspector_tools']} tools",
        f"{now['inspector']} in {now['inspector_tools']} tools",
        "target 0",
    )
    row("all portability findings", then["findings"], now["findings"], "target 0 (inspector + provider + catalog)")
    if before:
        print("  before, by rule: " + ", ".join(f"{rule} {n}" for rule, n in sorted(before["rules"].items())))
    if now["rules"]:
        print("  now, by rule: " + ", ".join(f"{rule} {n}" for rule, n in sorted(now["rules"].items())))
    if args.verbose:
        for finding in now["list"]:
            print(f"    {finding}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
