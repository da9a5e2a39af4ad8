"""The bots' worker process: ``Bot`` sends its ``OrderFlow`` over one connection and
matches each response to its request by id (latency, acknowledgements, rejects, lost and
stray responses, tallied per worker in ``Stats``); ``bots_worker`` logs the connections in,
waits for the driver's "go", runs them (at saturation, or on the ``Ticker``'s schedule) and
returns the worker's results.
"""

from __future__ import annotations

import asyncio
import random
import time
from array import array
from collections import Counter
from functools import partial
from typing import Any

import msgspec

from benchmarks.gateway.client import TEXT, Connection, mask_key, open_connection, text_frame
from benchmarks.gateway.flow import CANCEL, CROSS, OPEN_STATES, PLACE, OrderFlow
from benchmarks.gateway.messages import Result, decode_batch_response, decode_response
from benchmarks.gateway.ticker import Ticker
from benchmarks.gateway.workers import stdin_lines

MAX_INFLIGHT_OPEN_LOOP = 1024
"""Per connection, in the fixed-rate mode: a send waits (its latency still counted from the
schedule) while this many requests are unanswered."""

DRAIN_TIMEOUT = 10.0
"""Seconds a connection waits for its last responses after it stops sending."""


class Stats:
    """One worker's tallies, over the measured operations (and requests) of all its
    connections.  ``sent``, ``ok``, ``errors`` and ``latency_us`` are per operation, by kind
    (an operation's latency is its request's); the ``request`` tallies are kept apart only
    with ``--batch`` > 1 (with 1, a request is an operation)."""

    def __init__(self) -> None:
        self.sent = [0, 0, 0]
        self.ok = [0, 0, 0]
        self.errors: list[Counter[str]] = [Counter(), Counter(), Counter()]
        self.latency_us = [array("q"), array("q"), array("q")]
        self.cross_filled = 0
        self.warmup_acks = 0  # warm-up operations answered
        self.lost = 0  # measured operations unanswered
        self.stray = 0  # responses matching no request in flight
        self.first_send_ns: int | None = None
        self.last_ack_ns = 0
        self.connection_errors: list[str] = []
        # --batch > 1: the requests (measured: carrying at least one measured operation).
        self.requests_sent = [0, 0]  # order.batch, order.cancel_batch
        self.request_latency_us = array("q")
        self.warmup_requests = 0  # requests of warm-up operations only, answered
        self.lost_requests = 0


