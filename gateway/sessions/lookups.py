"""The read-only lookups both doors answer, written once: the websocket methods
``market.depth``, ``trades.recent``, ``orders.history``, ``fills.history`` and
``order.status`` (``gateway.sessions.session``) and their HTTP twins ``GET /depth``,
``/trades``, ``/orders/history``, ``/fills`` and ``/order`` (``gateway.sessions.http``).

Typed arguments in (a market symbol, a limit, times in ms, a cursor string as a previous
page gave it as ``next``, an order's id or client order id, the participant), wire-ready
dicts out.  Each door parses its own input into those arguments; a lookup that cannot be
answered raises ``WireError`` with the protocol's code (``UNKNOWN_MARKET``,
``INVALID_PARAMS``, ``UNKNOWN_ORDER``, ``NOT_FOUND`` when the server keeps no history
database, ``VENUE_STOPPED``), which the HTTP door turns into its status.

Depth and trades read what the venue has published (the L2 mirrors of
``gateway.sequencer.marketdata``, the tapes of ``gateway.sequencer.tape``), so a depth's
``seq`` joins the ``book:`` stream.  The histories read the history database
(``gateway.storage.history``), with ``stale`` when its writer is behind.  An order's status
is a query through the sequencer (``OrderStatusQuery``), answered in sequence with the
commands before it, so an order just placed is found; an order that is no longer open is
looked up in the history database.

What reads the history database is a coroutine (``orders_history``, ``fills_history``,
``read``): the query runs on the database's reader thread (``HistoryWriter.read``) while
the loop serves everyone else, and a database error is logged and answered ``INTERNAL``.
The websocket door runs each in a task of its own (``answer``), so its answer may come
after those of requests sent after it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from engine.markets import Market
from engine.reports import OrderReport
from gateway.sequencer.queries import OrderStatusQuery
from gateway.sequencer.venue import STOPPED, Venue
from gateway.storage.history import HistoryWriter
from gateway.wire.protocol import WireError
from gateway.wire.views import decimal_text, levels_view, order_view

BAD_CURSOR = "cursor is the `next` of the previous page"
CLOSED_ORDER_WAIT_S = 2.0
"""How long ``order.status`` waits for the history's writer to reach the batch an order
closed in (it commits every ``WRITE_EVERY_S``, 50 ms, under load; at once when idle)."""

HISTORY_SLOW = (
    "the order is not open, and the order history has not caught up with the venue yet: "
    "ask again shortly"
)
HISTORY_STALE = (
    "the order is not open, and the order history misses recent orders (its writer fell "
    "behind; the next start catches it up from the journal)"
)

log = logging.getLogger("alatau.history")
_waiting: set[asyncio.Task[None]] = set()
T = TypeVar("T")


def market_of(venue: Venue, symbol: str) -> Market:
    """The market ``symbol`` names, or ``UNKNOWN_MARKET``."""
    market = venue.markets.get(symbol)
    if market is None:
        raise WireError("UNKNOWN_MARKET", f"no market {symbol[:32]!r}")
    return market


def history_of(history: HistoryWriter | None) -> HistoryWriter:
    """The history database, or ``NOT_FOUND`` on a server that keeps none."""
    if history is None:
        raise WireError("NOT_FOUND", "this server keeps no history database")
    return history


async def read(history: HistoryWriter | None, query: Callable[[HistoryWriter], T]) -> T:
    """``query(writer)`` (a reading method of ``HistoryWriter``) run on the history
    database's reader thread, the loop free meanwhile.  ``NOT_FOUND`` on a server that
    keeps no history database; a database error is logged and is ``INTERNAL`` (the
    session lives)."""
    writer = history_of(history)
    try:
        return await writer.read(lambda: query(writer))
    except sqlite3.Error as exc:
        log.error("reading the history database failed: %r", exc)
        raise WireError("INTERNAL", "the history database could not be read") from None


def answer(
    lookup: Coroutine[Any, Any, dict[str, Any]],
    done: Callable[[dict[str, Any] | WireError], None],
) -> None:
    """Run ``lookup`` (``orders_history(...)``, say) in a task of its own; ``done`` gets its
    answer or its ``WireError`` (and ``INTERNAL`` for a bug, logged), exactly once."""
    task = asyncio.get_running_loop().create_task(_answer(lookup, done))
    _waiting.add(task)  # the loop keeps only a weak reference to a task
    task.add_done_callback(_waiting.discard)


async def _answer(
    lookup: Coroutine[Any, Any, dict[str, Any]],
    done: Callable[[dict[str, Any] | WireError], None],
) -> None:
    try:
        result: dict[str, Any] | WireError = await lookup
    except WireError as exc:
        result = exc
    except Exception:  # a bug of ours: this request fails, the session lives on
        log.exception("a lookup failed inside the server")
        result = WireError(
            "INTERNAL", "the server failed to handle the request; it may or may not have run"
        )
    done(result)


def depth(venue: Venue, symbol: str, limit: int) -> dict[str, Any]:
    """The best ``limit`` levels a side of ``symbol``'s book, with the ``book:`` seq."""
    market = market_of(venue, symbol)
    mirror = venue.channels.mirrors.get(market.symbol)
    if mirror is None:
        return {"market": market.symbol, "seq": 0, "bids": [], "asks": []}
    bids = sorted(mirror.bids.items(), reverse=True)[:limit]
    asks = sorted(mirror.asks.items())[:limit]
    return {
        "market": market.symbol,
        "seq": mirror.seq,
        "bids": levels_view(bids, market),
        "asks": levels_view(asks, market),
    }


