"""The workers' results combined into the report's figures: rates, latency
percentiles per request and per kind of order, rejects, lost and stray responses, client CPU
(``combine``); the subscribers' fan-out figures; and whether a run was healthy (the exit
status).
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from benchmarks.common import percentile
from benchmarks.gateway.flow import CANCEL, CROSS, EXPECTED_REJECTS, KINDS, PLACE


def _latency_ms(us: list[int] | array[int]) -> dict[str, float]:
    ordered = sorted(us)
    return {
        "p50_ms": round(percentile(ordered, 0.50) / 1000, 3),
        "p99_ms": round(percentile(ordered, 0.99) / 1000, 3),
        "p999_ms": round(percentile(ordered, 0.999) / 1000, 3),
        "max_ms": round(ordered[-1] / 1000, 3) if ordered else 0.0,
    }


SERIES_STEP = 0.1
"""Spacing of the percentile series in "nines" (-log10 of the fraction above the point)."""


def percentile_series(us: list[int] | array[int]) -> dict[str, Any]:
    """The latency distribution, compact, for charts (``benchmarks.gateway.chart``): the
    median, then the percentile every ``SERIES_STEP`` nines (p = 1 - 10**-x for x = 0.4, 0.5,
    ... so 90 %, 99 %, 99.9 % are points) as far as the samples resolve it (x <= log10(n)),
    then the maximum as p = 1.0.  Values in ms, nearest-rank like the report's p50/p99."""
    ordered = sorted(us)
    n = len(ordered)
    points: list[float] = []
    values: list[float] = []
    if n:
        top = math.log10(n)
        points.append(0.5)
        values.append(round(percentile(ordered, 0.5) / 1000, 3))
        step = 4
        while step * SERIES_STEP <= top + 1e-9:
            p = 1 - 10 ** (-step * SERIES_STEP)
            points.append(round(p, 7))
            values.append(round(percentile(ordered, p) / 1000, 3))
            step += 1
        points.append(1.0)
        values.append(round(ordered[-1] / 1000, 3))
    return {"samples": n, "percentile": points, "ms": values}


def combine(
    options: dict[str, Any],
    subscribers: int,
    bots: list[dict[str, Any]],
    subs: list[dict[str, Any]],
) -> dict[str, Any]:
    """One report from the workers' results.  Counts, rates and per-kind latencies are per
    operation (an order placed or canceled); the overall latency is per request (with
    ``--batch`` 1 the same thing; with K, each of a request's operations is acknowledged when
    its response arrives)."""
    batch = options["batch"]
    sent = [sum(b["sent"][k] for b in bots) for k in range(3)]
    ok = [sum(b["ok"][k] for b in bots) for k in range(3)]
    errors = [sum((Counter(b["errors"][k]) for b in bots), Counter()) for k in range(3)]
    all_errors = errors[0] + errors[1] + errors[2]
    latencies = [array("q", (x for b in bots for x in b["latency_us"][k])) for k in range(3)]
    every = array("q")
    for lat in latencies:
        every.extend(lat)
    acknowledged = len(every)
    warmup_acks = sum(b["warmup_acks"] for b in bots)
    if batch == 1:
        request_latency = every
        by_method = {"order.place": sent[PLACE] + sent[CROSS], "order.cancel": sent[CANCEL]}
    else:
        request_latency = array("q", (x for b in bots for x in b["request_latency_us"]))
        by_method = {
            "order.batch": sum(b["requests_sent"][0] for b in bots),
            "order.cancel_batch": sum(b["requests_sent"][1] for b in bots),
        }
    requests_acknowledged = len(request_latency)
    request_warmup_acks = sum(b["request_warmup_acks"] for b in bots)
    starts = [b["first_send_ns"] for b in bots if b["first_send_ns"] is not None]
    ends = [b["last_ack_ns"] for b in bots if b["last_ack_ns"]]
    seconds = (max(ends) - min(starts)) / 1e9 if starts and ends else 0.0
    rate = acknowledged / seconds if seconds > 0 else 0.0
    request_rate = requests_acknowledged / seconds if seconds > 0 else 0.0
    per_kind = {}
    for k, name in enumerate(KINDS):
        per_kind[name] = {
            "sent": sent[k],
            "ok": ok[k],
            "errors": dict(errors[k]),
            "per_sec": round(len(latencies[k]) / seconds) if seconds else 0,
            **_latency_ms(latencies[k]),
        }
    unexpected = {code: n for code, n in all_errors.items() if code not in EXPECTED_REJECTS}
    report: dict[str, Any] = {
        "benchmark": "gateway",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "durability": options["durability"],
        "transport": options["transport"] or "server default",
        "engine_process": options["engine_process"],
        "floor": options.get("floor"),
        "market": options["market"],
        "clients": options["clients"],
        "client_procs": max(1, min(options["client_procs"], options["clients"])),
        "window": options["window"] if not options["rate"] else None,
        "batch": batch,
        "offered_rate": options["rate"],
        "offered_requests_per_sec": round(options["rate"] / batch, 1),
        "mode": "fixed-rate" if options["rate"] else "saturation",
        "subscribers": subscribers,
        "count": options["count"],
        "warmup_per_client": options["warmup"],
        "sent": sum(sent),
        "acknowledged": acknowledged,
        "requests_sent": sum(by_method.values()),
        "requests_sent_by_method": by_method,
        "requests_acknowledged": requests_acknowledged,
        "request_warmup_acks": request_warmup_acks,
        "ok": sum(ok),
        "business_rejects": sum(all_errors.values()),
        "errors": dict(all_errors),
        "unexpected_errors": sum(unexpected.values()),
        "unexpected_codes": unexpected,
        "lost": sum(b["lost"] for b in bots),
        "lost_requests": sum(b["lost_requests"] for b in bots),
        "stray_responses": sum(b["stray"] for b in bots),
        "connection_errors": [e for b in bots for e in b["connection_errors"]],
        "seconds": round(seconds, 3),
        "orders_per_sec": round(rate),
        "requests_per_sec": round(request_rate),
        "places_per_sec": per_kind["place"]["per_sec"] + per_kind["cross"]["per_sec"],
        "cancels_per_sec": per_kind["cancel"]["per_sec"],
        **_latency_ms(request_latency),
        "kinds": per_kind,
        "crossing_orders_filled": sum(b["cross_filled"] for b in bots),
        "warmup_acks": warmup_acks,
        "open_orders_at_end": sum(sum(b["open_orders"]) for b in bots),
        # The most orders a connection knew open at once during the run (--max-open's bound).
        "max_open_per_client": max((max(b["peak_open"], default=0) for b in bots), default=0),
        "client_cpu_percent": [
            round(100 * b["cpu_s"] / b["wall_s"], 1) if b["wall_s"] else None for b in bots
        ],
        # Like the server's: over every operation (request) answered, the warm-up's included.
        "client_cpu_us_per_order": round(
            1e6 * sum(b["cpu_s"] for b in bots) / max(1, acknowledged + warmup_acks), 2
        ),
        "client_cpu_us_per_request": round(
            1e6
            * sum(b["cpu_s"] for b in bots)
            / max(1, requests_acknowledged + request_warmup_acks),
            1,
        ),
    }
    # The whole distribution, compactly, for `--chart` and `alatau bench chart`.
    report["latency_percentiles"] = percentile_series(request_latency)
    if batch > 1:
        # Each operation's latency is its request's: weighted by the requests' sizes.
        report["order_latency"] = _latency_ms(every)
    if subs:
        report["fanout"] = _combine_subscribers(subs, max(ends) if ends else 0)
    return report


