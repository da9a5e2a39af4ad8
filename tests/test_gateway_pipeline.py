"""The gateway's batching: conflated market data, the pipelined journal, batched writes.

* A batch's book changes of a market go out as one ``update`` covering ``first_seq`` ..
  ``seq`` with only the levels that differ from before the batch; its trades as one list.
* The sequencer executes the next batch while the previous one waits for the disk, but
  publishes (and so acknowledges) batches only once durable, and in execution order; a
  failed journal write stops all acknowledgement.
* ``Journal.sync`` coalesces what is appended while a flush is in flight into one flush.
* The picows connection frames queued messages itself: the frames must be byte-for-byte
  what a websocket library would produce.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from websockets.frames import Frame, Opcode

from engine.commands import Deposit, PlaceOrder
from engine.reports import BookChanged
from engine.types import OrderType, Side, TimeInForce
from gateway.hosts.local import LocalHost
from gateway.sequencer.marketdata import L2Mirror
from gateway.sequencer.venue import STOPPED, JournalFailed, Venue
from gateway.storage.datadir import Storage
from gateway.storage.journal import Journal, scan
from gateway.transport.picows_server import text_frame_header
from gateway.wire.protocol import WireError

from .gateway_harness import async_test
from .test_gateway_session import BTC, NOW_MS, Rig

# -- the L2 mirror's batch netting -----------------------------------------------------------


def change(seq: int, bids=(), asks=()) -> BookChanged:
    return BookChanged(market=BTC, seq=seq, bids=list(bids), asks=list(asks))


def test_a_batch_update_holds_only_the_levels_that_differ_from_before_it() -> None:
    from engine.markets import load_markets

    mirror = L2Mirror(load_markets()[BTC])
    mirror.apply([change(1, bids=[(100, 5), (99, 3)], asks=[(105, 2)])])
    bids, asks = mirror.apply(
        [
            change(2, bids=[(101, 7)]),  # a new level that stays
            change(3, bids=[(98, 1)]),  # a level that comes ...
            change(4, bids=[(98, 0)]),  # ... and goes within the batch: not reported
            change(5, bids=[(100, 6)], asks=[(105, 0)]),  # changed; gone
            change(6, bids=[(99, 4)]),  # changed ...
            change(7, bids=[(99, 3)]),  # ... and back to what it was: not reported
        ]
    )
    assert bids == [(101, 7), (100, 6)]  # best first
    assert asks == [(105, 0)]
    assert mirror.seq == 7
    assert dict(mirror.bids) == {101: 7, 100: 6, 99: 3}
    assert dict(mirror.asks) == {}


# -- conflation through a session ------------------------------------------------------------


def place_frame(request_id: int, side: str, price: str, qty: str = "0.01") -> str:
    params = {"market": BTC, "side": side, "type": "limit", "price": price, "qty": qty}
    return json.dumps({"id": request_id, "method": "order.place", "params": params})


@async_test
async def test_one_batch_gives_one_book_update_and_one_trades_message() -> None:
    rig = Rig()
    rig.venue.start()
    watcher, watched = rig.open()
    watcher.on_frame(
        json.dumps(
            {
                "id": 1,
                "method": "subscribe",
                "params": {"channels": [f"book:{BTC}", f"trades:{BTC}"]},
            }
        )
    )
    subscribed, snapshot = watched.take()
    assert subscribed["ok"] and snapshot["data"]["type"] == "snapshot", (subscribed, snapshot)
    mm, mm_out = rig.login("mm1")
    bob, bob_out = rig.login("bob")
    # All of these arrive in one turn of the loop, so they form one batch.
    mm.on_frame(place_frame(1, "sell", "45000000"))
    mm.on_frame(place_frame(2, "sell", "45001000"))
    mm.on_frame(place_frame(3, "buy", "44000000"))
    bob.on_frame(place_frame(4, "buy", "45001000", qty="0.015"))  # takes 0.01 + 0.005
    await rig.venue.stop()

    assert len(mm_out.take()) == 3 and len(bob_out.take()) == 1
    messages = watched.take()
    assert [m["channel"] for m in messages] == ["trades", "book"]
    trades, update = messages
    assert [(t["price"], t["qty"]) for t in trades["data"]] == [
        ("45000000.00", "0.01000000"),
        ("45001000.00", "0.00500000"),
    ]
    engine_seq = rig.exchange.books[BTC].seq
    assert update["first_seq"] == snapshot["seq"] + 1
    assert update["seq"] == engine_seq > update["first_seq"]  # several changes, one message
    # The 45000000 ask came and went within the batch, and was not there before it: not
    # reported at all.  The 45001000 ask came and was half taken: its final quantity.
    assert update["data"]["bids"] == [["44000000.00", "0.01000000"]]
    assert update["data"]["asks"] == [["45001000.00", "0.00500000"]]


# -- the pipelined sequencer -----------------------------------------------------------------


class ManualJournal:
    """A journal whose batches become durable when the test says so."""

    snapshot_due = False

    def __init__(self) -> None:
        self.batches: list[list[object]] = []
        self.futures: list[asyncio.Future[None]] = []
        self._current: list[object] = []

    def append_batch(self, commands: list[object], reports: object = None) -> None:
        self._current.extend(commands)

    def sync_later(self) -> asyncio.Future[None]:
        self.batches.append(self._current)
        self._current = []
        future = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future

    async def commit(self) -> None:
        await self.sync_later()


def deposit(ts: int) -> Deposit:
    return Deposit(ts=ts, participant_id="bob", asset="KZT", amount=100)


async def turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def two_batches_in_flight() -> tuple[Venue, ManualJournal, list[str]]:
    """A venue whose journal completes only when told, with two one-command batches
    executed and waiting for the disk; the list collects the answers: the name of an
    acknowledged one, or ``stopped: name`` for one the venue stopped before it was durable."""
    rig = Rig()
    journal = ManualJournal()
    venue = Venue(LocalHost(rig.exchange, journal=journal), clock_ms=lambda: NOW_MS)
    venue.start()
    acknowledged: list[str] = []
    venue.submit(deposit, answer_into(acknowledged, "first"))
    await turns()
    venue.submit(deposit, answer_into(acknowledged, "second"))
    await turns()
    return venue, journal, acknowledged


def answer_into(answers: list[str], name: str):
    return lambda reports: answers.append(f"stopped: {name}" if reports is STOPPED else name)


@async_test
async def test_batches_are_acknowledged_only_when_durable_and_in_order() -> None:
    venue, journal, acknowledged = await two_batches_in_flight()
    # Both executed (the engine did not wait for the disk), neither acknowledged.
    assert venue.commands_executed == 2 and len(journal.batches) == 2
    assert acknowledged == []
    journal.futures[1].set_result(None)  # the later batch durable first: still held back
    await turns()
    assert acknowledged == []
    journal.futures[0].set_result(None)
    await turns()
    assert acknowledged == ["first", "second"]
    await venue.stop()


@async_test
async def test_a_failed_journal_write_stops_all_acknowledgement() -> None:
    venue, journal, acknowledged = await two_batches_in_flight()
    journal.futures[0].set_exception(OSError(28, "No space left on device"))
    journal.futures[1].set_result(None)
    await turns()
    # nothing acknowledged, and every request in flight answered that the venue stopped
    assert acknowledged == ["stopped: first", "stopped: second"]
    assert venue.health()["status"] == "stopped"
    with pytest.raises(WireError) as refused:
        venue.submit(deposit)
    assert refused.value.code == "VENUE_STOPPED"
    with pytest.raises(JournalFailed):
        await venue.stop()


# -- the journal's group commit --------------------------------------------------------------


def place(ts: int, order_id: int) -> PlaceOrder:
    return PlaceOrder(
        ts=ts,
        participant_id="bob",
        market=BTC,
        side=Side.BUY,
        qty=1000 + order_id,
        order_type=OrderType.LIMIT,
        price=4_400_000_000,
        tif=TimeInForce.GTC,
    )


@pytest.mark.parametrize("mode", ["fsync", "buffered"])
def test_a_batch_is_one_write_and_on_disk_when_sync_returns(tmp_path, mode: str) -> None:
    journal = Journal(tmp_path / "journal-1.log", 1, mode)
    writes: list[int] = []
    real_write = journal._write

    def counting_write(data: bytes) -> None:
        writes.append(len(data))
        real_write(data)

    journal._write = counting_write  # type: ignore[method-assign]
    for n in (1, 2, 3):
        journal.append(place(NOW_MS, n))
    assert scan(tmp_path / "journal-1.log").records == []  # appended is not yet written
    assert journal.sync() is None
    assert len(writes) == 1
    records = scan(tmp_path / "journal-1.log").records
    assert [(r.seq, r.command.qty) for r in records] == [(1, 1001), (2, 1002), (3, 1003)]
    journal.sync()  # nothing new: no write
    assert len(writes) == 1
    journal.close()


def test_a_failed_write_fails_every_later_sync(tmp_path) -> None:
    journal = Journal(tmp_path / "journal-1.log", 1, "fsync")

    def broken_write(data: bytes) -> None:
        raise OSError(5, "Input/output error")

    journal._write = broken_write  # type: ignore[method-assign]
    journal.append(place(NOW_MS, 1))
    with pytest.raises(OSError):
        journal.sync()
    journal._write = lambda data: None  # type: ignore[method-assign]  # the disk "recovers"
    journal.append(place(NOW_MS, 2))
    with pytest.raises(OSError):
        journal.sync()  # still refused: what is on disk is unknown
    journal.close()


async def until(predicate, what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def journaled_venue(data_dir: Path) -> tuple[Venue, Storage]:
    """A started venue on the demo exchange, journaled (fsync) to ``data_dir``."""
    rig = Rig()
    storage = Storage(data_dir, mode="fsync")
    storage.recover(rig.exchange.chain, lambda: rig.exchange)
    assert storage.exchange is not None
    venue = Venue(LocalHost(storage.exchange, journal=storage), clock_ms=lambda: NOW_MS)
    venue.start()
    return venue, storage


@async_test
async def test_a_journal_that_cannot_write_stops_the_venue_unacknowledged(tmp_path) -> None:
    """The disk fills up (the journal's file descriptor is pointed at /dev/full): the batch
    that could not be written is not acknowledged, nor anything after it."""
    venue, storage = journaled_venue(tmp_path)
    acknowledged: list[str] = []
    venue.submit(deposit, answer_into(acknowledged, "durable"))
    await until(lambda: acknowledged == ["durable"], "the first deposit")

    journal = storage.journal
    assert journal is not None
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, journal._fd)  # every write now fails with ENOSPC
    os.close(full)
    venue.submit(deposit, answer_into(acknowledged, "lost"))
    await until(lambda: venue._failed, "the venue to stop")
    assert acknowledged == ["durable", "stopped: lost"]
    with pytest.raises(WireError) as refused:
        venue.submit(deposit)
    assert "failed" in refused.value.message
    with pytest.raises(JournalFailed):
        await venue.stop()
    storage.close(final_snapshot=False)


# -- the picows connection's own framing -----------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65_535, 65_536, 300_000])
def test_frame_headers_match_a_websocket_library(length: int) -> None:
    payload = b"x" * length
    expected = Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])
    assert text_frame_header(length) + payload == expected


# -- remembered decimal strings ---------------------------------------------------------------


def test_remembered_decimal_text_is_exactly_format_units_and_stays_bounded(monkeypatch) -> None:
    import random

    from engine.fixedpoint import format_units
    from gateway.wire import views

    monkeypatch.setattr(views, "REMEMBERED_PER_SCALE", 100)
    monkeypatch.setattr(views, "_texts", {})
    rng = random.Random(3)
    for _ in range(5_000):
        units, scale = rng.choice([rng.randrange(10**12), rng.randrange(300)]), rng.randrange(9)
        assert views.decimal_text(units, scale) == format_units(units, scale)
    assert all(len(table) <= 100 for table in views._texts.values())


def test_remembered_units_of_text_are_exactly_parse_units_errors_included(monkeypatch) -> None:
    import random

    from engine.fixedpoint import NumberFormatError, parse_units
    from gateway.wire import views

    monkeypatch.setattr(views, "REMEMBERED_PER_SCALE", 50)
    monkeypatch.setattr(views, "_units", {})
    rng = random.Random(4)
    texts = ["515.20", "0.01", "7", "1.000000", "45000000", "-1", "1e3", "1.", ".5", "", "0x10"]
    texts += [f"{rng.randrange(10**6)}.{rng.randrange(100):02d}" for _ in range(300)]
    for _ in range(2):  # the second round reads the remembered ones
        for text in texts:
            for scale in (0, 2, 6):
                try:
                    expected: int | str = parse_units(text, scale, field="qty")
                except NumberFormatError as exc:
                    expected = f"{exc.code}: {exc}"
                try:
                    got: int | str = views.units_of(text, scale, "qty")
                except NumberFormatError as exc:
                    got = f"{exc.code}: {exc}"
                assert got == expected, (text, scale)
    assert all(len(table) <= 50 for table in views._units.values())


@async_test
async def test_after_a_failed_write_every_request_is_answered_and_health_says_stopped() -> None:
    """Requests in flight when the journal fails, and every request after, get
    ``VENUE_STOPPED`` (none is left unanswered), ``ping`` no longer says all is well, and
    ``health`` tells a monitor why; the connection stays open."""
    from .test_gateway_session import request

    rig = Rig()
    journal = ManualJournal()
    host = LocalHost(rig.exchange, journal=journal)
    rig.venue = rig.gateway.venue = Venue(host, clock_ms=lambda: NOW_MS)
    rig.venue.start()
    session, connection = rig.login("bob")
    for frame in ({"id": 1, "method": "health"}, {"id": 2, "method": "ping"}):
        session.on_frame(json.dumps(frame))
    assert [m["result"].get("status", "pong") for m in connection.take()] == ["ok", "pong"]
    await turns()
    journal.futures.clear()
    order = {"market": BTC, "side": "buy", "qty": "0.01", "price": "44000000"}
    session.on_frame(json.dumps({"id": 3, "method": "order.place", "params": order}))
    session.on_frame(json.dumps({"id": 4, "method": "account.balances"}))
    await turns()
    journal.futures[0].set_exception(OSError(5, "Input/output error"))
    await turns()
    answers = {m["id"]: m for m in connection.take()}
    assert {i: a["error"]["code"] for i, a in answers.items()} == {
        3: "VENUE_STOPPED",
        4: "VENUE_STOPPED",
    }
    assert "may not have run" in answers[3]["error"]["message"]
    assert request(session, connection, "ping")["error"]["code"] == "VENUE_STOPPED"
    health = request(session, connection, "health")["result"]
    assert health["status"] == "stopped" and "Input/output error" in health["reason"]
    refused = request(session, connection, "order.place", order)
    assert refused["error"]["code"] == "VENUE_STOPPED"
    assert connection.closes == []
    with pytest.raises(JournalFailed):
        await rig.venue.stop()
