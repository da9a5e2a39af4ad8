"""One participant at scale: many open orders (pruning, paginated ``orders.open``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from gateway.sequencer.queries import OpenOrdersQuery
from gateway.sessions.session import PRUNE_FLOOR, Limits
from gateway.wire.auth import sign

from .gateway_harness import ADMIN_KEY, async_test, running_venue, wait_until
from .test_gateway_session import NOW_MS, Rig

USDT = "USDT-KZT"
BIG = Limits(connection_rate=1e9, connection_burst=1e9, participant_rate=1e9, participant_burst=1e9)


async def _run(rig: Rig, session: Any, connection: Any, frames: list[dict]) -> list[dict]:
    """Feed requests, let the sequencer run, return the answers in the order received."""
    for frame in frames:
        session.on_frame(json.dumps(frame))
    answers: list[dict] = []
    for _ in range(10_000):
        answers += [m for m in connection.take() if "channel" not in m]
        if len(answers) >= len(frames):
            return answers
        await _turn()
    raise AssertionError(f"{len(answers)} answers of {len(frames)}")


async def _turn() -> None:
    await asyncio.sleep(0)


async def _whale(rig: Rig) -> tuple[Any, Any]:
    """A logged-in session of a participant without an open-order limit, funded."""
    admin, admin_connection = rig.open()
    record = {
        "participant_id": "whale",
        "category": "PROFESSIONAL",
        "residency": "KZ",
        "kyc_level": 3,
        "api_key": "whale-key",
        "api_secret": "whale-secret",
    }
    answers = await _run(
        rig,
        admin,
        admin_connection,
        [
            {"id": 1, "method": "auth.admin", "params": {"admin_key": ADMIN_KEY}},
            {"id": 2, "method": "admin.participant", "params": record},
            {
                "id": 3,
                "method": "admin.deposit",
                "params": {"participant_id": "whale", "asset": "KZT", "amount": "100000000000"},
            },
        ],
    )
    assert all(a["ok"] for a in answers), answers
    session, connection = rig.open()
    login = {
        "api_key": "whale-key",
        "timestamp": NOW_MS,
        "signature": sign("whale-secret", "whale-key", NOW_MS),
    }
    (answer,) = await _run(
        rig, session, connection, [{"id": 0, "method": "auth.login", "params": login}]
    )
    assert answer["ok"], answer
    return session, connection


def _place(i: int, price: str = "500.00") -> dict:
    return {
        "id": i,
        "method": "order.place",
        "params": {"market": USDT, "side": "buy", "qty": "2", "price": price},
    }


@async_test
async def test_pruning_placed_orders_is_amortized() -> None:
    """30,000 resting orders from one session: the full listings that keep ``placed`` to
    what is open stay logarithmic in the count (they were one per order past 10,000)."""
    rig = Rig(BIG)
    rig.venue.start()
    session, connection = await _whale(rig)
    listings = []
    query = rig.venue.query

    def counting(q: Any, done: Any) -> None:
        if type(q) is OpenOrdersQuery:
            listings.append(q)
        query(q, done)

    rig.venue.query = counting  # type: ignore[method-assign]
    total = 30_000
    for start in range(0, total, 2_000):
        answers = await _run(
            rig, session, connection, [_place(i) for i in range(start, start + 2_000)]
        )
        assert all(a["ok"] and a["result"]["status"] == "new" for a in answers), answers[:2]
    assert len(session.placed) == total
    assert session.prunes == len(listings) == 2  # at 10,001 and at 20,003 orders
    assert all(q.limit is None for q in listings)
    # orders that closed elsewhere are forgotten at the next prune
    assert PRUNE_FLOOR == 10_000
    await rig.venue.stop()


@async_test
async def test_orders_open_pages_through_every_order() -> None:
    rig = Rig(BIG)
    rig.venue.start()
    session, connection = await _whale(rig)
    await _run(rig, session, connection, [_place(i, f"{500 + i % 7}.00") for i in range(25)])
    eth = await _run(
        rig,
        session,
        connection,
        [
            {
                "id": "e",
                "method": "order.place",
                "params": {"market": "ETH-KZT", "side": "buy", "qty": "0.01", "price": "1700000"},
            }
        ],
    )
    assert eth[0]["ok"], eth
    every = sorted(o.order_id for o in rig.exchange.open_orders("whale"))
    assert len(every) == 26
    built = []
    report = rig.exchange._order_report

    def counting(order: Any, *args: Any) -> Any:
        built.append(order)
        return report(order, *args)

    rig.exchange._order_report = counting  # type: ignore[method-assign]
    seen: list[int] = []
    after = 0
    pages = 0
    while True:
        (answer,) = await _run(
            rig,
            session,
            connection,
            [
                {
                    "id": pages,
                    "method": "orders.open",
                    "params": {"limit": 10, "after_order_id": after},
                }
            ],
        )
        result = answer["result"]
        assert set(result) == {"orders", "next"}
        assert len(result["orders"]) <= 10
        seen += [o["order_id"] for o in result["orders"]]
        pages += 1
        if result["next"] is None:
            break
        assert result["next"] == result["orders"][-1]["order_id"]
        after = result["next"]
    assert seen == every and pages == 3
    assert len(built) == 26  # each order built once, on its own page only
    (usdt,) = await _run(
        rig, session, connection, [{"id": "u", "method": "orders.open", "params": {"market": USDT}}]
    )
    assert len(usdt["result"]["orders"]) == 25 and usdt["result"]["next"] is None
    (exact,) = await _run(
        rig, session, connection, [{"id": "x", "method": "orders.open", "params": {"limit": 26}}]
    )
    assert len(exact["result"]["orders"]) == 26 and exact["result"]["next"] is None
    for bad in ({"limit": 0}, {"limit": 1001}, {"after_order_id": -1}):
        (answer,) = await _run(
            rig, session, connection, [{"id": "b", "method": "orders.open", "params": bad}]
        )
        assert answer["error"]["code"] == "INVALID_PARAMS", answer
    await rig.venue.stop()


# -- connection caps -------------------------------------------------------------------------


def test_a_participant_has_at_most_its_cap_of_sessions_logged_in() -> None:
    from .test_gateway_session import login, request

    rig = Rig(Limits(max_sessions_per_participant=2))
    first = rig.login("bob")
    rig.login("bob")
    session, connection = rig.open()
    error = request(session, connection, "auth.login", login("bob"))["error"]
    assert error["code"] == "TOO_MANY_CONNECTIONS" and "2 sessions" in error["message"]
    assert session.participant_id is None and not session.closed  # still usable
    assert request(session, connection, "auth.login", login("mm1"))["ok"] is True  # another
    again = request(first[0], first[1], "auth.login", login("bob"))  # the same one: no count
    assert again["ok"] is True
    first[0].on_close()
    assert request(session, connection, "auth.login", login("mm1"))["ok"] is True
    other, other_connection = rig.open()
    assert request(other, other_connection, "auth.login", login("bob"))["ok"] is True
    assert rig.gateway.sessions_per_participant == {"bob": 2, "mm1": 1}


@pytest.mark.parametrize("transport", ["picows", "websockets"])
@async_test
async def test_an_address_has_at_most_its_cap_of_connections(
    transport: str, monkeypatch: Any
) -> None:
    monkeypatch.setenv("ALATAU_TRANSPORT", transport)
    async with running_venue(Limits(max_connections_per_address=2)) as v:
        first = await v.connect()
        await v.connect()
        await first.ping()
        refused = await v.connect()
        code, reason = await asyncio.wait_for(refused.closed, 5)
        assert (code, reason) == (1008, "too many connections from this address")
        await first.close()
        await wait_until(lambda: v.gateway.connections_per_address.get("127.0.0.1") == 1)
        third = await v.connect()
        await third.ping()
        assert v.gateway.connections_per_address == {"127.0.0.1": 2}


@async_test
async def test_memory_is_trimmed_after_a_storm_of_closed_sessions(monkeypatch: Any) -> None:
    from gateway.sessions import session as session_module

    trimmed = []
    monkeypatch.setattr(session_module, "TRIM_DELAY_S", 0.01)
    monkeypatch.setattr(session_module, "release_memory", lambda: trimmed.append(1) or True)
    rig = Rig()
    sessions = [rig.open()[0] for _ in range(session_module.TRIM_AFTER_CLOSES)]
    for session in sessions[:-1]:
        session.on_close()
    await asyncio.sleep(0.05)
    assert trimmed == []
    sessions[-1].on_close()
    await wait_until(lambda: trimmed == [1], 2, "the trim")
    assert rig.gateway.trims == 1 and rig.gateway.connections_per_address == {}
    assert session_module.release_memory is not None
