"""The gateway benchmark's own correctness: a tiny end-to-end run through the CLI.

No timing is asserted: the machine is shared and timings are the benchmark's output, not its
contract.  What is checked is that the run is sound: every request was acknowledged, no
unexpected error code came back, the subscriber saw every book update in seq order, and no
process was left behind.
"""

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.gateway import cli, flow
from gateway.wire.protocol import MAX_BATCH

ROOT = Path(__file__).resolve().parent.parent
COUNT = 2_000
CLI_ARGS = (
    "bench",
    "gateway",
    "--quick",
    "--json",
    "--count",
    str(COUNT),
    "--clients",
    "2",
    "--subscribers",
    "1",
    "--durability",
    "buffered",
)


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of the running processes that contain ``text`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                found.append(cmdline)
    return found


def run_bench_json(args: list[str]) -> dict:
    """Run `alatau <args>` (a `--json` bench) in a fresh process; it must exit 0."""
    result = subprocess.run(
        [sys.executable, "-m", "gateway.app.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def test_cli_bench_gateway_quick_json():
    """`alatau bench gateway --quick --json` acknowledges every request and reports soundly."""
    report = run_bench_json(CLI_ARGS)
    for key in (
        "orders_per_sec",
        "p50_ms",
        "p99_ms",
        "p999_ms",
        "clients",
        "offered_rate",
        "durability",
        "subscribers",
        "errors",
        "machine",
        "date",
        "command",
    ):
        assert key in report, key
    assert report["clients"] == 2 and report["subscribers"] == 1
    assert report["offered_rate"] == 0 and report["durability"] == "buffered"
    assert report["sent"] == COUNT
    assert report["acknowledged"] == COUNT and report["lost"] == 0
    assert report["ok"] + report["business_rejects"] == COUNT and report["ok"] > 0
    assert set(report["errors"]) <= flow.EXPECTED_REJECTS, report["errors"]
    assert report["unexpected_errors"] == 0 and not report["connection_errors"]
    assert report["orders_per_sec"] > 0
    assert 0 < report["p50_ms"] <= report["p99_ms"] <= report["p999_ms"]
    kinds = report["kinds"]
    assert kinds["place"]["ok"] > 0 and kinds["cancel"]["ok"] > 0 and kinds["cross"]["ok"] > 0
    assert report["max_open_per_client"] <= cli.DEFAULT_MAX_OPEN
    fanout = report["fanout"]
    assert fanout["subscribers"] == 1
    assert fanout["seq_contiguous"] and fanout["seq_gaps"] == 0 and fanout["closed_count"] == 0
    assert fanout["book_updates"] > 0 and fanout["messages_per_subscriber"] > 0
    assert report["server"]["exit_status"] == 0, report["server"]
    # Nothing is left behind: not the server, not a worker, not the data directory.
    server = report["server"]
    assert _processes_mentioning(server["url"] + '"') == []
    assert _processes_mentioning(server["data_dir"]) == []
    assert not Path(server["data_dir"]).exists()


def test_cli_bench_gateway_batch_quick_json():
    """`--batch 10`: places go 10 at a time as order.batch, cancels as order.cancel_batch;
    every order is acknowledged (counted per order, its request's response being its
    acknowledgement), the flow's mix is kept and the subscriber sees every book update."""
    report = run_bench_json([*CLI_ARGS, "--batch", "10"])
    assert report["batch"] == 10 and report["clients"] == 2
    assert report["sent"] == COUNT and report["acknowledged"] == COUNT and report["lost"] == 0
    assert report["ok"] + report["business_rejects"] == COUNT and report["ok"] > 0
    assert set(report["errors"]) <= flow.EXPECTED_REJECTS, report["errors"]
    assert report["unexpected_errors"] == 0 and not report["connection_errors"]
    by_method = report["requests_sent_by_method"]
    assert set(by_method) == {"order.batch", "order.cancel_batch"} and all(by_method.values())
    requests = report["requests_acknowledged"]
    assert requests == report["requests_sent"] and COUNT / 10 <= requests <= COUNT / 10 + 4
    assert report["orders_per_sec"] > report["requests_per_sec"] > 0
    assert 0 < report["p50_ms"] <= report["p99_ms"] <= report["p999_ms"]
    kinds = report["kinds"]
    assert kinds["place"]["ok"] > 0 and kinds["cancel"]["ok"] > 0 and kinds["cross"]["ok"] > 0
    assert 0.25 < kinds["cancel"]["sent"] / COUNT < 0.45
    assert report["crossing_orders_filled"] > 0
    server = report["server"]
    assert server["cpu_us_per_request"] > server["cpu_us_per_order"] > 0
    fanout = report["fanout"]
    assert fanout["seq_contiguous"] and fanout["seq_gaps"] == 0 and fanout["closed_count"] == 0
    assert server["exit_status"] == 0, server


def test_cli_bench_gateway_cluster_quick_json():
    """`--cluster --quick`: three NATS nodes, two replicas and a gateway started, the bots'
    every order acknowledged through the replicated log, everything stopped afterwards."""
    report = run_bench_json(["bench", "gateway", "--cluster", "--quick", "--json"])
    assert report["cluster"] is True
    assert report["sent"] == cli.QUICK_COUNT
    assert report["acknowledged"] == cli.QUICK_COUNT and report["lost"] == 0
    assert report["ok"] + report["business_rejects"] == cli.QUICK_COUNT and report["ok"] > 0
    assert set(report["errors"]) <= flow.EXPECTED_REJECTS, report["errors"]
    assert report["unexpected_errors"] == 0 and not report["connection_errors"]
    assert 0 < report["p50_ms"] <= report["p99_ms"]
    server = report["server"]
    assert server["exit_status"] == 0, server
    assert server["cpu_percent"] > 0 and server["replicas_cpu_percent"] > 0
    assert server["nats_cpu_percent"] > 0
    assert server["cluster_cpu_percent"] >= server["cpu_percent"]
    # Nothing is left behind: no gateway, replica or NATS node, no data directory.
    assert _processes_mentioning(server["data_dir"]) == []
    assert not Path(server["data_dir"]).exists()


def test_batch_option_is_checked():
    """--batch is 1 to the server's limit of orders per batch."""
    assert flow.MAX_BATCH == MAX_BATCH
    for bad in ("0", str(MAX_BATCH + 1)):
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.gateway_bench", "--batch", bad],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode != 0 and "--batch must be 1 to 50" in result.stderr


def test_flow_prices_and_quantities():
    """The flow's prices straddle the reference on the tick; quantities clear the minimums."""
    market = {
        "tick": "0.01",
        "lot": "0.01",
        "min_qty": "1",
        "min_notional": "1000.00",
        "reference_price": "515.00",
    }
    prices, qtys = flow.flow_prices(market)
    assert len(prices) == 2 * flow.SPREAD_TICKS + 1
    assert prices[flow.SPREAD_TICKS] == "515.00"
    assert prices[0] == "514.50" and prices[-1] == "515.50"
    from decimal import Decimal

    lowest = Decimal(prices[0])
    assert all(Decimal(q) * lowest >= 1000 for q in qtys)
    assert all(Decimal(q) % Decimal("0.01") == 0 for q in qtys)


def test_cli_bench_gateway_floors_answer_every_order_unmatched():
    """`--floor transport` and `--floor session`: the real server's set-up and logins, then
    every place and cancel answered at once and accepted (nothing matched, so no IOC trades
    and no business rejects), and the report says it measured a floor."""
    for level in ("transport", "session"):
        args = [a for a in CLI_ARGS if a not in ("--subscribers", "1")]
        report = run_bench_json([*args, "--floor", level])
        assert report["floor"] == level
        assert report["acknowledged"] == COUNT and report["lost"] == 0
        assert report["ok"] == COUNT and report["business_rejects"] == 0, report["errors"]
        assert report["crossing_orders_filled"] == 0
        assert report["server"]["exit_status"] == 0, report["server"]
