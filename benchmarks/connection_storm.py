"""A storm of connections against ``alatau serve``: the server's RSS before, at the peak
and after they have all closed (not timed; memory only).

    python benchmarks/connection_storm.py [--connections 3000] [--rounds 3]

Starts ``alatau serve --ephemeral`` in a process of its own (the per-address cap raised to
let the storm in), then per round opens the connections (each subscribes to a book and
pings, so per-connection state exists), closes them all and waits for the server to have
forgotten them.  RSS comes from ``/proc/PID/status`` (Linux).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time

import websockets
from websockets.asyncio.client import ClientConnection


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def one(url: str, opened: list[ClientConnection], go: asyncio.Event) -> None:
    ws = await websockets.connect(url, compression=None, max_size=2**24)
    await ws.send(
        json.dumps({"id": 1, "method": "subscribe", "params": {"channels": ["book:BTC-KZT"]}})
    )
    await ws.recv()
    await ws.recv()
    opened.append(ws)
    await go.wait()
    await ws.close()


async def storm(url: str, count: int, pid: int) -> int:
    opened: list[ClientConnection] = []
    go = asyncio.Event()
    tasks = []
    for start in range(0, count, 200):
        tasks += [
            asyncio.create_task(one(url, opened, go)) for _ in range(start, min(count, start + 200))
        ]
        while len(opened) < len(tasks) and not any(t.done() for t in tasks):
            await asyncio.sleep(0.01)
    failed = [t for t in tasks if t.done() and t.exception() is not None]
    if failed:
        raise failed[0].exception()  # type: ignore[misc]
    peak = rss_kib(pid)
    go.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--settle",
        type=float,
        default=3.0,
        help="seconds to wait after a round (the server trims at most every 30 s)",
    )
    args = parser.parse_args()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.app.cli",
            "serve",
            "--ephemeral",
            "--port",
            "0",
            "--quiet",
            "--max-connections-per-address",
            str(args.connections + 10),
        ],
        stdout=subprocess.PIPE,
        stderr=None,
        text=True,
    )
    try:
        line = ""
        while "listening on" not in line:
            line = server.stdout.readline()  # type: ignore[union-attr]
            if not line:
                raise SystemExit("the server did not start")
        url = line.split("listening on ")[1].strip()
        time.sleep(0.5)
        print(f"server pid {server.pid}: RSS at start {rss_kib(server.pid) / 1024:.1f} MiB")
        for round_ in range(1, args.rounds + 1):
            peak = asyncio.run(storm(url, args.connections, server.pid))
            time.sleep(args.settle)
            after = rss_kib(server.pid)
            print(
                f"round {round_}: {args.connections} connections, RSS at peak "
                f"{peak / 1024:.1f} MiB, {args.settle:g} s after all closed {after / 1024:.1f} MiB"
            )
    finally:
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
