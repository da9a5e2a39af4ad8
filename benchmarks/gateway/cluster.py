"""The cluster under test (``--cluster``): three NATS nodes (``sync_interval: always``), two
engine replicas and one gateway (``alatau serve --cluster``), all on 127.0.0.1 in a fresh
temporary directory, started and stopped by ``gateway.app.cluster_up``'s
``LocalClusterProcesses`` as ``alatau cluster up`` does (always stopped: gateway, replicas,
nodes).  ``ClusterServer`` stands in for ``Server``: the bots talk to the gateway, and the
CPU figures count the gateway (``pid``) apart from the replicas and the nodes.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.gateway.client import STARTUP_TIMEOUT
from benchmarks.gateway.server import HOST, die_with_parent, server_cpu_s
from gateway.app.cluster_up import LocalClusterProcesses

LEASE = 1.5
"""The replicas' lease, seconds (as in the failover tests)."""


class ClusterServer:
    """A local cluster with one gateway, in a fresh temporary directory."""

    durability = "cluster"

    def __init__(self) -> None:
        self.admin_key = secrets.token_hex(16)
        self.tmp = Path(tempfile.mkdtemp(prefix="alatau-bench-cluster-"))
        self.data = self.tmp / "data"
        self.data.mkdir()
        self.log_path = self.tmp / "gateway.log"
        self.url = ""
        self.cluster = LocalClusterProcesses(
            self.data,
            self.admin_key,
            gateways=1,
            port=None,
            lease=LEASE,
            gateway_args=[f"--host={HOST}", "--rate=1e9", "--participant-rate=1e9"],
            gateway_stdout=subprocess.PIPE,
            preexec_fn=die_with_parent,
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        with open(self.log_path, "wb") as log:
            self.cluster.gateway_stderr = log
            await loop.run_in_executor(None, self.cluster.start)
        stdout = self.cluster.gateway_processes[0].stdout
        assert stdout is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            raw = await asyncio.wait_for(
                loop.run_in_executor(None, stdout.readline), deadline - time.monotonic()
            )
            if not raw:
                break
            line = raw.decode(errors="replace")
            if line.startswith("alatau: listening on "):
                self.url = line.split()[-1]
                return
        raise RuntimeError(f"the cluster's gateway did not start:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        """The gateway's pid."""
        return self.cluster.gateway_processes[0].pid

    def cpu_s(self) -> dict[str, float] | None:
        """CPU seconds so far of the gateway, of the replicas together and of the NATS
        nodes together."""
        gateway = server_cpu_s(self.pid)
        replicas = [server_cpu_s(p.pid) for p in self.cluster.replica_processes]
        nodes = self.cluster.nodes.nodes if self.cluster.nodes is not None else []
        nats = [server_cpu_s(n.process.pid) if n.process else None for n in nodes]
        if gateway is None or None in replicas or None in nats:
            return None
        return {
            "gateway": gateway[0],
            "replicas": sum(r[0] for r in replicas if r is not None),
            "nats": sum(n[0] for n in nats if n is not None),
        }

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def log_problems(self) -> list[str]:
        """Warnings, errors and tracebacks the gateway and the replicas logged."""
        keys = ("WARNING", "ERROR", "CRITICAL", "Traceback", "Exception")
        found = []
        for path in (self.log_path, self.data / "r1.log", self.data / "r2.log"):
            try:
                text = path.read_text()
            except OSError:
                continue
            found += [line for line in text.splitlines() if any(k in line for k in keys)]
        return found

    def stop(self) -> int | None:
        """Gateway, replicas, nodes (SIGTERM, then SIGKILL); the gateway's exit status."""
        if not self.cluster.gateway_processes:
            self.cluster.stop()
            return None
        return self.cluster.stop()[len(self.cluster.replica_processes)]

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
