"""The server's order path without sockets: server CPU per order, and where it goes.

    python -m benchmarks.order_path --orders 100000 --durability fsync
    python -m benchmarks.order_path --profile /tmp/path.txt     # py-spy, by layer

``alatau bench gateway`` measures the venue from outside, through sockets, with the load
generator on the same two cores; its server CPU per order mixes our Python with the
kernel's socket work and the machine's noise.  This benchmark runs the same venue as
``alatau serve`` (``open_engine_host``, ``Venue``, ``Gateway``, the data directory and its
journal in the chosen durability) in this one process, and feeds the same bots' order flow
(``benchmarks.gateway.flow.OrderFlow``: passive places, crossing IOCs, cancels) as text
frames straight into ``Session.on_frame``, the way the transport does once it has read a
frame.  The answers come back through a connection object that keeps no bytes, so what is
measured is exactly the Python and C work of the order path: frame decode, session checks,
command building, sequencing, the exchange, the journal (encode, write, sync), publishing,
answers and their encoding.  Not measured: socket reads and writes, websocket framing.

Each round, every connection hands over ``--window`` requests (as a transport would after
reading a buffer full of frames), then the loop runs until all are answered.  CPU is
``time.process_time`` (this process, all threads: the journal's sync thread too) over the
measured orders, so it reads the same on a busy machine as on a quiet one, give or take
the caches; wall time is printed for the record, not to be relied on.

``--profile FILE`` samples this process with py-spy and prints where the event loop
thread's samples fall by layer (``benchmarks.gateway.profiling``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

import msgspec

from benchmarks.gateway.flow import CANCEL, OPEN_STATES, PLACE, OrderFlow, flow_prices
from benchmarks.gateway.messages import Result, decode_response
from gateway.app.serve import (
    ServeOptions,
    _open_history,
    open_engine_host,
    set_up_venue,
    with_secret_box,
)
from gateway.hosts.start import settle_collector
from gateway.sequencer.venue import Venue
from gateway.sessions.session import Gateway, Limits, Session

MARKET = "USDT-KZT"
ADMIN_KEY = "order-path-admin"
FUNDS_QUOTE = Decimal(10) ** 12


class Sink:
    """A session's connection that keeps nothing: it hands each message to ``on_message``."""

    def __init__(self) -> None:
        self.messages = 0
        self.on_message: Any = None

    def send(self, data: bytes) -> None:
        self.messages += 1
        if self.on_message is not None:
            self.on_message(data)

    def buffered(self) -> int:
        return 0

    def close(self, code: int, reason: str) -> None:
        raise RuntimeError(f"the server closed a connection: {code} {reason}")


class Unanswered:
    """The requests sent and not yet answered, over all connections, and an event set when
    none is: the harness sleeps on it while the journal flushes.  (It used to poll with
    ``asyncio.sleep(0)``, and that spinning, CPU of this process, was counted as the order
    path's: about a tenth of the figure with ``--durability fsync``.)"""

    def __init__(self) -> None:
        self.count = 0
        self.none = asyncio.Event()

    def sent(self) -> None:
        self.count += 1
        self.none.clear()

    def answered(self) -> None:
        self.count -= 1
        if not self.count:
            self.none.set()


class Bot(OrderFlow):
    """One connection's flow, fed into its session; its answers update its open orders."""

    def __init__(
        self,
        spec: dict[str, Any],
        index: int,
        session: Session,
        sink: Sink,
        unanswered: Unanswered,
    ) -> None:
        super().__init__(spec, index)
        self.session = session
        self.unanswered = unanswered
        self.kinds = bytearray(self.total + 1)
        self.next_id = 0
        self.rejects: dict[str, int] = {}
        sink.on_message = self.on_message

    def send(self, n: int) -> int:
        on_frame = self.session.on_frame
        sent = 0
        while sent < n and self.next_id < self.total:
            self.next_id += 1
            data, kind = self.operation(self.next_id)
            self.kinds[self.next_id] = kind
            self.unanswered.sent()
            on_frame(data)
            sent += 1
        return sent

    def on_message(self, data: bytes) -> None:
        response = decode_response(data)
        rid = response.id
        if type(rid) is not int:
            return
        self.unanswered.answered()
        kind = self.kinds[rid]
        if kind == PLACE:
            self.placing -= 1
        if response.ok:
            result = response.result
            if kind != CANCEL and type(result) is Result and result.status in OPEN_STATES:
                self.open.append(result.order_id)
        else:
            code = response.error.code if response.error is not None else "?"
            self.rejects[code] = self.rejects.get(code, 0) + 1


