#!/usr/bin/env python3
"""Start, stop and inspect a real local Redis Cluster and a real Sentinel set, for tests, CI and the load bench.

Both run on this machine with Debian's redis-server (7.0): cluster nodes with `--cluster-enabled yes`, sentinels
as `redis-server <conf> --sentinel` (no redis-sentinel binary needed). Nothing is persisted (`--save ''
--appendonly no`); every file (configs, pids, logs, cluster node tables) lives under the run dir, by default
$TMPDIR/jn-topologies (/tmp/jn-topologies), or --run-dir / $JN_TOPOLOGIES_DIR.

    cluster   6 nodes on 127.0.0.1:7000-7005, 3 primaries + 3 replicas (`redis-cli --cluster create
              --cluster-replicas 1`), cluster-node-timeout 2000 ms: a dead primary's replica takes over in seconds.
              URL: redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002
    sentinel  primary 127.0.0.1:6390, replica 6391, sentinels 26390-26392 watching service `jnmaster` (quorum 2,
              down-after-milliseconds 1000, failover-timeout 5000): a dead primary is replaced in a few seconds.
              URL: redis+sentinel://127.0.0.1:26390,127.0.0.1:26391,127.0.0.1:26392/jnmaster/0

Commands (python scripts/redis_topologies.py ...):

    start cluster|sentinel|all   start what is not running, wait until healthy (cluster_state:ok on every node;
                                 the replica linked and every sentinel seeing the replica and the other two), print
                                 the URL. Idempotent: on a healthy topology it only prints the URL. A killed node is
                                 started back into its role (a cluster node rejoins with its node table; a sentinel
                                 data node comes back as a replica of the primary the sentinels name).
    stop cluster|sentinel|all    stop its processes (SHUTDOWN NOSAVE, then the pid file) and delete its run files.
    status [cluster|sentinel]    one line per process: port, up/down, role; the cluster's state, the sentinels'
                                 primary. Exit status 0 only when every topology asked about is healthy.
    url cluster|sentinel         print the URL only.
    wait cluster|sentinel        wait until it serves (after a failover: a replica promoted, the cluster state ok on
                                 every live node), up to --timeout seconds; `start` waits until fully healthy.
    primary cluster|sentinel     print the port(s) of the current primary (primaries).
    kill PORT                    SIGKILL one node or sentinel of these topologies (a crash, for failover tests).
    restart PORT                 start a killed node back into its topology (as `start` would), then wait.

Ports 7000-7005, 6390-6391 and 26390-26392 only: other people's topologies on other ports are never touched.
From Python: `import` this file (tests load it by path) and call start(), stop(), status(), kill(), restart(),
wait_serving(), wait_healthy(), current_primary(), url().
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

HOST = "127.0.0.1"
CLUSTER_PORTS = (7000, 7001, 7002, 7003, 7004, 7005)
SENTINEL_PRIMARY = 6390
SENTINEL_REPLICA = 6391
SENTINEL_DATA_PORTS = (SENTINEL_PRIMARY, SENTINEL_REPLICA)
SENTINEL_PORTS = (26390, 26391, 26392)
SERVICE = "jnmaster"
QUORUM = 2
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
CLUSTER_NODE_TIMEOUT_MS = 2000
TOPOLOGIES = ("cluster", "sentinel")
URLS = {
    "cluster": "redis+cluster://" + ",".join(f"{HOST}:{p}" for p in CLUSTER_PORTS[:3]),
    "sentinel": "redis+sentinel://" + ",".join(f"{HOST}:{p}" for p in SENTINEL_PORTS) + f"/{SERVICE}/0",
}
DEFAULT_RUN_DIR = Path(os.environ.get("JN_TOPOLOGIES_DIR") or Path(tempfile.gettempdir()) / "jn-topologies")
NO_PERSISTENCE = ["--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"]


class TopologyError(RuntimeError):
    """A topology did not come up (or back) as asked; the message names what and where its logs are."""


# --- small redis-cli helpers (no Python client needed: the script runs before any venv exists) ---


def cli(port: int, *args: str, timeout: float = 3.0) -> str | None:
    """Return redis-cli's answer to one command on `port`, or None when nothing answers there."""
    try:
        done = subprocess.run(
            ["redis-cli", "-h", HOST, "-p", str(port), *args], capture_output=True, text=True, timeout=timeout
        )
    except (subprocess.TimeoutExpired, OSError):
        return None
    out = done.stdout.strip()
    if done.returncode != 0 or out.startswith("Could not connect") or "Connection refused" in done.stderr:
        return None
    return out


