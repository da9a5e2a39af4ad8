"""The bench's text report says when a saturation run measured its own pipeline.

At saturation the bots keep ``clients * window`` requests in flight, so orders/s is that
number over the round trip (Little's law).  When that leaves the machine idle part of the
time, the figure is the pipeline's, not the server's capacity: the report says so, so
nobody reads it as the server's limit (issue 16 measured both: 44,000/s with 16 in flight
per connection, 59,000/s with 128, the machine 71 % and 84 % busy).
"""

from __future__ import annotations

from typing import Any

from benchmarks.gateway.report import WINDOW_BOUND_BELOW, window_bound_note


def _run(**changes: Any) -> dict[str, Any]:
    run: dict[str, Any] = {
        "offered_rate": 0.0,
        "clients": 8,
        "window": 16,
        "machine_busy_percent": 71.6,
        "other_load_cores": 0.04,
        "p50_ms": 2.6,
    }
    run.update(changes)
    return run


def test_an_idle_machine_at_saturation_is_said_to_be_held_by_the_requests_in_flight() -> None:
    note = window_bound_note(_run())
    assert note is not None
    assert "71.6% busy" in note
    assert "128 requests in flight" in note
    assert "8 connections x --window 16" in note
    assert "p50 2.6 ms" in note


def test_a_busy_machine_a_fixed_rate_or_a_disturbed_run_gets_no_note() -> None:
    assert window_bound_note(_run(machine_busy_percent=WINDOW_BOUND_BELOW)) is None
    assert window_bound_note(_run(machine_busy_percent=93.0)) is None
    assert window_bound_note(_run(offered_rate=30_000.0, window=None)) is None
    assert window_bound_note(_run(other_load_cores=0.9)) is None  # the load warning says it
    assert window_bound_note(_run(machine_busy_percent=None)) is None