async def _call(session: Session, sink: Sink, requests: list[dict[str, Any]]) -> list[Any]:
    """Send set-up requests through a session and wait for their answers."""
    answers: list[Any] = []
    sink.on_message = lambda data: answers.append(msgspec.json.decode(data))
    for i, request in enumerate(requests):
        session.on_frame(msgspec.json.encode({"id": i, **request}))
    while len(answers) < len(requests):
        await asyncio.sleep(0)
    sink.on_message = None
    for answer in answers:
        if not answer.get("ok"):
            raise RuntimeError(f"set-up failed: {answer}")
    return answers


async def _setup(gateway: Gateway, clients: int) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Create and fund the bots (as ``alatau bench gateway`` does); the market's spec."""
    sink = Sink()
    admin = gateway.open_session(sink)
    assert admin is not None
    answers = await _call(
        admin,
        sink,
        [
            {"method": "auth.admin", "params": {"admin_key": ADMIN_KEY}},
            {"method": "markets.list"},
        ],
    )
    spec = next(m for m in answers[1]["result"] if m["symbol"] == MARKET)
    base_amount = (FUNDS_QUOTE / Decimal(spec["reference_price"])).to_integral_value(ROUND_CEILING)
    requests: list[dict[str, Any]] = []
    keys = []
    for i in range(clients):
        pid, key, secret = f"pathbot{i}", f"pathbot{i}-key", f"secret-{i:04d}" * 4
        keys.append((key, secret))
        requests.append(
            {
                "method": "admin.participant",
                "params": {
                    "participant_id": pid,
                    "category": "PROFESSIONAL",
                    "residency": "KZ",
                    "kyc_level": 3,
                    "api_key": key,
                    "api_secret": secret,
                },
            }
        )
        for asset, amount in ((spec["quote"], FUNDS_QUOTE), (spec["base"], base_amount)):
            requests.append(
                {
                    "method": "admin.deposit",
                    "params": {"participant_id": pid, "asset": asset, "amount": str(amount)},
                }
            )
    await _call(admin, sink, requests)
    return spec, keys


async def _login(gateway: Gateway, key: str, secret: str) -> tuple[Session, Sink]:
    from gateway.wire.auth import sign

    sink = Sink()
    session = gateway.open_session(sink)
    assert session is not None
    ts = gateway.venue.now_ms()
    signature = sign(secret, key, ts)
    await _call(
        session,
        sink,
        [
            {
                "method": "auth.login",
                "params": {"api_key": key, "timestamp": ts, "signature": signature},
            }
        ],
    )
    return session, sink


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="alatau-path-"))
    try:
        options = with_secret_box(
            ServeOptions(
                data_dir=str(data_dir / "data"),
                durability=args.durability,
                engine_process=args.engine_process,
                admin_key=ADMIN_KEY,
                quiet=True,
                limits=Limits(
                    connection_rate=1e9,
                    connection_burst=1e9,
                    participant_rate=1e9,
                    participant_burst=1e9,
                ),
            )
        )
        host = await open_engine_host(options)
        venue = Venue(host)
        history = None
        if args.history:  # the history database, fed as alatau serve feeds it
            history, _line = _open_history(options, host)
            venue.on_published = history.offer
        setup = set_up_venue(venue, options, host)
        assert setup is not None
        gateway = Gateway(venue, admin_key=ADMIN_KEY, limits=options.limits)
        gateway.history = history
        if history is not None:
            history.start()
        venue.start()
        try:
            return await _measure(gateway, args)
        finally:
            await venue.stop()
            if history is not None:
                history.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


_DATADIR, _VENUE, _SESSION, _HISTORY, _PIPE = (
    "gateway.storage.datadir",
    "gateway.sequencer.venue",
    "gateway.sessions.session",
    "gateway.storage.history",
    "gateway.storage.history_process",
)
STEPS: tuple[tuple[str, str, str, str], ...] = (
    # (step, module, owner, function): timed inclusive of what it calls
    ("intake: frame to submitted command", _SESSION, "Session", "on_frame"),
    ("  of which: read a plain order in one pass", _SESSION, "", "plain_order"),
    ("  of which: decode any other frame", "gateway.wire.protocol", "", "decode_request"),
    ("sequence and execute a batch", _VENUE, "Venue", "_execute_batch"),
    ("  of which: the exchange", "engine.compiled", "CompiledExchange", "execute"),
    ("  of which: journal record + audit lines", _DATADIR, "Storage", "append_batch"),
    ("  of which: journal frame encode + write", _DATADIR, "Storage", "sync_later"),
    ("publish a durable batch", _VENUE, "Venue", "publish_batch"),
    ("  of which: market data", _VENUE, "Venue", "_publish_public"),
    ("  of which: answer a place", _SESSION, "Session", "_answer_place"),
    ("  of which: answer a cancel", _SESSION, "Session", "_answer_change"),
    ("  of which: hand to the history writer", _HISTORY, "HistoryWriter", "offer"),
    ("history writer: pipe writes", _PIPE, "WriterProcess", "send_gathered"),
    ("history writer: writes when the pipe had room", _PIPE, "WriterProcess", "_write_pending"),
)
"""What ``--steps`` times: each function wrapped in a timer for the measured orders.  The
timer reads the thread's CPU time (``time.thread_time_ns``), so time the process spends
descheduled on a busy machine is not counted; the timer's own cost, measured at start, is
taken off each call (the steps still add up to a little more than a plain run)."""


