"""Latency percentile charts of gateway benchmark runs, in the HDR-histogram style.

One line per run: latency (ms) against the percentile, on an x axis scaled by 1/(1-p), so
that each "nine" (50 %, 90 %, 99 %, 99.9 %, 99.99 %) gets the same width and the tail, where
runs differ, is as legible as the median.  The data is the ``latency_percentiles`` series
that ``alatau bench gateway --json`` writes (``results.percentile_series``); a report saved
before that series existed is drawn from its p50 / p99 / p99.9 / max.

Two ways to make one:

* ``alatau bench gateway ... --chart run.png [--label NAME]``: the run just measured;
* ``alatau bench chart a.json b.json ... -o runs.png [--label A --label B] [--title T]``:
  saved runs (``alatau bench gateway --json > a.json``) side by side.  A run's label is the
  ``--label`` given in its place, else the one saved with it (``--label`` at the run), else
  its file's name.

matplotlib draws it: an optional extra, ``pip install -e '.[chart]'``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXTRA_HINT = "install the chart extra: pip install -e '.[chart]' (matplotlib)"

TICKS = ((0.5, "50%"), (0.9, "90%"), (0.99, "99%"), (0.999, "99.9%"), (0.9999, "99.99%"))
"""The x axis labels: percentile and text."""

MAX_X = 1e6
"""Where the maximum (p = 1.0, infinitely far right on this axis) is drawn: 99.9999 %, one
step past the last percentile the series can hold (it stops at 1 - 1/n)."""


class ChartError(Exception):
    """A chart cannot be drawn: matplotlib missing, or a report without latencies."""


def x_of(p: float) -> float:
    """The x coordinate of percentile ``p`` (0 <= p <= 1): 1/(1-p), the maximum at MAX_X."""
    return MAX_X if p >= 1.0 else min(MAX_X, 1.0 / (1.0 - p))


def series_of(report: dict[str, Any]) -> tuple[list[float], list[float]]:
    """(percentiles, latencies in ms) of one ``alatau bench gateway --json`` report."""
    series = report.get("latency_percentiles")
    if series and series.get("percentile"):
        return list(series["percentile"]), list(series["ms"])
    points = [(0.5, "p50_ms"), (0.99, "p99_ms"), (0.999, "p999_ms"), (1.0, "max_ms")]
    if not all(key in report for _p, key in points):
        raise ChartError("the report holds no latency percentiles (not a bench gateway report?)")
    return [p for p, _key in points], [float(report[key]) for _p, key in points]


def load_runs(paths: Sequence[Path], labels: Sequence[str] = ()) -> list[tuple[str, Any]]:
    """(label, report) of saved runs; ``labels`` name the first ones, in order."""
    runs = []
    for i, path in enumerate(paths):
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ChartError(f"{path}: {exc}") from exc
        if not isinstance(report, dict):
            raise ChartError(f"{path}: not a bench gateway report (a JSON object)")
        label = labels[i] if i < len(labels) else report.get("label") or path.stem
        runs.append((str(label), report))
    return runs


def _subtitle(report: dict[str, Any]) -> str:
    mode = report.get("mode", "?")
    rate = report.get("offered_rate")
    load = f"{rate:,.0f}/s offered" if rate else mode
    return f"{load}, {report.get('orders_per_sec', 0):,} orders/s, {report.get('date', '')}"


def draw(runs: Sequence[tuple[str, dict[str, Any]]], out: Path, title: str | None = None) -> None:
    """Write the chart of ``runs`` (label, report) to ``out`` (the format from its suffix:
    .png, .svg, .pdf)."""
    if not runs:
        raise ChartError("no runs to draw")
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FixedLocator, NullLocator
    except ImportError as exc:
        raise ChartError(f"matplotlib is not installed: {EXTRA_HINT}") from exc
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    try:
        for label, report in runs:
            percentiles, ms = series_of(report)
            ax.plot(
                [x_of(p) for p in percentiles],
                ms,
                marker=".",
                markersize=3,
                linewidth=1.6,
                label=f"{label} ({_subtitle(report)})",
            )
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator([x_of(p) for p, _text in TICKS] + [MAX_X]))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([text for _p, text in TICKS] + ["max"])
        ax.set_xlim(x_of(0.5) * 0.9, MAX_X * 1.3)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("percentile")
        ax.set_ylabel("round-trip latency (ms)")
        ax.set_title(title or "alatau bench gateway: latency by percentile")
        ax.grid(True, which="major", alpha=0.35)
        ax.legend(loc="upper left", fontsize="small")
        fig.tight_layout()
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out)
    finally:
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """``alatau bench chart``: saved runs' latency percentiles, one chart."""
    argv = sys.argv[1:] if argv is None else argv
    prog = "python -m benchmarks.gateway.chart"
    if argv[:1] == ["--prog"]:  # run by `alatau bench`, which names itself
        prog, argv = argv[1], argv[2:]
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Draw the latency percentiles of saved `alatau bench gateway --json` runs"
        " in one chart (HDR-histogram style: the x axis is log-scaled by 1/(1-p)).",
    )
    parser.add_argument("runs", nargs="+", type=Path, help="JSON reports of bench gateway")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the chart (.png)")
    parser.add_argument(
        "--label", action="append", default=[], help="a run's name, in the order of the files"
    )
    parser.add_argument("--title", help="the chart's title")
    args = parser.parse_args(argv)
    try:
        draw(load_runs(args.runs, args.label), args.output, args.title)
    except ChartError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output} ({len(args.runs)} run{'s' if len(args.runs) > 1 else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
