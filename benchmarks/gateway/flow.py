"""The bots' order flow: what each connection sends.  Its parameters (the mix of
passive places, crossing IOCs and cancels; prices ``SPREAD_TICKS`` around the reference and
``CROSS_TICKS`` through it; ``QTY_STEPS`` quantities), the kinds of operation, the price and
quantity strings of a market (``flow_prices``), and ``OrderFlow``: one connection's seeded
draw of operations, within ``--max-open``, grouped K at a time with ``--batch`` K.  The
method is in the docstring of ``benchmarks/gateway_bench.py``.
"""

from __future__ import annotations

import random
from decimal import ROUND_CEILING, Decimal
from typing import Any

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

MAX_BATCH = 50
"""The most orders an ``order.batch`` or ``order.cancel_batch`` may carry (the server's
``gateway.wire.protocol.MAX_BATCH``)."""

KINDS = ("place", "cross", "cancel")

PLACE, CROSS, CANCEL = range(3)

OPEN_STATES = frozenset({"new", "partially_filled"})


def flow_prices(market: dict[str, Any]) -> tuple[list[str], list[str]]:
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


class OrderFlow:
    """What one connection sends, and its view of its own open orders: the operations drawn
    from its seeded flow (``operation``), grouped K at a time with ``--batch`` K
    (``next_group``), within ``--max-open`` (counting ``open`` and ``placing``, which the
    bot's responses update).  A mixin of ``benchmarks.gateway.bots.Bot``, which sends them
    (kept on the bot itself, not in an object of its own, so the hot path's attribute reads
    are the bot's)."""

    def __init__(self, spec: dict[str, Any], index: int) -> None:
        self.rng = random.Random(spec["seed"] * 1_000_003 + index)
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
        self.prices = [p.encode() for p in spec["prices"]]
        self.qtys = [q.encode() for q in spec["qtys"]]
        self.mid = SPREAD_TICKS  # index of the reference price in self.prices
        self.max_open = spec["max_open"]
        self.open: list[int] = []  # the orders known open (placed, answered, not canceled)
        # Passive places drawn and not yet answered (in flight, or waiting in a group): each
        # may rest, so it counts against max_open until its answer says (``operation``).
        self.placing = 0
        self.total = spec["warmup"] + spec["counts"][index]  # operations
        self.drawn = 0  # operations drawn from the flow (batch > 1: some wait in a group)
        self.places: list[bytes] = []  # batch > 1: the next order.batch's orders ...
        self.place_kinds = bytearray()  # ... and their kinds (PLACE, CROSS)
        self.cancels: list[bytes] = []  # batch > 1: the next order.cancel_batch's orders
        self.cancel_kinds = bytes((CANCEL,)) * batch

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
        # The rest of the draw from one 32-bit word: the side (bit 0), the quantity (bits
        # 1-15) and the passive offset (bits 16-31), or the order to cancel (all 32).  One C
        # call instead of a ``random()``, a ``randrange`` and a ``randint`` (the last two
        # Python code in ``random``, 0.3-0.4 µs apiece): an operation took 1.5 µs to draw,
        # 0.6 now (``timeit``), of the 5-7 µs of the load generator's CPU an order costs at
        # saturation.  The modulo makes no choice more likely than another by more than a
        # thousandth.
        bits = rng.getrandbits(32)
        full = len(self.open) + self.placing + len(self.cancels) >= self.max_open
        if self.open and (full or r < MIX["cancel"]):
            k = bits % len(self.open)
            order_id = self.open[k]
            self.open[k] = self.open[-1]
            self.open.pop()
            if rid:
                return self.cancel_req % (rid, order_id), CANCEL
            return self.cancel_tpl % order_id, CANCEL
        side = b"buy" if bits & 1 else b"sell"
        qty = self.qtys[(bits >> 1 & 0x7FFF) % len(self.qtys)]
        if full or r > 1.0 - MIX["cross"]:
            price = self.prices[self.mid + (CROSS_TICKS if side == b"buy" else -CROSS_TICKS)]
            if rid:
                return self.cross_req % (rid, side, price, qty), CROSS
            return self.cross_tpl % (side, price, qty), CROSS
        offset = 1 + (bits >> 16) % SPREAD_TICKS
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
