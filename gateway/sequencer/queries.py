"""Read-only questions to the exchange that go through the command stream.

A session does not read the exchange's balances or open orders directly: it sends a query
to the venue, which answers it in sequence with the commands, as of the moment it reaches
the engine.  So a client that pipelines an order and then ``orders.open`` sees its order,
the answer is as durable as the commands before it, and the same code works whether the
exchange runs in this process or in an engine process of its own (``gateway.hosts.process``):
queries and their answers are msgspec Structs and plain values, so they cross a pipe as is.
Queries are not journaled: they change nothing.
"""

from __future__ import annotations

from typing import Any

import msgspec

from engine.exchange import Exchange


class BalancesQuery(msgspec.Struct, tag="balances", frozen=True):
    """(asset, total, available, held) per asset of a participant, sorted by asset."""

    participant_id: str


class OpenOrdersQuery(msgspec.Struct, tag="open_orders", frozen=True):
    """A page of a participant's open orders, in order id order: those with an id above
    ``after_order_id``, at most ``limit`` of them (None: all, for the gateway's own use).
    The answer is ``(orders, next)``: ``OrderReport``s, and the cursor of the next page
    (the last id of this one) or None when there is no more."""

    participant_id: str
    market: str | None = None
    after_order_id: int = 0
    limit: int | None = None


class OrderStatusQuery(msgspec.Struct, tag="order_status", frozen=True):
    """One of a participant's open orders, by ``order_id`` or ``client_order_id`` (one of
    them given): the answer is its ``OrderReport`` as it stands, or None if the
    participant has no open order by that id (a closed one is in the history database)."""

    participant_id: str
    order_id: int | None = None
    client_order_id: str | None = None


Query = BalancesQuery | OpenOrdersQuery | OrderStatusQuery
QUERY_KINDS = frozenset((BalancesQuery, OpenOrdersQuery, OrderStatusQuery))
"""The query types as a set, for ``type(item) in QUERY_KINDS`` on the order path: every
command passes that test, and ``isinstance`` with a msgspec Struct class (its metaclass is
not ``type``) goes through ``__instancecheck__``, about 800 instructions per class; a set
lookup is about 50.  The types are final: nothing subclasses them."""


def answer(exchange: Exchange, query: Query) -> Any:
    """The answer to ``query`` from the exchange as it stands."""
    if isinstance(query, BalancesQuery):
        return [
            (asset, total, available, held)
            for asset, (total, available, held) in exchange.ledger.balances(
                query.participant_id
            ).items()
        ]
    if isinstance(query, OrderStatusQuery):
        return exchange.open_order(query.participant_id, query.order_id, query.client_order_id)
    return open_orders_page(exchange, query)


def open_orders_page(exchange: Exchange, query: OpenOrdersQuery) -> tuple[list[Any], int | None]:
    """The page ``query`` asks for (``Exchange.open_orders_page``), or all (limit None)."""
    if query.limit is None:
        return exchange.open_orders(query.participant_id, query.market), None
    return exchange.open_orders_page(
        query.participant_id, query.market, query.after_order_id, query.limit
    )
