"""`alatau demo` runs the exchange with bots and prints live trades and book changes."""

import subprocess
import sys


def test_demo_prints_trades_and_book_and_exits_cleanly():
    """A 4-second demo shows trades and top-of-book lines and stops with status 0."""
    result = subprocess.run(
        [sys.executable, "-m", "gateway.app.cli", "demo", "--duration", "4"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("trade #") for line in lines), result.stdout
    assert any(line.startswith("book  seq") for line in lines), result.stdout
    assert "a bot failed" not in result.stdout