class Bot(OrderFlow, Connection):
    """One connection's order flow (``OrderFlow``) and its requests in flight.

    The flow is a sequence of operations (``operation``: a place, passive or crossing, or a
    cancel), numbered 1, 2, ... in the order they are sent (warm-up first: the first
    ``warmup`` are not measured).  With ``batch`` 1 each is one request (``order.place``,
    ``order.cancel``); with ``batch`` K > 1, places accumulate into the next ``order.batch``
    and cancels into the next ``order.cancel_batch`` as they are drawn, and a request leaves
    when its group holds K (``next_group``; at the end of the flow, what is left goes too).

    Requests are numbered 1, 2, ... on each connection, so what is in flight is kept in
    arrays indexed by id (``sent_ns``: the latency's start, 0 once answered; ``op_end``: the
    number of the request's last operation, with ``batch`` > 1), and the operations' kinds in
    one indexed by operation (``kinds``), not in a dict of tuples: nothing is allocated per
    request but its bytes.

    Sending is ``pump``: it frames every request that may go now and writes them in one call.
    At saturation it is called once per read buffer, after the responses in it (each frees a
    slot of the window), and at the start; in the fixed-rate mode, by the ``Ticker`` at each
    request's scheduled time, and once per read buffer while the connection waits for room
    (``MAX_INFLIGHT_OPEN_LOOP``)."""

    def __init__(self, spec: dict[str, Any], index: int, stats: Stats) -> None:
        Connection.__init__(self)
        OrderFlow.__init__(self, spec, index)
        self.index = index
        self.stats = stats
        self.mask_rng = random.Random(index)
        if self.batch > 1:
            self.on_response = self.on_batch_response  # type: ignore[method-assign]
        self.peak_open = 0  # the most orders known open at once (the report's max per client)
        self.warmup = spec["warmup"]
        # Every request but the last two of the flow carries `batch` operations.
        batch = self.batch
        self.max_requests = self.total if batch == 1 else self.total // batch + 2
        self.next_id = 0  # the last request id sent
        self.ops_sent = 0  # the last operation sent
        self.sent_ns = array("q", [0]) * (self.max_requests + 1)
        self.op_end = array("q", [0]) * (self.max_requests + 1 if batch > 1 else 1)
        self.kinds = bytearray(self.total + 1)
        self.inflight = 0  # requests
        self.window = spec["window"]
        # Set by start():
        self.running = False  # responses are the flow's (not the set-up's)
        self.sending = False
        self.deadline = 0
        self.start_ns = 0
        self.interval_ns = 0.0  # > 0: the fixed-rate mode (between this connection's requests)
        self.waiting_for_room = False
        self.ticker: Ticker | None = None
        self.finished = asyncio.get_running_loop().create_future()

    def start(
        self, start_ns: int, deadline: int, interval_ns: float, ticker: Ticker | None
    ) -> None:
        """Begin the flow: at saturation, send the first window now; in the fixed-rate mode,
        from ``start_ns`` on, one request every ``interval_ns``."""
        self.running = self.sending = True
        self.start_ns = start_ns
        self.deadline = deadline
        self.interval_ns = interval_ns
        self.ticker = ticker
        if ticker is None:
            self.pump(time.perf_counter_ns())
        else:
            ticker.add(self, start_ns)

    def pump(self, now: int) -> int:
        """Send, in one write, every request that may go at ``now``.  Returns when the next
        one is due (the fixed-rate mode; 0: none is scheduled: done, or waiting for room)."""
        if not self.sending:
            return 0
        if now >= self.deadline or self.exhausted():
            self.stop_sending()
            return 0
        if self.interval_ns:
            # Every request scheduled by now, as room allows; latency counts from the schedule.
            start, interval = self.start_ns, self.interval_ns
            room = MAX_INFLIGHT_OPEN_LOOP - self.inflight
            due = 0
            while due < room and self.next_id + due < self.max_requests:
                if start + round((self.next_id + due) * interval) > now:
                    break
                due += 1
        else:
            due = min(self.window - self.inflight, self.max_requests - self.next_id)
        if due > 0:
            self.send_batch(due)
        if self.exhausted():
            self.stop_sending()
            return 0
        if not self.interval_ns:
            return 0
        if self.inflight >= MAX_INFLIGHT_OPEN_LOOP:
            self.waiting_for_room = True  # on_ws_frame sends on when a response makes room
            return 0
        return self.start_ns + round(self.next_id * self.interval_ns)

    def send_batch(self, n: int) -> None:
        """Frame the next ``n`` requests of the flow (fewer if it ends first) and write them
        with one call."""
        stats = self.stats
        kinds = self.kinds
        warmup = self.warmup
        mask_rng = self.mask_rng
        first = self.next_id + 1
        first_measured = 0  # the first request in this write with a measured operation
        frames = []
        if self.batch == 1:
            for _ in range(min(n, self.total - self.next_id)):
                self.next_id += 1
                data, kind = self.operation(self.next_id)
                kinds[self.next_id] = kind
                if self.next_id > warmup:
                    stats.sent[kind] += 1
                frames.append(text_frame(data, mask_key(mask_rng)))
            self.drawn = self.ops_sent = self.next_id
            if self.next_id > warmup:
                first_measured = max(first, warmup + 1)
        else:
            sent = stats.sent
            op_end = self.op_end
            methods = self.methods
            for _ in range(n):
                group = self.next_group()
                if group is None:
                    break
                items, group_kinds = group
                self.next_id += 1
                begin = self.ops_sent  # the operations are begin + 1 .. end
                end = self.ops_sent = begin + len(items)
                kinds[begin + 1 : end + 1] = group_kinds
                op_end[self.next_id] = end
                kind = group_kinds[0]
                if end > warmup:
                    if not first_measured:
                        first_measured = self.next_id
                    measured = group_kinds[warmup - begin :] if begin < warmup else group_kinds
                    if kind == CANCEL:
                        sent[CANCEL] += len(measured)
                        stats.requests_sent[1] += 1
                    else:
                        passive = measured.count(PLACE)
                        sent[PLACE] += passive
                        sent[CROSS] += len(measured) - passive
                        stats.requests_sent[0] += 1
                frame = methods[kind] % (self.next_id, b",".join(items))
                frames.append(text_frame(frame, mask_key(mask_rng)))
        if not frames:
            return
        sent_ns = self.sent_ns
        if self.interval_ns:
            start, interval = self.start_ns, self.interval_ns
            for i in range(first, self.next_id + 1):
                sent_ns[i] = start + round((i - 1) * interval)
        else:
            t0 = time.perf_counter_ns()  # just before the write
            for i in range(first, self.next_id + 1):
                sent_ns[i] = t0
        if stats.first_send_ns is None and first_measured:
            stats.first_send_ns = sent_ns[first_measured]
        self.inflight += len(frames)
        self.transport.underlying_transport.write(
            frames[0] if len(frames) == 1 else b"".join(frames)
        )

    def stop_sending(self) -> None:
        self.sending = False
        self.waiting_for_room = False
        if not self.inflight and not self.finished.done():
            self.finished.set_result(None)

    def on_ws_frame(self, transport: Any, frame: Any) -> None:
        if not self.running or frame.msg_type is not TEXT:
            super().on_ws_frame(transport, frame)
            return
        now = time.perf_counter_ns()
        try:
            self.on_response(frame.get_payload_as_memoryview(), now)
            if frame.last_in_buffer:
                # The read buffer's responses are in: send what they let go, in one write.
                if self.waiting_for_room:
                    if self.inflight < MAX_INFLIGHT_OPEN_LOOP:
                        self.waiting_for_room = False
                        due = self.pump(now)
                        if due and self.ticker is not None:
                            self.ticker.add(self, due)
                elif not self.interval_ns:
                    self.pump(now)
                if not self.inflight and not self.sending and not self.finished.done():
                    self.finished.set_result(None)
        except Exception as exc:
            self.fail(f"bot {self.index}: {exc!r}")

    def on_response(self, data: memoryview, now: int) -> None:
        """A response to one operation (``batch`` 1)."""
        response = decode_response(data)
        rid = response.id
        stats = self.stats
        if type(rid) is not int or not 0 < rid <= self.next_id or not self.sent_ns[rid]:
            stats.stray += 1
            return
        t0 = self.sent_ns[rid]
        self.sent_ns[rid] = 0
        self.inflight -= 1
        kind = self.kinds[rid]
        if kind == PLACE:
            self.placing -= 1  # answered: known open (below), or not
        measured = rid > self.warmup
        if response.ok:
            result = response.result
            if kind != CANCEL and type(result) is Result:
                if result.status in OPEN_STATES:
                    self.open.append(result.order_id)
                    if len(self.open) > self.peak_open:
                        self.peak_open = len(self.open)
                if kind == CROSS and measured and result.filled_qty.strip("0.") != "":
                    stats.cross_filled += 1
            if measured:
                stats.ok[kind] += 1
        elif measured:
            code = response.error.code if response.error is not None else "?"
            stats.errors[kind][code] += 1
        if not measured:
            stats.warmup_acks += 1
            return
        stats.latency_us[kind].append((now - t0) // 1000)
        stats.last_ack_ns = now

    def on_batch_response(self, data: memoryview, now: int) -> None:
        """A response to an order.batch or an order.cancel_batch (``batch`` > 1): one item
        per operation, in order, each acknowledged when the response arrives.  Placed orders
        still open join the connection's open orders; a reject is counted per item (a whole
        request refused: for each of its operations)."""
        response = decode_batch_response(data)
        rid = response.id
        stats = self.stats
        sent_ns = self.sent_ns
        if type(rid) is not int or not 0 < rid <= self.next_id or not sent_ns[rid]:
            stats.stray += 1
            return
        latency = (now - sent_ns[rid]) // 1000
        sent_ns[rid] = 0
        self.inflight -= 1
        op = self.op_end[rid - 1]  # the operation before the request's first
        end = self.op_end[rid]
        warmup = self.warmup
        if end > warmup:
            stats.request_latency_us.append(latency)
            stats.last_ack_ns = now
            if op < warmup:
                stats.warmup_acks += warmup - op
        else:
            stats.warmup_requests += 1
            stats.warmup_acks += end - op
        kinds = self.kinds
        self.placing -= kinds[op + 1 : end + 1].count(PLACE)  # answered, whatever the outcome
        items = response.result
        if not response.ok or items is None:
            code = response.error.code if response.error is not None else "?"
            for i in range(max(op, warmup) + 1, end + 1):
                kind = kinds[i]
                stats.errors[kind][code] += 1
                stats.latency_us[kind].append(latency)
            return
        if len(items) != end - op:
            raise ValueError(f"request {rid}: {len(items)} results for {end - op} orders")
        ok = stats.ok
        errors = stats.errors
        latency_us = stats.latency_us
        open_orders = self.open
        for item in items:
            op += 1
            kind = kinds[op]
            if item.ok:
                result = item.result
                if kind != CANCEL and result is not None:
                    if result.status in OPEN_STATES:
                        open_orders.append(result.order_id)
                    if kind == CROSS and op > warmup and result.filled_qty.strip("0.") != "":
                        stats.cross_filled += 1
                if op > warmup:
                    ok[kind] += 1
                    latency_us[kind].append(latency)
            elif op > warmup:
                errors[kind][item.error.code if item.error is not None else "?"] += 1
                latency_us[kind].append(latency)
        if len(open_orders) > self.peak_open:
            self.peak_open = len(open_orders)

    def on_ws_disconnected(self, transport: Any) -> None:
        super().on_ws_disconnected(transport)
        self.sending = False
        if not self.finished.done():
            self.finished.set_result(None)

    def lost(self) -> int:
        """Measured operations still unanswered."""
        sent_ns, warmup = self.sent_ns, self.warmup
        if self.batch == 1:
            return sum(1 for i in range(warmup + 1, self.next_id + 1) if sent_ns[i])
        op_end = self.op_end
        return sum(
            op_end[i] - max(op_end[i - 1], warmup)
            for i in range(1, self.next_id + 1)
            if sent_ns[i] and op_end[i] > warmup
        )

    def lost_requests(self) -> int:
        """Measured requests (with a measured operation) still unanswered."""
        sent_ns, warmup = self.sent_ns, self.warmup
        if self.batch == 1:
            return self.lost()
        op_end = self.op_end
        return sum(1 for i in range(1, self.next_id + 1) if sent_ns[i] and op_end[i] > warmup)


async def _login(bot: Bot, api_key: str, api_secret: str) -> None:
    from gateway.wire.auth import sign

    ts = time.time_ns() // 1_000_000
    request = {
        "id": 0,
        "method": "auth.login",
        "params": {"api_key": api_key, "timestamp": ts, "signature": sign(api_secret, api_key, ts)},
    }
    bot.send(msgspec.json.encode(request))
    response = decode_response(await bot.recv())
    if not response.ok:
        raise RuntimeError(f"login of {api_key} failed: {response.error}")


async def bots_worker(spec: dict[str, Any]) -> dict[str, Any]:
    import resource

    commands = stdin_lines(asyncio.get_running_loop())
    stats = Stats()
    batch = spec.get("batch", 1)
    bots: list[Bot] = []
    ticker: Ticker | None = None
    try:
        for entry in spec["bots"]:
            bots.append(
                await open_connection(partial(Bot, spec, entry["index"], stats), spec["url"])
            )
        await asyncio.gather(
            *(
                _login(bot, entry["api_key"], entry["api_secret"])
                for bot, entry in zip(bots, spec["bots"], strict=True)
            )
        )
        print("ready", flush=True)
        command = await commands.get()
        if not command.startswith("go"):
            raise SystemExit("the driver went away")
        start_ns = int(command.split()[1])
        deadline = start_ns + int(spec["duration"] * 1e9)
        delay = (start_ns - time.perf_counter_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter_ns()
        # The offered rate is in operations/s: each connection sends one request (of
        # `batch` operations) every clients * batch / rate seconds.
        interval_ns = spec["clients"] * batch * 1e9 / spec["rate"] if spec["rate"] > 0 else 0.0
        # The connections' schedules are staggered by interval / clients: the ticker's period.
        ticker = Ticker(interval_ns / spec["clients"]) if interval_ns else None
        for bot in bots:
            # Stagger the connections' schedules evenly over one interval.
            offset = round(interval_ns * bot.index / spec["clients"])
            bot.start(start_ns + offset, deadline, interval_ns, ticker)
        # Past the deadline and the drain time: give up on what is still in flight (lost).
        drain = max(0.0, (deadline - time.perf_counter_ns()) / 1e9) + DRAIN_TIMEOUT
        await asyncio.wait([bot.finished for bot in bots], timeout=drain)
        t1 = time.perf_counter_ns()
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        if ticker is not None:
            ticker.close()
        for bot in bots:
            bot.sending = False
        await asyncio.gather(*(bot.close() for bot in bots), return_exceptions=True)
    for bot in bots:
        stats.lost += bot.lost()
        stats.lost_requests += bot.lost_requests()
        if bot.error is not None:
            stats.connection_errors.append(f"connection closed: {bot.error}")
    cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    return {
        "sent": stats.sent,
        "ok": stats.ok,
        "errors": [dict(c) for c in stats.errors],
        "latency_us": [list(lat) for lat in stats.latency_us],
        "cross_filled": stats.cross_filled,
        "warmup_acks": stats.warmup_acks,
        "lost": stats.lost,
        # Requests, apart from operations only with batch > 1 (else they are the same).
        "requests_sent": stats.requests_sent if batch > 1 else None,
        "request_latency_us": list(stats.request_latency_us) if batch > 1 else None,
        "request_warmup_acks": stats.warmup_requests if batch > 1 else stats.warmup_acks,
        "lost_requests": stats.lost_requests,
        "stray": stats.stray,
        "first_send_ns": stats.first_send_ns,
        "last_ack_ns": stats.last_ack_ns,
        "connection_errors": stats.connection_errors,
        "open_orders": [len(bot.open) for bot in bots],
        "peak_open": [bot.peak_open for bot in bots],
        "cpu_s": round(cpu, 3),
        "wall_s": round((t1 - t0) / 1e9, 3),
    }
