"""Run every benchmark, one after the other, each in its own process: `make bench` (pass --quick through).

Each script starts and stops its own stack; a failing script is reported and the next still runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = (
    "figures_cache.py",
    "figures_views.py",
    "figures_managed.py",  # managed mode's OAuth tokens vs the key header
    "figures_servers.py",  # the web server candidates (issue 15)
    "figures_freshness.py",
    "figures_faults.py",
    "figures_assistant.py",
    "figures_catalog.py",  # seconds: the catalog is built in-process, no server
)


def main(argv: list[str]) -> int:
    """Run each script with `argv`; return 1 when one of them crashed, else 0 (figures are reports)."""
    failed = []
    for script in SCRIPTS:
        print(f"== {script} {' '.join(argv)}", flush=True)
        code = subprocess.call([sys.executable, str(HERE / script), *argv], cwd=HERE.parent)
        if code != 0:
            failed.append(f"{script} (exit {code})")
    if failed:
        print("benchmarks that did not finish: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
