"""Printing: the progress lines on stderr while the bench runs, and the report as
text (``format_report``; ``--json`` prints the report itself).
"""

from __future__ import annotations

import sys
from typing import Any

from benchmarks.gateway.flow import KINDS

OTHER_LOAD_WARNING = 0.25
"""Cores used by processes other than the bench's beyond which the report warns."""


WINDOW_BOUND_BELOW = 85.0
"""Machine use (%) under which a saturation run is said to be held by its requests in flight."""


def window_bound_note(run: dict[str, Any]) -> str | None:
    """A saturation run that left the machine idle part of the time measured its own
    pipeline, not the server: with a fixed number of requests in flight, orders/s is that
    number over the round trip (Little's law), so it says so, and how to see more.  None
    for a fixed-rate run, a busy machine, or a disturbed one (the load warning says that)."""
    busy = run.get("machine_busy_percent")
    if run.get("offered_rate") or busy is None or busy >= WINDOW_BOUND_BELOW:
        return None
    if (run.get("other_load_cores") or 0) > OTHER_LOAD_WARNING:
        return None
    clients, window = run.get("clients"), run.get("window")
    if not clients or not window:
        return None
    return (
        f"note: the machine was {busy}% busy: this rate is held by the {clients * window:,}"
        f" requests in flight ({clients} connections x --window {window}) over their"
        f" round trip (p50 {run['p50_ms']} ms), not by the CPU; a deeper --window shows more"
        " of the server's capacity, with more latency"
    )


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _machine_line(report: dict[str, Any]) -> str:
    m = report["machine"]
    return (
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['python']},"
        f" {m['os']}; {report['date']}"
    )


def format_report(report: dict[str, Any]) -> str:
    batch = report.get("batch", 1)
    if report["offered_rate"] and batch > 1:
        mode = (
            f"fixed rate {report['offered_rate']:,.0f} orders/s offered"
            f" ({report['offered_rate'] / batch:,.0f} requests/s)"
        )
    elif report["offered_rate"]:
        mode = f"fixed rate {report['offered_rate']:,.0f} req/s offered"
    else:
        mode = f"saturation (window {report['window']} requests per connection)"
    if batch > 1:
        mode += f", {batch} orders per request (order.batch, order.cancel_batch)"
    lines = [
        f"Alatau gateway benchmark: {report['market']}, {report['clients']} bot connections in"
        f" {report['client_procs']} client process(es), {mode}, durability"
        f" {report['durability']}, {report['subscribers']} subscriber(s),"
        f" transport {report['transport']}"
        + (", engine in its own process" if report.get("engine_process") else "")
        + (
            f"; FLOOR ({report['floor']}): orders answered unmatched, unjournaled"
            if report.get("floor")
            else ""
        ),
        _machine_line(report) + f"; code {report.get('code')}",
        f"command: {report['command']}",
    ]
    if "baseline" in report:
        lines.append("")
        lines.append("-- without subscribers --")
        lines += _format_run(report["baseline"])
        lines.append("")
        lines.append(f"-- with {report['subscribers']} subscribers --")
    lines += _format_run(report)
    if "fanout_ratio" in report:
        lines.append(
            f"fan-out: {report['subscribers']} subscribers keep {report['fanout_ratio']:.2f}x of"
            f" the saturation rate without subscribers"
            f" ({report['orders_per_sec']:,} vs {report['baseline']['orders_per_sec']:,}"
            f" {'req/s' if batch == 1 else 'orders/s'})"
        )
    return "\n".join(lines)