def recent_trades(venue: Venue, symbol: str, limit: int) -> list[dict[str, Any]]:
    """The last ``limit`` trades of ``symbol``, newest first."""
    market = market_of(venue, symbol)
    return venue.tapes.get(market.symbol, market).recent(limit)


async def orders_history(
    venue: Venue,
    history: HistoryWriter | None,
    participant_id: str,
    market: str | None,
    start: int | None,
    end: int | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """A page of the participant's closed orders, newest first:
    ``{"orders", "next", "stale"}``, ``next`` the cursor of the next page or None."""
    symbol = None if market is None else market_of(venue, market).symbol
    after = None
    if cursor is not None:
        ts_text, _, key = cursor.partition(":")
        if not (ts_text.isascii() and ts_text.isdigit() and key[:1] in ("o", "r")):
            raise WireError("INVALID_PARAMS", BAD_CURSOR)
        after = (int(ts_text), key)
    writer = history_of(history)
    rows = await read(
        writer, lambda w: w.closed_orders(participant_id, symbol, start, end, limit, after)
    )
    orders = [order_row_view(venue, row[:-1]) for row in rows]
    following = f"{rows[-1][-2]}:{rows[-1][-1]}" if len(rows) == limit else None
    return {"orders": orders, "next": following, "stale": writer.behind}


async def fills_history(
    venue: Venue,
    history: HistoryWriter | None,
    participant_id: str,
    market: str | None,
    start: int | None,
    end: int | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """A page of the participant's fills, newest first: ``{"fills", "next", "stale"}``."""
    symbol = None if market is None else market_of(venue, market).symbol
    after = None
    if cursor is not None:
        parts = cursor.split(":")
        if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
            raise WireError("INVALID_PARAMS", BAD_CURSOR)
        after = (int(parts[0]), int(parts[1]), int(parts[2]))
    writer = history_of(history)
    rows = await read(writer, lambda w: w.fills(participant_id, symbol, start, end, limit, after))
    fills = []
    markets = venue.markets
    for trade_id, order_id, client_order_id, fill_market, side, price, qty, fee, *rest in rows:
        fee_asset, liquidity, ts = rest
        m = markets[fill_market]
        fills.append(
            {
                "trade_id": trade_id,
                "order_id": order_id,
                "client_order_id": client_order_id,
                "market": fill_market,
                "side": side,
                "price": decimal_text(price, m.quote_scale),
                "qty": decimal_text(qty, m.base_scale),
                "fee": decimal_text(fee, m.quote_scale),
                "fee_asset": fee_asset,
                "liquidity": liquidity,
                "ts": ts,
            }
        )
    following = None
    if len(rows) == limit:
        last = rows[-1]
        following = f"{last[-1]}:{last[0]}:{last[1]}"
    return {"fills": fills, "next": following, "stale": writer.behind}


def _query_stopped(venue: Venue) -> WireError:
    """The answer to a query the venue stopped before running."""
    return WireError("VENUE_STOPPED", f"{venue.health()['reason']}: the query did not run")


def order_status(
    venue: Venue,
    history: HistoryWriter | None,
    participant_id: str,
    order_id: int | None,
    client_order_id: str | None,
    done: Callable[[dict[str, Any] | WireError], None],
) -> None:
    """Look one of the participant's orders up, by exactly one of ``order_id`` and
    ``client_order_id``: the open order as the engine holds it, in sequence with the
    commands before this (a query), else the newest closed one by that id in the history
    database.  ``done`` gets the order's view or the ``WireError`` (``UNKNOWN_ORDER``,
    ``NOT_FOUND`` without a history database, ``VENUE_STOPPED``)."""
    if (order_id is None) == (client_order_id is None):
        raise WireError("INVALID_PARAMS", "give exactly one of `order_id` and `client_order_id`")

    def answered(report: Any) -> None:  # OrderReport | None, or STOPPED
        if report is STOPPED:
            done(_query_stopped(venue))
            return
        if report is not None:
            view = order_view(report, venue.markets[report.market])
            view.pop("type", None)
            done(view)
            return
        try:
            writer = history_of(history)
        except WireError as exc:
            done(exc)
            return
        # Not open: read from the history, once its writer has caught up (a task of its
        # own, so the wait, if any, is off the loop's turn).
        task = asyncio.get_running_loop().create_task(
            _closed_order(venue, writer, participant_id, order_id, client_order_id, done)
        )
        _waiting.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(_waiting.discard)

    venue.query(OrderStatusQuery(participant_id, order_id, client_order_id), answered)


async def open_order_market(
    venue: Venue, participant_id: str, order_id: int | None, client_order_id: str | None
) -> str:
    """The market of one of the participant's open orders, as the engine holds it (a query
    in sequence with the commands before it): what a cancel without a market needs.  Not
    the history database, whose writer may not have written an order placed a moment ago.
    ``UNKNOWN_ORDER`` when the participant has no open order by that id."""
    found: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    venue.query(OrderStatusQuery(participant_id, order_id, client_order_id), found.set_result)
    report = await found
    if report is STOPPED:
        raise _query_stopped(venue)
    if report is None:
        raise WireError("UNKNOWN_ORDER", "no open order of yours has this id")
    market: str = report.market
    return market


async def _closed_order(
    venue: Venue,
    writer: HistoryWriter,
    participant_id: str,
    order_id: int | None,
    client_order_id: str | None,
    done: Callable[[dict[str, Any] | WireError], None],
) -> None:
    """An order that is no longer open, read from the history once it has written
    everything the venue had published when the query was answered, so a client never
    hears ``UNKNOWN_ORDER`` for an order it has just seen close (the writer commits every
    ``WRITE_EVERY_S`` under load).  An id that is nobody's waits as long, then gets
    ``UNKNOWN_ORDER``; a writer that is behind (batches dropped) or slower than
    ``CLOSED_ORDER_WAIT_S`` is not waited for further, and an order not found then is
    ``HISTORY_BEHIND``, not ``UNKNOWN_ORDER``: it may well exist, closed in a batch the
    history has not written (the writer runs in the cores' idle time, and a machine busy
    for long enough leaves it behind: ``gateway.storage.history_process``)."""
    await asyncio.sleep(0)  # the query's own batch is counted as published after its answers
    published = venue.published_seq
    await writer.wait_written(published, CLOSED_ORDER_WAIT_S)
    try:
        row = await read(writer, lambda w: w.order(participant_id, order_id, client_order_id))
    except WireError as exc:  # the database failed (INTERNAL): the answer says so
        done(exc)
        return
    if row is not None:
        done(order_row_view(venue, row))
    elif writer.behind:
        done(WireError("HISTORY_BEHIND", HISTORY_STALE))
    elif writer.written_seq < published:
        done(WireError("HISTORY_BEHIND", HISTORY_SLOW))
    else:
        done(WireError("UNKNOWN_ORDER", "no order of yours has this id"))


def order_row_view(venue: Venue, row: tuple[Any, ...]) -> dict[str, Any]:
    """An order as the history database keeps it (``ORDER_COLUMNS``), as the wire shows
    it: ``order_view`` without ``type``, with ``created_ts``."""
    (order_id, participant_id, symbol, client_order_id, side, order_type, price, qty) = row[:8]
    filled, remaining, status, reason, message, created_ts, ts = row[8:15]
    report = OrderReport(
        ts=ts,
        participant_id=participant_id,
        market=symbol,
        order_id=order_id,
        client_order_id=client_order_id,
        side=side,
        order_type=order_type or "limit",
        price=price,
        qty=qty,
        filled_qty=filled,
        remaining_qty=remaining,
        status=status,
        reason=reason,
        message=message,
    )
    view = order_view(report, venue.markets[symbol])
    view.pop("type", None)
    view["created_ts"] = created_ts
    return view
