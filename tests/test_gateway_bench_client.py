"""The gateway benchmark's client side: the bots' and subscribers' picows listeners, driven
without a server (a fake transport records what they write; responses are fed as frames), and
one fixed-rate run end to end.

What is checked is what the figures rest on: the frames the bots write are valid masked client
frames; a connection keeps its window full and writes a read's worth of requests at once;
every response is matched by id (strays and lost requests are counted); the fixed-rate mode
sends nothing before its schedule and counts latency from it; with ``--batch`` K, places go K
at a time as ``order.batch`` and cancels as ``order.cancel_batch``, the flow's mix is kept,
the bot learns its orders' ids from the batch's items and counts each item's reject, and the
warm-up ends at the right operation; a connection never has more than ``--max-open`` orders
open, its places in flight included (with or without ``--batch``); the subscriber counts
trades whether they come one per message or as a list, and sees a gap in the book's ``seq``.
"""

import asyncio
import itertools
import time
from collections import Counter

import msgspec
import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from benchmarks.gateway import bots, client, flow, messages, subscribers
from benchmarks.gateway.ticker import Ticker

from .test_bench_gateway import run_bench_json

PRICES = [f"{515 + (k - flow.SPREAD_TICKS) / 100:.2f}" for k in range(2 * flow.SPREAD_TICKS + 1)]
QTYS = [f"{2.14 * k:.6f}" for k in range(1, flow.QTY_STEPS + 1)]


def _parse_frames(data: bytes) -> list[bytes]:
    """The payloads of the client frames in ``data``, parsed (and unmasked) the way a server
    does: by the ``websockets`` library's own parser, which requires the mask."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    payloads = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=True)
        try:
            next(parser)
        except StopIteration as done:
            frame = done.value
        assert frame.opcode is Opcode.TEXT and frame.fin
        payloads.append(bytes(frame.data))
    return payloads


class _FakeSocket:
    """Stands for the underlying transport: records each write and when it happened."""

    def __init__(self) -> None:
        self.writes: list[tuple[int, bytes]] = []

    def write(self, data: bytes) -> None:
        self.writes.append((time.perf_counter_ns(), data))

    def requests(self) -> list[dict]:
        return [msgspec.json.decode(p) for _, data in self.writes for p in _parse_frames(data)]


class _FakeTransport:
    def __init__(self) -> None:
        self.underlying_transport = _FakeSocket()
        self.disconnected = False

    def disconnect(self, graceful: bool = True) -> None:
        self.disconnected = True


class _Frame:
    """A text frame as picows hands it to ``on_ws_frame``."""

    msg_type = client.WSMsgType.TEXT

    def __init__(self, payload: bytes, last_in_buffer: bool = True) -> None:
        self.payload = payload
        self.last_in_buffer = last_in_buffer

    def get_payload_as_memoryview(self) -> memoryview:
        return memoryview(self.payload)


def _answer(request: dict, order_id: int) -> bytes:
    """The server's answer to a place (a resting order) or a cancel."""
    status = "canceled" if request["method"] == "order.cancel" else "new"
    result = {"order_id": order_id, "status": status, "filled_qty": "0.000000", "x": [1]}
    return msgspec.json.encode({"id": request["id"], "ok": True, "result": result})


def _bot(
    count: int,
    warmup: int = 0,
    window: int = 4,
    batch: int = 1,
    index: int = 0,
    stats: bots.Stats | None = None,
) -> bots.Bot:
    spec = {
        "batch": batch,
        "seed": 1,
        "market": "USDT-KZT",
        "prices": PRICES,
        "qtys": QTYS,
        "max_open": 50,
        "warmup": warmup,
        "counts": [count] * (index + 1),
        "window": window,
    }
    bot = bots.Bot(spec, index, stats or bots.Stats())
    bot.on_ws_connected(_FakeTransport())
    return bot


