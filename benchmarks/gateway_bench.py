"""The end-to-end benchmark: bots placing and canceling orders through the websocket gateway.

Run it as ``alatau bench gateway`` (or ``python -m benchmarks.gateway_bench``; ``--help`` for
the options).  Every process is separate, as a user's would be:

* the server: ``alatau serve`` started as its own process on 127.0.0.1, port 0, with the
  rate limits raised out of the way (``--rate 1e9 --participant-rate 1e9``), the chosen
  ``--durability`` (``fsync`` by default) and ``--transport`` (the server's default unless
  given), and a fresh temporary data directory;
* the bots: ``--clients`` connections spread over ``--client-procs`` processes, each process
  on uvloop with the ``picows`` client.  Each connection is a PROFESSIONAL participant
  ``loadbot{i}`` created by the driver through the admin calls (``admin.participant``, no
  limits; ``admin.deposit`` of ample funds), so no demo participant's caps get in the way;
* the subscribers (``--subscribers M``): M connections in ``--sub-procs`` other processes,
  each following ``book:{market}`` and ``trades:{market}`` and only reading;
* the driver (this process): starts the others, waits until every connection is logged in
  (or subscribed, with its book snapshot), says "go", collects the results (each worker
  writes a JSON file in the temporary directory) and always stops the server
  (``try``/``finally``: SIGTERM, then SIGKILL; SIGTERM or Ctrl-C to the driver does the
  same, and the children get SIGTERM from the kernel if the driver dies outright).

The clients share the machine with the server, so on a small machine every microsecond of
client CPU per request is taken from the server: the workers are built to be cheap per
message (see "the workers' websocket client" below: picows callbacks instead of a coroutine
per message, typed decoders that keep only the fields read, and a connection's requests
framed by the bench and written together, one system call for all the requests that one
read's responses let go).

The bots' order flow, per connection, seeded: about 55 % passive GTC limit orders priced 1 to
50 ticks from the market's reference price (never crossing), 10 % IOC limit orders priced
``CROSS_TICKS`` through the reference so that trades happen, and 35 % cancels of one of the
connection's own open orders, chosen at random.  A connection never has more than
``--max-open`` orders open: with the orders it knows open it counts its passive places not yet
answered (in flight, or waiting in their batch) and the orders of its cancels not yet sent,
and at the cap a passive place becomes a cancel (or, with no order known open to cancel, a
crossing IOC, which never rests: so a ``--max-open`` below a window's passive places, about
0.55 times ``--window`` times K, shifts the mix towards IOCs).  A cancel of an order an IOC
filled in the meantime gets ``UNKNOWN_ORDER``: that business reject is expected and counted
apart.  Any other error code is unexpected and makes the exit status 1.

``--batch K`` (1 to 50; default 1: one ``order.place`` or ``order.cancel`` per request) sends
the same flow K operations per request, as a market maker entering and pulling quotes in
bulk would: the operations are drawn one by one as with 1, the places (passive and IOC) go
to the connection's next ``order.batch`` and the cancels to its next ``order.cancel_batch``,
and a request leaves as soon as one of the two holds K; once the flow's operations are all
drawn, what is left goes too (so every request but a connection's last two carries K, and
the flow's mix is the one above).  A cancel picks its order when it is drawn, so it may wait
in its group while an IOC fills that order: with K > 1 a few more cancels get
``UNKNOWN_ORDER`` (per item: the batch's other items are unaffected).  The bot learns its
placed orders' ids from the batch response's items, in order.  The window stays in requests.

Two modes:

``--rate 0`` (saturation, the default)
    Each connection keeps ``--window`` requests in flight; latency runs from just before the
    request's send to its response (matched by id), so it includes the window's queueing.
``--rate R``
    Open loop: R orders (operations) per second in total, each connection on its own fixed
    schedule (staggered across connections): one request every ``clients`` / R seconds, or
    with ``--batch K`` one request of K every ``clients`` * K / R seconds (R / K requests/s
    in total).  Latency runs from the *scheduled* send time, so a stalled server
    cannot hide its stall by slowing the sender (no coordinated omission).  Sends are timed
    by a Linux timerfd (``_Ticker``), so they leave within some tens of microseconds of
    their schedule (on a busy machine, later: that shows in the latency too, as it would for
    a real client); elsewhere by uvloop's timers.

A run sends ``--warmup`` operations per connection first (not measured), then up to
``--count`` operations in total, stopping early after ``--duration`` seconds; responses still
missing ``DRAIN_TIMEOUT`` seconds later are counted as lost.  (With K > 1 a request may carry
the last warm-up operations and the first measured ones: only the latter are counted, and
the request is a measured one.)

Reported: orders (operations) acknowledged per second in the measured phase (an ``ok`` and a
business reject both acknowledge an order; they are counted apart, and places, crossing
places and cancels apart too); requests acknowledged per second (the same figure with K 1);
round-trip latency p50 / p99 / p99.9 / max per request (a batch's response time, which is
each of its orders' acknowledgement time; per kind of order, each order counted with its
request's latency); the CPU used by the server and the client processes over the phase (a
client near 100 % means the figure is client-bound), per order and per request answered;
the machine's CPU use and what of it the bench's processes do not account for (a
neighbour's load on a shared machine: over ``OTHER_LOAD_WARNING`` cores the report warns
that the figures are disturbed), and, with
subscribers, the messages per second each subscriber received, whether every subscriber saw
contiguous book ``seq``s with the same final seq, and how long after the bots' last response
the subscribers got their last message (a book update may cover several of the book's
changes, ``first_seq`` to ``seq``; trades may come one per message or as a list).
``--fanout`` runs the saturation measurement twice, with no subscriber and with M (default
100), each on a fresh server, and reports the ratio.

``--profile FILE`` samples the server with py-spy during the measured phase (collapsed
stacks to FILE, every thread; sampling pauses the server briefly, so a profiled run's rates
are a little lower) and reports where the event loop thread's time goes: by layer
(``LAYERS``), by innermost frame and by frame anywhere on the stack.  ``--profile-native``
adds the C frames (uvloop, picows, libc: a ``send`` system call shows up as such); it costs
the server much more time per sample.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import heapq
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections import Counter
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
from picows import WSCloseCode, WSListener, WSMsgType, ws_connect

try:
    from websockets.speedups import apply_mask as _apply_mask  # C
except ImportError:  # a pure-Python install of websockets
    from websockets.utils import apply_mask as _apply_mask

from benchmarks.common import machine_info, percentile

HOST = "127.0.0.1"
DEFAULT_MARKET = "USDT-KZT"
DEFAULT_CLIENTS = 8
DEFAULT_WINDOW = 16
DEFAULT_COUNT = 100_000
DEFAULT_DURATION = 20.0
DEFAULT_WARMUP = 200
DEFAULT_MAX_OPEN = 500
DEFAULT_FANOUT_SUBSCRIBERS = 100
QUICK_COUNT = 2_000
QUICK_WARMUP = 20

SPREAD_TICKS = 50
"""Passive orders rest 1 to SPREAD_TICKS ticks from the reference price."""
CROSS_TICKS = 2
"""Crossing (IOC) orders are priced this many ticks through the reference price."""
QTY_STEPS = 10
"""Order quantities are 1 to QTY_STEPS times the smallest quantity clear of the market's
minimum notional (with a 10 % margin)."""
MIX = {"cancel": 0.35, "cross": 0.10}
"""Share of cancels and of crossing orders; the rest are passive places."""
EXPECTED_REJECTS = frozenset({"UNKNOWN_ORDER"})
"""Business rejects the flow causes by design (a cancel racing a fill)."""

BOT_FUNDS_QUOTE = Decimal(10_000_000_000)
"""Quote units (KZT) deposited to each bot; the base asset gets as much at the reference."""
MAX_INFLIGHT_OPEN_LOOP = 1024
"""Per connection, in the fixed-rate mode: a send waits (its latency still counted from the
schedule) while this many requests are unanswered."""
STARTUP_TIMEOUT = 60.0
"""Seconds the server, or every worker, may take to be ready."""
DRAIN_TIMEOUT = 10.0
"""Seconds a connection waits for its last responses after it stops sending."""
QUIET_S = 0.5
"""Subscribers are done when no message arrived for this long after the bots finished."""
SUBSCRIBER_DRAIN_CAP = 20.0
STOP_TIMEOUT = 10.0
"""Seconds the server gets to exit after SIGTERM before it is killed."""

OTHER_LOAD_WARNING = 0.25
"""Cores used by processes other than the bench's beyond which the report warns."""

