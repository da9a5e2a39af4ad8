"""The replicated command log's cost: append latency one at a time (p50, p99) and
pipelined appends per second, on a local 3-node NATS JetStream cluster (R3, file storage).

    python -m benchmarks.cluster_log [--sync always|default] [--count N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from engine.commands import PlaceOrder
from engine.types import Side
from gateway.cluster.log import CommandBatch, CommandLog
from gateway.cluster.nodes import LocalCluster


def make_batch(n: int) -> CommandBatch:
    """One stamped order, as a gateway's batch of one."""
    side = Side.BUY if n % 2 else Side.SELL
    order = PlaceOrder(
        ts=1_780_000_000_000 + n,
        participant_id="bob",
        market="BTC-KZT",
        side=side,
        qty=100_000,
        price=4_500_000_000 + (n % 7 - 3) * 100,
    )
    return CommandBatch("bench", n, [order])


async def measure(urls: list[str], count: int, window: int) -> None:
    log = await CommandLog.connect(urls)
    await log.ensure_streams()
    batches = [make_batch(n) for n in range(3, count + 3)]
    latencies = []
    for i, batch in enumerate(batches):
        start = time.perf_counter()
        await log.append(CommandBatch("one", i, batch.items))
        latencies.append(time.perf_counter() - start)
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    print(f"one at a time: {count} appends, p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    start = time.perf_counter()
    for first in range(0, count * 4, window):
        await log.append_many(
            [
                CommandBatch("many", i, batches[i % count].items)
                for i in range(first, first + window)
            ]
        )
    elapsed = time.perf_counter() - start
    print(f"pipelined ({window} in flight): {count * 4} appends, {count * 4 / elapsed:,.0f}/s")
    await log.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sync", default="always", help="nats sync_interval, or 'default'")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--window", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        cluster = LocalCluster(
            Path(directory), sync_interval=None if args.sync == "default" else args.sync
        )
        cluster.start()
        try:
            print(f"3 nodes, R3 file storage, sync_interval {args.sync}; one order per batch")
            asyncio.run(measure(cluster.urls, args.count, args.window))
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
