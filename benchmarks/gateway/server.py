"""The server under test: ``alatau serve`` in its own process (``Server``: started on
127.0.0.1, port 0, in a fresh temporary directory, limits out of the way; always stopped,
SIGTERM then SIGKILL), and the CPU accounting the report's per-order costs rest on (the
server's, its children's, the machine's, from /proc).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.gateway.client import STARTUP_TIMEOUT

HOST = "127.0.0.1"

STOP_TIMEOUT = 10.0
"""Seconds the server gets to exit after SIGTERM before it is killed."""


def _process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (all its threads) so far, from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (the server's engine process), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def server_cpu_s(pid: int) -> tuple[float, float] | None:
    """(CPU seconds of the server and its children, of its children alone) so far: with
    ``--engine-process`` the engine is a child, and a snapshot is a short-lived forked
    child (counted once reaped, in the parent's cutime/cstime)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
    children = sum(_process_cpu_s(child) or 0.0 for child in _children(pid))
    return own + children, children


def machine_cpu() -> tuple[int, int] | None:
    """(busy, total) jiffies of all the machine's CPUs so far, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def die_with_parent() -> None:
    """In a child before exec: get SIGTERM if the driver dies, even by SIGKILL (Linux), so no
    server or worker outlives the bench."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Server:
    """``alatau serve`` in its own process, in a fresh temporary directory."""

    def __init__(
        self,
        durability: str,
        transport: str | None,
        engine_process: bool,
        *,
        floor: str | None = None,
    ) -> None:
        self.durability = durability
        self.floor = floor  # a floor level of benchmarks.gateway.floor instead of the venue
        self.transport = transport
        self.engine_process = engine_process
        self.admin_key = secrets.token_hex(16)
        self.tmp = Path(tempfile.mkdtemp(prefix="alatau-bench-"))
        self.log_path = self.tmp / "server.log"
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def command(self) -> list[str]:
        """``alatau serve`` with the limits out of the way and a fresh data directory."""
        options = {
            "host": HOST,
            "port": "0",
            "http-port": "0",
            "admin-key": self.admin_key,
            "rate": "1e9",
            "participant-rate": "1e9",
            "durability": self.durability,
            "data-dir": str(self.tmp / "data"),
        }
        if self.transport:
            options["transport"] = self.transport
        args = [f"--{name}={value}" for name, value in options.items()]
        if self.engine_process:
            args.append("--engine-process")
        program = ["benchmarks.gateway.floor", self.floor] if self.floor else ["gateway.app.cli"]
        return [sys.executable, "-m", *program, "serve", "--quiet", *args]

    async def start(self) -> None:
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.tmp,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                preexec_fn=die_with_parent,
            )
        loop = asyncio.get_running_loop()
        stdout = self.process.stdout
        assert stdout is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            line = await asyncio.wait_for(
                loop.run_in_executor(None, stdout.readline), deadline - time.monotonic()
            )
            if not line:
                break
            if line.startswith("alatau: listening on "):
                self.url = line.split()[-1]
                return
        raise RuntimeError(f"the server did not start:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def log_problems(self) -> list[str]:
        """Warnings, errors and tracebacks the server logged."""
        try:
            text = self.log_path.read_text()
        except OSError:
            return []
        keys = ("WARNING", "ERROR", "CRITICAL", "Traceback", "Exception")
        return [line for line in text.splitlines() if any(k in line for k in keys)]

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; the exit status (None: killed)."""
        process = self.process
        if process is None:
            return None
        status = process.poll()
        if status is None:
            process.send_signal(signal.SIGTERM)
            try:
                status = process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                status = None
        if process.stdout is not None:
            process.stdout.close()
        return status

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