MAX_BATCH = 50
"""The most orders an ``order.batch`` or ``order.cancel_batch`` may carry (the server's
``gateway.wire.protocol.MAX_BATCH``)."""

KINDS = ("place", "cross", "cancel")
PLACE, CROSS, CANCEL = range(3)
OPEN_STATES = frozenset({"new", "partially_filled"})


# -- wire messages (the fields the bench reads; the rest is skipped by the decoder) ------------


class _Error(msgspec.Struct):
    code: str = ""


class _Result(msgspec.Struct):
    order_id: int = 0
    status: str = ""
    filled_qty: str = ""


class _Response(msgspec.Struct):
    id: int | str | None = None
    ok: bool = False
    result: _Result | list | None = None
    error: _Error | None = None


class _BatchItem(msgspec.Struct):
    """One order's outcome in an ``order.batch`` or ``order.cancel_batch`` response."""

    ok: bool = False
    result: _Result | None = None
    error: _Error | None = None


class _BatchResponse(msgspec.Struct):
    """The response to an ``order.batch`` or ``order.cancel_batch``: one item per order, in
    order (or, if the request as a whole was refused, an error)."""

    id: int | str | None = None
    ok: bool = False
    result: list[_BatchItem] | None = None
    error: _Error | None = None


class _StreamData(msgspec.Struct):
    type: str = ""


class _Item(msgspec.Struct):
    """An element of a list in ``data`` (a trade): only counted, so no field is kept."""


class _Message(msgspec.Struct):
    """A subscriber's message: a response (``id``) or a stream message (``channel``).
    ``data`` is an object (a book message, or one trade) or a list (the trades of a batch).
    A book update covers the book's changes ``first_seq`` to ``seq``; without ``first_seq``
    it is one change, ``seq``."""

    id: int | str | None = None
    ok: bool | None = None
    channel: str = ""
    first_seq: int | None = None
    seq: int = -1
    data: _StreamData | list[_Item] | None = None


_decode_response = msgspec.json.Decoder(_Response).decode
_decode_batch_response = msgspec.json.Decoder(_BatchResponse).decode
_decode_message = msgspec.json.Decoder(_Message).decode


# -- small helpers -------------------------------------------------------------------------------


def _latency_ms(us: list[int] | array) -> dict[str, float]:
    ordered = sorted(us)
    return {
        "p50_ms": round(percentile(ordered, 0.50) / 1000, 3),
        "p99_ms": round(percentile(ordered, 0.99) / 1000, 3),
        "p999_ms": round(percentile(ordered, 0.999) / 1000, 3),
        "max_ms": round(ordered[-1] / 1000, 3) if ordered else 0.0,
    }


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (all its threads) so far, from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (the server's engine process), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def _server_cpu_s(pid: int) -> tuple[float, float] | None:
    """(CPU seconds of the server and its children, of its children alone) so far: with
    ``--engine-process`` the engine is a child, and a snapshot is a short-lived forked
    child (counted once reaped, in the parent's cutime/cstime)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
    children = sum(_process_cpu_s(child) or 0.0 for child in _children(pid))
    return own + children, children


def _machine_cpu() -> tuple[int, int] | None:
    """(busy, total) jiffies of all the machine's CPUs so far, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def _stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str]:
    """The driver's commands, one line each; ``""`` at end of input (the driver is gone).
    Read in a daemon thread, so a pending read never holds up the worker's exit."""
    queue: asyncio.Queue[str] = asyncio.Queue()

    def pump() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line.strip())
        loop.call_soon_threadsafe(queue.put_nowait, "")

    threading.Thread(target=pump, name="stdin", daemon=True).start()
    return queue


