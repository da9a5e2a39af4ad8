"""``alatau cluster up``: the whole cluster on this machine, on 127.0.0.1 (docs/cluster.md).

Three NATS nodes (``gateway.cluster.nodes.LocalCluster``, stores under
``DATA_DIR/nats``), two engine replicas (``python -m gateway.cluster.replica``, snapshots
under ``DATA_DIR/r1`` and ``DATA_DIR/r2``, their events in ``DATA_DIR/rN.log``) and two
gateways (``alatau serve --cluster``, ids ``g1`` and ``g2``) on consecutive ports, all from
the same venue and markets files and the same secrets key (``DATA_DIR/secrets.key``) and
admin key.  A new venue is funded once through the log (the gateways append the same
funding batch; the stream keeps one).  Ctrl-C or SIGTERM stops the gateways, then the
replicas (each writes its snapshot), then the nodes; the next ``cluster up`` with the same
data directory carries on from the log.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from gateway.cluster.nodes import ClusterError, LocalCluster
from gateway.hosts.build import VenueFiles, build_exchange

NAMES = ("replica r1", "replica r2", "gateway g1", "gateway g2")  # the children, in order
READY_TIMEOUT_S = 60.0  # for the gateways to replay the log and listen


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _exited(children: list[subprocess.Popen[bytes]]) -> str | None:
    """The name of the first part that is no longer running, if any."""
    for name, child in zip(NAMES, children, strict=False):
        if child.poll() is not None:
            return name
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default="alatau-cluster", help="default ./alatau-cluster")
    parser.add_argument(
        "--port",
        type=int,
        default=8765,
        help="the first gateway's websocket port; the second gets the next one, and their "
        "HTTP APIs the two after (default 8765)",
    )
    parser.add_argument("--config", dest="venue_file", help="venue file (replicas and gateways)")
    parser.add_argument("--markets", dest="markets_file", help="markets file")
    parser.add_argument("--admin-key", help="operator key for auth.admin (default: random)")
    parser.add_argument("--lease", type=float, default=2.0, help="replica lease, seconds")


def _files_args(args: argparse.Namespace) -> list[str]:
    extra = []
    if args.venue_file:
        extra += ["--config", args.venue_file]
    if args.markets_file:
        extra += ["--markets", args.markets_file]
    return extra


def run_cluster_up(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65532:
        print("alatau cluster up: --port must be 1..65532", file=sys.stderr)
        return 2
    if args.lease <= 0:
        print("alatau cluster up: --lease must be above 0", file=sys.stderr)
        return 2
    data = Path(args.data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    try:  # the files are read here first, so a bad one is said before anything starts
        exchange = build_exchange(VenueFiles(args.venue_file, args.markets_file))
    except Exception as exc:
        print(f"alatau cluster up: {exc}", file=sys.stderr)
        return 2
    from gateway.app.serve import demo_deposits

    _deposits, key_lines = demo_deposits(exchange)
    admin_key = args.admin_key or secrets.token_urlsafe(18)
    stopping: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda number, _frame: stopping.append(number))
    nodes = LocalCluster(data / "nats")
    children: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        try:
            nodes.start()
        except ClusterError as exc:
            print(f"alatau cluster up: {exc}", file=sys.stderr)
            return 1
        servers = ",".join(nodes.urls)
        print(f"NATS: {servers} (stores in {data / 'nats'})", flush=True)
        for i in (1, 2):
            replica = [sys.executable, "-m", "gateway.cluster.replica", "--servers", servers]
            replica += ["--replica-id", f"r{i}", "--data-dir", str(data / f"r{i}")]
            replica += ["--lease", str(args.lease)]
            if args.venue_file:
                replica += ["--venue-file", args.venue_file]
            if args.markets_file:
                replica += ["--markets-file", args.markets_file]
            with open(data / f"r{i}.log", "ab") as out:
                children.append(
                    subprocess.Popen(
                        replica,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=env,
                        start_new_session=True,  # stopped by us, in order, not by Ctrl-C
                    )
                )
        print(f"replicas: r1, r2 (events in {data}/r1.log, r2.log)", flush=True)
        urls = []
        for i in (1, 2):
            port = args.port + i - 1
            gateway = [sys.executable, "-m", "gateway.app.cli", "serve", "--cluster", servers]
            gateway += ["--gateway-id", f"g{i}", "--port", str(port)]
            gateway += ["--http-port", str(args.port + 1 + i), "--quiet"]
            gateway += ["--data-dir", str(data / f"g{i}"), "--admin-key", admin_key]
            gateway += ["--secrets-key-file", str(data / "secrets.key"), *_files_args(args)]
            children.append(subprocess.Popen(gateway, env=env, start_new_session=True))
            urls.append(f"ws://127.0.0.1:{port}")
        deadline = time.monotonic() + READY_TIMEOUT_S
        ports = [args.port, args.port + 1]
        while not all(_listening(port) for port in ports):
            gone = _exited(children)
            if gone is not None or stopping or time.monotonic() > deadline:
                why = f"{gone} exited" if gone else "stopped" if stopping else "timed out"
                print(f"alatau cluster up: the gateways did not start ({why})", file=sys.stderr)
                return 1
            time.sleep(0.2)
        print("gateways: " + "  ".join(urls), flush=True)
        print("demo venue (not for production): participants and keys", flush=True)
        for line in key_lines:
            print(line, flush=True)
        print(f"  admin key (auth.admin): {admin_key}", flush=True)
        print("Ctrl-C stops everything", flush=True)
        while not stopping:
            time.sleep(0.2)
            gone = _exited(children)
            if gone is not None:
                print(f"alatau cluster up: {gone} exited; stopping", file=sys.stderr)
                return 1
        return 0
    finally:
        print("stopping: gateways, replicas, NATS nodes", flush=True)
        for group in (children[2:], children[:2]):  # gateways first, then the replicas
            for child in group:
                if child.poll() is None:
                    child.terminate()
            deadline = time.monotonic() + 20
            for child in group:
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
        nodes.stop()
