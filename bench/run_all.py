"""Run every benchmark in turn (`make bench`); --quick is passed through.

    .venv/bin/python bench/run_all.py [--quick]

Each script starts and stops its own servers; a failing script is reported and the next one still runs.
Exits 0 when every script ran (the figures are a report, whatever they say), 1 when one of them crashed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("cache_bench.py", "freshness_bench.py")


def main(argv: list[str] | None = None) -> int:
    """Run the scripts; return 1 if any crashed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of each script (seconds)")
    options = parser.parse_args(argv)
    crashed = []
    for script in SCRIPTS:
        argv_script = [sys.executable, str(HERE / script), *(["--quick"] if options.quick else [])]
        print(f"== {script}", flush=True)
        if subprocess.run(argv_script, cwd=HERE.parent, check=False).returncode != 0:
            crashed.append(script)
    if crashed:
        print(f"crashed: {', '.join(crashed)}", file=sys.stderr)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
