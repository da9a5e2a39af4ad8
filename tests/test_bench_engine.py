"""The engine benchmark's own correctness: the standard flow, its checksum, the CLI.

No timing is asserted anywhere: the machine is shared and timings are the benchmark's
output, not its contract.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import flow
from engine import OrderBook, ReferenceBook
from engine.batch import CANCEL, COMMAND_WIDTH, PLACE, decode_events

ROOT = Path(__file__).resolve().parent.parent
OPS = 20_000
CLI_ARGS = ("bench", "engine", "--json", "--ops", str(OPS), "--runs", "1")


@pytest.fixture(scope="module")
def small_flow():
    return flow.generate(flow.DEFAULT_SEED, OPS)


def test_flow_is_deterministic(small_flow):
    """The same seed gives the same commands; another seed gives others."""
    commands, stats = small_flow
    again, again_stats = flow.generate(flow.DEFAULT_SEED, OPS)
    assert commands == again and stats == again_stats
    other, _ = flow.generate(flow.DEFAULT_SEED + 1, OPS)
    assert other != commands


def test_flow_shape(small_flow):
    """Commands are well-formed places and cancels; the mix and the book are as specified."""
    commands, stats = small_flow
    assert len(commands) == OPS * COMMAND_WIDTH
    ops = commands[::COMMAND_WIDTH]
    assert set(ops) <= {PLACE, CANCEL}
    assert stats["counts"]["cancel"] == ops.count(CANCEL)
    assert sum(stats["counts"].values()) == OPS
    mix = stats["steady_mix"]
    assert 0.50 <= mix["passive"] <= 0.60
    assert 0.30 <= mix["cancel"] <= 0.40
    assert 0.08 <= mix["aggressive"] <= 0.12
    assert 4_000 <= stats["live_mean"] <= 6_000
    assert 3_000 <= stats["live_final"] <= 7_000
    assert stats["bid_levels_final"] >= 40 and stats["ask_levels_final"] >= 40
    assert stats["trades"] > 0
    for i in range(0, len(commands), COMMAND_WIDTH):
        if commands[i] == PLACE:
            qty, price = commands[i + 5], commands[i + 4]
            assert qty % flow.LOT == 0 and flow.LOT <= qty <= flow.MAX_LOTS * flow.LOT
            assert price % flow.TICK == 0 and price > 0
            assert 1 <= commands[i + 2] <= 100  # owner
            assert tuple(commands[i + 6 : i + 10]) == (0, 0, 0, 0)  # limit GTC, stp none


def test_both_books_agree_per_call_and_batch(small_flow):
    """Reference per call, Cython per call and Cython batch give one checksum."""
    commands, stats = small_flow
    reference = ReferenceBook()
    expected = flow.replay_per_call(reference, commands)
    reference.check_integrity()
    assert flow.replay_per_call(OrderBook(), commands) == expected
    book = OrderBook()
    assert flow.replay_batch(book, commands) == expected
    book.check_integrity()
    assert flow.replay_batch(OrderBook(), commands, chunk=7) == expected
    assert len(reference) == stats["live_final"]


def test_record_tally_matches_decoded_events(small_flow):
    """The batch-record tally counts exactly the Trade events the records decode to."""
    commands, stats = small_flow
    records, _offsets = OrderBook().execute_batch(commands)
    from_records = flow.TradeTally()
    from_records.add_records(records)
    from_events = flow.TradeTally()
    from_events.add_events(decode_events(records))
    assert from_records.trades == stats["trades"] > 0
    assert (from_records.trades, from_records.qty, from_records.notional) == (
        from_events.trades,
        from_events.qty,
        from_events.notional,
    )


def test_checksum_covers_the_book():
    """The checksum changes with any of its inputs."""
    base = flow.flow_checksum(3, 30, 900, [(1, 2, 0, 100, 10)])
    assert base != flow.flow_checksum(3, 30, 901, [(1, 2, 0, 100, 10)])
    assert base != flow.flow_checksum(3, 30, 900, [(1, 2, 0, 100, 11)])
    assert base != flow.flow_checksum(3, 30, 900, [])


def test_flow_cache_round_trip(tmp_path, monkeypatch):
    """A cached flow loads back identical, with its stats."""
    monkeypatch.setattr(flow, "CACHE_DIR", tmp_path)
    first = flow.load_flow(7, 3_000)
    assert list(tmp_path.iterdir())
    second = flow.load_flow(7, 3_000)
    assert first == second


def test_cli_bench_engine_json():
    """`alatau bench engine --json` runs all four modes and their checksums agree."""
    result = subprocess.run(
        [sys.executable, "-m", "gateway.app.cli", *CLI_ARGS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for key in (
        "ops_per_sec",
        "batch_ops_per_sec",
        "plain_ops_per_sec",
        "reference_ops_per_sec",
        "ratio",
        "batch_ratio",
        "reference_ratio",
        "batch_reference_ratio",
        "p50_us",
        "p99_us",
        "p999_us",
        "checksum",
        "plain_checksum",
        "reference_checksum",
        "batch_checksum",
        "ops",
        "runs",
    ):
        assert key in report, key
    assert report["ops"] == OPS and report["runs"] == 1
    assert report["checksum"] == report["reference_checksum"] == report["batch_checksum"]
    assert report["plain_checksum"] == report["checksum"]
    assert set(report["modes"]) == {"plain", "reference", "cython", "cython-batch"}
    assert report["checksums_agree"] is True
