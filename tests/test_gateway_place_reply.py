"""The reply to order.place describes the new order, even when other reports come first."""

from __future__ import annotations

import asyncio
import datetime
import json

from gateway.app.serve import (
    DEMO_PRIVATE_KEYS,
    ServeOptions,
    build_exchange,
    fund_demo_participants,
)
from gateway.hosts.local import LocalHost
from gateway.sequencer.venue import Venue
from gateway.sessions.session import Gateway
from gateway.wire.auth import sign_ed25519
from tests.kit.connections import RecordingConnection


def test_order_after_licence_expiry_is_refused_not_confused_with_swept_orders():
    """Past its licence's end, a maker's resting order is swept and its next order is
    answered LICENSE_EXPIRED (not ok with the swept order)."""

    async def scenario() -> list[dict]:
        almaty = datetime.timezone(datetime.timedelta(hours=5))
        now = [int(datetime.datetime(2028, 12, 31, 12, tzinfo=almaty).timestamp() * 1000)]
        exchange = build_exchange(ServeOptions())
        fund_demo_participants(exchange, now[0])
        venue = Venue(LocalHost(exchange), clock_ms=lambda: now[0])
        venue.start()
        connection = RecordingConnection()
        session = Gateway(venue, admin_key=None).open_session(connection)

        def send(request_id: int, method: str, params: dict) -> None:
            session.on_frame(json.dumps({"id": request_id, "method": method, "params": params}))

        send(
            1,
            "auth.login",
            {
                "api_key": "demo-mm1-key",
                "timestamp": now[0],
                "signature": sign_ed25519(
                    DEMO_PRIVATE_KEYS["demo-mm1-key"], "demo-mm1-key", now[0]
                ),
            },
        )
        send(
            2,
            "order.place",
            {"market": "BTC-KZT", "side": "sell", "qty": "0.01", "price": "45000000"},
        )
        await asyncio.sleep(0.05)
        now[0] += 86_400_000  # MM1-AFSA is valid to 2028-12-31
        send(
            3,
            "order.place",
            {"market": "BTC-KZT", "side": "sell", "qty": "0.02", "price": "45000100"},
        )
        await asyncio.sleep(0.05)
        await venue.stop()
        return connection.out

    replies = {m["id"]: m for m in asyncio.run(scenario()) if "id" in m}
    assert replies[2]["ok"] is True
    assert replies[3]["ok"] is False
    assert replies[3]["error"]["code"] == "LICENSE_EXPIRED"


def test_an_answers_order_is_the_streams_order_view_with_its_fills():
    """``order.place``/``order.cancel`` answers carry the order as the ``orders`` stream
    shows it (without ``type``), then ``fills``: byte for byte, over a randomized stream
    with fills, cancel reasons and rejects."""
    import random

    from engine.reports import FillReport, OrderReport
    from gateway.wire import protocol
    from gateway.wire.views import fill_view, order_result, order_view
    from tests.kit.commands import random_command, soak_venue
    from tests.kit.venues import TS0

    exchange = soak_venue()
    rnd = random.Random(3)
    open_orders: list = []
    seen = {"fills": 0, "reason": 0}
    for index in range(3000):
        reports = exchange.execute(random_command(rnd, TS0 + index, open_orders))
        for report in reports:
            if type(report) is not OrderReport or report.order_id is None:
                continue
            if report.status == "new":
                open_orders.append((report.participant_id, report.market, report.order_id))
            market = exchange.markets[report.market]
            fills = [f for f in reports if type(f) is FillReport and f.order_id == report.order_id]
            view = order_view(report, market)
            del view["type"]
            view["fills"] = [
                {k: v for k, v in fill_view(f, market).items() if k != "type"} for f in fills
            ]
            assert protocol.ok(1, order_result(report, market, fills)) == protocol.ok(1, view)
            seen["fills"] += bool(fills)
            seen["reason"] += report.reason is not None
    assert seen["fills"] and seen["reason"]
