"""How long this machine's disk takes to make a journal append durable: the floor under any
round trip that waits for ``fdatasync``.

    python -m benchmarks.fsync_latency                       # 20 s, 3 KB appends, 1 ms apart
    python -m benchmarks.fsync_latency --size 1500 --interval-us 500 --dir /path/on/the/disk

A venue that acknowledges an order only once it is durable (``--durability fsync``, the
default) cannot answer faster than the disk makes the order's batch durable: each round
trip includes at least one ``fdatasync`` of the journal, and often the rest of the one
already running when the order arrived.  So the p99 of ``write`` + ``fdatasync`` measured
here, on the file system of the data directory, bounds the p99 round trip from below,
whatever the gateway's speed.  This does what the journal does at a steady rate (append a
batch's bytes to a file opened ``O_APPEND``, then ``fdatasync``), one batch every
``--interval-us``, and prints the percentiles of the durable time of each batch.

The rare long syncs matter more than the percentiles say: a sync that takes 50 ms holds
back every order that arrives while it runs, since none can be durable before it ends.
``stalled_percent`` is the share of the run's wall time spent inside a sync past its first
``BOUND_MS`` (2 ms): an order arriving at a random moment waits longer than that for the
sync under way with this probability, before its own sync even starts.  When it is over
1 %, no server fsyncing each batch on this disk has a p99 round trip under 2 ms, at any
rate; when it is a fraction of 1 %, a run of a few seconds meets or misses such a p99 by
the luck of whether one of the long syncs falls inside it (``longest_ms`` lists them).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import machine_info

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
BOUND_MS = 2.0  # the round trip the p99 bar allows


def measure(directory: Path, size: int, interval_us: int, seconds: float) -> dict[str, Any]:
    """Append ``size`` bytes and ``fdatasync``, every ``interval_us`` (or back to back if
    the last one took longer), for ``seconds``; the durable times' percentiles in ms."""
    payload = os.urandom(size)
    with tempfile.TemporaryDirectory(dir=directory, prefix="fsync-latency-") as tmp:
        path = Path(tmp) / "segment"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            latencies: list[int] = []
            start = time.perf_counter_ns()
            finished = start
            end = start + int(seconds * 1e9)
            due = start
            while True:
                now = time.perf_counter_ns()
                if now >= end:
                    break
                if now < due:
                    time.sleep((due - now) / 1e9)
                began = time.perf_counter_ns()
                os.write(fd, payload)
                os.fdatasync(fd)
                finished = time.perf_counter_ns()
                latencies.append(finished - began)
                due += interval_us * 1000
        finally:
            os.close(fd)
    bound_ns = int(BOUND_MS * 1e6)
    stalled_ns = sum(x - bound_ns for x in latencies if x > bound_ns)
    wall_ns = max(finished - start, 1)
    latencies.sort()
    count = len(latencies)
    report: dict[str, Any] = {
        "benchmark": "fsync_latency",
        "directory": str(directory),
        "size": size,
        "interval_us": interval_us,
        "seconds": seconds,
        "syncs": count,
        "syncs_per_sec": round(count / seconds),
        "max_ms": round(latencies[-1] / 1e6, 3),
    }
    for p in PERCENTILES:
        index = min(count - 1, int(count * p / 100))
        report[f"p{p:g}_ms".replace(".", "")] = round(latencies[index] / 1e6, 3)
    report["over_2ms_percent"] = round(100 * sum(1 for x in latencies if x > bound_ns) / count, 2)
    report["over_10ms"] = sum(1 for x in latencies if x > 10_000_000)
    report["stalled_percent"] = round(100 * stalled_ns / wall_ns, 3)
    report["longest_ms"] = [round(x / 1e6, 1) for x in latencies[-5:][::-1]]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path.cwd(), help="where (default: here)")
    parser.add_argument("--size", type=int, default=3000, help="bytes per append (default 3000)")
    parser.add_argument(
        "--interval-us", type=int, default=1000, help="between appends (default 1000)"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="how long (default 20)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    report = measure(args.dir, args.size, args.interval_us, args.seconds)
    report["machine"] = machine_info()
    report["date"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(
        f"write + fdatasync of {report['size']:,} bytes every {report['interval_us']} us in"
        f" {report['directory']}: {report['syncs']:,} syncs ({report['syncs_per_sec']:,}/s)"
    )
    print(
        f"p50 {report['p50_ms']:.3f} ms  p90 {report['p90_ms']:.3f} ms  p99 {report['p99_ms']:.3f}"
        f" ms  p99.9 {report['p999_ms']:.3f} ms  max {report['max_ms']:.3f} ms;"
        f" {report['over_2ms_percent']:.2f} % over 2 ms"
    )
    print(
        f"{report['over_10ms']} syncs over 10 ms (longest: {report['longest_ms']} ms); the time"
        f" inside a sync past its first {BOUND_MS:g} ms: {report['stalled_percent']:.3f} % of"
        " the run (an order arriving then waits longer than that before its own sync starts)"
    )
    print(f"{report['date']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
