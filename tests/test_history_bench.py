"""The history writer benchmark runs, and its digests catch a different history: the same
flow written in transactions of different sizes must give the same rows and answers."""

from __future__ import annotations

import json
from typing import Any

from benchmarks import history_bench


def test_a_short_run_prints_figures_and_agreeing_digests(capsys: Any) -> None:
    code = history_bench.main(
        [
            "--commands",
            "600",
            "--runs",
            "1",
            "--batch",
            "8",
            "--per-transaction",
            "40,300",
            "--json",
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["digests_agree"]
    for figures in result["writer_us_per_command"].values():
        assert figures["total"] > 0 and figures["decode"] >= 0 and figures["write"] > 0
    assert result["frame_bytes_per_command"] > 50


def test_the_digest_tells_a_different_history(tmp_path: Any) -> None:
    reports = history_bench.flow_reports(300, 7)
    chunks = history_bench.transactions(history_bench.frames_of(reports, 8), 100)
    history_bench.write_once(tmp_path / "a.sqlite", chunks)
    history_bench.write_once(tmp_path / "b.sqlite", chunks[:-1])
    assert history_bench.digests(tmp_path / "a.sqlite") != history_bench.digests(
        tmp_path / "b.sqlite"
    )
