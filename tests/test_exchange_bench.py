"""The exchange benchmark's own correctness: a deterministic stream, a stable checksum, the CLI.

No timing is asserted: the machine is shared and timings are the benchmark's output.
"""

import json
import subprocess
import sys
from pathlib import Path

from benchmarks import exchange_bench

ROOT = Path(__file__).resolve().parent.parent
COMMANDS, WARMUP = 600, 300


def test_same_seed_same_checksum():
    """Two fresh venues fed the same seed report the same things and end in the same state."""
    first = exchange_bench.run_once(COMMANDS, WARMUP, seed=7)
    second = exchange_bench.run_once(COMMANDS, WARMUP, seed=7)
    assert first["checksum"] == second["checksum"]
    assert first["state_digest"] == second["state_digest"]
    assert first["mix"] == second["mix"]


def test_another_seed_another_checksum():
    """The checksum depends on the stream: another seed gives another one."""
    first = exchange_bench.run_once(COMMANDS, WARMUP, seed=7)
    other = exchange_bench.run_once(COMMANDS, WARMUP, seed=8)
    assert first["checksum"] != other["checksum"]


def test_the_stream_has_the_hot_path_mix():
    """Passive places, crossing IOCs and cancels are all in the timed part, and orders rest."""
    result = exchange_bench.run_once(COMMANDS, WARMUP, seed=7)
    mix = result["mix"]
    assert sum(mix.values()) == COMMANDS
    assert mix["place_gtc"] > mix["cancel"] > mix["place_ioc"] > 0
    assert 0 < result["open_orders"] <= exchange_bench.MAX_OPEN * len(exchange_bench.PARTICIPANTS)


def test_cli_json():
    """``python -m benchmarks.exchange_bench --json`` prints the figures and a stable checksum."""
    args = ["--commands", str(COMMANDS), "--warmup", str(WARMUP), "--runs", "2"]
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.exchange_bench", *args, "--micro-calls", "64", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(result.stdout)
    assert report["checksum_stable"] is True
    assert report["checksum"] == exchange_bench.run_once(COMMANDS, WARMUP, seed=7)["checksum"]
    assert report["commands_per_s"] > 0 and report["p99_us"] >= report["p50_us"] > 0
    assert set(report["micro_ns_per_call"]) >= {"Market.parse_price", "Market.format_qty"}
