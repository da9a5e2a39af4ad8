"""The driver of one measurement (``run_once``): start the server, create and fund
the bots through the admin calls, start the workers, say "go", collect their results and the
CPU figures, and always stop everything (``try``/``finally``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import time
from decimal import ROUND_CEILING, Decimal
from typing import Any

import msgspec

from benchmarks.gateway.bots import DRAIN_TIMEOUT
from benchmarks.gateway.client import STARTUP_TIMEOUT
from benchmarks.gateway.cluster import ClusterServer
from benchmarks.gateway.flow import flow_prices
from benchmarks.gateway.profiling import profile_summary, start_py_spy
from benchmarks.gateway.report import progress
from benchmarks.gateway.results import combine
from benchmarks.gateway.server import Server, machine_cpu, server_cpu_s
from benchmarks.gateway.subscribers import SUBSCRIBER_DRAIN_CAP
from benchmarks.gateway.workers import Worker

BOT_FUNDS_QUOTE = Decimal(10_000_000_000)
"""Quote units (KZT) deposited to each bot; the base asset gets as much at the reference."""


def _connect(url: str) -> Any:
    """A ``websockets`` client connection, for the driver's venue set-up (not timed)."""
    from websockets.asyncio.client import connect

    return connect(
        url,
        compression=None,
        max_size=2**24,
        ping_interval=None,
        open_timeout=STARTUP_TIMEOUT,
        close_timeout=2,
    )


