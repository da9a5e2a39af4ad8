"""How the driver and its worker processes talk: a worker is ``python -m
benchmarks.gateway_bench --worker KIND --spec JSON``; it says ``ready``, is told ``go`` (and
subscribers ``stop``) on its stdin (``stdin_lines``, the worker's side), and says ``done``
once its results are in the spec's ``result_path`` (``Worker``, the driver's side).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sys
import threading
from pathlib import Path
from typing import Any

from benchmarks.gateway.server import die_with_parent


def stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str]:
    """The driver's commands, one line each; ``""`` at end of input (the driver is gone).
    Read in a daemon thread, so a pending read never holds up the worker's exit."""
    queue: asyncio.Queue[str] = asyncio.Queue()

    def pump() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line.strip())
        loop.call_soon_threadsafe(queue.put_nowait, "")

    threading.Thread(target=pump, name="stdin", daemon=True).start()
    return queue


class Worker:
    """A worker subprocess: it says ``ready``; it is told ``go`` (and subscribers ``stop``);
    it says ``done`` once its results are in ``spec["result_path"]``."""

    def __init__(self, process: asyncio.subprocess.Process, name: str, result_path: str) -> None:
        self.process = process
        self.name = name
        self.result_path = result_path

    @classmethod
    async def start(cls, kind: str, spec: dict[str, Any], name: str, tmp: Path) -> Worker:
        spec = {**spec, "result_path": str(tmp / f"{kind}-{secrets.token_hex(4)}.json")}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.gateway_bench",
            "--worker",
            kind,
            "--spec",
            json.dumps(spec),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            preexec_fn=die_with_parent,
        )
        return cls(process, name, spec["result_path"])

    async def line(self, timeout: float) -> str:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            await self.process.wait()
            raise RuntimeError(f"{self.name} exited with status {self.process.returncode}")
        return line.decode().strip()

    def tell(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")

    async def result(self, timeout: float) -> dict[str, Any]:
        said = await self.line(timeout)
        if said != "done":
            raise RuntimeError(f"{self.name} said {said!r}")
        await asyncio.wait_for(self.process.wait(), timeout)
        result: dict[str, Any] = json.loads(Path(self.result_path).read_bytes())
        return result

    def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
