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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from gateway.cluster.nodes import ClusterError, LocalCluster
from gateway.hosts.build import VenueFiles, build_exchange

NAMES = ("replica r1", "replica r2", "gateway g1", "gateway g2")  # the children, in order

STOP_TIMEOUT = 20.0
"""Seconds a gateway or a replica gets to exit after SIGTERM before it is killed."""


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


@dataclass
class LocalClusterProcesses:
    """The processes of a cluster on this machine, started and stopped in order: the NATS
    nodes (``LocalCluster`` under ``data/nats``), ``replicas`` engine replicas r1.. (snapshots
    under ``data/rN``, events in ``data/rN.log``) and ``gateways`` gateways g1.. (``alatau
    serve --cluster``, data under ``data/gN``).  Used by ``alatau cluster up`` and by
    ``alatau bench gateway --cluster``.

    ``port`` is the first gateway's websocket port (the next gateways get the next ones and
    the HTTP APIs the ports after them); None: port 0 for every socket, the system picks.
    ``gateway_args`` are added to every gateway's command line; ``gateway_stdout`` is their
    standard output and ``gateway_stderr`` their standard error (None: inherited);
    ``preexec_fn`` runs in every child before exec."""

    data: Path
    admin_key: str
    venue_file: str | None = None
    markets_file: str | None = None
    replicas: int = 2
    gateways: int = 2
    port: int | None = 8765
    lease: float = 2.0
    gateway_args: list[str] = field(default_factory=list)
    gateway_stdout: int | IO[bytes] | None = None
    gateway_stderr: int | IO[bytes] | None = None
    preexec_fn: Callable[[], None] | None = None
    nodes: LocalCluster | None = None
    replica_processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    gateway_processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def servers(self) -> str:
        """The NATS URLs, comma separated."""
        return ",".join(self.nodes.urls) if self.nodes is not None else ""

    @property
    def children(self) -> list[subprocess.Popen[bytes]]:
        """The replicas, then the gateways."""
        return [*self.replica_processes, *self.gateway_processes]

    def _files_args(self) -> list[str]:
        extra = []
        if self.venue_file:
            extra += ["--config", self.venue_file]
        if self.markets_file:
            extra += ["--markets", self.markets_file]
        return extra

    def start(self) -> None:
        """Start the nodes (``ClusterError`` if they do not become ready), the replicas and
        the gateways; on any failure what was started is left for ``stop``."""
        data = self.data
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.nodes = LocalCluster(data / "nats")
        self.nodes.start()
        for i in range(1, self.replicas + 1):
            replica = [sys.executable, "-m", "gateway.cluster.replica", "--servers", self.servers]
            replica += ["--replica-id", f"r{i}", "--data-dir", str(data / f"r{i}")]
            replica += ["--lease", str(self.lease)]
            if self.venue_file:
                replica += ["--venue-file", self.venue_file]
            if self.markets_file:
                replica += ["--markets-file", self.markets_file]
            with open(data / f"r{i}.log", "ab") as out:
                self.replica_processes.append(
                    subprocess.Popen(
                        replica,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=env,
                        start_new_session=True,  # stopped by us, in order, not by Ctrl-C
                        preexec_fn=self.preexec_fn,
                    )
                )
        for i in range(1, self.gateways + 1):
            (data / f"g{i}").mkdir(parents=True, exist_ok=True)  # serve --cluster makes none
            gateway = [sys.executable, "-m", "gateway.app.cli", "serve"]
            gateway += ["--cluster", self.servers, "--gateway-id", f"g{i}"]
            if self.port is None:
                gateway += ["--port", "0", "--http-port", "0"]
            else:
                gateway += ["--port", str(self.port + i - 1)]
                gateway += ["--http-port", str(self.port + self.gateways + i - 1)]
            gateway += ["--quiet", "--data-dir", str(data / f"g{i}")]
            gateway += [f"--admin-key={self.admin_key}"]  # a key may start with "-"
            gateway += ["--secrets-key-file", str(data / "secrets.key"), *self._files_args()]
            gateway += self.gateway_args
            self.gateway_processes.append(
                subprocess.Popen(
                    gateway,
                    stdin=subprocess.DEVNULL,
                    stdout=self.gateway_stdout,
                    stderr=self.gateway_stderr,
                    env=env,
                    start_new_session=True,
                    preexec_fn=self.preexec_fn,
                )
            )

    def stop(self) -> list[int | None]:
        """SIGTERM the gateways, then the replicas (each writes its snapshot), SIGKILL after
        ``STOP_TIMEOUT``; then stop the nodes.  The children's exit statuses, in the order
        of ``children`` (None: killed)."""
        statuses: dict[int, int | None] = {}
        for group in (self.gateway_processes, self.replica_processes):
            for child in group:
                if child.poll() is None:
                    child.terminate()
            deadline = time.monotonic() + STOP_TIMEOUT
            for child in group:
                try:
                    statuses[child.pid] = child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
                    statuses[child.pid] = None
                if child.stdout is not None:
                    child.stdout.close()
        if self.nodes is not None:
            self.nodes.stop()
        return [statuses.get(child.pid) for child in self.children]


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
    cluster = LocalClusterProcesses(
        data,
        admin_key,
        venue_file=args.venue_file,
        markets_file=args.markets_file,
        port=args.port,
        lease=args.lease,
    )
    try:
        try:
            cluster.start()
        except ClusterError as exc:
            print(f"alatau cluster up: {exc}", file=sys.stderr)
            return 1
        print(f"NATS: {cluster.servers} (stores in {data / 'nats'})", flush=True)
        print(f"replicas: r1, r2 (events in {data}/r1.log, r2.log)", flush=True)
        ports = [args.port + i for i in range(cluster.gateways)]
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not all(_listening(port) for port in ports):
            gone = _exited(cluster.children)
            if gone is not None or stopping or time.monotonic() > deadline:
                why = f"{gone} exited" if gone else "stopped" if stopping else "timed out"
                print(f"alatau cluster up: the gateways did not start ({why})", file=sys.stderr)
                return 1
            time.sleep(0.2)
        print("gateways: " + "  ".join(f"ws://127.0.0.1:{port}" for port in ports), flush=True)
        print("demo venue (not for production): participants and keys", flush=True)
        for line in key_lines:
            print(line, flush=True)
        print(f"  admin key (auth.admin): {admin_key}", flush=True)
        print("Ctrl-C stops everything", flush=True)
        while not stopping:
            time.sleep(0.2)
            gone = _exited(cluster.children)
            if gone is not None:
                print(f"alatau cluster up: {gone} exited; stopping", file=sys.stderr)
                return 1
        return 0
    finally:
        print("stopping: gateways, replicas, NATS nodes", flush=True)
        cluster.stop()
