"""The engine benchmark: the standard flow through each book, every measurement in a fresh process.

Run it as ``alatau bench engine`` (or ``python -m benchmarks.engine_bench``).  Four modes are
measured in the same invocation, interleaved run by run so that a noisy neighbour hurts them
alike:

``plain``
    ``benchmarks.plain_book.PlainBook``: the spec's baseline, a plain price-time book on
    sortedcontainers as a Python developer would write it first (fills as tuples, no event
    objects, no L2 updates).  Every ratio is reported against it.
``reference``
    ``engine.ReferenceBook``, the differential tests' oracle: plain Python on
    sortedcontainers too, but building every event object and carrying every feature.  It
    is the second column of ratios.
``cython``
    ``engine.OrderBook`` (the compiled core), one call per command.
``cython-batch``
    ``OrderBook.execute_batch`` fed ``CHUNK`` commands at a time through memoryview slices of
    the flow.  Chunking matters: the whole flow as one batch ran at about a third of the
    chunked speed here (1.5M against 4-5M commands/s), its event buffer growing to ~190 MB
    by reallocation and page faults, where a 1024-command chunk's records stay in cache.

Each worker process loads the flow (generation is never timed; it is cached under
``benchmarks/.cache/``), then:

1. **throughput**: a fresh book, the whole flow, wall clock.  Every command's events are
   consumed by the checksum tally (per call: a result can hold a ``Trade`` only when it has
   more than two events; plain: every non-empty list of fills; batch: the TRADE records of
   each chunk's event array);
2. **latency**: another fresh book, the whole flow again with ``time.perf_counter_ns`` around
   each call (batch mode: each chunk's time divided by its size, so its "latency" is a mean
   per command within a chunk, not a single command's);
3. peak memory (``ru_maxrss``) and the checksum of the results (``benchmarks.flow``).

Figures are medians over ``--runs`` runs.  The garbage collector stays on, as a user of
either book would have it; only the harness's own objects (the decoded flow) are frozen out
of its passes with ``gc.freeze()``.  ``--growth`` measures instead how the cost changes with
the number of resting orders (1k, 100k, 1M) and with the length of a price level's queue
(10,000 orders in one queue against the same orders in 100 queues of 100).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
import time
from array import array
from datetime import UTC, datetime
from typing import Any

from benchmarks import common
from benchmarks.common import percentile

MODES = ("plain", "reference", "cython", "cython-batch")
BASELINE = "plain"
"""The mode every ratio divides by (the performance spec's baseline)."""
PER_CALL_MODES = ("plain", "reference", "cython")
CHUNK = 1024
"""Commands per ``execute_batch`` call in the batch mode."""
DEFAULT_RUNS = 5
QUICK_OPS = 100_000
QUICK_RUNS = 3

GROWTH_SIZES = ((1_000, 50), (100_000, 500), (1_000_000, 1_000))
"""Growth cases: (resting orders pre-loaded, ticks a side they are spread over)."""
GROWTH_OPS = 100_000
"""Mixed commands timed per growth case (and as many again for the latency pass)."""
GROWTH_RUNS = 3
QUEUE_TOTAL = 10_000
"""Growth, one long level: asks queued in the book for every queue case."""
QUEUE_LENGTHS = (100, 10_000)
"""Growth, one long level: orders per price level.  The same QUEUE_TOTAL orders sit either
in 100 queues of 100 (the yardstick) or in ONE queue of 10,000, so the book's size and
memory are the same and only the queue's length differs."""
QUEUE_ROUNDS = 3
"""Growth, one long level: fresh books per process (latencies pooled over the rounds)."""
QUEUE_EXTRA_RUNS = 2
"""Growth, one long level: runs beyond ``--runs`` (these cases are short and noisy)."""
QUEUE_LOTS = 10
"""Growth: lots per queued order; a matching order takes three of them."""


# -- small helpers ------------------------------------------------------------------------------


def _latency_summary(ns: list[int] | list[float]) -> dict[str, float]:
    """p50, p99 and p99.9 in microseconds of per-command times in nanoseconds."""
    ordered = sorted(ns)
    return {
        "p50_us": round(percentile(ordered, 0.50) / 1000, 3),
        "p99_us": round(percentile(ordered, 0.99) / 1000, 3),
        "p999_us": round(percentile(ordered, 0.999) / 1000, 3),
    }


def _maxrss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _timer_overhead_ns() -> int:
    """Median cost of one back-to-back ``perf_counter_ns`` pair (included in each latency)."""
    now = time.perf_counter_ns
    samples = []
    for _ in range(10_001):
        t0 = now()
        samples.append(now() - t0)
    return int(statistics.median(samples))


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, Python and OS: printed with every result."""
    return common.machine_info()


# -- the measured loops (run inside workers) ------------------------------------------------------


def _new_book(mode: str) -> Any:
    if mode == "plain":
        from benchmarks.plain_book import PlainBook

        return PlainBook()
    from engine import OrderBook, ReferenceBook

    return ReferenceBook() if mode == "reference" else OrderBook()


def _preload(mode: str, book: Any, commands: memoryview) -> None:
    """Untimed setup: run ``commands`` on ``book`` (in batches where the book has them)."""
    if not len(commands):
        return
    if mode in ("plain", "reference"):
        from benchmarks.flow import per_call_ops

        place, cancel = book.place, book.cancel
        for op in per_call_ops(commands):
            if op.__class__ is tuple:
                place(*op)
            else:
                cancel(op)
    else:
        from engine.batch import COMMAND_WIDTH

        view = memoryview(commands)
        step = CHUNK * COMMAND_WIDTH
        for start in range(0, len(commands), step):
            book.execute_batch(view[start : start + step])


def _throughput_per_call(book: Any, ops: list[Any], tally: Any) -> float:
    """Seconds to run ``ops`` one call each, every result handed to the tally if it can hold
    a trade (a resting place or a cancel yields exactly two events)."""
    place, cancel, add = book.place, book.cancel, tally.add_events
    t0 = time.perf_counter()
    for op in ops:
        events = place(*op) if op.__class__ is tuple else cancel(op)
        if len(events) > 2:
            add(events)
    return time.perf_counter() - t0


def _throughput_plain(book: Any, ops: list[Any], tally: Any) -> float:
    """Seconds to run ``ops`` on the plain book one call each, every non-empty list of fills
    handed to the tally."""
    place, cancel, add = book.place, book.cancel, tally.add_fills
    t0 = time.perf_counter()
    for op in ops:
        if op.__class__ is tuple:
            fills = place(*op)
            if fills:
                add(fills)
        else:
            cancel(op)
    return time.perf_counter() - t0


def _throughput_batch(book: Any, commands: memoryview, tally: Any) -> float:
    """Seconds to run ``commands`` through ``execute_batch`` in chunks, every chunk's event
    records handed to the tally."""
    from engine.batch import COMMAND_WIDTH

    execute, add = book.execute_batch, tally.add_records
    view = memoryview(commands)
    step = CHUNK * COMMAND_WIDTH
    t0 = time.perf_counter()
    for start in range(0, len(commands), step):
        events, _offsets = execute(view[start : start + step])
        add(events)
    return time.perf_counter() - t0


def _latency_per_call(book: Any, ops: list[Any], out: array[int]) -> array[int]:
    """Nanoseconds per call into ``out`` (the result is dropped inside the timed span)."""
    now = time.perf_counter_ns
    place, cancel = book.place, book.cancel
    for i, op in enumerate(ops):
        if op.__class__ is tuple:
            t0 = now()
            place(*op)
            t1 = now()
        else:
            t0 = now()
            cancel(op)
            t1 = now()
        out[i] = t1 - t0
    return out


def _latency_batch(book: Any, commands: memoryview) -> tuple[list[float], int]:
    """Per chunk: its time divided by its number of commands, in nanoseconds; and the total
    nanoseconds spent in ``execute_batch`` (no event consumption at all)."""
    from engine.batch import COMMAND_WIDTH

    execute = book.execute_batch
    view = memoryview(commands)
    step = CHUNK * COMMAND_WIDTH
    now = time.perf_counter_ns
    out = []
    total = 0
    for start in range(0, len(commands), step):
        chunk = view[start : start + step]
        t0 = now()
        execute(chunk)
        t1 = now()
        total += t1 - t0
        out.append((t1 - t0) / (len(chunk) // COMMAND_WIDTH))
    return out, total


def _measure(
    mode: str, commands: array[int], timed: slice, latency: slice, fresh_latency: bool
) -> dict[str, Any]:
    """Throughput and latency of one mode on ``commands``.

    The commands before ``timed.start`` are a pre-load (untimed).  With ``fresh_latency`` the
    latency pass runs on a new book (pre-loaded again); otherwise it continues on the book the
    throughput pass left.
    """
    from benchmarks.flow import TradeTally, per_call_ops, tally_checksum
    from engine.batch import COMMAND_WIDTH

    w = COMMAND_WIDTH
    view = memoryview(commands)  # slices of it share the flow's memory: no copies
    prefix = view[: timed.start * w]
    timed_cmds = view[timed.start * w : timed.stop * w]
    latency_cmds = view[latency.start * w : latency.stop * w]
    per_call = mode in PER_CALL_MODES
    timed_ops = latency_ops = None
    if per_call:  # decoded before timing; the standard flow's two passes share one decoding
        timed_ops = per_call_ops(timed_cmds)
        latency_ops = timed_ops if latency == timed else per_call_ops(latency_cmds)
    # The harness's own objects (a million argument tuples) move to the permanent generation,
    # so the collector's full passes walk only what the book allocates.
    # The latency samples' array is allocated up front too: it is not the book's memory.
    samples = array("q", bytes(8 * (latency.stop - latency.start))) if per_call else None
    gc.collect()
    gc.freeze()
    loaded_mib = _maxrss_mib()

    book = _new_book(mode)
    _preload(mode, book, prefix)
    tally = TradeTally()
    if mode == "plain":
        seconds = _throughput_plain(book, timed_ops, tally)  # type: ignore[arg-type]
    elif per_call:
        seconds = _throughput_per_call(book, timed_ops, tally)  # type: ignore[arg-type]
    else:
        seconds = _throughput_batch(book, timed_cmds, tally)
    checksum = tally_checksum(tally, book)
    n = timed.stop - timed.start
    result: dict[str, Any] = {
        "mode": mode,
        "ops": n,
        "seconds": round(seconds, 4),
        "ops_per_sec": round(n / seconds),
        "checksum": checksum,
        "trades": tally.trades,
        "live_after": len(book),
    }

    if fresh_latency:
        book = _new_book(mode)
        _preload(mode, book, prefix)
    if per_call:
        ns: Any = _latency_per_call(book, latency_ops, samples)  # type: ignore[arg-type]
    else:
        ns, total_ns = _latency_batch(book, latency_cmds)
        # The same commands again, without the tally: what the engine alone sustains.
        result["execute_ops_per_sec"] = round((latency.stop - latency.start) / (total_ns / 1e9))
    result["loaded_mib"] = loaded_mib
    result["peak_mib"] = _maxrss_mib()  # before the percentiles' sort allocates its own
    result.update(_latency_summary(ns))
    result["latency_samples"] = len(ns)
    result["timer_overhead_ns"] = _timer_overhead_ns()
    return result


def _queue_book(mode: str, length: int) -> Any:
    """QUEUE_TOTAL asks of QUEUE_LOTS lots in queues of ``length`` at consecutive prices from
    one tick above the starting mid, placed round-robin over the levels (ids ascending along
    each queue)."""
    from benchmarks.flow import LOT, START_MID, TICK

    book = _new_book(mode)
    place = book.place
    levels = QUEUE_TOTAL // length
    order_id = 0
    for _position in range(length):
        for level in range(levels):
            order_id += 1
            place(order_id, 1 + order_id % 100, 1, START_MID + (1 + level) * TICK, QUEUE_LOTS * LOT)
    return book


def _queue_case(mode: str, length: int, case: str) -> dict[str, Any]:
    """Long queues: QUEUE_TOTAL asks in queues of ``length`` orders (see ``_queue_book``).

    ``cancel-middle`` cancels the middle half of every queue, in random order;
    ``match-3`` sends buys that each take three orders from the head of the best queue until
    the book is empty; ``sweep`` sends one buy that fills every order in one call.  Each
    round times the calls once with the wall clock (calls/s) and once, on a twin book, call
    by call (percentiles).  Per-call API only.
    """
    from random import Random

    from benchmarks.flow import LOT, START_MID, TICK

    levels = QUEUE_TOTAL // length
    worst = START_MID + levels * TICK
    rng = Random(length)
    now = time.perf_counter_ns
    wall_ns = 0
    lat: list[int] = []
    fills = 0
    for _round in range(QUEUE_ROUNDS):
        timed, twin = _queue_book(mode, length), _queue_book(mode, length)
        if case == "cancel-middle":
            # Order ids are placed round-robin: queue position p of level v has id
            # p * levels + v + 1.
            ids = [
                position * levels + level + 1
                for level in range(levels)
                for position in range(length // 4, length // 4 + length // 2)
            ]
            rng.shuffle(ids)
            cancel = timed.cancel
            t0 = now()
            for order_id in ids:
                cancel(order_id)
            wall_ns += now() - t0
            cancel = twin.cancel
            for order_id in ids:
                t0 = now()
                cancel(order_id)
                lat.append(now() - t0)
        elif case == "match-3":
            count = -(-QUEUE_TOTAL // 3)
            first = QUEUE_TOTAL + 1
            qty = 3 * QUEUE_LOTS * LOT
            place = timed.place
            t0 = now()
            for k in range(count):
                place(first + k, 101, 0, worst, qty)
            wall_ns += now() - t0
            place = twin.place
            for k in range(count):
                t0 = now()
                place(first + k, 101, 0, worst, qty)
                lat.append(now() - t0)
            fills += QUEUE_TOTAL
        elif case == "sweep":
            t0 = now()
            events = timed.place(QUEUE_TOTAL + 1, 101, 0, worst, QUEUE_TOTAL * QUEUE_LOTS * LOT)
            elapsed = now() - t0
            wall_ns += elapsed
            lat.append(elapsed)
            fills += QUEUE_TOTAL
            expected = 1 + 3 * QUEUE_TOTAL + levels  # accepted, fills, one level event each
            if len(timed) or len(events) != expected:
                raise AssertionError(f"sweep left {len(timed)} orders, {len(events)} events")
        else:
            raise ValueError(f"unknown queue case {case!r}")
        if case != "sweep" and len(timed) != len(twin):
            raise AssertionError("the twin books diverged")
    calls = len(lat)
    return {
        "mode": mode,
        "queue": length,
        "levels": levels,
        "case": case,
        "rounds": QUEUE_ROUNDS,
        "calls": calls,
        "ops_per_sec": round(calls / (wall_ns / 1e9)) if wall_ns else 0,
        "ns_per_fill": round(wall_ns / fills) if fills else None,
        "timer_overhead_ns": _timer_overhead_ns(),
        **_latency_summary(lat),
    }


def _worker(args: argparse.Namespace) -> int:
    """Entry point of a measuring subprocess: prints one JSON object."""
    from benchmarks import flow
    from engine.batch import COMMAND_WIDTH

    kind, _, param = args.workload.partition(":")
    if kind == "flow":
        commands, _stats = flow.load_flow(args.seed, args.ops)
        n = len(commands) // COMMAND_WIDTH
        result = _measure(args.worker, commands, slice(0, n), slice(0, n), fresh_latency=True)
    elif kind == "growth":
        preload, ticks = (int(x) for x in param.split("x"))
        commands, pre, _stats = flow.load_growth(args.seed, preload, 2 * args.ops, ticks)
        result = _measure(
            args.worker,
            commands,
            slice(pre, pre + args.ops),
            slice(pre + args.ops, pre + 2 * args.ops),
            fresh_latency=False,
        )
        result["preload"] = preload
    elif kind == "queue":
        length, case = param.split(",")
        result = _queue_case(args.worker, int(length), case)
    else:
        raise ValueError(f"unknown workload {args.workload!r}")
    print(json.dumps(result))
    return 0


# -- the driver -------------------------------------------------------------------------------


def _spawn(mode: str, workload: str, seed: int, ops: int) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and return its JSON result."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.engine_bench",
        "--worker",
        mode,
        "--workload",
        workload,
        "--seed",
        str(seed),
        "--ops",
        str(ops),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {mode} {workload} failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the runs of one mode; the checksum if every run agrees."""
    checksums = {r["checksum"] for r in runs if "checksum" in r}
    rates = [r["ops_per_sec"] for r in runs]
    out: dict[str, Any] = {
        "ops_per_sec": round(statistics.median(rates)),
        "ops_per_sec_min": min(rates),
        "ops_per_sec_max": max(rates),
        "runs": len(runs),
    }
    if "execute_ops_per_sec" in runs[0]:
        out["execute_ops_per_sec"] = round(
            statistics.median(r["execute_ops_per_sec"] for r in runs)
        )
    for key in ("p50_us", "p99_us", "p999_us", "peak_mib", "loaded_mib", "timer_overhead_ns"):
        if key in runs[0]:
            out[key] = round(statistics.median(r[key] for r in runs), 3)
    if "ns_per_fill" in runs[0] and runs[0]["ns_per_fill"] is not None:
        out["ns_per_fill"] = round(statistics.median(r["ns_per_fill"] for r in runs))
    if checksums:
        out["checksum"] = checksums.pop() if len(checksums) == 1 else "RUNS DISAGREE"
    return out


def run_standard(seed: int, ops: int, runs: int) -> dict[str, Any]:
    """The standard-flow benchmark: every mode, ``runs`` times, interleaved."""
    from benchmarks import flow

    started = time.time()
    _progress(f"loading or generating the standard flow ({ops:,} ops, seed {seed}) ...")
    commands, stats = flow.load_flow(seed, ops)
    del commands
    per_mode: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for run in range(runs):
        for mode in MODES:
            result = _spawn(mode, "flow", seed, ops)
            per_mode[mode].append(result)
            _progress(
                f"run {run + 1}/{runs} {mode:<13} {result['ops_per_sec']:>12,} ops/s"
                f"  p50 {result['p50_us']:.3f} us  p99 {result['p99_us']:.3f} us"
            )
    modes = {mode: _summarize(results) for mode, results in per_mode.items()}
    plain, ref = modes["plain"], modes["reference"]
    cy, batch = modes["cython"], modes["cython-batch"]
    agree = (
        plain["checksum"]
        == ref["checksum"]
        == cy["checksum"]
        == batch["checksum"]
        != "RUNS DISAGREE"
    )
    return {
        "benchmark": "engine",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "machine": machine_info(),
        "seed": seed,
        "ops": ops,
        "runs": runs,
        "chunk": CHUNK,
        "flow_version": flow.FLOW_VERSION,
        "ops_per_sec": cy["ops_per_sec"],
        "batch_ops_per_sec": batch["ops_per_sec"],
        "plain_ops_per_sec": plain["ops_per_sec"],
        "reference_ops_per_sec": ref["ops_per_sec"],
        # The headline ratios divide by the plain book (the spec's baseline) ...
        "ratio": round(cy["ops_per_sec"] / plain["ops_per_sec"], 2),
        "batch_ratio": round(batch["ops_per_sec"] / plain["ops_per_sec"], 2),
        # ... and these by the reference book (the oracle), as a second column.
        "reference_ratio": round(cy["ops_per_sec"] / ref["ops_per_sec"], 2),
        "batch_reference_ratio": round(batch["ops_per_sec"] / ref["ops_per_sec"], 2),
        "batch_execute_ops_per_sec": batch["execute_ops_per_sec"],
        "p50_us": cy["p50_us"],
        "p99_us": cy["p99_us"],
        "p999_us": cy["p999_us"],
        "checksum": cy["checksum"],
        "plain_checksum": plain["checksum"],
        "reference_checksum": ref["checksum"],
        "batch_checksum": batch["checksum"],
        "checksums_agree": agree,
        "modes": modes,
        "flow": stats,
        "elapsed_s": round(time.time() - started, 1),
    }


def run_growth(seed: int, ops: int, runs: int) -> dict[str, Any]:
    """Cost as the book grows: mixed commands at 1k/100k/1M resting orders, and 10,000
    orders in one price level's queue against the same in 100 queues of 100."""
    from benchmarks import flow

    started = time.time()
    growth = []
    for preload, ticks in GROWTH_SIZES:
        _progress(f"loading or generating the growth workload: {preload:,} resting orders ...")
        _commands, _pre, stats = flow.load_growth(seed, preload, 2 * ops, ticks)
        del _commands
        per_mode: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
        for run in range(runs):
            for mode in MODES:
                result = _spawn(mode, f"growth:{preload}x{ticks}", seed, ops)
                per_mode[mode].append(result)
                _progress(
                    f"{preload:>9,} resting  run {run + 1}/{runs} {mode:<13}"
                    f" {result['ops_per_sec']:>12,} ops/s"
                )
        modes = {mode: _summarize(results) for mode, results in per_mode.items()}
        checksums = {m["checksum"] for m in modes.values()} - {"RUNS DISAGREE"}
        agree = len(checksums) == 1 and all(m["checksum"] in checksums for m in modes.values())
        growth.append(
            {
                "resting": preload,
                "ticks_per_side": ticks,
                "ops": ops,
                "live_mean": stats["live_mean"],
                "levels_per_side_mean": round(
                    (stats["bid_levels_mean"] + stats["ask_levels_mean"]) / 2
                ),
                "steady_mix": stats["steady_mix"],
                "checksums_agree": agree,
                "modes": modes,
            }
        )
    # The long-queue cases are short: they get QUEUE_EXTRA_RUNS more runs, interleaved
    # (every case, length and mode once per run) so a noisy spell hits them alike.
    cases = [
        (case, length, mode)
        for case in ("cancel-middle", "match-3", "sweep")
        for length in QUEUE_LENGTHS
        for mode in ("reference", "cython")
    ]
    queue_results: dict[tuple[str, int, str], list[dict[str, Any]]] = {c: [] for c in cases}
    queue_runs = runs + QUEUE_EXTRA_RUNS
    for run in range(queue_runs):
        for case, length, mode in cases:
            result = _spawn(mode, f"queue:{length},{case}", seed, ops)
            queue_results[case, length, mode].append(result)
            _progress(
                f"queue {length:>6,} {case:<13} run {run + 1}/{queue_runs} {mode:<9}"
                f" {result['ops_per_sec']:>12,} calls/s  p50 {result['p50_us']:.3f} us"
            )
    queue = []
    for (case, length, mode), results in queue_results.items():
        summary = _summarize(results)
        summary.update(
            mode=mode,
            queue=length,
            levels=results[0]["levels"],
            case=case,
            calls=results[0]["calls"],
        )
        queue.append(summary)
    return {
        "benchmark": "engine-growth",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "machine": machine_info(),
        "seed": seed,
        "ops": ops,
        "runs": runs,
        "growth": growth,
        "queue": queue,
        "queue_runs": queue_runs,
        "elapsed_s": round(time.time() - started, 1),
    }


# -- printing ---------------------------------------------------------------------------------


def _machine_line(report: dict[str, Any]) -> str:
    m = report["machine"]
    return (
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['python']},"
        f" {m['os']}; {report['date']}"
    )