def _combine_subscribers(subs: list[dict[str, Any]], bots_end_ns: int) -> dict[str, Any]:
    rows = [row for worker in subs for row in worker["subscribers"]]
    go = min(worker["go_ns"] for worker in subs)
    rates = [
        row["messages"] / ((row["last_ns"] - go) / 1e9) if row["last_ns"] > go else 0.0
        for row in rows
    ]
    final = {row["final_seq"] for row in rows}
    contiguous = all(
        row["gaps"] == 0
        and row["closed"] is None
        and row["snapshots"] == 1
        and row["final_seq"] is not None
        and row["final_seq"] - row["snapshot_seq"] == row["book_seqs"]
        for row in rows
    )
    last = max((row["last_ns"] for row in rows), default=0)
    return {
        "subscribers": len(rows),
        "messages_per_sec_per_subscriber": round(sum(rates) / len(rates)) if rates else 0,
        "messages_per_sec_min": round(min(rates, default=0)),
        "messages_per_sec_max": round(max(rates, default=0)),
        "messages_per_sec_total": round(sum(rates)),
        "messages_per_subscriber": round(sum(r["messages"] for r in rows) / max(1, len(rows))),
        "book_updates": max((r["book"] for r in rows), default=0),
        "trades": max((r["trades"] for r in rows), default=0),
        "seq_gaps": sum(r["gaps"] for r in rows),
        "seq_contiguous": contiguous,
        "same_final_seq": len(final) == 1,
        "closed": [r["closed"] for r in rows if r["closed"]][:5],
        "closed_count": sum(1 for r in rows if r["closed"]),
        "lag_after_bots_ms": round((last - bots_end_ns) / 1e6, 1) if last and bots_end_ns else None,
        "cpu_percent": [
            round(100 * w["cpu_s"] / ((w["end_ns"] - w["go_ns"]) / 1e9), 1)
            if w["end_ns"] > w["go_ns"]
            else None
            for w in subs
        ],
    }


def healthy(report: dict[str, Any]) -> bool:
    runs = [report, report["baseline"]] if "baseline" in report else [report]
    for r in runs:
        if r["unexpected_errors"] or r["lost"] or r["connection_errors"] or not r["acknowledged"]:
            return False
        fanout = r.get("fanout")
        if fanout and not (fanout["seq_contiguous"] and fanout["same_final_seq"]):
            return False
    return True
