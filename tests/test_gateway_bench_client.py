"""The gateway benchmark's client side: the bots' and subscribers' picows listeners, driven
without a server (a fake transport records what they write; responses are fed as frames), and
one fixed-rate run end to end.

What is checked is what the figures rest on: the frames the bots write are valid masked client
frames; a connection keeps its window full and writes a read's worth of requests at once;
every response is matched by id (strays and lost requests are counted); the fixed-rate mode
sends nothing before its schedule and counts latency from it; the subscriber counts trades
whether they come one per message or as a list, and sees a gap in the book's ``seq``.
"""

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from benchmarks import gateway_bench as gb

ROOT = Path(__file__).resolve().parent.parent
PRICES = [f"{515 + (k - gb.SPREAD_TICKS) / 100:.2f}" for k in range(2 * gb.SPREAD_TICKS + 1)]
QTYS = [f"{2.14 * k:.6f}" for k in range(1, gb.QTY_STEPS + 1)]


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

    msg_type = gb.WSMsgType.TEXT

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


def _bot(count: int, warmup: int = 0, window: int = 4) -> gb._Bot:
    spec = {
        "seed": 1,
        "market": "USDT-KZT",
        "prices": PRICES,
        "qtys": QTYS,
        "max_open": 50,
        "warmup": warmup,
        "counts": [count],
        "window": window,
    }
    bot = gb._Bot(spec, 0, gb._Stats())
    bot.on_ws_connected(_FakeTransport())
    return bot


def test_text_frames_are_masked_client_frames():
    """Every payload length's header form (7-bit, 16-bit, 64-bit) parses back to the payload."""
    import random

    rng = random.Random(3)
    for size in (0, 5, 125, 126, 200, 65535, 65536, 70_000):
        payload = bytes(rng.randrange(256) for _ in range(size))
        key = gb._mask_key(rng)
        assert _parse_frames(gb._text_frame(payload, key)) == [payload]


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
        errors = sum(bot.stats.errors, start=gb.Counter())
        assert errors == {"UNKNOWN_ORDER": 1} and sum(bot.stats.ok) == 1

    asyncio.run(run())


@pytest.mark.parametrize("timerfd", [True, False], ids=["timerfd", "loop-timers"])
def test_fixed_rate_sends_on_schedule_and_counts_latency_from_it(monkeypatch, timerfd):
    """Nothing leaves before its scheduled time; latency starts at the schedule; a connection
    at MAX_INFLIGHT_OPEN_LOOP waits, then sends what fell due as soon as a response makes room
    (still timed from the schedule).  With the timerfd, and with the event loop's timers."""
    monkeypatch.setattr(gb, "MAX_INFLIGHT_OPEN_LOOP", 3)

    async def run() -> None:
        bot = _bot(count=6)
        socket = bot.transport.underlying_transport
        ticker = gb._Ticker()
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
            for (at, _), r in zip(socket.writes, sent, strict=True):
                scheduled = start + (r["id"] - 1) * interval
                assert bot.sent_ns[r["id"]] == scheduled and at >= scheduled
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


def _message(**fields: object) -> gb._Message:
    return gb._decode_message(msgspec.json.encode(fields))


def test_subscriber_counts_trades_as_objects_or_lists_and_checks_seq():
    async def run() -> None:
        sub = gb._Subscriber()
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
        refused = gb._Subscriber()
        refused.on_message(_message(id=1, ok=False, error={"code": "BAD_CHANNEL"}))
        assert refused.error == "subscribe refused"

    asyncio.run(run())


def test_cli_bench_gateway_fixed_rate():
    """`alatau bench gateway --rate R` acknowledges every request of the open-loop schedule."""
    count = 600
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            *("bench", "gateway", "--quick", "--json", "--clients", "2"),
            *("--count", str(count), "--rate", "2000", "--durability", "buffered"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    report = json.loads(result.stdout)
    assert report["offered_rate"] == 2000 and report["mode"] == "fixed-rate"
    assert report["acknowledged"] == count and report["lost"] == 0
    assert report["unexpected_errors"] == 0 and not report["connection_errors"]
    assert 0 < report["p50_ms"] <= report["p99_ms"]
    assert report["client_cpu_us_per_request"] > 0
