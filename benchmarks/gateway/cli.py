"""The command line (``alatau bench gateway``, ``python -m benchmarks.gateway_bench``):
the options and their defaults, one run or the ``--fanout`` pair, the report printed, the
exit status; and the worker processes' entry (``--worker``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from benchmarks.common import machine_info
from benchmarks.gateway import chart
from benchmarks.gateway.bots import bots_worker
from benchmarks.gateway.driver import run_once
from benchmarks.gateway.flow import MAX_BATCH
from benchmarks.gateway.report import format_report, progress
from benchmarks.gateway.results import healthy
from benchmarks.gateway.subscribers import subscribers_worker

DEFAULT_MARKET = "USDT-KZT"

DEFAULT_CLIENTS = 8

DEFAULT_WINDOW = 16

DEFAULT_COUNT = 100_000

DEFAULT_DURATION = 20.0

DEFAULT_WARMUP = 200

DEFAULT_MAX_OPEN = 500

DEFAULT_FANOUT_SUBSCRIBERS = 100

QUICK_COUNT = 2_000

QUICK_WARMUP = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options (shared by ``alatau bench gateway`` and ``-m``)."""
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: {QUICK_COUNT:,} orders, {QUICK_WARMUP} warm-up per connection",
    )
    parser.add_argument(
        "--clients", type=int, default=DEFAULT_CLIENTS, help="bot connections (default 8)"
    )
    parser.add_argument(
        "--client-procs", type=int, default=1, help="processes the bots are spread over (default 1)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="total offered orders/s (operations: places and cancels), open loop; each"
        " connection sends one request every clients * batch / rate s (default 0: saturation)",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=DEFAULT_WINDOW,
        help=f"saturation: requests in flight per connection (default {DEFAULT_WINDOW})",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=1,
        help=f"orders per request, 1 to {MAX_BATCH}: K > 1 sends the flow's places K at a time"
        " as order.batch and its cancels K at a time as order.cancel_batch (default 1:"
        " order.place, order.cancel)",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        help="measured orders (operations: places and cancels) in total"
        f" (default {DEFAULT_COUNT:,}; --quick {QUICK_COUNT:,})",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=DEFAULT_DURATION,
        help=f"stop sending after this many seconds (default {DEFAULT_DURATION:g})",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help=f"unmeasured orders (operations) per connection first (default {DEFAULT_WARMUP})",
    )
    parser.add_argument(
        "--durability",
        choices=("fsync", "buffered", "off"),
        default="fsync",
        help="the server's --durability (default fsync)",
    )
    parser.add_argument(
        "--transport",
        choices=("picows", "websockets"),
        default=None,
        help="the server's --transport (default: the server's default)",
    )
    parser.add_argument(
        "--engine-process",
        action="store_true",
        help="the server's --engine-process (matching and journal in a second process)",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="run against a local cluster instead of one alatau serve: three NATS nodes"
        " (sync_interval always), two engine replicas and one gateway, all on 127.0.0.1"
        " (--durability, --transport and --engine-process do not apply)",
    )
    parser.add_argument(
        "--floor",
        choices=("transport", "session"),
        default=None,
        help="measure a floor, not the venue: the server answers places and cancels at once,"
        " right after reading the frame (transport) or after the session's intake (session);"
        " nothing is matched or journaled (benchmarks/gateway/floor.py)",
    )
    parser.add_argument("--market", default=DEFAULT_MARKET, help="the market traded")
    parser.add_argument(
        "--max-open",
        type=int,
        default=DEFAULT_MAX_OPEN,
        help=f"open orders per bot before it only cancels (default {DEFAULT_MAX_OPEN})",
    )
    parser.add_argument(
        "--subscribers", type=int, default=None, help="read-only book+trades connections"
    )
    parser.add_argument(
        "--sub-procs", type=int, default=1, help="processes the subscribers are spread over"
    )
    parser.add_argument(
        "--fanout",
        action="store_true",
        help="run twice, with no subscriber and with --subscribers"
        f" (default {DEFAULT_FANOUT_SUBSCRIBERS}), and report the ratio",
    )
    parser.add_argument("--seed", type=int, default=1, help="the bots' flow seed")
    parser.add_argument(
        "--profile", metavar="FILE", help="sample the server with py-spy into FILE (raw stacks)"
    )
    parser.add_argument(
        "--profile-native", action="store_true", help="py-spy --native (Cython frames too)"
    )
    parser.add_argument(
        "--chart",
        metavar="FILE",
        type=Path,
        help="also draw the run's latency percentiles into FILE (.png; needs the chart extra;"
        " saved runs together: alatau bench chart)",
    )
    parser.add_argument("--label", help="the run's name in charts (saved in --json too)")
    # Internal: the worker processes.
    parser.add_argument("--worker", choices=("bots", "subscribers"), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    count = args.count if args.count is not None else (QUICK_COUNT if args.quick else DEFAULT_COUNT)
    warmup = (
        args.warmup if args.warmup is not None else (QUICK_WARMUP if args.quick else DEFAULT_WARMUP)
    )
    if args.clients < 1 or count < 1 or args.window < 1 or args.duration <= 0:
        raise SystemExit("--clients, --count, --window and --duration must be positive")
    if args.rate < 0 or warmup < 0 or args.max_open < 1:
        raise SystemExit("--rate and --warmup must not be negative, --max-open must be positive")
    if not 1 <= args.batch <= MAX_BATCH:
        raise SystemExit(f"--batch must be 1 to {MAX_BATCH}")
    if args.cluster and (args.engine_process or args.profile or args.floor):
        raise SystemExit("--cluster does not go with --engine-process, --profile or --floor")
    return {
        "clients": args.clients,
        "client_procs": args.client_procs,
        "rate": args.rate,
        "window": args.window,
        "batch": args.batch,
        "count": count,
        "duration": args.duration,
        "warmup": warmup,
        "durability": args.durability,
        "transport": args.transport,
        "engine_process": args.engine_process,
        "floor": args.floor,
        "cluster": args.cluster,
        "market": args.market,
        "max_open": args.max_open,
        "sub_procs": args.sub_procs,
        "seed": args.seed,
        "profile_native": args.profile_native,
    }


async def _main(args: argparse.Namespace, command: str) -> dict[str, Any]:
    options = _options(args)
    # SIGTERM cancels the run like Ctrl-C does, so the finally clauses stop the server.
    task = asyncio.current_task()
    if task is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    subscribers = args.subscribers
    if subscribers is None:
        subscribers = DEFAULT_FANOUT_SUBSCRIBERS if args.fanout else 0
    started = time.time()
    if args.fanout:
        baseline = await run_once(options, 0, None)
        progress(f"without subscribers: {baseline['orders_per_sec']:,} req/s")
        report = await run_once(options, subscribers, args.profile)
        report["baseline"] = baseline
        report["fanout_ratio"] = (
            round(report["orders_per_sec"] / baseline["orders_per_sec"], 3)
            if baseline["orders_per_sec"]
            else None
        )
    else:
        report = await run_once(options, subscribers, args.profile)
    report["machine"] = machine_info(("websockets", "picows", "uvloop", "msgspec"))
    report["code"] = _code_version()
    report["command"] = command
    report["elapsed_s"] = round(time.time() - started, 1)
    return report


def _code_version() -> str | None:
    """The checked-out commit, and whether the server's code differs from it (read-only git)."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "engine", "gateway", ":!gateway/app/cli.py"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return None
    return f"{head}{' (engine/gateway modified)' if dirty else ''}" if head else None


def _worker(kind: str, spec_json: str) -> int:
    """Entry point of a worker process: prints ``ready``, later writes its results to the
    spec's ``result_path`` (JSON) and prints ``done``."""
    import uvloop

    spec = json.loads(spec_json)
    main = bots_worker if kind == "bots" else subscribers_worker
    result = uvloop.run(main(spec))
    Path(spec["result_path"]).write_bytes(msgspec.json.encode(result))
    print("done", flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run what the parsed options ask for; returns the exit status."""
    if args.worker:
        return _worker(args.worker, args.spec)
    import shlex

    import uvloop

    argv = sys.argv[1:]
    if argv[:1] == ["--prog"]:  # run by `alatau bench gateway` (see main)
        argv = argv[2:]
    command = shlex.join(["alatau", "bench", "gateway", *argv])
    if args.chart and importlib.util.find_spec("matplotlib") is None:  # before, not after, a run
        print(f"--chart: matplotlib is not installed: {chart.EXTRA_HINT}", file=sys.stderr)
        return 2
    try:
        report = uvloop.run(_main(args, command))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: the server and the workers were stopped", file=sys.stderr)
        return 130
    if args.label:
        report["label"] = args.label
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    if args.chart:
        try:
            chart.draw([(args.label or "this run", report)], args.chart)
        except chart.ChartError as exc:
            print(f"--chart: {exc}", file=sys.stderr)
            return 2
        progress(f"latency chart: {args.chart}")
    return 0 if healthy(report) else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    prog = "python -m benchmarks.gateway_bench"
    if argv[:1] == ["--prog"]:  # run by `alatau bench`, which names itself
        prog, argv = argv[1], argv[2:]
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Benchmark the exchange end to end: bots over websockets on loopback.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