class CollectorTimer:
    """A ``gc.callbacks`` entry: the time the cyclic garbage collector runs, per generation."""

    def __init__(self) -> None:
        self.ns = 0
        self.collections = [0, 0, 0]
        self.longest_ns = [0, 0, 0]
        self._started = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter_ns()
        else:
            took = time.perf_counter_ns() - self._started
            self.ns += took
            generation = info["generation"]
            self.collections[generation] += 1
            self.longest_ns[generation] = max(self.longest_ns[generation], took)


class StepTimer:
    """Wraps the ``STEPS`` functions with ``perf_counter_ns`` timers (inclusive times)."""

    def __init__(self) -> None:
        self.ns = {name: 0 for name, *_ in STEPS}
        self.calls = {name: 0 for name, *_ in STEPS}
        self._restore: list[tuple[Any, str, Any]] = []
        self.running = False
        self.timed: list[str] = []
        self.untimed: list[str] = []  # methods of compiled extension types

    def install(self) -> None:
        import importlib

        for name, module_name, owner_name, function in STEPS:
            module = importlib.import_module(module_name)
            owner = getattr(module, owner_name) if owner_name else module
            original = getattr(owner, function)
            try:
                setattr(owner, function, self._timed(name, original))
            except TypeError:  # a compiled extension type's methods cannot be replaced
                self.untimed.append(name.strip())
                continue
            self._restore.append((owner, function, original))
            self.timed.append(name)

    def _timed(self, name: str, original: Any) -> Any:
        clock = time.thread_time_ns
        ns, calls = self.ns, self.calls

        def timed(*args: Any, **kwargs: Any) -> Any:
            if not self.running:
                return original(*args, **kwargs)
            t0 = clock()
            try:
                return original(*args, **kwargs)
            finally:
                ns[name] += clock() - t0
                calls[name] += 1

        return timed

    @staticmethod
    def clock_cost_ns() -> float:
        """What one timed call adds: two clock reads (the median of several tries)."""
        clock = time.thread_time_ns
        tries = []
        for _ in range(9):
            start = time.perf_counter_ns()
            for _ in range(2_000):
                clock()
                clock()
            tries.append((time.perf_counter_ns() - start) / 2_000)
        return sorted(tries)[4]

    def reset(self) -> None:
        for name in self.ns:
            self.ns[name] = self.calls[name] = 0

    def uninstall(self) -> None:
        for owner, function, original in reversed(self._restore):
            setattr(owner, function, original)
        self._restore.clear()


