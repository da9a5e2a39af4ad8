"""Floor servers: ``alatau serve`` with its order path cut short, to measure what is left.

``alatau bench gateway --floor LEVEL`` runs one of these instead of the real server, with
the same options, the same load generator and the same set-up (admin login, participants,
deposits, logins all go through the real server).  Only ``order.place`` and
``order.cancel`` from a logged-in connection are answered differently:

* ``transport``: the frame's ``id`` is read (one msgspec decode of a two-field Struct) and a
  fixed answer is written back: ``{"id":N,"ok":true,"result":{"order_id":K,"status":..}}``.
  What is measured is picows, the kernel's loopback TCP and the event loop on both sides,
  and the load generator itself: the cost any websocket server in this design pays per
  request before it does anything with it.
* ``session``: the session's own intake runs as for a real order (rate limits, the
  one-pass read of a plain order, or the full request decode, the dispatch and the number
  parsing of any other, and the command built), then the answer is an ``OrderResult`` for
  a new (or canceled) order, encoded the way the real one is.
  No sequencer, exchange, journal, publishing or history.

Neither is a venue: nothing is matched, held or journaled.  They are lower bounds: the real
server does everything the floor does and more, so its orders/s cannot exceed the floor's
on the same machine, nor its latency at a given rate go below it.  They exist to tell what
a bar asks of the order path (``benchmarks/RESULTS.md``, "Issue 16: the floor").

    python -m benchmarks.gateway.floor transport serve --port 0 ...   # what the bench runs
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from engine.markets import Market
from engine.types import Side
from gateway.app import cli
from gateway.sessions import session as session_module
from gateway.sessions.session import Gateway, Session
from gateway.wire import protocol
from gateway.wire._intake import PLACE
from gateway.wire.views import OrderResult, decimal_text

LEVELS = ("transport", "session")


class _Head(msgspec.Struct):
    """Just what the transport floor reads of a request."""

    id: int | str | None = None
    method: str = ""


_decode_head = msgspec.json.Decoder(_Head).decode
_order_ids = itertools.count(1)
_BUY = Side.BUY  # read once: an enum member read off its class costs the enum metaclass


class _TransportFloorSession(Session):
    """A session that answers a logged-in connection's places and cancels with a fixed
    answer, and hands everything else (log-ins, set-up) to the real one."""

    def on_frame(self, frame: bytes | str) -> None:
        if self.participant_id is None or self.is_admin:
            super().on_frame(frame)
            return
        head = _decode_head(frame)
        if head.method == "order.place":
            status = b"new"
        elif head.method == "order.cancel":
            status = b"canceled"
        else:
            super().on_frame(frame)
            return
        self.send(
            b'{"id":%s,"ok":true,"result":{"order_id":%d,"status":"%s","filled_qty":"0"}}'
            % (msgspec.json.encode(head.id), next(_order_ids), status)
        )


class _SessionFloorSession(Session):
    """A session whose plain orders (``gateway.wire._intake``) are answered as soon as
    their command is built; the others go through ``_session_place`` and
    ``_session_cancel``."""

    def _submit_plain(self, plain: tuple[Any, ...]) -> None:
        command: Any = self._plain_command(plain)(0)
        market = plain[2]
        if plain[0] == PLACE:
            side = "buy" if command.side is _BUY else "sell"
            result = _result(command, market, next(_order_ids), side, command.qty, "new")
        else:
            order_id = command.order_id if command.order_id is not None else next(_order_ids)
            result = _result(command, market, order_id, "buy", 0, "canceled")
        self._reply(plain[1], result)


def _session_place(self: Session, request: protocol.Place) -> None:
    command: Any = self._place_command(request.params, request.id)(0)
    market = self.venue.markets[command.market]
    side = request.params.side
    self._reply(request.id, _result(command, market, next(_order_ids), side, command.qty, "new"))


def _session_cancel(self: Session, request: protocol.Cancel) -> None:
    command: Any = self._cancel_command(request.params, request.id)(0)
    market = self.venue.markets[command.market]
    order_id = command.order_id if command.order_id is not None else next(_order_ids)
    self._reply(request.id, _result(command, market, order_id, "buy", 0, "canceled"))


def _result(
    command: Any, market: Market, order_id: int, side: str, qty: int, status: str
) -> OrderResult:
    """An answer shaped as the real one for an order that rests untouched (or is canceled):
    the same fields, the same decimal text."""
    price = getattr(command, "price", None)
    base = market.base_scale
    return OrderResult(
        order_id=order_id,
        client_order_id=command.client_order_id,
        market=command.market,
        side=side,
        order_type="limit",
        price=None if price is None else decimal_text(price, market.quote_scale),
        qty=decimal_text(qty, base),
        filled_qty=decimal_text(0, base),
        remaining_qty=decimal_text(qty, base),
        status=status,
        ts=command.ts,
        fills=[],
    )


def install(level: str) -> None:
    """Cut the order path short at ``level`` in this process (before the server starts)."""
    if level == "transport":
        Gateway.session_type = _TransportFloorSession
    elif level == "session":
        Gateway.session_type = _SessionFloorSession
        dispatch = session_module._DISPATCH
        for kind, handler in ((protocol.Place, _session_place), (protocol.Cancel, _session_cancel)):
            _old, public, admin = dispatch[kind]
            dispatch[kind] = (handler, public, admin)
    else:
        raise SystemExit(f"floor level must be one of {', '.join(LEVELS)}, not {level!r}")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        raise SystemExit(
            f"usage: python -m benchmarks.gateway.floor {{{','.join(LEVELS)}}} serve ..."
        )
    install(args[0])
    return cli.main(args[1:])


if __name__ == "__main__":
    sys.exit(main())