def test_text_frames_are_masked_client_frames():
    """Every payload length's header form (7-bit, 16-bit, 64-bit) parses back to the payload."""
    import random

    rng = random.Random(3)
    for size in (0, 5, 125, 126, 200, 65535, 65536, 70_000):
        payload = bytes(rng.randrange(256) for _ in range(size))
        key = client.mask_key(rng)
        assert _parse_frames(client.text_frame(payload, key)) == [payload]


def test_saturation_keeps_the_window_and_writes_a_read_at_once():
    async def run() -> None:
        bot = _bot(count=10, warmup=2, window=4)
        socket = bot.transport.underlying_transport
        bot.start(time.perf_counter_ns(), time.perf_counter_ns() + 10**10, 0.0, None)
        assert len(socket.writes) == 1 and bot.inflight == 4
        requests = socket.requests()
        assert [r["id"] for r in requests] == [1, 2, 3, 4]
        # Three responses in one read: the three requests they free go out in one write.
        answers = [_answer(r, 100 + r["id"]) for r in requests[:3]]
        for i, answer in enumerate(answers):
            bot.on_ws_frame(bot.transport, _Frame(answer, last_in_buffer=i == 2))
        assert len(socket.writes) == 2 and bot.inflight == 4
        assert bot.stats.warmup_acks == 2 and sum(bot.stats.ok) == 1
        # A response to no request in flight (again, or unknown) is a stray, not an ack.
        bot.on_ws_frame(bot.transport, _Frame(answers[0]))
        bot.on_ws_frame(bot.transport, _Frame(b'{"id":999,"ok":true}'))
        assert bot.stats.stray == 2 and bot.inflight == 4
        # Answer everything as it comes, one response per read, until the 12 are sent.
        answered = {1, 2, 3}
        while not bot.finished.done():
            pending = [r for r in socket.requests() if r["id"] not in answered]
            assert pending, "the bot waits for nothing"
            answered.add(pending[0]["id"])
            bot.on_ws_frame(bot.transport, _Frame(_answer(pending[0], 100 + pending[0]["id"])))
        stats = bot.stats
        assert bot.next_id == 12 and bot.inflight == 0 and bot.lost() == 0
        assert sum(stats.sent) == 10 and sum(stats.ok) == 10 and stats.warmup_acks == 2
        assert sum(len(lat) for lat in stats.latency_us) == 10
        # Orders the server reported resting became the bot's to cancel.
        cancels = [r for r in socket.requests() if r["method"] == "order.cancel"]
        assert all(r["params"]["order_id"] - 100 in answered for r in cancels)

    asyncio.run(run())


def test_unanswered_requests_are_lost_and_rejects_are_counted():
    async def run() -> None:
        bot = _bot(count=4, window=4)
        socket = bot.transport.underlying_transport
        bot.start(time.perf_counter_ns(), time.perf_counter_ns() + 10**10, 0.0, None)
        first, second = socket.requests()[:2]
        bot.on_ws_frame(bot.transport, _Frame(_answer(first, 7)))
        reject = {"id": second["id"], "ok": False, "error": {"code": "UNKNOWN_ORDER"}}
        bot.on_ws_frame(bot.transport, _Frame(msgspec.json.encode(reject)))
        assert bot.lost() == 2 and not bot.finished.done()
        errors = sum(bot.stats.errors, start=Counter())
        assert errors == {"UNKNOWN_ORDER": 1} and sum(bot.stats.ok) == 1

    asyncio.run(run())