def _die_with_parent() -> None:
    """In a child before exec: get SIGTERM if the driver dies, even by SIGKILL (Linux), so no
    server or worker outlives the bench."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


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


# -- the workers' websocket client (picows) --------------------------------------------------------
#
# The workers' client costs CPU on the machine the server runs on, so it is made cheap per
# message: picows parses the server's frames in C and hands each to ``on_ws_frame`` (no
# coroutine, no queue, no Python frame parser per message), the payload is decoded straight
# from picows' read buffer by a typed msgspec decoder that keeps only the fields read, and the
# bots frame their requests themselves, so that all the requests a read buffer's responses let
# go leave in one write (one system call) instead of one each.

_TEXT = WSMsgType.TEXT
_CLOSE = WSMsgType.CLOSE

# timerfd (Linux), for the fixed-rate mode's _Ticker.
_CLOCK_MONOTONIC = 1
_TFD_TIMER_ABSTIME = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC


class _TimeSpec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _ITimerSpec(ctypes.Structure):
    _fields_ = (("it_interval", _TimeSpec), ("it_value", _TimeSpec))


def _mask_key(rng: random.Random) -> bytes:
    """A fresh masking key for a client frame (RFC 6455 5.3).  It protects proxies' caches,
    not secrets, and picows' own client draws it from C ``rand()``: a seeded PRNG, apart from
    the flow's, is as good and much cheaper than ``os.urandom`` per frame."""
    return rng.getrandbits(32).to_bytes(4, "little")


def _text_frame(payload: bytes, key: bytes) -> bytes:
    """One masked, final text frame, as a client must send it (RFC 6455 5.2)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x81, 0x80 | n))
    elif n < 65536:
        header = b"\x81\xfe" + n.to_bytes(2, "big")
    else:
        header = b"\x81\xff" + n.to_bytes(8, "big")
    return header + key + _apply_mask(payload, key)


class _Connection(WSListener):
    """A client websocket connection on picows.  Until a subclass takes its text messages
    over, they are queued for ``recv`` (the set-up: login, subscribe).  The close handshake is
    the listener's to answer (picows leaves it to it); pings picows answers itself."""

    def __init__(self) -> None:
        super().__init__()
        self.transport: Any = None
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.disconnected = asyncio.get_running_loop().create_future()
        self.closing = False  # this side is closing: the server's close is no error
        self.error: str | None = None  # why the connection ended, if not by this side

    def on_ws_connected(self, transport: Any) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: Any, frame: Any) -> None:
        if frame.msg_type is _TEXT:
            self.inbox.put_nowait(frame.get_payload_as_bytes())
        else:
            self.on_control(frame)

    def on_control(self, frame: Any) -> None:
        """A frame other than text: a close (answered, then the connection is dropped), a
        fragment (the server never fragments: the connection is given up)."""
        msg_type = frame.msg_type
        if msg_type is _CLOSE:
            if not self.closing and self.error is None:
                code, reason = frame.get_close_code(), frame.get_close_reason()
                self.error = f"closed by the server: {code} {reason}"
            self.transport.send_close(frame.get_close_code(), frame.get_close_message())
            self.transport.disconnect()
        elif msg_type is WSMsgType.BINARY or msg_type is WSMsgType.CONTINUATION:
            self.fail(f"unexpected {msg_type.name} frame")
        # PING is answered by picows (enable_auto_pong); PONG is ignored.

    def fail(self, reason: str) -> None:
        """Give the connection up: an error of the run."""
        if self.error is None:
            self.error = reason
        self.transport.disconnect()

    def on_ws_disconnected(self, transport: Any) -> None:
        if not self.closing and self.error is None:
            self.error = "connection lost"
        self.inbox.put_nowait(None)
        if not self.disconnected.done():
            self.disconnected.set_result(None)

    def send(self, data: bytes) -> None:
        self.transport.send(_TEXT, data)

    async def recv(self) -> bytes:
        """The next text message of the set-up phase."""
        data = await self.inbox.get()
        if data is None:
            raise ConnectionError(self.error or "connection closed")
        return data

    async def close(self) -> None:
        """Close handshake, then drop the connection (after 2 s without the server's answer)."""
        self.closing = True
        transport = self.transport
        if transport is None or self.disconnected.done():
            return
        transport.send_close(WSCloseCode.OK)
        try:
            await asyncio.wait_for(asyncio.shield(self.disconnected), 2)
        except TimeoutError:
            transport.disconnect(graceful=False)


async def _open(factory: Any, url: str) -> Any:
    """A picows client connection; its listener (made by ``factory``) is returned."""
    _, listener = await ws_connect(
        factory,
        url,
        websocket_handshake_timeout=STARTUP_TIMEOUT,
        max_frame_size=2**24,
        enable_auto_pong=True,
    )
    return listener


# -- the bots (a worker process) -------------------------------------------------------------------


class _Stats:
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