async def _measure(gateway: Gateway, args: argparse.Namespace) -> dict[str, Any]:
    spec, keys = await _setup(gateway, args.clients)
    prices, qtys = flow_prices(spec)
    per_bot = args.orders // args.clients
    flow = {
        "seed": args.seed,
        "market": MARKET,
        "prices": prices,
        "qtys": qtys,
        "max_open": args.max_open,
        "warmup": args.warmup,
        "counts": [per_bot] * args.clients,
    }
    bots = []
    unanswered = Unanswered()
    for index, (key, secret) in enumerate(keys):
        session, sink = await _login(gateway, key, secret)
        bots.append(Bot(flow, index, session, sink, unanswered))

    async def rounds(until: int) -> None:
        while True:
            sent = sum(bot.send(min(args.window, until - bot.next_id)) for bot in bots)
            if not sent:
                return
            await unanswered.none.wait()

    await rounds(args.warmup)  # untimed: the book fills to its steady state
    for bot in bots:
        bot.rejects.clear()
    settle_collector()  # as ``alatau serve`` does once it has started
    collector = CollectorTimer()
    timer: StepTimer | None = getattr(args, "timer", None)
    if timer is not None:
        timer.reset()
        timer.running = True
    cpu0, wall0 = time.process_time(), time.perf_counter()
    gc.callbacks.append(collector)
    try:
        await rounds(args.warmup + per_bot)
    finally:
        gc.callbacks.remove(collector)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if timer is not None:
        timer.running = False
    orders = per_bot * len(bots)
    rejects: dict[str, int] = {}
    for bot in bots:
        for code, n in bot.rejects.items():
            rejects[code] = rejects.get(code, 0) + n
    kinds = {name: 0 for name in ("place", "cross", "cancel")}
    for bot in bots:
        for kind in bot.kinds[args.warmup + 1 :]:
            kinds[("place", "cross", "cancel")[kind]] += 1
    steps = {}
    if timer is not None:
        cost = StepTimer.clock_cost_ns()
        steps = {
            name: max(0.0, timer.ns[name] - cost * timer.calls[name]) / 1000 / orders
            for name in timer.timed
        }
    steps["garbage collector"] = collector.ns / 1000 / orders
    return {
        "gc_collections": collector.collections,
        "gc_longest_ms": [round(ns / 1e6, 3) for ns in collector.longest_ns],
        "steps_us_per_order": steps,
        "orders": orders,
        "cpu_us_per_order": cpu / orders * 1e6,
        "wall_orders_per_s": orders / wall,
        "mix": kinds,
        "rejects": rejects,
        "durability": args.durability,
        "engine_process": args.engine_process,
        "history": args.history,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.order_path", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=500, help="per connection, untimed")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--window", type=int, default=16, help="requests per connection per round")
    parser.add_argument("--max-open", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--durability", choices=("fsync", "buffered", "off"), default="fsync")
    parser.add_argument(
        "--engine-process",
        action="store_true",
        help="the engine in a second process (--engine-process): CPU is this process's only",
    )
    parser.add_argument(
        "--no-history",
        dest="history",
        action="store_false",
        help="without the history database (alatau serve always keeps one)",
    )
    parser.add_argument("--runs", type=int, default=3, help="the median of this many runs")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--steps",
        action="store_true",
        help="time each step of the path (wrapped functions, inclusive; adds overhead)",
    )
    parser.add_argument("--profile", metavar="FILE", help="sample with py-spy into FILE")
    parser.add_argument("--profile-native", action="store_true")
    args = parser.parse_args(argv)
    if args.profile:
        return _profiled(args, argv or sys.argv[1:])
    import uvloop

    if args.steps:
        args.timer = StepTimer()
        args.timer.install()
    results = [uvloop.run(run(args)) for _ in range(args.runs)]
    results.sort(key=lambda r: r["cpu_us_per_order"])
    median = results[len(results) // 2]
    median["runs_cpu_us"] = [round(r["cpu_us_per_order"], 2) for r in results]
    if args.json:
        print(json.dumps(median))
    else:
        print(
            f"order path ({args.durability}"
            f"{', engine process' if args.engine_process else ''}): "
            f"{median['cpu_us_per_order']:.2f} us CPU per "
            f"order (runs {median['runs_cpu_us']}), {median['wall_orders_per_s']:,.0f} "
            f"orders/s wall; mix {median['mix']}; rejects {median['rejects']}"
        )
        for name, us in median["steps_us_per_order"].items():
            print(f"  {name:<45} {us:6.2f} us per order")
        timer = getattr(args, "timer", None)
        if timer is not None and timer.untimed:
            print(
                "  not timed (methods of compiled extension types, which cannot be wrapped;"
                " a build with ALATAU_PURE_PYTHON=1 times them): " + ", ".join(timer.untimed)
            )
        print(
            f"  collections by generation: {median['gc_collections']}, the longest "
            f"{median['gc_longest_ms']} ms"
        )
    return 0


def _profiled(args: argparse.Namespace, argv: list[str]) -> int:
    """Run once more in a child without ``--profile``, sampled by py-spy."""
    from benchmarks.gateway.profiling import profile_summary, start_py_spy

    child_argv = [a for a in argv if not a.startswith("--profile")]
    if args.profile in child_argv:
        child_argv.remove(args.profile)
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.order_path", *child_argv, "--runs", "1"]
    )
    time.sleep(1.5)  # past the imports and the set-up
    spy = start_py_spy(child.pid, args.profile, args.profile_native)
    child.wait()
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait()
        print(json.dumps(profile_summary(args.profile), indent=1))
    return child.returncode


if __name__ == "__main__":
    raise SystemExit(main())