def is_up(port: int) -> bool:
    """Return whether a Redis (or sentinel) answers PING on `port`."""
    return cli(port, "PING", timeout=1.0) == "PONG"


def info(port: int, section: str) -> dict[str, str]:
    """Return INFO `section` of `port` as a dict (empty when down)."""
    out = cli(port, "INFO", section) or ""
    pairs = (line.split(":", 1) for line in out.splitlines() if ":" in line and not line.startswith("#"))
    return {k: v.strip() for k, v in pairs}


def cluster_info(port: int) -> dict[str, str]:
    """Return CLUSTER INFO of `port` as a dict (empty when down)."""
    out = cli(port, "CLUSTER", "INFO") or ""
    return {k: v.strip() for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)}


def _wait(what: str, check: Callable[[], bool], timeout: float, logs: Iterable[Path] = ()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = "".join(f"\n--- {p} ---\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:]) for p in logs
                   if p.exists())  # fmt: skip
    raise TopologyError(f"{what} not reached within {timeout:.0f} s{tail}")


# --- processes ---


def _paths(run_dir: Path, port: int) -> tuple[Path, Path, Path]:
    """Return (working dir, pid file, log file) of the process on `port`."""
    topology = "cluster" if port in CLUSTER_PORTS else "sentinel"
    work = run_dir / topology / str(port)
    return work, work / "redis.pid", work / "redis.log"


def _topology_of(port: int) -> str:
    if port in CLUSTER_PORTS:
        return "cluster"
    if port in SENTINEL_DATA_PORTS or port in SENTINEL_PORTS:
        return "sentinel"
    raise TopologyError(f"port {port} belongs to no topology of this script")


def _server(run_dir: Path, port: int, *extra: str) -> None:
    """Start a daemonized redis-server on `port` with `extra` options, and wait until it answers."""
    work, pid, log = _paths(run_dir, port)
    work.mkdir(parents=True, exist_ok=True)
    command = ["redis-server", "--port", str(port), "--bind", HOST, "--daemonize", "yes", "--dir", str(work),
               "--pidfile", str(pid), "--logfile", str(log), *NO_PERSISTENCE, *extra]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)
    _wait(f"redis-server on {port} answering", lambda: is_up(port), 10, [log])


def _sentinel(run_dir: Path, port: int, primary: int) -> None:
    """Write a sentinel config monitoring `primary` and start it (redis-server <conf> --sentinel)."""
    work, pid, log = _paths(run_dir, port)
    work.mkdir(parents=True, exist_ok=True)
    conf = work / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind {HOST}\ndaemonize yes\npidfile {pid}\nlogfile {log}\ndir {work}\n"
        f"sentinel resolve-hostnames no\n"
        f"sentinel monitor {SERVICE} {HOST} {primary} {QUORUM}\n"
        f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
        f"sentinel parallel-syncs {SERVICE} 1\n"
    )
    subprocess.run(["redis-server", str(conf), "--sentinel"], check=True, capture_output=True)
    _wait(f"sentinel on {port} answering", lambda: is_up(port), 10, [log])