@pytest.mark.parametrize("timerfd", [True, False], ids=["timerfd", "loop-timers"])
def test_fixed_rate_sends_on_schedule_and_counts_latency_from_it(monkeypatch, timerfd):
    """Nothing leaves before its scheduled time; latency starts at the schedule; a connection
    at MAX_INFLIGHT_OPEN_LOOP waits, then sends what fell due as soon as a response makes room
    (still timed from the schedule).  With the timerfd, and with the event loop's timers."""
    monkeypatch.setattr(bots, "MAX_INFLIGHT_OPEN_LOOP", 3)

    async def run() -> None:
        bot = _bot(count=6)
        socket = bot.transport.underlying_transport
        ticker = Ticker()
        assert ticker.fd >= 0, "Linux has timerfd"
        if not timerfd:
            ticker.close()  # what remains is the fallback: the event loop's timers
        try:
            start = time.perf_counter_ns() + 5_000_000
            interval = 2_000_000
            bot.start(start, start + 10**10, float(interval), ticker)
            await asyncio.sleep(0.030)  # all 6 fall due; only 3 may be in flight
            assert bot.inflight == 3 and bot.waiting_for_room
            sent = socket.requests()
            assert [r["id"] for r in sent] == [1, 2, 3]
            # Each request left no earlier than its schedule (on a busy machine two that fell
            # due together may share a write).
            for at, data in socket.writes:
                for frame in _parse_frames(data):
                    rid = msgspec.json.decode(frame)["id"]
                    scheduled = start + (rid - 1) * interval
                    assert bot.sent_ns[rid] == scheduled and at >= scheduled
            bot.on_ws_frame(bot.transport, _Frame(_answer(sent[0], 1)))
            assert bot.inflight == 3 and [r["id"] for r in socket.requests()][3:] == [4]
            assert bot.sent_ns[4] == start + 3 * interval
            for r in socket.requests()[1:]:
                bot.on_ws_frame(bot.transport, _Frame(_answer(r, r["id"])))
            while not bot.finished.done():
                for r in socket.requests():
                    if bot.sent_ns[r["id"]]:
                        bot.on_ws_frame(bot.transport, _Frame(_answer(r, r["id"])))
                await asyncio.sleep(0.001)
            assert bot.next_id == 6 and bot.lost() == 0 and sum(bot.stats.ok) == 6
            # Latency counts from the schedule, so it includes the wait for room.
            waited = max(lat for lats in bot.stats.latency_us for lat in lats)
            assert waited >= 15_000
        finally:
            ticker.close()

    asyncio.run(run())