async def _admin_setup(url: str, admin_key: str, market: str, clients: int) -> dict[str, Any]:
    """Create the bots (PROFESSIONAL, no limits) and fund them; the market's spec."""
    async with _connect(url) as ws:
        requests: list[dict[str, Any]] = [
            {"id": 0, "method": "auth.admin", "params": {"admin_key": admin_key}},
            {"id": 1, "method": "markets.list"},
        ]
        for request in requests:
            await ws.send(msgspec.json.encode(request), text=True)
        answers = [msgspec.json.decode(await ws.recv(decode=False)) for _ in requests]
        if not answers[0]["ok"]:
            raise RuntimeError(f"admin login failed: {answers[0]}")
        specs = {m["symbol"]: m for m in answers[1]["result"]}
        if market not in specs:
            raise SystemExit(f"no market {market!r}: choose one of {', '.join(specs)}")
        spec = specs[market]
        reference = Decimal(spec["reference_price"])
        base_amount = (BOT_FUNDS_QUOTE / reference).to_integral_value(ROUND_CEILING)
        bots = []
        requests = []
        for i in range(clients):
            bot = {
                "index": i,
                "participant_id": f"loadbot{i}",
                "api_key": f"loadbot{i}-key",
                "api_secret": secrets.token_hex(16),
            }
            bots.append(bot)
            requests.append(
                {
                    "method": "admin.participant",
                    "params": {
                        "participant_id": bot["participant_id"],
                        "category": "PROFESSIONAL",
                        "residency": "KZ",
                        "kyc_level": 3,
                        "api_key": bot["api_key"],
                        "api_secret": bot["api_secret"],
                    },
                }
            )
            for asset, amount in ((spec["quote"], BOT_FUNDS_QUOTE), (spec["base"], base_amount)):
                requests.append(
                    {
                        "method": "admin.deposit",
                        "params": {
                            "participant_id": bot["participant_id"],
                            "asset": asset,
                            "amount": str(amount),
                        },
                    }
                )
        for i, request in enumerate(requests):
            await ws.send(msgspec.json.encode({"id": 100 + i, **request}), text=True)
        for _ in requests:
            answer = msgspec.json.decode(await ws.recv(decode=False))
            if not answer.get("ok"):
                raise RuntimeError(f"venue set-up failed: {answer}")
    return {"market": spec, "bots": bots}


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def run_once(
    options: dict[str, Any], subscribers: int, profile: str | None
) -> dict[str, Any]:
    """One measurement on a fresh server: set up, run the bots (and subscribers), report."""
    clients = options["clients"]
    server: Server | ClusterServer
    if options.get("cluster"):
        server = ClusterServer()
    else:
        server = Server(
            options["durability"],
            options["transport"],
            options["engine_process"],
            floor=options.get("floor"),
        )
    cluster_cpu0: dict[str, float] | None = None
    workers: list[Worker] = []
    spy: subprocess.Popen[bytes] | None = None
    try:
        await server.start()
        progress(f"server pid {server.pid} on {server.url} (durability {server.durability})")
        venue = await _admin_setup(server.url, server.admin_key, options["market"], clients)
        prices, qtys = flow_prices(venue["market"])
        counts = _split(options["count"], clients)
        procs = max(1, min(options["client_procs"], clients))
        bot_workers = []
        for p in range(procs):
            spec = {
                "url": server.url,
                "market": options["market"],
                "bots": venue["bots"][p::procs],
                "counts": counts,
                "clients": clients,
                "prices": prices,
                "qtys": qtys,
                "rate": options["rate"],
                "window": options["window"],
                "batch": options["batch"],
                "warmup": options["warmup"],
                "duration": options["duration"],
                "max_open": options["max_open"],
                "seed": options["seed"],
            }
            name = f"client process {p}"
            bot_workers.append(await Worker.start("bots", spec, name, server.tmp))
        sub_workers = []
        sub_procs = max(1, min(options["sub_procs"], subscribers)) if subscribers else 0
        for p, n in enumerate(_split(subscribers, sub_procs) if sub_procs else []):
            spec = {"url": server.url, "market": options["market"], "subscribers": n}
            name = f"subscriber process {p}"
            sub_workers.append(await Worker.start("subscribers", spec, name, server.tmp))
        workers = bot_workers + sub_workers
        for worker in workers:
            ready = await worker.line(STARTUP_TIMEOUT)
            if ready != "ready":
                raise RuntimeError(f"{worker.name} said {ready!r}")
        mode = f"{options['rate']:,.0f} orders/s" if options["rate"] else "saturation"
        if options["batch"] > 1:
            mode += f", {options['batch']} orders per request"
        progress(
            f"{clients} bots in {procs} process(es), {subscribers} subscriber(s): go ({mode},"
            f" up to {options['count']:,} orders or {options['duration']} s)"
        )
        if profile:
            spy = start_py_spy(server.pid, profile, options["profile_native"])
        if isinstance(server, ClusterServer):
            cluster_cpu0 = server.cpu_s()
        cpu0, machine0, t0 = server_cpu_s(server.pid), machine_cpu(), time.perf_counter_ns()
        for worker in sub_workers:
            worker.tell("go")
        start_ns = time.perf_counter_ns() + 50_000_000
        for worker in bot_workers:
            worker.tell(f"go {start_ns}")
        timeout = options["duration"] + DRAIN_TIMEOUT + 30
        bot_results = [await worker.result(timeout) for worker in bot_workers]
        cpu1, machine1, t1 = server_cpu_s(server.pid), machine_cpu(), time.perf_counter_ns()
        cluster_cpu1 = server.cpu_s() if isinstance(server, ClusterServer) else None
        if spy is not None:
            spy.send_signal(signal.SIGINT)
        for worker in sub_workers:
            worker.tell("stop")
        sub_results = [await worker.result(SUBSCRIBER_DRAIN_CAP + 30) for worker in sub_workers]
        if spy is not None:
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
            spy = None
        status = server.stop()
        report = combine(options, subscribers, bot_results, sub_results)
        wall = (t1 - t0) / 1e9
        cpu = cpu1[0] - cpu0[0] if cpu0 is not None and cpu1 is not None else None
        engine_cpu = cpu1[1] - cpu0[1] if cpu0 is not None and cpu1 is not None else None
        # Per operation and per request answered, the warm-up's included (as the CPU is).
        orders = max(1, report["acknowledged"] + report["warmup_acks"])
        requests = max(1, report["requests_acknowledged"] + report["request_warmup_acks"])
        report["server"] = {
            "cpu_percent": round(100 * cpu / wall, 1) if cpu is not None else None,
            # with --engine-process: the engine process's share of cpu_percent
            "engine_cpu_percent": round(100 * engine_cpu / wall, 1)
            if engine_cpu is not None and options["engine_process"]
            else None,
            # the share of cpu_percent in the server's child processes: the history
            # database's writer, and the engine process with --engine-process
            "children_cpu_percent": round(100 * engine_cpu / wall, 1)
            if engine_cpu is not None
            else None,
            "cpu_us_per_order": round(1e6 * cpu / orders, 2) if cpu is not None else None,
            "cpu_us_per_request": round(1e6 * cpu / requests, 1) if cpu is not None else None,
            "exit_status": status,
            "url": server.url,
            "data_dir": str(server.tmp / "data"),
            "log_problems": server.log_problems()[:20],
        }
        cluster_cpu = 0.0  # the replicas' and the nodes' CPU seconds over the phase
        if isinstance(server, ClusterServer):
            report["cluster"] = True
            report["durability"] = "cluster: NATS R3, sync_interval always"
            if cluster_cpu0 is not None and cluster_cpu1 is not None:
                replicas = cluster_cpu1["replicas"] - cluster_cpu0["replicas"]
                nats = cluster_cpu1["nats"] - cluster_cpu0["nats"]
                cluster_cpu = replicas + nats
                # cpu_percent above is the gateway's; these are the rest of the cluster's
                report["server"]["replicas_cpu_percent"] = round(100 * replicas / wall, 1)
                report["server"]["nats_cpu_percent"] = round(100 * nats / wall, 1)
                if cpu is not None:
                    total = cpu + cluster_cpu
                    report["server"]["cluster_cpu_percent"] = round(100 * total / wall, 1)
                    report["server"]["cluster_cpu_us_per_order"] = round(1e6 * total / orders, 2)
        if machine0 and machine1 and machine1[1] > machine0[1] and cpu is not None:
            busy = (machine1[0] - machine0[0]) / (machine1[1] - machine0[1])
            report["machine_busy_percent"] = round(100 * busy, 1)
            # CPU the bench's own processes do not account for: a neighbour's load.
            ours = (cpu + cluster_cpu) / wall
            ours += sum(b["cpu_s"] / max(b["wall_s"], 1e-3) for b in bot_results)
            ours += sum(w["cpu_s"] / ((w["end_ns"] - w["go_ns"]) / 1e9) for w in sub_results)
            report["other_load_cores"] = round(busy * (os.cpu_count() or 1) - ours, 2)
        if profile:
            report["profile"] = profile_summary(profile)
        return report
    finally:
        if spy is not None:
            spy.kill()
            spy.wait()
        for worker in workers:
            worker.kill()
        for worker in workers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker.process.wait(), 10)
        server.stop()
        server.cleanup()
