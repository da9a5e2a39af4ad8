"""What an operator sees when ``alatau serve`` cannot start: one clear line on stderr and a
non-zero exit within seconds, never a traceback or a hang; and options that make no sense
are refused before anything starts."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SERVE = [sys.executable, "-m", "gateway.app.cli", "serve", "--quiet"]


def run_serve(*args: str, timeout: float = 30) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run([*SERVE, *args], capture_output=True, text=True, timeout=timeout)
    return done, time.monotonic() - started


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


@pytest.mark.parametrize("transport", ["picows", "websockets"])
def test_a_busy_port_ends_in_one_line_within_seconds(tmp_path: Path, transport: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done, seconds = run_serve(
            "--port", str(port), "--data-dir", str(tmp_path / "data"), "--transport", transport
        )
    assert done.returncode == 1
    assert seconds < 10
    assert "Traceback" not in done.stderr
    line = last_line(done.stderr)
    assert line.startswith(f"alatau: cannot start: cannot listen on 127.0.0.1:{port}: ")
    assert "address already in use" in line
    assert "listening" not in done.stdout


def test_a_data_directory_in_use_ends_in_one_line(tmp_path: Path) -> None:
    """Another server holds the directory: after the short wait for a server that is still
    writing its final snapshot, one line names the holder."""
    data = tmp_path / "data"
    data.mkdir()
    fd = os.open(data / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"4242\n")
        done, seconds = run_serve("--port", "0", "--data-dir", str(data))
    finally:
        os.close(fd)
    assert done.returncode == 1
    assert seconds < 20
    assert "Traceback" not in done.stderr
    line = last_line(done.stderr)
    assert line.startswith(f"alatau: cannot start: data dir {data}: ")
    assert "4242" in line


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--rate", "0", "above 0"),
        ("--rate", "-5", "above 0"),
        ("--participant-rate", "nan", "above 0"),
        ("--port", "70000", "at most 65535"),
        ("--snapshot-every", "0", "at least 1"),
        ("--rate", "fast", "is not a float"),
    ],
)
def test_options_that_make_no_sense_are_refused(option: str, value: str, says: str) -> None:
    done, _ = run_serve(option, value, "--ephemeral", timeout=20)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    line = last_line(done.stderr)
    assert line.startswith(f"alatau serve: error: argument {option}: {value}") or (
        line.startswith(f"alatau serve: error: argument {option}: '{value}'")
    )
    assert says in line
