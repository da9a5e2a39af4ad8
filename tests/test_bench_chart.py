"""The gateway benchmark's latency percentile series and its HDR-style chart."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.gateway import chart
from benchmarks.gateway.results import percentile_series

ROOT = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _needs_matplotlib() -> None:
    """CI installs the test extra, matplotlib included: there a missing one is a failure."""
    if importlib.util.find_spec("matplotlib") is None:
        if os.environ.get("CI"):
            pytest.fail("matplotlib is missing in CI: the test extra installs it")
        pytest.skip("matplotlib is not installed (pip install -e '.[chart]')")


def test_series_points_are_the_nines_and_the_maximum() -> None:
    """10,000 samples of 1..10,000 us: the median, a point every 0.1 nines as far as
    99.99 % (log10 of the count), then the maximum; each value the nearest-rank percentile."""
    series = percentile_series(list(range(10_000, 0, -1)))
    p, ms = series["percentile"], series["ms"]
    assert series["samples"] == 10_000
    assert p[0] == 0.5 and p[-1] == 1.0 and p == sorted(p)
    assert len(p) == 1 + (40 - 4 + 1) + 1  # median, x = 0.4 .. 4.0 nines, max
    for fraction, expected_us in ((0.5, 5_000), (0.9, 9_000), (0.99, 9_900), (0.999, 9_990)):
        assert ms[p.index(fraction)] == expected_us / 1000
    assert ms[p.index(0.9999)] == 9.999 and ms[-1] == 10.0
    assert ms == sorted(ms)


def test_series_stops_where_the_samples_do() -> None:
    """No point beyond what the count resolves (99 % at 100 samples), and none for no data."""
    series = percentile_series(list(range(1, 101)))
    assert max(p for p in series["percentile"] if p < 1.0) == 0.99
    assert percentile_series([]) == {"samples": 0, "percentile": [], "ms": []}


def test_x_axis_is_one_over_one_minus_p() -> None:
    """50 % sits at 2, each nine a decade further, the maximum at the axis' end."""
    assert chart.x_of(0.5) == 2
    assert chart.x_of(0.9) == pytest.approx(10)
    assert chart.x_of(0.999) == pytest.approx(1000)
    assert chart.x_of(1.0) == chart.MAX_X


def _report(label: str | None, scale: float, with_series: bool = True) -> dict[str, Any]:
    us = [int(scale * (100 + i % 997 + (5_000 if i % 1_000 == 0 else 0))) for i in range(20_000)]
    ordered = sorted(us)
    report: dict[str, Any] = {
        "benchmark": "gateway",
        "mode": "saturation",
        "offered_rate": 0,
        "orders_per_sec": 12_345,
        "date": "2026-12-07 05:00:00 UTC",
        "p50_ms": ordered[10_000] / 1000,
        "p99_ms": ordered[19_800] / 1000,
        "p999_ms": ordered[19_980] / 1000,
        "max_ms": ordered[-1] / 1000,
    }
    if with_series:
        report["latency_percentiles"] = percentile_series(us)
    if label:
        report["label"] = label
    return report


def test_old_reports_are_drawn_from_their_four_percentiles() -> None:
    """A report saved before the series existed gives p50, p99, p99.9 and the maximum."""
    report = _report(None, 1.0, with_series=False)
    assert chart.series_of(report) == (
        [0.5, 0.99, 0.999, 1.0],
        [report["p50_ms"], report["p99_ms"], report["p999_ms"], report["max_ms"]],
    )
    with pytest.raises(chart.ChartError):
        chart.series_of({"benchmark": "engine"})


def test_labels_from_the_command_line_the_report_or_the_file(tmp_path: Path) -> None:
    """--label names runs in order; then a run's saved label; then its file's name."""
    paths = []
    for name, label in (("a", None), ("b", "saved-b"), ("c", None)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(_report(label, 1.0)))
        paths.append(path)
    assert [label for label, _r in chart.load_runs(paths, ["first"])] == ["first", "saved-b", "c"]


def test_chart_of_two_saved_runs_is_written(tmp_path: Path) -> None:
    """`alatau bench chart a.json b.json -o out.png` draws both runs into a PNG."""
    _needs_matplotlib()
    a, b = tmp_path / "before.json", tmp_path / "after.json"
    a.write_text(json.dumps(_report("before", 2.0)))
    b.write_text(json.dumps(_report(None, 1.0, with_series=False)))
    out = tmp_path / "charts" / "runs.png"
    result = subprocess.run(
        [sys.executable, "-m", "gateway.app.cli", "bench", "chart", str(a), str(b), "-o", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "2 runs" in result.stdout
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000


def test_missing_matplotlib_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without matplotlib the chart command exits 2 saying which extra to install."""
    path = tmp_path / "run.json"
    path.write_text(json.dumps(_report("run", 1.0)))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert chart.main([str(path), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "matplotlib is not installed" in err and "pip install -e '.[chart]'" in err
    assert not (tmp_path / "x.png").exists()
