"""Profiling the server during the measured phase with py-spy (``--profile``), and
where the event loop thread's samples fall: by layer (``LAYERS``), by innermost frame and by
frame anywhere on the stack.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.gateway.report import progress


def _py_spy() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


def start_py_spy(pid: int, path: str, native: bool) -> subprocess.Popen[bytes] | None:
    exe = _py_spy()
    if exe is None:
        progress("py-spy is not installed (pip install py-spy): no profile")
        return None
    command = [exe, "record", "--pid", str(pid), "--format", "raw", "--output", path]
    # Blocking sampling (the server is paused for each sample): non-blocking reads tear stacks.
    command += ["--threads", "--rate", "200"] + (["--native"] if native else [])
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


LAYERS = (
    ("Exchange.execute", "engine: Exchange.execute (checks, ledger, book, reports)"),
    ("Session.on_frame", "request intake: decode, session checks, venue.submit"),
    ("Venue.publish", "market data: stream messages and fan-out"),
    ("Journal.commit", "journal: commit (hand-off to the fsync thread)"),
    ("Journal.append", "journal: append (encode the command)"),
    ("Venue._execute_batch", "answers: command build, views, encode, session.send"),
    ("WebsocketsConnection.write_loop", "websocket write: frames, transport.write"),
    ("handle_connection", "websocket read: frames, recv"),
    ("Connection.data_received", "websocket read: frames, recv"),
)
"""Where the event loop thread's time goes, by the first of these functions on a sample's
stack (searched in this order); "other" is mostly the event loop itself (uvloop: polling,
socket calls, task steps)."""


def profile_summary(path: str, top: int = 20) -> dict[str, Any]:
    """Where the event loop thread's samples fall: by innermost frame (self) and by frame
    anywhere on the stack (total), as shares of that thread's samples, from py-spy's collapsed
    stacks (idle samples are not recorded); and each thread's share of all the samples (the
    journal's fsync thread shows up there: blocked in a syscall is not idle to py-spy)."""
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    samples = 0
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return {"error": f"no profile written to {path}"}
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        thread = "?"
        if frames[0].startswith("thread ("):
            thread = frames.pop(0).partition(": ")[2] or "?"
        threads[thread] += n
        if thread != "MainThread" or not frames:
            continue
        names = [_frame_name(f) for f in frames]
        samples += n
        self_counts[names[-1]] += n
        for name in set(names):
            total_counts[name] += n
        functions = {name.partition(" (")[0] for name in names}
        layer = next((label for marker, label in LAYERS if marker in functions), "other")
        layers[layer] += n

    def share(counter: Counter[str], of: int) -> list[list[Any]]:
        return [[name, round(100 * n / of, 1)] for name, n in counter.most_common(top)]

    every = sum(threads.values())
    # The frames on every stack (the runner, the CLI, the module) say nothing: leave them out.
    root = max(total_counts.values(), default=0)
    for name in [name for name, n in total_counts.items() if n == root]:
        del total_counts[name]
    return {
        "file": path,
        "samples": samples,
        "threads_percent": share(threads, every) if every else [],
        "layers_percent": share(layers, samples) if samples else [],
        "self_percent": share(self_counts, samples) if samples else [],
        "total_percent": share(total_counts, samples) if samples else [],
    }


def _frame_name(frame: str) -> str:
    """``function (path/to/module.py:123)`` -> ``function (module.py)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    parts = where.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else where
    return f"{name} ({short})" if where else name