def format_standard(report: dict[str, Any]) -> str:
    """The standard-flow report as a readable table."""
    base = report["modes"][BASELINE]["ops_per_sec"]
    ref = report["modes"]["reference"]["ops_per_sec"]
    batch_exec = report["batch_execute_ops_per_sec"]
    lines = [
        f"Alatau engine benchmark: standard flow, {report['ops']:,} ops (seed {report['seed']},"
        f" flow v{report['flow_version']}), median of {report['runs']} runs, each in a fresh"
        " process",
        _machine_line(report),
        "",
        f"{'mode':<13} {'ops/s':>11} {'(min..max)':>21} {'vs plain':>8} {'vs ref':>7}"
        f" {'p50 us':>8} {'p99 us':>8} {'p99.9 us':>9} {'peak MiB':>9} {'+run MiB':>9}  checksum",
    ]
    for mode in MODES:
        m = report["modes"][mode]
        spread = f"({m['ops_per_sec_min']:,}..{m['ops_per_sec_max']:,})"
        lines.append(
            f"{mode:<13} {m['ops_per_sec']:>11,} {spread:>21} {m['ops_per_sec'] / base:>7.2f}x"
            f" {m['ops_per_sec'] / ref:>6.2f}x {m['p50_us']:>8.3f} {m['p99_us']:>8.3f}"
            f" {m['p999_us']:>9.3f}"
            f" {m['peak_mib']:>9.1f} {m['peak_mib'] - m['loaded_mib']:>9.1f}  {m['checksum'][:16]}"
        )
    s = report["flow"]
    mix, steady = s["mix"], s["steady_mix"]
    lines += [
        "",
        f"headline: cython per-call {report['ratio']:.2f}x the plain book,"
        f" cython batch {report['batch_ratio']:.2f}x"
        f" (against the reference book: {report['reference_ratio']:.2f}x and"
        f" {report['batch_reference_ratio']:.2f}x)",
        f"cython-batch without the checksum tally (execute_batch time alone, latency pass):"
        f" {batch_exec:,} ops/s, {batch_exec / base:.2f}x the plain book,"
        f" {batch_exec / ref:.2f}x the reference",
        "plain: benchmarks/plain_book.py, a first-draft sortedcontainers book (fills as"
        " tuples); reference: engine.ReferenceBook (every event an object, every feature)",
        "checksums: "
        + ("all modes agree" if report["checksums_agree"] else "DISAGREE")
        + f" ({report['checksum']})",
        f"latency: per call with perf_counter_ns around each call (timer pair overhead"
        f" ~{report['modes']['cython']['timer_overhead_ns']:.0f} ns included); cython-batch:"
        f" chunk time / {report['chunk']} commands",
        "memory: peak RSS of the worker (the flow, decoded, included); +run = its growth"
        " during the two passes (the book and the events in flight)",
        f"flow: {s['warmup_ops']:,} warm-up places, then passive/cancel/aggressive"
        f" {steady['passive']:.1%}/{steady['cancel']:.1%}/{steady['aggressive']:.1%}"
        f" (whole flow {mix['passive']:.1%}/{mix['cancel']:.1%}/{mix['aggressive']:.1%});"
        f" {s['trades']:,} trades",
        f"book: {s['live_mean']:,.0f} live orders on average ({s['live_final']:,} at the end),"
        f" {s['bid_levels_mean']:.0f} bid / {s['ask_levels_mean']:.0f} ask levels on average",
    ]
    return "\n".join(lines)