def _pid(run_dir: Path, port: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(_paths(run_dir, port)[1].read_text().strip())
    return None


def kill(port: int, run_dir: Path = DEFAULT_RUN_DIR, sig: int = signal.SIGKILL) -> bool:
    """Send `sig` (SIGKILL: a crash) to the process on `port`; return whether one was running."""
    _topology_of(port)
    pid = _pid(run_dir, port)
    if pid is None or not is_up(port):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    _wait(f"port {port} down", lambda: not is_up(port), 10)
    return True


def _stop_port(run_dir: Path, port: int) -> None:
    if not is_up(port):
        return
    cli(port, "SHUTDOWN", "NOSAVE")
    with contextlib.suppress(TopologyError):
        _wait(f"port {port} down", lambda: not is_up(port), 5)
        return
    kill(port, run_dir, signal.SIGTERM)


# --- cluster ---


def _cluster_healthy() -> bool:
    for port in CLUSTER_PORTS:
        ci = cluster_info(port)
        if ci.get("cluster_state") != "ok" or ci.get("cluster_known_nodes") != str(len(CLUSTER_PORTS)):
            return False
    roles = [info(p, "replication").get("role") for p in CLUSTER_PORTS]
    return roles.count("master") == 3 and roles.count("slave") == 3


def _start_cluster_node(run_dir: Path, port: int) -> None:
    work, _, _ = _paths(run_dir, port)
    _server(run_dir, port, "--cluster-enabled", "yes", "--cluster-config-file", str(work / "nodes.conf"),
            "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS))  # fmt: skip


def start_cluster(run_dir: Path = DEFAULT_RUN_DIR, timeout: float = 60) -> str:
    """Start the 6-node cluster (or the nodes of it that are down) and wait until healthy; return its URL."""
    for port in CLUSTER_PORTS:
        if not is_up(port):
            _start_cluster_node(run_dir, port)
    if all(cluster_info(p).get("cluster_known_nodes") == "1" for p in CLUSTER_PORTS):
        nodes = [f"{HOST}:{p}" for p in CLUSTER_PORTS]
        done = subprocess.run(["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "1", "--cluster-yes"],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        if done.returncode != 0:
            raise TopologyError(f"redis-cli --cluster create failed:\n{done.stdout}\n{done.stderr}")
    logs = [_paths(run_dir, p)[2] for p in CLUSTER_PORTS]
    _wait("cluster_state:ok on all 6 nodes, 3 primaries + 3 replicas", _cluster_healthy, timeout, logs)
    return URLS["cluster"]


def cluster_primaries() -> list[int]:
    """Return the ports of the cluster's current primaries."""
    return [p for p in CLUSTER_PORTS if info(p, "replication").get("role") == "master"]


# --- sentinel ---


def sentinel_primary() -> int | None:
    """Return the port the sentinels name as jnmaster's primary (majority of those answering), or None."""
    votes: dict[int, int] = {}
    for port in SENTINEL_PORTS:
        out = cli(port, "SENTINEL", "get-master-addr-by-name", SERVICE)
        lines = (out or "").split()
        if len(lines) == 2 and lines[1].isdigit():
            votes[int(lines[1])] = votes.get(int(lines[1]), 0) + 1
    return max(votes, key=lambda p: votes[p]) if votes else None


def _sentinel_healthy() -> bool:
    primary = sentinel_primary()
    if primary is None or info(primary, "replication").get("role") != "master":
        return False
    for port in SENTINEL_DATA_PORTS:
        rep = info(port, "replication")
        if port != primary and (rep.get("role") != "slave" or rep.get("master_link_status") != "up"
                                or rep.get("master_port") != str(primary)):  # fmt: skip
            return False
    for port in SENTINEL_PORTS:
        out = (cli(port, "SENTINEL", "master", SERVICE) or "").splitlines()
        fields = dict(zip(out[::2], out[1::2], strict=False))
        if (fields.get("port") != str(primary) or fields.get("num-slaves") != "1"
                or fields.get("num-other-sentinels") != "2" or "down" in fields.get("flags", "")):  # fmt: skip
            return False
        # the replica as this sentinel sees it must be up too (not s_down from before a restart)
        replicas = (cli(port, "SENTINEL", "replicas", SERVICE) or "").splitlines()
        flags = [v for k, v in zip(replicas[::2], replicas[1::2], strict=False) if k == "flags"]
        if len(flags) != 1 or any(bad in flags[0] for bad in ("s_down", "o_down", "disconnected")):
            return False
    return True


def _start_sentinel_data_node(run_dir: Path, port: int, primary: int | None) -> None:
    if primary is None or primary == port:
        _server(run_dir, port)
    else:
        _server(run_dir, port, "--replicaof", HOST, str(primary))


def start_sentinel(run_dir: Path = DEFAULT_RUN_DIR, timeout: float = 60) -> str:
    """Start the primary, the replica and the 3 sentinels (those that are down), wait until healthy; return its URL.

    Which node is the primary: the one the running sentinels name; without sentinels, a running data node in the
    master role; on a fresh start, 6390.
    """
    primary = sentinel_primary()
    if primary is None:
        running = [p for p in SENTINEL_DATA_PORTS if info(p, "replication").get("role") == "master"]
        primary = running[0] if running else SENTINEL_PRIMARY
    if not is_up(primary):
        _start_sentinel_data_node(run_dir, primary, None)
    for port in SENTINEL_DATA_PORTS:
        if not is_up(port):
            _start_sentinel_data_node(run_dir, port, primary)
    for port in SENTINEL_PORTS:
        if not is_up(port):
            _sentinel(run_dir, port, primary)
    logs = [_paths(run_dir, p)[2] for p in SENTINEL_DATA_PORTS + SENTINEL_PORTS]
    _wait("sentinel set healthy (replica linked; 3 sentinels agree, each sees 1 replica and 2 peers)",
          _sentinel_healthy, timeout, logs)  # fmt: skip
    return URLS["sentinel"]


# --- the commands ---


def start(topology: str, run_dir: Path = DEFAULT_RUN_DIR, timeout: float = 60) -> str:
    """Start `topology` (idempotent) and return its URL."""
    return start_cluster(run_dir, timeout) if topology == "cluster" else start_sentinel(run_dir, timeout)


def stop(topology: str, run_dir: Path = DEFAULT_RUN_DIR) -> None:
    """Stop every process of `topology` and delete its run files."""
    ports = CLUSTER_PORTS if topology == "cluster" else SENTINEL_PORTS + SENTINEL_DATA_PORTS
    for port in ports:
        _stop_port(run_dir, port)
    shutil.rmtree(run_dir / topology, ignore_errors=True)


def healthy(topology: str) -> bool:
    """Return whether `topology` is fully up (see `start`)."""
    return _cluster_healthy() if topology == "cluster" else _sentinel_healthy()


def serving(topology: str) -> bool:
    """Return whether `topology` serves reads and writes, even with nodes down: every live cluster node says
    cluster_state:ok and 3 live nodes are primaries; or the sentinels' primary is up and a primary."""
    if topology == "cluster":
        live = [p for p in CLUSTER_PORTS if is_up(p)]
        return all(cluster_info(p).get("cluster_state") == "ok" for p in live) and len(cluster_primaries()) == 3
    primary = sentinel_primary()
    return primary is not None and info(primary, "replication").get("role") == "master"


def wait_serving(topology: str, timeout: float = 60, run_dir: Path = DEFAULT_RUN_DIR) -> None:
    """Wait until `topology` serves again (after a failover: the replica promoted); TopologyError past `timeout`."""
    ports = CLUSTER_PORTS if topology == "cluster" else SENTINEL_DATA_PORTS + SENTINEL_PORTS
    _wait(f"{topology} serving", lambda: serving(topology), timeout, [_paths(run_dir, p)[2] for p in ports])


def wait_healthy(topology: str, timeout: float = 60, run_dir: Path = DEFAULT_RUN_DIR) -> None:
    """Wait until `topology` is healthy again (after a failover or a restart); TopologyError past `timeout`."""
    ports = CLUSTER_PORTS if topology == "cluster" else SENTINEL_DATA_PORTS + SENTINEL_PORTS
    _wait(f"{topology} healthy", lambda: healthy(topology), timeout, [_paths(run_dir, p)[2] for p in ports])


def current_primary(topology: str) -> list[int]:
    """Return the current primary port(s): the cluster's three, or the sentinel set's one."""
    if topology == "cluster":
        return cluster_primaries()
    primary = sentinel_primary()
    return [primary] if primary is not None else []


def restart(port: int, run_dir: Path = DEFAULT_RUN_DIR, timeout: float = 60) -> None:
    """Start a killed node back into its topology and wait until the topology is healthy."""
    topology = _topology_of(port)
    if not is_up(port):
        if topology == "cluster":
            _start_cluster_node(run_dir, port)
        elif port in SENTINEL_PORTS:
            _sentinel(run_dir, port, sentinel_primary() or SENTINEL_PRIMARY)
        else:
            _start_sentinel_data_node(run_dir, port, sentinel_primary())
    wait_healthy(topology, timeout, run_dir)


def url(topology: str) -> str:
    """Return the URL of `topology`."""
    return URLS[topology]


def status(topologies: Iterable[str] = TOPOLOGIES) -> bool:
    """Print one line per process of each topology; return whether all of them are healthy."""
    ok = True
    for topology in topologies:
        good = healthy(topology)
        ok &= good
        print(f"{topology}: {'healthy' if good else 'NOT healthy'}  {URLS[topology]}")
        if topology == "cluster":
            print(f"  cluster_state: {cluster_info(CLUSTER_PORTS[0]).get('cluster_state', 'down')}")
            for port in CLUSTER_PORTS:
                print(f"  {port}: {'up' if is_up(port) else 'down'} {info(port, 'replication').get('role', '')}")
        else:
            print(f"  sentinels' primary: {sentinel_primary()}")
            for port in SENTINEL_DATA_PORTS:
                print(f"  {port}: {'up' if is_up(port) else 'down'} {info(port, 'replication').get('role', '')}")
            for port in SENTINEL_PORTS:
                print(f"  {port}: {'up' if is_up(port) else 'down'} sentinel")
    return ok


def main(argv: list[str] | None = None) -> int:
    """Run one command (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    parser.add_argument("--timeout", type=float, default=60.0)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "stop"):
        sub.add_parser(name).add_argument("topology", choices=[*TOPOLOGIES, "all"])
    sub.add_parser("status").add_argument("topology", nargs="?", choices=[*TOPOLOGIES, "all"], default="all")
    for name in ("url", "wait", "primary"):
        sub.add_parser(name).add_argument("topology", choices=TOPOLOGIES)
    for name in ("kill", "restart"):
        sub.add_parser(name).add_argument("port", type=int)
    args = parser.parse_args(argv)
    chosen = list(TOPOLOGIES) if getattr(args, "topology", None) in ("all", None) else [args.topology]
    try:
        if args.command == "start":
            for topology in chosen:
                print(start(topology, args.run_dir, args.timeout))
        elif args.command == "stop":
            for topology in chosen:
                stop(topology, args.run_dir)
        elif args.command == "status":
            return 0 if status(chosen) else 1
        elif args.command == "url":
            print(url(args.topology))
        elif args.command == "wait":
            wait_serving(args.topology, args.timeout, args.run_dir)
        elif args.command == "primary":
            print(" ".join(str(p) for p in current_primary(args.topology)))
        elif args.command == "kill":
            return 0 if kill(args.port, args.run_dir) else 1
        elif args.command == "restart":
            restart(args.port, args.run_dir, args.timeout)
    except (TopologyError, subprocess.CalledProcessError) as exc:
        print(f"redis_topologies: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
