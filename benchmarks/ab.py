"""Before and after, alternately: ``alatau bench gateway`` run against two source trees in
turn, and their medians compared.

    git worktree add --detach ../before <commit>
    (cd ../before && python setup.py build_ext --inplace)
    python -m benchmarks.ab --before ../before --after . --pairs 10
    python -m benchmarks.ab --before ../before --after . --pairs 3 -- --rate 30000

This machine is shared and noisy: the same build's orders/s moves by a quarter between
runs a minute apart, so one run of each side says little.  Runs alternate (the side that
goes first alternates too), and the summary gives each side's median, range and how many
pairs each won.

Each side runs from its own directory, with only that tree on ``PYTHONPATH``, and the tool
checks, before running anything, that ``engine`` and ``gateway`` import from that tree and
that its compiled extensions are there.  ``python -m`` puts the current directory first on
``sys.path``: a comparison started from one checkout with ``PYTHONPATH`` pointing at the
other imports the same build on both sides (issue 16's fourth pass was misled that way,
``benchmarks/RESULTS.md``).  Everything after ``--`` goes to ``benchmarks.gateway_bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_WHERE = (
    "import engine, gateway, engine._core.book; "
    "print(engine.__file__); print(gateway.__file__); print(engine._core.book.__file__)"
)


class TreeError(Exception):
    """A side cannot be measured as asked: its tree would not be the code that runs."""


@dataclass
class Run:
    """One ``alatau bench gateway --json`` run, the figures the summary compares."""

    side: str
    orders_per_sec: float
    p50_ms: float
    p99_ms: float
    gateway_us_per_order: float | None

    @classmethod
    def from_report(cls, side: str, report: dict[str, Any]) -> Run:
        server = report.get("server") or {}
        rate = report["orders_per_sec"]
        own = None
        if rate and server.get("cpu_percent") is not None:
            own_percent = server["cpu_percent"] - (server.get("children_cpu_percent") or 0)
            own = own_percent * 1e4 / rate
        return cls(side, rate, report["p50_ms"], report["p99_ms"], own)


def tree_env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    return env


def check_tree(tree: Path) -> None:
    """Raise ``TreeError`` unless ``engine`` and ``gateway``, compiled core included, import
    from ``tree`` when run from there."""
    if not (tree / "engine").is_dir() or not (tree / "gateway").is_dir():
        raise TreeError(f"{tree} is not a source tree of this project (no engine/, gateway/)")
    found = subprocess.run(
        [sys.executable, "-c", _WHERE],
        cwd=tree,
        env=tree_env(tree),
        capture_output=True,
        text=True,
    )
    if found.returncode != 0:
        last = (found.stderr.strip().splitlines() or ["?"])[-1]
        raise TreeError(
            f"{tree}: its modules do not import ({last}); build it in place first: "
            f"(cd {tree} && python setup.py build_ext --inplace)"
        )
    root = tree.resolve()
    for path in found.stdout.split():
        if not Path(path).resolve().is_relative_to(root):
            raise TreeError(f"{tree}: {path} would be imported, from outside the tree")


def run_side(side: str, tree: Path, bench_args: list[str]) -> Run:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gateway_bench", "--json", *bench_args],
        cwd=tree,
        env=tree_env(tree),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the {side} run failed:\n{done.stderr[-2000:]}")
    return Run.from_report(side, json.loads(done.stdout))


def summary(runs: list[Run]) -> list[str]:
    """The comparison, as lines: per side the median and range of orders/s, p50, p99 and
    the gateway's CPU per order; how many pairs each side won; the ratio of the medians."""
    lines = []
    by_side = {side: [r for r in runs if r.side == side] for side in ("before", "after")}
    for side, side_runs in by_side.items():
        if not side_runs:
            continue
        rates = [r.orders_per_sec for r in side_runs]
        cpu = [r.gateway_us_per_order for r in side_runs if r.gateway_us_per_order is not None]
        line = (
            f"{side:6}  orders/s median {statistics.median(rates):,.0f} "
            f"({min(rates):,.0f}-{max(rates):,.0f}), "
            f"p50 {statistics.median(r.p50_ms for r in side_runs):.2f} ms, "
            f"p99 {statistics.median(r.p99_ms for r in side_runs):.2f} ms"
        )
        if cpu:
            line += f", gateway {statistics.median(cpu):.1f} µs/order"
        lines.append(line)
    pairs = list(zip(by_side["before"], by_side["after"], strict=False))
    if pairs:
        wins = sum(after.orders_per_sec > before.orders_per_sec for before, after in pairs)
        before_median = statistics.median(r.orders_per_sec for r in by_side["before"])
        after_median = statistics.median(r.orders_per_sec for r in by_side["after"])
        lines.append(
            f"after ahead in {wins} of {len(pairs)} pairs; "
            f"medians after / before = {after_median / before_median:.2f}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    bench_args: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, bench_args = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ab",
        description="alatau bench gateway against two source trees, alternately",
    )
    parser.add_argument("--before", type=Path, required=True, help="the tree measured first")
    parser.add_argument("--after", type=Path, required=True, help="the tree compared with it")
    parser.add_argument("--pairs", type=int, default=5, help="runs of each side (default 5)")
    parser.add_argument("--json", action="store_true", help="print the runs as JSON too")
    args = parser.parse_args(argv)
    trees = {"before": args.before, "after": args.after}
    try:
        for tree in trees.values():
            check_tree(tree)
    except TreeError as exc:
        print(f"benchmarks.ab: {exc}", file=sys.stderr)
        return 2
    runs: list[Run] = []
    for pair in range(args.pairs):
        order = ("before", "after") if pair % 2 == 0 else ("after", "before")
        for side in order:
            run = run_side(side, trees[side], bench_args)
            runs.append(run)
            print(
                f"pair {pair + 1} {side:6} {run.orders_per_sec:>9,.0f} orders/s  "
                f"p50 {run.p50_ms:.2f} ms  p99 {run.p99_ms:.2f} ms",
                flush=True,
            )
    for line in summary(runs):
        print(line)
    if args.json:
        print(json.dumps([run.__dict__ for run in runs]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
