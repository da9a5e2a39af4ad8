"""``alatau cluster up`` as a person runs it: the whole cluster on this machine, two
gateways that trade with each other, and Ctrl-C that stops every part it started."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.cluster.nodes import free_ports, nats_server_binary

pytestmark = pytest.mark.skipif(
    nats_server_binary() is None, reason="needs the nats-server binary (the cluster extra)"
)

from gateway.app.serve import DEMO_PRIVATE_KEYS  # noqa: E402
from gateway.sdk.client import Client  # noqa: E402


async def trade_across_the_gateways(first: str, second: str) -> tuple[dict, dict]:
    mm1 = await Client.connect(first)
    bob = await Client.connect(second)
    try:
        await mm1.login("demo-mm1-key", private_key=DEMO_PRIVATE_KEYS["demo-mm1-key"])
        await bob.login("demo-bob-key", private_key=DEMO_PRIVATE_KEYS["demo-bob-key"])
        deadline = time.monotonic() + 30  # the demo funding goes through the log once
        while not any(
            row["asset"] == "KZT" and Decimal(row["available"]) > 0 for row in await bob.balances()
        ):
            assert time.monotonic() < deadline, "the demo venue was never funded"
            await asyncio.sleep(0.2)
        sell = await mm1.place("BTC-KZT", "sell", "0.01", "45000000")
        buy = await bob.place("BTC-KZT", "buy", "0.01", "45000000")
        return sell, buy
    finally:
        await mm1.close()
        await bob.close()


def test_cluster_up_runs_two_gateways_that_trade_and_stops_everything(tmp_path: Path) -> None:
    port = free_ports(4)  # the gateways' websocket and HTTP ports
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.app.cli",
            "cluster",
            "up",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "cluster"),
            "--lease",
            "1.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 90
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C stops everything"):
                break
            assert time.monotonic() < deadline, "".join(lines)
        assert any(line.startswith("gateways: ") for line in lines), "".join(lines)
        sell, buy = asyncio.run(
            asyncio.wait_for(
                trade_across_the_gateways(f"ws://127.0.0.1:{port}", f"ws://127.0.0.1:{port + 1}"),
                60,
            )
        )
        assert sell["status"] == "new"
        assert buy["status"] == "filled" and buy["fills"][0]["fill_price"] == "45000000.00"
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
        lines.append(rest)
        assert process.returncode == 0, "".join(lines)
        assert "stopping: gateways, replicas, NATS nodes" in rest
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # nothing it started is left: no process has its data directory on its command line
    leftovers = subprocess.run(
        ["pgrep", "-f", str(tmp_path / "cluster")], capture_output=True, text=True
    ).stdout.split()
    assert leftovers == [], leftovers
