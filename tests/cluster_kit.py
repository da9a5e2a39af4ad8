"""Shared by the cluster tests: a test "gateway" that stamps and appends batches of demo
commands, engine replicas as subprocesses, and the single-process replay they are checked
against."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.commands import Command, Deposit, PlaceOrder
from engine.state import digest
from engine.types import Side
from gateway.app.serve import ServeOptions
from gateway.cluster.log import (
    COMMANDS_STREAM,
    LEASE_BUCKET,
    REPORTS_STREAM,
    CommandBatch,
    CommandLog,
    ReportBatch,
    encoder,
    execute_batch,
)
from gateway.hosts.build import build_exchange
from gateway.sequencer.queries import BalancesQuery, Query

ROOT = Path(__file__).resolve().parent.parent
TS0 = 1_780_000_000_000  # June 2026: within the demo licences
PRICE = 4_500_000_000  # 45,000,000 KZT in tiyn, the demo reference price
TRADERS = ("mm1", "bob")


def batch_items(n: int) -> list[Command | Query]:
    """Batch ``n`` (1, 2, ...) of the test gateway's load, stamped with a fixed time."""
    ts = TS0 + n
    if n <= len(TRADERS):
        who = TRADERS[n - 1]
        return [
            Deposit(ts=ts, participant_id=who, asset="KZT", amount=10**12),
            Deposit(ts=ts, participant_id=who, asset="BTC", amount=10**9),
        ]
    who = TRADERS[n % 2]
    side = Side.BUY if n % 2 else Side.SELL
    price = PRICE + (n % 7 - 3) * 100
    items: list[Command | Query] = [
        PlaceOrder(ts=ts, participant_id=who, market="BTC-KZT", side=side, qty=100_000, price=price)
    ]
    if n % 10 == 0:
        items.append(BalancesQuery(who))
    return items


def make_batch(n: int, gateway_id: str = "g1") -> CommandBatch:
    return CommandBatch(gateway_id, n, batch_items(n))


async def reset_streams(log: CommandLog) -> None:
    """Delete the streams and the lease bucket, then create them empty."""
    for stream in (COMMANDS_STREAM, REPORTS_STREAM, f"KV_{LEASE_BUCKET}"):
        with contextlib.suppress(Exception):  # absent
            await log.js.delete_stream(stream)
    await log.ensure_streams()


@dataclass
class ReplicaProcess:
    replica_id: str
    process: subprocess.Popen[str]
    events: list[dict[str, Any]] = field(default_factory=list)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                self.events.append(json.loads(line))

    def event(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == name]

    def stop(self, timeout: float = 15.0) -> dict[str, Any]:
        """SIGTERM (after SIGCONT, in case); its ``stopped`` event."""
        self.process.send_signal(signal.SIGCONT)
        self.process.terminate()
        self.process.wait(timeout=timeout)
        time.sleep(0.05)
        stopped = self.event("stopped")
        assert stopped, f"{self.replica_id} did not stop cleanly: {self.events}"
        return stopped[-1]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait()


def start_replica(
    replica_id: str, servers: list[str], data_dir: Path, lease: float = 1.5
) -> ReplicaProcess:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cluster.replica",
            "--servers",
            ",".join(servers),
            "--replica-id",
            replica_id,
            "--data-dir",
            str(data_dir),
            "--lease",
            str(lease),
            "--snapshot-every",
            "100",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    replica = ReplicaProcess(replica_id, process)
    threading.Thread(target=replica._read, daemon=True).start()
    return replica


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class ReportWatcher:
    """Reads the report stream and notes when each report arrived."""

    def __init__(self, log: CommandLog) -> None:
        self.arrived: dict[int, float] = {}
        self.task = asyncio.create_task(self._run(log))

    async def _run(self, log: CommandLog) -> None:
        try:
            async for report in log.reports(1):
                self.arrived[report.stream_seq] = time.monotonic()
        except Exception:  # the connection closed at the end of a test
            pass

    def pause(self, moment: float, seq: int) -> float:
        """From ``moment`` to the first report of a batch after ``seq``."""
        return min(t for s, t in self.arrived.items() if s > seq) - moment

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def read_all(log: CommandLog, count: int, stream: str) -> list[Any]:
    """The first ``count`` messages of a stream, decoded."""
    found: list[Any] = []
    source = log.commands(1) if stream == COMMANDS_STREAM else log.reports(1)
    async for item in source:
        found.append(item)
        if len(found) == count:
            break
    await source.aclose()
    return found


async def check_against_replay(log: CommandLog) -> str:
    """Every command batch has exactly one report batch, at its position, equal to what a
    single-process replay of the command stream gives; the replay's state digest."""
    commands = await log.last_seq(COMMANDS_STREAM)
    assert await log.last_seq(REPORTS_STREAM) == commands
    batches = await read_all(log, commands, COMMANDS_STREAM)
    reports: list[ReportBatch] = await read_all(log, commands, REPORTS_STREAM)
    exchange = build_exchange(ServeOptions())
    for (seq, batch), report in zip(batches, reports, strict=True):
        expected = execute_batch(exchange, seq, batch)
        assert report.stream_seq == seq
        assert encoder.encode(report) == encoder.encode(expected), f"report {seq} differs"
    return digest(exchange)


@dataclass
class GatewayProcess:
    """``alatau serve --cluster ...`` as a subprocess; ``url`` once it listens."""

    gateway_id: str
    process: subprocess.Popen[str]
    port: int
    lines: list[str] = field(default_factory=list)
    listening: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if "listening on ws://" in line:
                self.listening.set()

    def wait_listening(self, timeout: float = 60.0) -> None:
        if not self.listening.wait(timeout):
            raise AssertionError(f"{self.gateway_id} did not start: {''.join(self.lines)}")

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_gateway(gateway_id: str, servers: list[str]) -> GatewayProcess:
    from gateway.cluster.nodes import free_port

    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.app.cli",
            "serve",
            "--cluster",
            ",".join(servers),
            "--gateway-id",
            gateway_id,
            "--port",
            str(port),
            "--http-port",
            "0",
            "--ephemeral",
            "--quiet",
            "--admin-key",
            "test-admin-key",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    gateway = GatewayProcess(gateway_id, process, port)
    threading.Thread(target=gateway._read, daemon=True).start()
    return gateway
