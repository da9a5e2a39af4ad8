"""The order-path benchmark (``benchmarks/order_path.py``) runs and measures what it says:
every order of the flow answered, the mix it claims, no unexpected reject.  No timing is
asserted (the machine is shared; figures are the benchmark's output)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("durability", ["fsync", "off"])
def test_the_order_path_benchmark_answers_every_order(durability: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.order_path",
            "--orders",
            "1600",
            "--warmup",
            "50",
            "--runs",
            "1",
            "--durability",
            durability,
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["orders"] == 1600
    assert sum(result["mix"].values()) == 1600
    assert result["mix"]["place"] > result["mix"]["cancel"] > result["mix"]["cross"] > 0
    # A cancel may race its order's fill (by design); nothing else is refused.
    assert set(result["rejects"]) <= {"UNKNOWN_ORDER"}
    assert result["cpu_us_per_order"] > 0