class _Bot(_Connection):
    """One connection's order flow and its requests in flight.

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
    slot of the window), and at the start; in the fixed-rate mode, by the ``_Ticker`` at each
    request's scheduled time, and once per read buffer while the connection waits for room
    (``MAX_INFLIGHT_OPEN_LOOP``)."""

    def __init__(self, spec: dict[str, Any], index: int, stats: _Stats) -> None:
        super().__init__()
        self.index = index
        self.stats = stats
        self.rng = random.Random(spec["seed"] * 1_000_003 + index)
        self.mask_rng = random.Random(index)
        market = spec["market"].encode()
        # An operation's params: an order.place's (passive, or crossing IOC), an order.cancel's.
        self.place_tpl = b'{"market":"' + market + b'","side":"%b","price":"%b","qty":"%b"}'
        self.cross_tpl = self.place_tpl[:-1] + b',"tif":"IOC"}'
        self.cancel_tpl = b'{"market":"' + market + b'","order_id":%d}'
        # The same as a whole request (batch 1): formatted at once, id first.
        self.place_req = b'{"id":%d,"method":"order.place","params":' + self.place_tpl + b"}"
        self.cross_req = b'{"id":%d,"method":"order.place","params":' + self.cross_tpl + b"}"
        self.cancel_req = b'{"id":%d,"method":"order.cancel","params":' + self.cancel_tpl + b"}"
        self.batch = batch = spec.get("batch", 1)
        if batch > 1:
            # A request, by the kind of its operations (the orders' params joined by commas).
            place = b'{"id":%d,"method":"order.batch","params":{"orders":[%b]}}'
            cancel = b'{"id":%d,"method":"order.cancel_batch","params":{"orders":[%b]}}'
            self.methods = (place, place, cancel)
            self.on_response = self.on_batch_response  # type: ignore[method-assign]
        self.prices = [p.encode() for p in spec["prices"]]
        self.qtys = [q.encode() for q in spec["qtys"]]
        self.mid = SPREAD_TICKS  # index of the reference price in self.prices
        self.max_open = spec["max_open"]
        self.open: list[int] = []  # the orders known open (placed, answered, not canceled)
        # Passive places drawn and not yet answered (in flight, or waiting in a group): each
        # may rest, so it counts against max_open until its answer says (``operation``).
        self.placing = 0
        self.peak_open = 0  # the most orders known open at once (the report's max per client)
        self.warmup = spec["warmup"]
        self.total = spec["warmup"] + spec["counts"][index]  # operations
        # Every request but the last two of the flow carries `batch` operations.
        self.max_requests = self.total if batch == 1 else self.total // batch + 2
        self.next_id = 0  # the last request id sent
        self.ops_sent = 0  # the last operation sent
        self.drawn = 0  # operations drawn from the flow (batch > 1: some wait in a group)
        self.places: list[bytes] = []  # batch > 1: the next order.batch's orders ...
        self.place_kinds = bytearray()  # ... and their kinds (PLACE, CROSS)
        self.cancels: list[bytes] = []  # batch > 1: the next order.cancel_batch's orders
        self.cancel_kinds = bytes((CANCEL,)) * batch
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
        self.ticker: _Ticker | None = None
        self.finished = asyncio.get_running_loop().create_future()

    def operation(self, rid: int = 0) -> tuple[bytes, int]:
        """The next operation of the flow and its kind: its params (an item of a batch), or
        with ``rid`` the whole request of that id (``order.place``, ``order.cancel``).  A
        cancel takes one of the connection's open orders, at random, off the list at once.

        The cap counts, with the orders known open, the passive places not yet answered
        (``placing``: each may rest) and the cancels still waiting in their group (their
        orders rest until the cancel is sent: places drawn later may leave first, in a group
        that fills first; once sent, the server does the cancel before any later request of
        the connection).  Counting only the orders known open let a connection overshoot
        ``max_open`` by up to a window of places (``window`` times K).  At the cap a passive
        place becomes a cancel, or, with no order known open to cancel, a crossing IOC, which
        never rests."""
        rng = self.rng
        r = rng.random()
        full = len(self.open) + self.placing + len(self.cancels) >= self.max_open
        if self.open and (full or r < MIX["cancel"]):
            k = rng.randrange(len(self.open))
            order_id = self.open[k]
            self.open[k] = self.open[-1]
            self.open.pop()
            if rid:
                return self.cancel_req % (rid, order_id), CANCEL
            return self.cancel_tpl % order_id, CANCEL
        side = b"buy" if rng.random() < 0.5 else b"sell"
        qty = self.qtys[rng.randrange(len(self.qtys))]
        if full or r > 1.0 - MIX["cross"]:
            price = self.prices[self.mid + (CROSS_TICKS if side == b"buy" else -CROSS_TICKS)]
            if rid:
                return self.cross_req % (rid, side, price, qty), CROSS
            return self.cross_tpl % (side, price, qty), CROSS
        offset = rng.randint(1, SPREAD_TICKS)
        price = self.prices[self.mid - offset if side == b"buy" else self.mid + offset]
        self.placing += 1
        if rid:
            return self.place_req % (rid, side, price, qty), PLACE
        return self.place_tpl % (side, price, qty), PLACE

    def next_group(self) -> tuple[list[bytes], bytes | bytearray] | None:
        """``batch`` > 1: the next request's operations (params) and their kinds.  Operations
        are drawn from the flow, places to the next order.batch and cancels to the next
        order.cancel_batch, until one of the two holds ``batch``; once the flow's operations
        are all drawn, what is left (the places, then the cancels); None when nothing is."""
        batch = self.batch
        operation = self.operation
        while self.drawn < self.total:
            data, kind = operation()
            self.drawn += 1
            if kind == CANCEL:
                cancels = self.cancels
                cancels.append(data)
                if len(cancels) == batch:
                    self.cancels = []
                    return cancels, self.cancel_kinds
            else:
                places = self.places
                places.append(data)
                self.place_kinds.append(kind)
                if len(places) == batch:
                    kinds = self.place_kinds
                    self.places, self.place_kinds = [], bytearray()
                    return places, kinds
        if self.places:
            places, kinds = self.places, self.place_kinds
            self.places, self.place_kinds = [], bytearray()
            return places, kinds
        if self.cancels:
            cancels, self.cancels = self.cancels, []
            return cancels, bytes((CANCEL,)) * len(cancels)
        return None

    def exhausted(self) -> bool:
        """Every operation of the flow has been sent."""
        return self.drawn >= self.total and not self.places and not self.cancels

    def start(
        self, start_ns: int, deadline: int, interval_ns: float, ticker: _Ticker | None
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
                frames.append(_text_frame(data, _mask_key(mask_rng)))
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
                frames.append(_text_frame(frame, _mask_key(mask_rng)))
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
        if not self.running or frame.msg_type is not _TEXT:
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
        response = _decode_response(data)
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
            if kind != CANCEL and type(result) is _Result:
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
        response = _decode_batch_response(data)
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


class _Ticker:
    """The fixed-rate mode's clock: calls each bot's ``pump`` at its next scheduled send.

    uvloop's timers round to whole milliseconds (a shorter wait runs at once), so waiting for
    a schedule with ``asyncio.sleep`` either sends late or spins the event loop until the time
    comes; a Linux timerfd, armed at the earliest due time of all the bots (a heap) and
    watched by the event loop, wakes the worker within microseconds of it at the cost of a few
    system calls.  Without timerfd (not Linux), the event loop's timers are used."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.heap: list[tuple[int, int, _Bot]] = []
        self.armed = 0  # the time the alarm is set for (0: unset)
        self.handle: asyncio.TimerHandle | None = None
        self.fd = -1
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
            if fd >= 0 and time.get_clock_info("perf_counter").implementation.endswith(
                "(CLOCK_MONOTONIC)"
            ):
                self.fd = fd
                self.settime = libc.timerfd_settime
                self.spec = _ITimerSpec()
                self.loop.add_reader(fd, self.on_timerfd)
            elif fd >= 0:
                os.close(fd)
        except (OSError, AttributeError):
            pass

    def add(self, bot: _Bot, at_ns: int) -> None:
        heapq.heappush(self.heap, (at_ns, bot.index, bot))
        if not self.armed or at_ns < self.armed:
            self.arm(at_ns)

    def arm(self, at_ns: int) -> None:
        self.armed = at_ns
        if self.fd >= 0:
            self.spec.it_value.tv_sec, self.spec.it_value.tv_nsec = divmod(at_ns, 1_000_000_000)
            self.settime(self.fd, _TFD_TIMER_ABSTIME, ctypes.byref(self.spec), None)
        else:
            if self.handle is not None:
                self.handle.cancel()
            delay = (at_ns - time.perf_counter_ns()) / 1e9
            self.handle = self.loop.call_later(max(delay, 0.0), self.tick)

    def on_timerfd(self) -> None:
        try:
            os.read(self.fd, 8)
        except BlockingIOError:  # re-armed since it became readable
            return
        self.tick()

    def tick(self) -> None:
        now = time.perf_counter_ns()
        heap = self.heap
        while heap and heap[0][0] <= now:
            _, _, bot = heapq.heappop(heap)
            try:
                due = bot.pump(now)
            except Exception as exc:
                bot.fail(f"bot {bot.index}: {exc!r}")
                continue
            if due:
                heapq.heappush(heap, (due, bot.index, bot))
        self.armed = 0
        if heap:
            self.arm(heap[0][0])
        elif self.handle is not None:
            self.handle.cancel()

    def close(self) -> None:
        self.heap.clear()
        if self.handle is not None:
            self.handle.cancel()
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1


async def _login(bot: _Bot, api_key: str, api_secret: str) -> None:
    from gateway.wire.auth import sign

    ts = time.time_ns() // 1_000_000
    request = {
        "id": 0,
        "method": "auth.login",
        "params": {"api_key": api_key, "timestamp": ts, "signature": sign(api_secret, api_key, ts)},
    }
    bot.send(msgspec.json.encode(request))
    response = _decode_response(await bot.recv())
    if not response.ok:
        raise RuntimeError(f"login of {api_key} failed: {response.error}")


async def _bots_worker(spec: dict[str, Any]) -> dict[str, Any]:
    import resource

    commands = _stdin_lines(asyncio.get_running_loop())
    stats = _Stats()
    batch = spec.get("batch", 1)
    bots: list[_Bot] = []
    ticker: _Ticker | None = None
    try:
        for entry in spec["bots"]:
            bots.append(await _open(partial(_Bot, spec, entry["index"], stats), spec["url"]))
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
        ticker = _Ticker() if interval_ns else None
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


# -- the subscribers (a worker process) ------------------------------------------------------------


class _Subscriber(_Connection):
    """A read-only connection following a market's book and trades: it counts what arrives
    and checks that the book's ``seq`` rises by exactly one per message after the snapshot."""

    def __init__(self) -> None:
        super().__init__()
        self.counting = False
        self.messages = 0
        self.book = 0  # book messages (snapshots included)
        self.book_seqs = 0  # the book changes the counted updates cover
        self.trades = 0
        self.gaps = 0
        self.snapshots = 0
        self.snapshot_seq: int | None = None
        self.last_seq: int | None = None
        self.first_ns = 0
        self.last_ns = 0
        self.subscribed = asyncio.Event()

    def on_ws_frame(self, transport: Any, frame: Any) -> None:
        if frame.msg_type is not _TEXT:
            self.on_control(frame)
            return
        try:
            self.on_message(_decode_message(frame.get_payload_as_memoryview()))
        except Exception as exc:
            self.fail(f"subscriber: {exc!r}")

    def on_message(self, message: _Message) -> None:
        if message.id is not None:
            if not message.ok:
                self.error = "subscribe refused"
            return
        counting = self.counting
        if message.channel == "book":
            data = message.data
            if type(data) is _StreamData and data.type == "snapshot":
                self.snapshots += 1
                if self.snapshot_seq is None:
                    self.snapshot_seq = message.seq
                self.subscribed.set()
            else:
                first = message.seq if message.first_seq is None else message.first_seq
                if self.last_seq is None or first != self.last_seq + 1:
                    self.gaps += 1
                if counting:
                    self.book_seqs += message.seq - first + 1
            self.last_seq = message.seq
            if counting:
                self.book += 1
        elif message.channel == "trades" and counting:
            # One trade per message, or (batched) a list of the trades of one batch.
            data = message.data
            self.trades += len(data) if type(data) is list else 1
        if counting:
            t = time.perf_counter_ns()
            if not self.messages:
                self.first_ns = t
            self.messages += 1
            self.last_ns = t


async def _subscribers_worker(spec: dict[str, Any]) -> dict[str, Any]:
    import resource

    commands = _stdin_lines(asyncio.get_running_loop())
    channels = [f"book:{spec['market']}", f"trades:{spec['market']}"]
    request = msgspec.json.encode(
        {"id": 1, "method": "subscribe", "params": {"channels": channels}}
    )
    subs: list[_Subscriber] = []
    try:
        for _ in range(spec["subscribers"]):
            sub = await _open(_Subscriber, spec["url"])
            subs.append(sub)
            sub.send(request)
        await asyncio.wait_for(
            asyncio.gather(*(sub.subscribed.wait() for sub in subs)), STARTUP_TIMEOUT
        )
        print("ready", flush=True)
        command = await commands.get()
        if not command.startswith("go"):
            raise SystemExit("the driver went away")
        go_ns = time.perf_counter_ns()
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        for sub in subs:
            sub.counting = True
        await commands.get()  # "stop" (or the end of input): the bots are done
        stop_ns = time.perf_counter_ns()
        # Read on until the stream has been quiet for QUIET_S: what was published has arrived.
        seen = -1
        while time.perf_counter_ns() - stop_ns < SUBSCRIBER_DRAIN_CAP * 1e9:
            total = sum(sub.messages for sub in subs)
            if total == seen:
                break
            seen = total
            await asyncio.sleep(QUIET_S)
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        end_ns = time.perf_counter_ns()
    finally:
        closed = [sub.error for sub in subs]  # what happened before this side closes
        await asyncio.gather(*(sub.close() for sub in subs), return_exceptions=True)
    cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    return {
        "go_ns": go_ns,
        "stop_ns": stop_ns,
        "end_ns": end_ns,
        "cpu_s": round(cpu, 3),
        "subscribers": [
            {
                "messages": s.messages,
                "book": s.book,
                "book_seqs": s.book_seqs,
                "trades": s.trades,
                "gaps": s.gaps,
                "snapshots": s.snapshots,
                "snapshot_seq": s.snapshot_seq,
                "final_seq": s.last_seq,
                "first_ns": s.first_ns,
                "last_ns": s.last_ns,
                "closed": error,
            }
            for s, error in zip(subs, closed, strict=True)
        ],
    }


def _worker(kind: str, spec_json: str) -> int:
    """Entry point of a worker process: prints ``ready``, later writes its results to the
    spec's ``result_path`` (JSON) and prints ``done``."""
    import uvloop

    spec = json.loads(spec_json)
    main = _bots_worker if kind == "bots" else _subscribers_worker
    result = uvloop.run(main(spec))
    Path(spec["result_path"]).write_bytes(msgspec.json.encode(result))
    print("done", flush=True)
    return 0


# -- the driver: server, venue set-up, workers ----------------------------------------------------


class _Server:
    """``alatau serve`` in its own process, in a fresh temporary directory."""

    def __init__(self, durability: str, transport: str | None, engine_process: bool) -> None:
        self.durability = durability
        self.transport = transport
        self.engine_process = engine_process
        self.admin_key = secrets.token_hex(16)
        self.tmp = Path(tempfile.mkdtemp(prefix="alatau-bench-"))
        self.log_path = self.tmp / "server.log"
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def command(self) -> list[str]:
        """``alatau serve`` with the limits out of the way and a fresh data directory."""
        options = {
            "host": HOST,
            "port": "0",
            "admin-key": self.admin_key,
            "rate": "1e9",
            "participant-rate": "1e9",
            "durability": self.durability,
            "data-dir": str(self.tmp / "data"),
        }
        if self.transport:
            options["transport"] = self.transport
        args = [f"--{name}={value}" for name, value in options.items()]
        if self.engine_process:
            args.append("--engine-process")
        return [sys.executable, "-m", "gateway.app.cli", "serve", "--quiet", *args]

    async def start(self) -> None:
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.tmp,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                preexec_fn=_die_with_parent,
            )
        loop = asyncio.get_running_loop()
        stdout = self.process.stdout
        assert stdout is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            line = await asyncio.wait_for(
                loop.run_in_executor(None, stdout.readline), deadline - time.monotonic()
            )
            if not line:
                break
            if line.startswith("alatau: listening on "):
                self.url = line.split()[-1]
                return
        raise RuntimeError(f"the server did not start:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def log_problems(self) -> list[str]:
        """Warnings, errors and tracebacks the server logged."""
        try:
            text = self.log_path.read_text()
        except OSError:
            return []
        keys = ("WARNING", "ERROR", "CRITICAL", "Traceback", "Exception")
        return [line for line in text.splitlines() if any(k in line for k in keys)]

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; the exit status (None: killed)."""
        process = self.process
        if process is None:
            return None
        status = process.poll()
        if status is None:
            process.send_signal(signal.SIGTERM)
            try:
                status = process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                status = None
        if process.stdout is not None:
            process.stdout.close()
        return status

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


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


def _flow_prices(market: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Price strings for reference +- SPREAD_TICKS ticks, and the order quantities."""
    tick = Decimal(market["tick"])
    lot = Decimal(market["lot"])
    reference = (Decimal(market["reference_price"]) / tick).to_integral_value() * tick
    prices = [
        str((reference + k * tick).quantize(tick)) for k in range(-SPREAD_TICKS, SPREAD_TICKS + 1)
    ]
    lowest = reference - SPREAD_TICKS * tick
    smallest = Decimal(market["min_notional"]) * Decimal("1.1") / lowest
    smallest = max(
        Decimal(market["min_qty"]), (smallest / lot).to_integral_value(ROUND_CEILING) * lot
    )
    qtys = [str((smallest * k).quantize(lot)) for k in range(1, QTY_STEPS + 1)]
    return prices, qtys


class _Worker:
    """A worker subprocess: it says ``ready``; it is told ``go`` (and subscribers ``stop``);
    it says ``done`` once its results are in ``spec["result_path"]``."""

    def __init__(self, process: asyncio.subprocess.Process, name: str, result_path: str) -> None:
        self.process = process
        self.name = name
        self.result_path = result_path

    @classmethod
    async def start(cls, kind: str, spec: dict[str, Any], name: str, tmp: Path) -> _Worker:
        spec = {**spec, "result_path": str(tmp / f"{kind}-{secrets.token_hex(4)}.json")}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.gateway_bench",
            "--worker",
            kind,
            "--spec",
            json.dumps(spec),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        return cls(process, name, spec["result_path"])

    async def line(self, timeout: float) -> str:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            await self.process.wait()
            raise RuntimeError(f"{self.name} exited with status {self.process.returncode}")
        return line.decode().strip()

    def tell(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")

    async def result(self, timeout: float) -> dict[str, Any]:
        said = await self.line(timeout)
        if said != "done":
            raise RuntimeError(f"{self.name} said {said!r}")
        await asyncio.wait_for(self.process.wait(), timeout)
        return json.loads(Path(self.result_path).read_bytes())

    def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def _run_once(
    options: dict[str, Any], subscribers: int, profile: str | None
) -> dict[str, Any]:
    """One measurement on a fresh server: set up, run the bots (and subscribers), report."""
    clients = options["clients"]
    server = _Server(options["durability"], options["transport"], options["engine_process"])
    workers: list[_Worker] = []
    spy: subprocess.Popen[bytes] | None = None
    try:
        await server.start()
        _progress(f"server pid {server.pid} on {server.url} (durability {server.durability})")
        venue = await _admin_setup(server.url, server.admin_key, options["market"], clients)
        prices, qtys = _flow_prices(venue["market"])
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
            bot_workers.append(await _Worker.start("bots", spec, name, server.tmp))
        sub_workers = []
        sub_procs = max(1, min(options["sub_procs"], subscribers)) if subscribers else 0
        for p, n in enumerate(_split(subscribers, sub_procs) if sub_procs else []):
            spec = {"url": server.url, "market": options["market"], "subscribers": n}
            name = f"subscriber process {p}"
            sub_workers.append(await _Worker.start("subscribers", spec, name, server.tmp))
        workers = bot_workers + sub_workers
        for worker in workers:
            ready = await worker.line(STARTUP_TIMEOUT)
            if ready != "ready":
                raise RuntimeError(f"{worker.name} said {ready!r}")
        mode = f"{options['rate']:,.0f} orders/s" if options["rate"] else "saturation"
        if options["batch"] > 1:
            mode += f", {options['batch']} orders per request"
        _progress(
            f"{clients} bots in {procs} process(es), {subscribers} subscriber(s): go ({mode},"
            f" up to {options['count']:,} orders or {options['duration']} s)"
        )
        if profile:
            spy = _start_py_spy(server.pid, profile, options["profile_native"])
        cpu0, machine0, t0 = _server_cpu_s(server.pid), _machine_cpu(), time.perf_counter_ns()
        for worker in sub_workers:
            worker.tell("go")
        start_ns = time.perf_counter_ns() + 50_000_000
        for worker in bot_workers:
            worker.tell(f"go {start_ns}")
        timeout = options["duration"] + DRAIN_TIMEOUT + 30
        bot_results = [await worker.result(timeout) for worker in bot_workers]
        cpu1, machine1, t1 = _server_cpu_s(server.pid), _machine_cpu(), time.perf_counter_ns()
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
        report = _combine(options, subscribers, bot_results, sub_results)
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
            "cpu_us_per_order": round(1e6 * cpu / orders, 2) if cpu is not None else None,
            "cpu_us_per_request": round(1e6 * cpu / requests, 1) if cpu is not None else None,
            "exit_status": status,
            "url": server.url,
            "data_dir": str(server.tmp / "data"),
            "log_problems": server.log_problems()[:20],
        }
        if machine0 and machine1 and machine1[1] > machine0[1] and cpu is not None:
            busy = (machine1[0] - machine0[0]) / (machine1[1] - machine0[1])
            report["machine_busy_percent"] = round(100 * busy, 1)
            # CPU the bench's own processes do not account for: a neighbour's load.
            ours = cpu / wall + sum(b["cpu_s"] / max(b["wall_s"], 1e-3) for b in bot_results)
            ours += sum(w["cpu_s"] / ((w["end_ns"] - w["go_ns"]) / 1e9) for w in sub_results)
            report["other_load_cores"] = round(busy * (os.cpu_count() or 1) - ours, 2)
        if profile:
            report["profile"] = _profile_summary(profile)
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


def _combine(
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


# -- profiling the server with py-spy --------------------------------------------------------------


def _py_spy() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


def _start_py_spy(pid: int, path: str, native: bool) -> subprocess.Popen[bytes] | None:
    exe = _py_spy()
    if exe is None:
        _progress("py-spy is not installed (pip install py-spy): no profile")
        return None
    command = [exe, "record", "--pid", str(pid), "--format", "raw", "--output", path]
    # Blocking sampling (the server is paused for each sample): non-blocking reads tear stacks.
    command += ["--threads", "--rate", "200"] + (["--native"] if native else [])
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


LAYERS = (
    ("Exchange.execute", "engine: Exchange.execute (checks, ledger, book, reports)"),
    ("Session.on_frame", "request intake: decode, session checks, venue.submit"),
    ("Venue.publish", "market data: stream messages and fan-out"),
    ("Journal.commit", "journal: commit (hand-off to the fsync thread)"),
    ("Journal.append", "journal: append (encode the command)"),
    ("Venue._execute_batch", "answers: command build, views, encode, session.send"),
    ("WebsocketsConnection.write_loop", "websocket write: frames, transport.write"),
    ("handle_connection", "websocket read: frames, recv"),
    ("Connection.data_received", "websocket read: frames, recv"),
)
"""Where the event loop thread's time goes, by the first of these functions on a sample's
stack (searched in this order); "other" is mostly the event loop itself (uvloop: polling,
socket calls, task steps)."""


def _profile_summary(path: str, top: int = 20) -> dict[str, Any]:
    """Where the event loop thread's samples fall: by innermost frame (self) and by frame
    anywhere on the stack (total), as shares of that thread's samples, from py-spy's collapsed
    stacks (idle samples are not recorded); and each thread's share of all the samples (the
    journal's fsync thread shows up there: blocked in a syscall is not idle to py-spy)."""
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    samples = 0
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return {"error": f"no profile written to {path}"}
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        thread = "?"
        if frames[0].startswith("thread ("):
            thread = frames.pop(0).partition(": ")[2] or "?"
        threads[thread] += n
        if thread != "MainThread" or not frames:
            continue
        names = [_frame_name(f) for f in frames]
        samples += n
        self_counts[names[-1]] += n
        for name in set(names):
            total_counts[name] += n
        functions = {name.partition(" (")[0] for name in names}
        layer = next((label for marker, label in LAYERS if marker in functions), "other")
        layers[layer] += n

    def share(counter: Counter[str], of: int) -> list[list[Any]]:
        return [[name, round(100 * n / of, 1)] for name, n in counter.most_common(top)]

    every = sum(threads.values())
    # The frames on every stack (the runner, the CLI, the module) say nothing: leave them out.
    root = max(total_counts.values(), default=0)
    for name in [name for name, n in total_counts.items() if n == root]:
        del total_counts[name]
    return {
        "file": path,
        "samples": samples,
        "threads_percent": share(threads, every) if every else [],
        "layers_percent": share(layers, samples) if samples else [],
        "self_percent": share(self_counts, samples) if samples else [],
        "total_percent": share(total_counts, samples) if samples else [],
    }


def _frame_name(frame: str) -> str:
    """``function (path/to/module.py:123)`` -> ``function (module.py)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    parts = where.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else where
    return f"{name} ({short})" if where else name


# -- printing -----------------------------------------------------------------------------------


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
        + (", engine in its own process" if report.get("engine_process") else ""),
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
    engine = server.get("engine_cpu_percent")
    engine_part = f", of which the engine process {engine}%" if engine is not None else ""
    lines.append(
        f"CPU: server {server.get('cpu_percent')}% of a core{engine_part} ({server_per}), client"
        f" process(es) {cpu} ({client_per}), machine {r.get('machine_busy_percent')}% busy"
    )
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


# -- command line --------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options (shared by ``alatau bench gateway`` and ``-m``)."""
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: {QUICK_COUNT:,} orders, {QUICK_WARMUP} warm-up per connection",
    )
    parser.add_argument(
        "--clients", type=int, default=DEFAULT_CLIENTS, help="bot connections (default 8)"
    )
    parser.add_argument(
        "--client-procs", type=int, default=1, help="processes the bots are spread over (default 1)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="total offered orders/s (operations: places and cancels), open loop; each"
        " connection sends one request every clients * batch / rate s (default 0: saturation)",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=DEFAULT_WINDOW,
        help=f"saturation: requests in flight per connection (default {DEFAULT_WINDOW})",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=1,
        help=f"orders per request, 1 to {MAX_BATCH}: K > 1 sends the flow's places K at a time"
        " as order.batch and its cancels K at a time as order.cancel_batch (default 1:"
        " order.place, order.cancel)",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        help="measured orders (operations: places and cancels) in total"
        f" (default {DEFAULT_COUNT:,}; --quick {QUICK_COUNT:,})",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=DEFAULT_DURATION,
        help=f"stop sending after this many seconds (default {DEFAULT_DURATION:g})",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help=f"unmeasured orders (operations) per connection first (default {DEFAULT_WARMUP})",
    )
    parser.add_argument(
        "--durability",
        choices=("fsync", "buffered", "off"),
        default="fsync",
        help="the server's --durability (default fsync)",
    )
    parser.add_argument(
        "--transport",
        choices=("picows", "websockets"),
        default=None,
        help="the server's --transport (default: the server's default)",
    )
    parser.add_argument(
        "--engine-process",
        action="store_true",
        help="the server's --engine-process (matching and journal in a second process)",
    )
    parser.add_argument("--market", default=DEFAULT_MARKET, help="the market traded")
    parser.add_argument(
        "--max-open",
        type=int,
        default=DEFAULT_MAX_OPEN,
        help=f"open orders per bot before it only cancels (default {DEFAULT_MAX_OPEN})",
    )
    parser.add_argument(
        "--subscribers", type=int, default=None, help="read-only book+trades connections"
    )
    parser.add_argument(
        "--sub-procs", type=int, default=1, help="processes the subscribers are spread over"
    )
    parser.add_argument(
        "--fanout",
        action="store_true",
        help="run twice, with no subscriber and with --subscribers"
        f" (default {DEFAULT_FANOUT_SUBSCRIBERS}), and report the ratio",
    )
    parser.add_argument("--seed", type=int, default=1, help="the bots' flow seed")
    parser.add_argument(
        "--profile", metavar="FILE", help="sample the server with py-spy into FILE (raw stacks)"
    )
    parser.add_argument(
        "--profile-native", action="store_true", help="py-spy --native (Cython frames too)"
    )
    # Internal: the worker processes.
    parser.add_argument("--worker", choices=("bots", "subscribers"), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    count = args.count if args.count is not None else (QUICK_COUNT if args.quick else DEFAULT_COUNT)
    warmup = (
        args.warmup if args.warmup is not None else (QUICK_WARMUP if args.quick else DEFAULT_WARMUP)
    )
    if args.clients < 1 or count < 1 or args.window < 1 or args.duration <= 0:
        raise SystemExit("--clients, --count, --window and --duration must be positive")
    if args.rate < 0 or warmup < 0 or args.max_open < 1:
        raise SystemExit("--rate and --warmup must not be negative, --max-open must be positive")
    if not 1 <= args.batch <= MAX_BATCH:
        raise SystemExit(f"--batch must be 1 to {MAX_BATCH}")
    return {
        "clients": args.clients,
        "client_procs": args.client_procs,
        "rate": args.rate,
        "window": args.window,
        "batch": args.batch,
        "count": count,
        "duration": args.duration,
        "warmup": warmup,
        "durability": args.durability,
        "transport": args.transport,
        "engine_process": args.engine_process,
        "market": args.market,
        "max_open": args.max_open,
        "sub_procs": args.sub_procs,
        "seed": args.seed,
        "profile_native": args.profile_native,
    }


async def _main(args: argparse.Namespace, command: str) -> dict[str, Any]:
    options = _options(args)
    # SIGTERM cancels the run like Ctrl-C does, so the finally clauses stop the server.
    task = asyncio.current_task()
    if task is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    subscribers = args.subscribers
    if subscribers is None:
        subscribers = DEFAULT_FANOUT_SUBSCRIBERS if args.fanout else 0
    started = time.time()
    if args.fanout:
        baseline = await _run_once(options, 0, None)
        _progress(f"without subscribers: {baseline['orders_per_sec']:,} req/s")
        report = await _run_once(options, subscribers, args.profile)
        report["baseline"] = baseline
        report["fanout_ratio"] = (
            round(report["orders_per_sec"] / baseline["orders_per_sec"], 3)
            if baseline["orders_per_sec"]
            else None
        )
    else:
        report = await _run_once(options, subscribers, args.profile)
    report["machine"] = machine_info(("websockets", "picows", "uvloop", "msgspec"))
    report["code"] = _code_version()
    report["command"] = command
    report["elapsed_s"] = round(time.time() - started, 1)
    return report


def _code_version() -> str | None:
    """The checked-out commit, and whether the server's code differs from it (read-only git)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "engine", "gateway", ":!gateway/app/cli.py"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return None
    return f"{head}{' (engine/gateway modified)' if dirty else ''}" if head else None


def _healthy(report: dict[str, Any]) -> bool:
    runs = [report, report["baseline"]] if "baseline" in report else [report]
    for r in runs:
        if r["unexpected_errors"] or r["lost"] or r["connection_errors"] or not r["acknowledged"]:
            return False
        fanout = r.get("fanout")
        if fanout and not (fanout["seq_contiguous"] and fanout["same_final_seq"]):
            return False
    return True


def run(args: argparse.Namespace) -> int:
    """Run what the parsed options ask for; returns the exit status."""
    if args.worker:
        return _worker(args.worker, args.spec)
    import shlex

    import uvloop

    argv = sys.argv[1:]
    if argv[:2] == ["bench", "gateway"]:
        argv = argv[2:]
    command = shlex.join(["alatau", "bench", "gateway", *argv])
    try:
        report = uvloop.run(_main(args, command))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: the server and the workers were stopped", file=sys.stderr)
        return 130
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0 if _healthy(report) else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    prog = "python -m benchmarks.gateway_bench"
    if argv[:1] == ["--prog"]:  # run by `alatau bench`, which names itself
        prog, argv = argv[1], argv[2:]
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Benchmark the exchange end to end: bots over websockets on loopback.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