def format_growth(report: dict[str, Any]) -> str:
    """The growth report as readable tables."""
    lines = [
        f"Alatau engine benchmark: cost as the book grows (median of {report['runs']} runs,"
        " each in a fresh process)",
        _machine_line(report),
        "",
        f"Growth: {report['ops']:,} mixed commands (the standard mix, cancels holding the size)"
        " on a book pre-loaded with N resting orders",
        f"  (throughput pass; the latency pass continues with the next {report['ops']:,})",
        f"{'resting':>9} {'levels/side':>11} {'mode':<13} {'ops/s':>11} {'vs plain':>8}"
        f" {'vs ref':>7} {'p50 us':>8} {'p99 us':>8} {'p99.9 us':>9} {'peak MiB':>9}",
    ]
    for case in report["growth"]:
        base = case["modes"][BASELINE]["ops_per_sec"]
        ref = case["modes"]["reference"]["ops_per_sec"]
        for mode in MODES:
            m = case["modes"][mode]
            lines.append(
                f"{case['resting']:>9,} {case['levels_per_side_mean']:>11,} {mode:<13}"
                f" {m['ops_per_sec']:>11,} {m['ops_per_sec'] / base:>7.2f}x"
                f" {m['ops_per_sec'] / ref:>6.2f}x {m['p50_us']:>8.3f}"
                f" {m['p99_us']:>8.3f} {m['p999_us']:>9.3f} {m['peak_mib']:>9.1f}"
            )
        lines.append("          checksums " + ("agree" if case["checksums_agree"] else "DISAGREE"))
    lines += [
        "",
        f"Long queues: {QUEUE_TOTAL:,} asks in queues of Q orders (100 levels of 100, or ONE"
        f" level of 10,000); per-call API; median of {report['queue_runs']} runs",
        "  cancel-middle: cancel the middle half of every queue, in random order",
        "  match-3: buys taking 3 orders each until the book is empty",
        "  sweep: one buy filling every order in one call",
        f"{'queue':>7} {'levels':>6} {'case':<14} {'mode':<10} {'calls/s':>11} {'p50 us':>9}"
        f" {'p99 us':>9} {'p99.9 us':>9} {'ns/fill':>8} {'calls':>7}",
    ]
    for q in report["queue"]:
        fill = f"{q['ns_per_fill']:,}" if q.get("ns_per_fill") else "-"
        lines.append(
            f"{q['queue']:>7,} {q['levels']:>6,} {q['case']:<14} {q['mode']:<10}"
            f" {q['ops_per_sec']:>11,}"
            f" {q['p50_us']:>9.3f} {q['p99_us']:>9.3f} {q['p999_us']:>9.3f} {fill:>8}"
            f" {q['calls']:>7,}"
        )
    lines.append(f"\n(total {report['elapsed_s']} s)")
    return "\n".join(lines)


