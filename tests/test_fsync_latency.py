"""The fsync floor benchmark measures what it says: a short run in a temporary directory."""

from pathlib import Path

from benchmarks import fsync_latency


def test_fsync_latency_reports_ordered_percentiles_and_leaves_nothing(tmp_path: Path) -> None:
    report = fsync_latency.measure(tmp_path, size=512, interval_us=2000, seconds=0.2)
    assert report["syncs"] > 10  # one every 2 ms unless a sync took longer
    assert 0 < report["p50_ms"] <= report["p90_ms"] <= report["p99_ms"] <= report["p999_ms"]
    assert report["p999_ms"] <= report["max_ms"]
    assert 0 <= report["over_2ms_percent"] <= 100
    assert 0 <= report["stalled_percent"] <= 100
    longest = report["longest_ms"]
    assert longest == sorted(longest, reverse=True) and longest[0] == round(report["max_ms"], 1)
    assert report["over_10ms"] == sum(1 for x in longest if x > 10) or report["over_10ms"] >= 5
    assert list(tmp_path.iterdir()) == []  # the file and its directory are gone