def _format_run(r: dict[str, Any]) -> list[str]:
    batch = r.get("batch", 1)
    lines = [
        "",
        f"{'request' if batch == 1 else 'order':<16} {'acked':>9} {'ok':>9} {'rejects':>8}"
        f" {'per s':>8} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'max ms':>8}",
    ]
    labels = {"place": "place (passive)", "cross": "place (IOC)", "cancel": "cancel"}
    for name in KINDS:
        k = r["kinds"][name]
        acked = k["ok"] + sum(k["errors"].values())
        lines.append(
            f"{labels[name]:<16} {acked:>9,} {k['ok']:>9,} {acked - k['ok']:>8,}"
            f" {k['per_sec']:>8,} {k['p50_ms']:>8.3f} {k['p99_ms']:>8.3f} {k['p999_ms']:>9.3f}"
            f" {k['max_ms']:>8.3f}"
        )
    every = r.get("order_latency", r)  # batch 1: a request's latency is its order's
    lines.append(
        f"{'all':<16} {r['acknowledged']:>9,} {r['ok']:>9,} {r['business_rejects']:>8,}"
        f" {r['orders_per_sec']:>8,} {every['p50_ms']:>8.3f} {every['p99_ms']:>8.3f}"
        f" {every['p999_ms']:>9.3f} {every['max_ms']:>8.3f}"
    )
    if batch > 1:
        lines.append(
            f"{'requests':<16} {r['requests_acknowledged']:>9,} {'':>9} {'':>8}"
            f" {r['requests_per_sec']:>8,} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f}"
            f" {r['p999_ms']:>9.3f} {r['max_ms']:>8.3f}"
        )
    errors = ", ".join(f"{c} {n:,}" for c, n in sorted(r["errors"].items())) or "none"
    if batch == 1:
        rate = f"{r['orders_per_sec']:,} requests/s"
        lost = f"{r['lost']:,}"
    else:
        methods = ", ".join(f"{m} {n:,}" for m, n in r["requests_sent_by_method"].items())
        rate = (
            f"{r['orders_per_sec']:,} orders/s in {r['requests_per_sec']:,} requests/s"
            f" (sent: {methods})"
        )
        lost = f"{r['lost']:,} orders in {r['lost_requests']:,} requests"
    lines += [
        "",
        f"acknowledged: {rate} over {r['seconds']} s"
        f" (places {r['places_per_sec']:,}/s, cancels {r['cancels_per_sec']:,}/s);"
        f" IOC orders that traded: {r['crossing_orders_filled']:,}",
        f"rejects: {errors}; unexpected: {r['unexpected_errors']:,}; lost: {lost}",
    ]
    server = r.get("server", {})
    cpu = ", ".join(f"{c}%" for c in r["client_cpu_percent"])
    if batch == 1:
        server_per = f"{server.get('cpu_us_per_request')} us per request"
        client_per = f"{r.get('client_cpu_us_per_request')} us per request"
    else:
        server_per = (
            f"{server.get('cpu_us_per_order')} us per order,"
            f" {server.get('cpu_us_per_request')} per request"
        )
        client_per = (
            f"{r.get('client_cpu_us_per_order')} us per order,"
            f" {r.get('client_cpu_us_per_request')} per request"
        )
    children = server.get("children_cpu_percent")
    engine_part = ""
    if children is not None:
        who = "the engine and history writer" if r.get("engine_process") else "the history writer"
        engine_part = f", of which its child processes ({who}) {children}%"
    lines.append(
        f"CPU: server {server.get('cpu_percent')}% of a core{engine_part} ({server_per}), client"
        f" process(es) {cpu} ({client_per}), machine {r.get('machine_busy_percent')}% busy"
    )
    if r.get("cluster"):
        lines.append(
            "cluster: the server above is the gateway;"
            f" replicas {server.get('replicas_cpu_percent')}%,"
            f" NATS nodes {server.get('nats_cpu_percent')}%; all of it"
            f" {server.get('cluster_cpu_percent')}% of a core"
            f" ({server.get('cluster_cpu_us_per_order')} us per order)"
        )
    note = window_bound_note(r)
    if note is not None:
        lines.append(note)
    if (r.get("other_load_cores") or 0) > OTHER_LOAD_WARNING:
        lines.append(
            f"WARNING: other processes used ~{r['other_load_cores']} cores during the run:"
            " the figures are disturbed, run it again on a quiet machine"
        )
    if r["connection_errors"]:
        lines.append(f"connection errors: {r['connection_errors'][:3]}")
    if server.get("log_problems"):
        lines.append(f"server log: {len(server['log_problems'])} warning(s), first:")
        lines += [f"  {line}" for line in server["log_problems"][:3]]
    f = r.get("fanout")
    if f:
        lines.append(
            f"subscribers: {f['subscribers']} received {f['messages_per_sec_per_subscriber']:,}"
            f" msg/s each on average (min {f['messages_per_sec_min']:,}, max"
            f" {f['messages_per_sec_max']:,}; {f['messages_per_sec_total']:,} msg/s in all),"
            f" {f['messages_per_subscriber']:,} messages each ({f['book_updates']:,} book"
            f" updates, {f['trades']:,} trades)"
        )
        lines.append(
            f"  seq contiguous: {f['seq_contiguous']} (gaps {f['seq_gaps']}, same final seq"
            f" {f['same_final_seq']}, closed {f['closed_count']}); last message"
            f" {f['lag_after_bots_ms']} ms after the bots' last response; subscriber"
            f" process CPU {', '.join(f'{c}%' for c in f['cpu_percent'])}"
        )
    profile = r.get("profile")
    if profile and profile.get("samples"):
        threads = ", ".join(f"{name} {p}%" for name, p in profile["threads_percent"][:4])
        lines.append(
            f"server profile: py-spy, {profile['samples']:,} samples of the event loop thread"
            f" ({profile['file']}); samples by thread: {threads}"
        )
        lines.append("  %       by layer (the event loop thread)")
        lines += [f"  {p:>6.1f}  {name}" for name, p in profile["layers_percent"]]
        lines.append("  self %  (innermost frame)")
        lines += [f"  {p:>6.1f}  {name}" for name, p in profile["self_percent"][:12]]
        lines.append("  total % (anywhere on the stack)")
        lines += [f"  {p:>6.1f}  {name}" for name, p in profile["total_percent"][:12]]
    return lines