# -- command line -----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options (shared by ``alatau bench engine`` and ``-m``)."""
    from benchmarks.flow import DEFAULT_OPS, DEFAULT_SEED

    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_OPS:,} ops and {QUICK_RUNS} runs"
    )
    parser.add_argument(
        "--ops",
        type=int,
        default=None,
        help=f"commands in the flow (default {DEFAULT_OPS:,}; growth: {GROWTH_OPS:,} per case)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help=f"runs per mode, median reported (default {DEFAULT_RUNS}; growth {GROWTH_RUNS})",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="flow seed")
    parser.add_argument(
        "--growth",
        action="store_true",
        help="cost as the book grows (1k/100k/1M resting orders; 10k orders at one price)",
    )
    # Internal: the measuring subprocess.
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--workload", default="flow", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Run what the parsed options ask for; returns the exit status."""
    if args.worker:
        return _worker(args)
    if args.growth:
        ops = args.ops or (GROWTH_OPS // 10 if args.quick else GROWTH_OPS)
        runs = args.runs or (1 if args.quick else GROWTH_RUNS)
        report = run_growth(args.seed, ops, runs)
        print(json.dumps(report, indent=1) if args.json else format_growth(report))
        return 0 if all(c["checksums_agree"] for c in report["growth"]) else 1
    from benchmarks.flow import DEFAULT_OPS

    ops = args.ops or (QUICK_OPS if args.quick else DEFAULT_OPS)
    runs = args.runs or (QUICK_RUNS if args.quick else DEFAULT_RUNS)
    if ops < 1 or runs < 1:
        raise SystemExit(f"--ops {ops} and --runs {runs} must be positive")
    report = run_standard(args.seed, ops, runs)
    print(json.dumps(report, indent=1) if args.json else format_standard(report))
    return 0 if report["checksums_agree"] else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    prog = "python -m benchmarks.engine_bench"
    if argv[:1] == ["--prog"]:  # run by `alatau bench`, which names itself
        prog, argv = argv[1], argv[2:]
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Benchmark the matching engine on the standard order flow.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