def test_periodic_ticker_sends_staggered_schedules_never_early_and_arms_once(monkeypatch):
    """With the stagger as its period the timerfd is armed once for the whole run (no system
    call per send), yet each connection's request leaves at or after its own schedule and
    within about a period of it; latency still counts from the schedule."""
    clients, interval, count = 3, 3_000_000, 5
    calls: list[int] = []

    async def run() -> None:
        stats = bots.Stats()
        flock = [_bot(count=count, index=index, stats=stats) for index in range(clients)]
        ticker = Ticker(interval / clients)
        assert ticker.periodic
        settime = ticker.settime
        ticker.settime = lambda *args: calls.append(1) or settime(*args)
        try:
            start = time.perf_counter_ns() + 2_000_000
            for bot in flock:
                bot.start(start + interval * bot.index // clients, start + 10**10, interval, ticker)
            await asyncio.sleep(0.005 + count * interval / 1e9)
            for bot in flock:
                socket = bot.transport.underlying_transport
                assert [r["id"] for r in socket.requests()] == list(range(1, count + 1))
                first = start + interval * bot.index // clients
                for at, data in socket.writes:
                    for frame in _parse_frames(data):
                        rid = msgspec.json.decode(frame)["id"]
                        scheduled = first + (rid - 1) * interval
                        assert bot.sent_ns[rid] == scheduled and at >= scheduled
            # Armed at the first schedule; disarmed once every connection had sent its flow.
            assert len(calls) == 2 and not ticker.armed
        finally:
            ticker.close()

    asyncio.run(run())


def _message(**fields: object) -> messages.Message:
    return messages.decode_message(msgspec.json.encode(fields))


def test_subscriber_counts_trades_as_objects_or_lists_and_checks_seq():
    async def run() -> None:
        sub = subscribers.Subscriber()
        sub.on_message(_message(id=1, ok=True, result=None))
        book = {"channel": "book", "market": "USDT-KZT"}
        sub.on_message(_message(**book, seq=10, data={"type": "snapshot", "bids": [], "asks": []}))
        assert sub.subscribed.is_set() and sub.snapshot_seq == 10
        sub.counting = True
        levels = {"bids": [["515.00", "2.14"]], "asks": []}
        sub.on_message(_message(**book, seq=11, data={"type": "update", **levels}))
        # A conflated update covers several changes: first_seq..seq.
        sub.on_message(_message(**book, first_seq=12, seq=14, data={"type": "update", **levels}))
        trade = {"price": "515.00", "qty": "2.14", "side": "buy", "ts": 1}
        trades = {"channel": "trades", "market": "USDT-KZT"}
        sub.on_message(_message(**trades, data=trade))
        sub.on_message(_message(**trades, data=[trade, trade, trade]))
        assert sub.gaps == 0 and sub.book == 2 and sub.book_seqs == 4 and sub.trades == 4
        assert sub.messages == 4 and sub.last_seq == 14
        sub.on_message(_message(**book, seq=16, data={"type": "update", **levels}))
        assert sub.gaps == 1
        refused = subscribers.Subscriber()
        refused.on_message(_message(id=1, ok=False, error={"code": "BAD_CHANNEL"}))
        assert refused.error == "subscribe refused"

    asyncio.run(run())


@pytest.mark.parametrize("batch", [1, 10])
def test_cli_bench_gateway_fixed_rate(batch):
    """`alatau bench gateway --rate R` acknowledges every request of the open-loop schedule;
    with --batch K, R is in orders/s, sent as R/K requests/s of K orders."""
    count = 600
    report = run_bench_json(
        [
            *("bench", "gateway", "--quick", "--json", "--clients", "2"),
            *("--count", str(count), "--rate", "2000", "--durability", "buffered"),
            *("--batch", str(batch)),
        ]
    )
    assert report["offered_rate"] == 2000 and report["mode"] == "fixed-rate"
    assert report["batch"] == batch and report["offered_requests_per_sec"] == 2000 / batch
    assert report["acknowledged"] == count and report["lost"] == 0
    assert report["unexpected_errors"] == 0 and not report["connection_errors"]
    assert 0 < report["p50_ms"] <= report["p99_ms"]
    assert report["client_cpu_us_per_request"] > 0 and report["client_cpu_us_per_order"] > 0
    # Every request but the last two of each connection carries `batch` orders.
    requests = report["requests_acknowledged"]
    assert count / batch <= requests <= count / batch + 2 * 2 and report["lost_requests"] == 0
    # At 2,000 orders/s the run takes about count / 2,000 s, whatever the batch.
    assert report["seconds"] >= 0.8 * count / 2000


# -- --batch K: order.batch and order.cancel_batch --------------------------------------------


class _FakeVenue:
    """Answers a bot's requests as the server would, with order ids of its own: a passive
    order rests (``new``), an IOC fills; a cancel of an order that is not resting (filled, or
    canceled already) gets ``UNKNOWN_ORDER``, per item in a batch."""

    def __init__(self) -> None:
        self.ids = itertools.count(1000)
        self.resting: set[int] = set()

    def place(self, params: dict) -> dict:
        order_id = next(self.ids)
        if params.get("tif") == "IOC":
            return {
                "ok": True,
                "result": {
                    "order_id": order_id,
                    "status": "filled",
                    "filled_qty": params["qty"],
                    "fills": [{"p": 1}],
                },
            }
        self.resting.add(order_id)
        return {
            "ok": True,
            "result": {
                "order_id": order_id,
                "status": "new",
                "filled_qty": "0.000000",
                "fills": [],
            },
        }

    def cancel(self, params: dict) -> dict:
        order_id = params["order_id"]
        if order_id not in self.resting:
            return {"ok": False, "error": {"code": "UNKNOWN_ORDER", "message": "no"}}
        self.resting.discard(order_id)
        return {"ok": True, "result": {"order_id": order_id, "status": "canceled"}}

    def answer(self, request: dict) -> bytes:
        method, params = request["method"], request["params"]
        if method == "order.place":
            item = self.place(params)
        elif method == "order.cancel":
            item = self.cancel(params)
        else:
            handle = self.place if method == "order.batch" else self.cancel
            item = {"ok": True, "result": [handle(order) for order in params["orders"]]}
        return msgspec.json.encode({"id": request["id"], **item})


def _run_against(bot: bots.Bot, venue: _FakeVenue) -> list[dict]:
    """Run the bot's whole flow at saturation against ``venue``, answering what is in flight
    one read at a time; the requests it sent, in order."""
    writes = bot.transport.underlying_transport.writes
    bot.start(time.perf_counter_ns(), time.perf_counter_ns() + 10**11, 0.0, None)
    sent: list[dict] = []
    parsed = 0  # the writes parsed so far
    while not bot.finished.done():
        pending = [
            msgspec.json.decode(p) for _, data in writes[parsed:] for p in _parse_frames(data)
        ]
        parsed = len(writes)
        assert pending, "the bot waits for nothing"
        sent += pending
        for i, request in enumerate(pending):
            frame = _Frame(venue.answer(request), last_in_buffer=i == len(pending) - 1)
            bot.on_ws_frame(bot.transport, frame)
    return sent


def test_batch_frames_places_and_cancels_k_at_a_time():
    """Places leave K at a time in order.batch (passive and IOC together), cancels K at a time
    in order.cancel_batch, each item an order.place's (order.cancel's) params; only the last
    requests of the flow may carry fewer."""

    async def run() -> None:
        bot = _bot(count=400, warmup=0, window=3, batch=8)
        requests = _run_against(bot, _FakeVenue())
        assert {r["method"] for r in requests} == {"order.batch", "order.cancel_batch"}
        assert [r["id"] for r in requests] == list(range(1, len(requests) + 1))
        sizes = [len(r["params"]["orders"]) for r in requests]
        assert all(size == 8 for size in sizes[:-2]) and all(0 < s <= 8 for s in sizes[-2:])
        assert sum(sizes) == 400 and bot.lost() == 0
        for request in requests:
            for order in request["params"]["orders"]:
                assert order["market"] == "USDT-KZT"
                if request["method"] == "order.batch":
                    assert order["side"] in ("buy", "sell") and order["price"] in PRICES
                    assert order["qty"] in QTYS and order.get("tif", "IOC") == "IOC"
                else:
                    assert set(order) == {"market", "order_id"}
        # The first window goes before any order is known: places only.
        assert [r["method"] for r in requests[:3]] == ["order.batch"] * 3
        stats = bot.stats
        assert stats.requests_sent == [
            sum(r["method"] == "order.batch" for r in requests),
            sum(r["method"] == "order.cancel_batch" for r in requests),
        ]
        assert len(stats.request_latency_us) == len(requests)

    asyncio.run(run())


def test_batch_keeps_the_flow_mix():
    """The same flow, one operation per request or 10 per request: the same mix of passive
    places, crossing places and cancels (the draws follow the open orders the bot knows, so
    the two flows differ in detail, not in proportion)."""

    async def run() -> dict[int, list[int]]:
        sent = {}
        for batch in (1, 10):
            bot = _bot(count=6000, window=4, batch=batch)
            bot.max_open = 10**6  # the nominal mix, not the cap's extra cancels
            _run_against(bot, _FakeVenue())
            assert (
                sum(bot.stats.sent) == 6000
                and sum(bot.stats.ok) + sum(sum(c.values()) for c in bot.stats.errors) == 6000
            )
            sent[batch] = bot.stats.sent
        return sent

    sent = asyncio.run(run())
    for k in range(3):
        assert abs(sent[1][k] - sent[10][k]) / 6000 < 0.03, sent
    assert 0.30 < sent[10][flow.CANCEL] / 6000 < 0.40 and 0.07 < sent[10][flow.CROSS] / 6000 < 0.13


def test_the_flow_spreads_sides_prices_quantities_and_cancels_evenly():
    """Each passive place rests 1 to SPREAD_TICKS ticks from the reference on either side,
    each quantity step as often as another, and a cancel takes any open order alike: the
    book the bench builds is as deep and as varied as its parameters say, whatever the
    draw is made of."""
    from collections import Counter

    async def make() -> bots.Bot:
        return _bot(count=0)

    bot = asyncio.run(make())
    bot.max_open = 10**6
    mid = flow.SPREAD_TICKS
    sides, offsets, qtys = Counter(), Counter(), Counter()
    for _ in range(40_000):
        params, kind = bot.operation()
        if kind == flow.PLACE:
            order = msgspec.json.decode(params)
            index = PRICES.index(order["price"])
            sides[order["side"]] += 1
            offsets[mid - index if order["side"] == "buy" else index - mid] += 1
            qtys[order["qty"]] += 1
        bot.placing = 0
        bot.open.clear()
    places = sum(sides.values())
    assert abs(sides["buy"] - sides["sell"]) / places < 0.03
    assert set(offsets) == set(range(1, flow.SPREAD_TICKS + 1))
    expected = places / flow.SPREAD_TICKS
    assert all(abs(n - expected) / expected < 0.2 for n in offsets.values()), offsets
    assert set(qtys) == {q for q in QTYS}
    assert all(abs(n - places / len(QTYS)) / (places / len(QTYS)) < 0.1 for n in qtys.values())

    picked = Counter()
    for _ in range(20_000):
        bot.open[:] = list(range(10))
        while True:
            params, kind = bot.operation()
            if kind == flow.CANCEL:
                picked[msgspec.json.decode(params)["order_id"]] += 1
                break
    assert set(picked) == set(range(10))
    assert all(abs(n - 2_000) / 2_000 < 0.1 for n in picked.values()), picked


def test_batch_learns_order_ids_from_items_and_counts_rejects_per_item():
    async def run() -> None:
        bot = _bot(count=40, window=2, batch=4)
        socket = bot.transport.underlying_transport
        bot.start(time.perf_counter_ns(), time.perf_counter_ns() + 10**10, 0.0, None)
        first, second = socket.requests()
        assert first["method"] == second["method"] == "order.batch"
        # Two orders rest, one filled, one rejected: only the resting ones become the bot's.
        items = [
            {"ok": True, "result": {"order_id": 11, "status": "new", "filled_qty": "0"}},
            {"ok": True, "result": {"order_id": 12, "status": "filled", "filled_qty": "1"}},
            {"ok": False, "error": {"code": "INSUFFICIENT_FUNDS", "message": "no"}},
            {"ok": True, "result": {"order_id": 14, "status": "partially_filled"}},
        ]
        answer = {"id": 1, "ok": True, "result": items}
        bot.on_ws_frame(bot.transport, _Frame(msgspec.json.encode(answer), last_in_buffer=False))
        assert sorted(bot.open) == [11, 14]
        stats = bot.stats
        assert sum(stats.ok) == 3 and sum(stats.errors, Counter()) == {"INSUFFICIENT_FUNDS": 1}
        assert sum(len(lat) for lat in stats.latency_us) == 4
        assert len(stats.request_latency_us) == 1 and bot.inflight == 1
        # A response with fewer items than orders is a broken server: the connection ends.
        short = {"id": 2, "ok": True, "result": items[:3]}
        bot.on_ws_frame(bot.transport, _Frame(msgspec.json.encode(short)))
        assert bot.transport.disconnected and "3 results for 4 orders" in bot.error

    asyncio.run(run())


def test_cancel_batch_takes_known_orders_and_counts_unknown_order_per_item():
    async def run() -> None:
        bot = _bot(count=200, window=1, batch=5)
        socket = bot.transport.underlying_transport
        bot.open = [501, 502, 503, 504, 505, 506, 507]
        bot.max_open = 1  # over the cap: the bot cancels while it has open orders
        bot.start(time.perf_counter_ns(), time.perf_counter_ns() + 10**10, 0.0, None)
        (request,) = socket.requests()
        assert request["method"] == "order.cancel_batch"
        ids = [order["order_id"] for order in request["params"]["orders"]]
        assert len(ids) == 5 and set(ids) <= set(range(501, 508)) and len(set(ids)) == 5
        assert sorted(bot.open + ids) == list(range(501, 508))  # taken off at once
        items = [{"ok": True, "result": {"order_id": i, "status": "canceled"}} for i in ids]
        items[1] = items[3] = {"ok": False, "error": {"code": "UNKNOWN_ORDER", "message": "x"}}
        answer = {"id": 1, "ok": True, "result": items}
        bot.on_ws_frame(bot.transport, _Frame(msgspec.json.encode(answer)))
        stats = bot.stats
        assert stats.ok[flow.CANCEL] == 3 and stats.errors[flow.CANCEL] == {"UNKNOWN_ORDER": 2}
        assert len(stats.latency_us[flow.CANCEL]) == 5 and stats.sent[flow.CANCEL] >= 5
        assert not set(ids) & set(bot.open)  # a cancel, ok or not, never returns an order

    asyncio.run(run())


def test_batch_refused_as_a_whole_counts_every_item():
    async def run() -> None:
        bot = _bot(count=12, window=1, batch=6)
        socket = bot.transport.underlying_transport
        bot.start(time.perf_counter_ns(), time.perf_counter_ns() + 10**10, 0.0, None)
        (request,) = socket.requests()
        refused = {"id": request["id"], "ok": False, "error": {"code": "RATE_LIMITED"}}
        bot.on_ws_frame(bot.transport, _Frame(msgspec.json.encode(refused)))
        assert sum(bot.stats.errors, Counter()) == {"RATE_LIMITED": 6}
        assert sum(len(lat) for lat in bot.stats.latency_us) == 6 and not bot.open

    asyncio.run(run())


def test_batch_warmup_ends_at_its_operation_and_lost_counts_orders():
    """--warmup and --count count operations: a request that straddles the end of the warm-up
    counts only its measured operations (and is a measured request); unanswered requests are
    lost with their measured operations."""

    async def run() -> None:
        bot = _bot(count=10, warmup=3, window=2, batch=4)
        socket = bot.transport.underlying_transport
        bot.start(time.perf_counter_ns(), time.perf_counter_ns() + 10**10, 0.0, None)
        first, _ = socket.requests()
        stats = bot.stats
        assert sum(stats.sent) == 5 and stats.requests_sent == [2, 0]  # 1 + 4 measured
        assert bot.lost() == 5 and bot.lost_requests() == 2
        venue = _FakeVenue()
        bot.on_ws_frame(bot.transport, _Frame(venue.answer(first)))
        assert stats.warmup_acks == 3 and sum(stats.ok) == 1 and stats.warmup_requests == 0
        assert len(stats.request_latency_us) == 1 and stats.first_send_ns == bot.sent_ns[2]
        answered = 1
        while not bot.finished.done():
            requests = socket.requests()
            for request in requests[answered:]:
                bot.on_ws_frame(bot.transport, _Frame(venue.answer(request)))
            answered = len(requests)
        assert sum(stats.sent) == 10 and bot.ops_sent == 13 and bot.lost() == 0
        answered_ops = sum(stats.ok) + sum(sum(c.values()) for c in stats.errors)
        assert answered_ops == 10 and sum(len(lat) for lat in stats.latency_us) == 10

    asyncio.run(run())


def test_batch_fixed_rate_schedules_requests():
    """In the fixed-rate mode a batch bot sends one request per interval, timed from its
    schedule, each carrying K operations."""

    async def run() -> None:
        bot = _bot(count=40, batch=5)
        socket = bot.transport.underlying_transport
        ticker = Ticker()
        try:
            start = time.perf_counter_ns() + 2_000_000
            interval = 3_000_000
            bot.start(start, start + 10**10, float(interval), ticker)
            await asyncio.sleep(0.0105)  # requests 1 to 3 (at 0, 3 and 6 ms) are due
            sent = socket.requests()
            assert [r["id"] for r in sent] == list(range(1, len(sent) + 1)) and len(sent) >= 3
            assert all(len(r["params"]["orders"]) == 5 for r in sent)
            for at, data in socket.writes:  # nothing left before its time
                for payload in _parse_frames(data):
                    rid = msgspec.json.decode(payload)["id"]
                    scheduled = start + (rid - 1) * interval
                    assert bot.sent_ns[rid] == scheduled and at >= scheduled
            venue = _FakeVenue()
            answered = 0
            while not bot.finished.done():
                requests = socket.requests()
                for request in requests[answered:]:
                    bot.on_ws_frame(bot.transport, _Frame(venue.answer(request)))
                answered = len(requests)
                await asyncio.sleep(0.001)
            assert sum(bot.stats.sent) == 40 and bot.lost() == 0
        finally:
            ticker.close()

    asyncio.run(run())


# -- --max-open: the cap holds with places in flight -------------------------------------------


class _CountingVenue(_FakeVenue):
    """A ``_FakeVenue`` that keeps the most orders resting at once: the bot's true open
    orders, places it has not heard back about included."""

    def __init__(self) -> None:
        super().__init__()
        self.peak = 0

    def place(self, params: dict) -> dict:
        item = super().place(params)
        self.peak = max(self.peak, len(self.resting))
        return item


@pytest.mark.parametrize(
    ("batch", "window", "max_open"), [(1, 16, 20), (10, 4, 100), (10, 16, 20), (50, 16, 500)]
)
def test_max_open_counts_orders_in_flight(batch, window, max_open):
    """The venue answers a whole window before the bot reads a response, so every place in
    flight may rest before the bot knows it, and a cancel waiting in its group leaves its
    order resting while places drawn after it go first: both count against --max-open, and
    the venue never holds more of the bot's orders (counting only the orders known open let
    a connection overshoot by up to a window of places, --window times K).  With room for a
    window of places the flow's mix is kept (the cap turns places into cancels, as ever);
    with less (20 for 16 requests of 10), a place at the cap with nothing known open to
    cancel crosses instead."""

    async def run() -> None:
        count = 3000 if batch < 50 else 20_000
        bot = _bot(count=count, window=window, batch=batch)
        bot.max_open = max_open
        venue = _CountingVenue()
        _run_against(bot, venue)
        assert venue.peak == max_open  # reached, never passed
        assert 0 < bot.peak_open <= max_open and len(bot.open) <= max_open
        assert bot.placing == 0 and bot.lost() == 0 and sum(bot.stats.sent) == count
        sent = bot.stats.sent
        assert all(sent), sent  # passive places, crosses and cancels
        if max_open >= window * batch:
            assert sent[flow.CROSS] / count < 0.12 and 0.40 < sent[flow.CANCEL] / count < 0.50

    asyncio.run(run())


def test_cli_bench_gateway_batch_max_open():
    """End to end: with --batch 10 and a --max-open the flow reaches, no connection ever
    knows more than --max-open orders open (the report's figure is the peak over the run,
    not the count at the end), and the mix is the flow's."""
    max_open = 30
    report = run_bench_json(
        [
            *("bench", "gateway", "--quick", "--json", "--clients", "2", "--batch", "10"),
            *("--window", "4", "--max-open", str(max_open), "--durability", "buffered"),
        ]
    )
    sent = report["sent"]
    assert report["acknowledged"] == sent and report["lost"] == 0
    assert report["unexpected_errors"] == 0 and not report["connection_errors"]
    assert 0 < report["max_open_per_client"] <= max_open
    assert report["open_orders_at_end"] <= 2 * max_open
    kinds = report["kinds"]
    assert kinds["cross"]["sent"] / sent < 0.15 and kinds["cancel"]["sent"] / sent > 0.35
