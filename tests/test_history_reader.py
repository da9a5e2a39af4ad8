"""History reads run on the history database's reader thread, never on the event loop's
(``HistoryWriter.read``): a read that SQLite holds up does not hold up an order on another
connection, nor the loop, with the database in memory (one connection, shared with the
writer's thread) and on disk (the writer a process); a database error is ``INTERNAL``,
logged, over websockets and HTTP; a connection that closes while its read is in flight,
and a writer closed then, end cleanly, the read answered.  ``wait_written``, what
``order.status`` of a closed order waits for the writer with, is woken by the writer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.sessions import lookups
from gateway.sessions.http import HttpApi, HttpRequest, HttpResponse
from gateway.storage.history import HistoryWriter

from .gateway_harness import WAIT_TIMEOUT_S, Client, RunningVenue, async_test, running_venue
from .test_http_live import place
from .test_http_private import signed_headers

BTC = "BTC-KZT"
HOLD_S = 3.0  # how long a held query waits to be released before it goes on by itself
CANNOT_READ = {"code": "INTERNAL", "message": "the history database could not be read"}


class Hold:
    """Holds the writer's next query, on whichever thread runs it, until ``released`` is set
    (or for ``HOLD_S``), as a large page or a slow disk would; then runs it."""

    def __init__(self, writer: HistoryWriter) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        self.thread: str | None = None
        self.timed_out = False
        rows = writer._rows

        def held(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            if not self.entered.is_set():
                self.thread = threading.current_thread().name
                self.entered.set()
                self.timed_out = not self.released.wait(HOLD_S)
            return rows(sql, params)

        writer._rows = held  # type: ignore[method-assign]

    async def wait_entered(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, WAIT_TIMEOUT_S), "no query was held"


def fail_every_read(writer: HistoryWriter) -> None:
    """SQLite interrupts every query of the reader connection (``sqlite3.OperationalError:
    interrupted``), not the writer's own statements (its thread shares the connection when
    the database is in memory).  Set while no query runs: setting a progress handler waits
    for the connection holding the GIL."""
    writer._reader.set_progress_handler(
        lambda: int(threading.current_thread().name != "history-writer"), 1
    )


@contextlib.asynccontextmanager
async def venue_with_history(
    where: str, tmp_path: Path
) -> AsyncIterator[tuple[RunningVenue, HistoryWriter]]:
    """The harness's venue with a history database, ``"memory"`` or ``"disk"``; the loop's
    unhandled errors fail the test."""
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    async with running_venue() as running:
        writer = HistoryWriter(None if where == "memory" else tmp_path / "history.sqlite")
        running.venue.on_published = writer.offer
        running.gateway.history = writer
        writer.start()
        try:
            yield running, writer
        finally:
            writer.close()
    assert not errors, errors


async def a_closed_order(running: RunningVenue, writer: HistoryWriter) -> tuple[Client, int]:
    """mm1, logged in, with one canceled order in the history; its id."""
    mm = await running.login("mm1")
    order_id = (await mm.ok("order.place", place("sell", "46000000.00", "1.00000000")))["order_id"]
    await mm.ok("order.cancel", {"market": BTC, "order_id": order_id})
    assert writer.flush()
    return mm, order_id


def get(
    api: HttpApi, path: str, query: str = "", who: str | None = None, method: str = "GET"
) -> asyncio.Task[HttpResponse]:
    """``api.respond`` to a request (signed by ``who``), in a task of its own."""
    headers = {} if who is None else signed_headers(who, method, f"/api/v1{path}", query, b"")
    request = HttpRequest(method, f"/api/v1{path}", query, headers, remote="127.0.0.1")
    return asyncio.create_task(api.respond(request))


@pytest.mark.parametrize("where", ["memory", "disk"])
@async_test
async def test_a_held_history_read_holds_up_no_order_and_not_the_loop(
    where: str, tmp_path: Path
) -> None:
    """While SQLite runs a page of orders.history (held), bob's order.place on another
    connection and a ping on the same one are answered; then the page, unchanged."""
    async with venue_with_history(where, tmp_path) as (running, writer):
        mm, order_id = await a_closed_order(running, writer)
        expected = await mm.ok("orders.history", {"limit": 10})
        assert [o["order_id"] for o in expected["orders"]] == [order_id]
        bob = await running.login("bob")
        hold = Hold(writer)
        page = asyncio.ensure_future(mm.call("orders.history", {"limit": 10}))
        await hold.wait_entered()
        assert hold.thread is not None and hold.thread.startswith("history-reader")
        placed = await bob.call("order.place", place("buy", "44000000.00", "0.01000000"))
        assert placed["ok"], placed
        await mm.ping()  # the same connection: answered before the page asked before it
        assert not page.done()
        hold.released.set()
        answer = await page
        assert answer["ok"] and answer["result"] == expected
        assert not hold.timed_out


@async_test
async def test_a_held_candles_read_lets_the_loop_answer_other_http_requests(
    tmp_path: Path,
) -> None:
    """GET /candles waits for its read on the reader thread; GET /depth is answered
    meanwhile."""
    async with venue_with_history("memory", tmp_path) as (running, writer):
        mm = await running.login("mm1")
        bob = await running.login("bob")
        await mm.ok("order.place", place("sell", "45000000.00", "1.00000000"))
        await bob.ok("order.place", place("buy", "45000000.00", "0.25000000"))
        assert writer.flush()
        api = HttpApi(running.gateway)
        expected = (await get(api, "/candles", f"market={BTC}&interval=1m")).json()
        assert len(expected) == 1
        hold = Hold(writer)
        candles = get(api, "/candles", f"market={BTC}&interval=1m")
        await hold.wait_entered()
        assert (await get(api, "/depth", f"market={BTC}")).status == 200
        assert not candles.done()
        hold.released.set()
        answer = await candles
        assert answer.status == 200 and answer.json() == expected


@pytest.mark.parametrize("where", ["memory", "disk"])
@async_test
async def test_a_database_error_is_internal_and_logged_and_the_session_lives(
    where: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every history read that fails in SQLite answers INTERNAL with one log line, over
    websockets and HTTP; the connection goes on."""
    async with venue_with_history(where, tmp_path) as (running, writer):
        mm, order_id = await a_closed_order(running, writer)
        fail_every_read(writer)
        api = HttpApi(running.gateway)
        with caplog.at_level(logging.ERROR, "alatau.history"):
            for method, params in (
                ("orders.history", {}),
                ("fills.history", {"market": BTC}),
                ("order.status", {"order_id": order_id}),
            ):
                assert await mm.error(method, params) == CANNOT_READ, method
            for method, path, query, who in (
                ("GET", "/orders/history", "", "mm1"),
                ("GET", "/fills", "", "mm1"),
                ("GET", "/order", f"order_id={order_id}", "mm1"),
                ("GET", "/candles", f"market={BTC}&interval=1m", None),
            ):
                response = await get(api, path, query, who, method)
                assert (response.status, response.json()) == (500, {"error": CANNOT_READ})
        failures = [r for r in caplog.records if "history database failed" in r.getMessage()]
        assert len(failures) == 7, [r.getMessage() for r in caplog.records]
        assert all("interrupted" in r.getMessage() for r in failures)
        await mm.ping()


@async_test
async def test_a_connection_closed_while_its_read_runs_and_a_writer_closed_then(
    tmp_path: Path,
) -> None:
    """A session that closes while its page is read gets nothing sent and breaks
    nothing; closing the writer waits for the read in flight (its HTTP request is
    answered), and a read asked after is INTERNAL."""
    async with venue_with_history("disk", tmp_path) as (running, writer):
        mm, _order_id = await a_closed_order(running, writer)
        hold = Hold(writer)
        await mm.send("orders.history", {})
        await hold.wait_entered()
        await mm.close()
        await asyncio.wait_for(mm.closed, WAIT_TIMEOUT_S)
        hold.released.set()
        bob = await running.login("bob")
        await bob.ping()  # the server, and the reader, go on
        api = HttpApi(running.gateway)
        hold = Hold(writer)
        in_flight = get(api, "/orders/history", "", "mm1")
        await hold.wait_entered()
        threading.Timer(0.2, hold.released.set).start()
        writer.close()  # on the loop, as alatau serve does at its end
        answer = await in_flight
        assert answer.status == 200 and answer.json()["orders"], answer.json()
        assert not hold.timed_out
        late = await get(api, "/orders/history", "", "mm1")
        assert (late.status, late.json()) == (500, {"error": CANNOT_READ})
        assert (await bob.error("orders.history", {})) == CANNOT_READ


@async_test
async def test_read_runs_the_query_on_the_reader_thread(tmp_path: Path) -> None:
    """``HistoryWriter.read`` returns what the query returns, run on the reader thread, and
    raises what it raises; once closed, ``sqlite3.ProgrammingError``."""
    writer = HistoryWriter(None)
    writer.start()
    try:
        assert await writer.read(lambda: threading.current_thread().name) == "history-reader_0"
        assert await writer.read(lambda: writer.fills("bob", None, None, None, 10, None)) == []
        with pytest.raises(sqlite3.OperationalError):
            await writer.read(lambda: writer._rows("SELECT * FROM nothing", ()))
    finally:
        writer.close()
    with pytest.raises(sqlite3.ProgrammingError):
        await writer.read(lambda: writer.fills("bob", None, None, None, 10, None))


@pytest.mark.parametrize("where", ["memory", "disk"])
@async_test
async def test_wait_written_is_woken_by_the_writer(where: str, tmp_path: Path) -> None:
    """``wait_written`` (what ``order.status`` of a closed order waits with) returns when
    the writer reports the batch written (the thread's transaction, the process's
    acknowledgement), at once for a batch written before, at its timeout for one never
    offered, and at once when the writer dies or is closed."""
    writer = HistoryWriter(None if where == "memory" else tmp_path / "history.sqlite")
    writer.start()
    try:
        waiting = asyncio.create_task(writer.wait_written(7, WAIT_TIMEOUT_S))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        writer.offer(7, [])
        await asyncio.wait_for(waiting, WAIT_TIMEOUT_S)
        assert writer.written_seq == 7
        await asyncio.wait_for(writer.wait_written(7, WAIT_TIMEOUT_S), 0.01)
        started = time.monotonic()
        await writer.wait_written(8, 0.2)
        assert time.monotonic() - started >= 0.2
        waiting = asyncio.create_task(writer.wait_written(8, WAIT_TIMEOUT_S))
        await asyncio.sleep(0.05)
        if writer._process is not None:
            child = writer._process._process
            assert child is not None
            child.kill()  # the process dies
            child.wait()  # (reaped before the loop reads the end of its output)
            await asyncio.wait_for(waiting, WAIT_TIMEOUT_S)
            assert writer.behind
            waiting = asyncio.create_task(writer.wait_written(8, WAIT_TIMEOUT_S))
            await asyncio.sleep(0)
            assert waiting.done()  # behind: not waited for
    finally:
        writer.close()
    await asyncio.wait_for(waiting, WAIT_TIMEOUT_S)  # closed


@async_test
async def test_wait_written_is_woken_when_the_writer_falls_behind() -> None:
    """A batch dropped from the writer's full queue wakes who waits: it may never be
    written."""
    writer = HistoryWriter(None, queue_batches=1)  # not started: nothing leaves the queue
    try:
        waiting = asyncio.create_task(writer.wait_written(3, WAIT_TIMEOUT_S))
        writer.offer(1, [])
        await asyncio.sleep(0.05)
        assert not waiting.done()
        writer.offer(2, [])  # the queue is full: dropped, behind
        await asyncio.wait_for(waiting, WAIT_TIMEOUT_S)
        assert writer.behind
    finally:
        writer.start()
        writer.close()


@async_test
async def test_a_closed_order_the_history_has_not_written_yet_is_history_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An order that closed in a batch the history's writer has not written (it runs in the
    cores' idle time, and may be slow) is not answered ``UNKNOWN_ORDER``, which would tell
    the client it never existed: after the wait, ``HISTORY_BEHIND`` (503 over HTTP), and
    the order itself once the writer has caught up."""
    monkeypatch.setattr(lookups, "CLOSED_ORDER_WAIT_S", 0.2)
    async with running_venue() as running:
        writer = HistoryWriter(None)  # not started yet: it writes nothing
        running.venue.on_published = writer.offer
        running.gateway.history = writer
        try:
            mm = await running.login("mm1")
            placed = await mm.ok("order.place", place("sell", "46000000.00", "1.00000000"))
            order_id = placed["order_id"]
            await mm.ok("order.cancel", {"market": BTC, "order_id": order_id})
            slow = {"code": "HISTORY_BEHIND", "message": lookups.HISTORY_SLOW}
            assert await mm.error("order.status", {"order_id": order_id}) == slow
            response = await get(HttpApi(running.gateway), "/order", f"order_id={order_id}", "mm1")
            assert (response.status, response.json()) == (503, {"error": slow})
            writer.start()
            assert writer.flush()
            found = await mm.ok("order.status", {"order_id": order_id})
            assert (found["order_id"], found["status"]) == (order_id, "canceled")
            unknown = await mm.error("order.status", {"order_id": order_id + 1000})
            assert unknown["code"] == "UNKNOWN_ORDER"  # caught up: nobody's id is unknown
        finally:
            writer.close()


@async_test
async def test_a_closed_order_missed_by_a_history_that_fell_behind_is_history_behind() -> None:
    """A writer that dropped batches (marked behind, caught up only at the next start) is not
    waited for, and an order it may have missed is ``HISTORY_BEHIND``, saying so."""
    async with running_venue() as running:
        writer = HistoryWriter(None)
        running.venue.on_published = writer.offer
        running.gateway.history = writer
        try:
            writer.behind = True
            mm = await running.login("mm1")
            placed = await mm.ok("order.place", place("sell", "46000000.00", "1.00000000"))
            await mm.ok("order.cancel", {"market": BTC, "order_id": placed["order_id"]})
            started = time.monotonic()
            error = await mm.error("order.status", {"order_id": placed["order_id"]})
            assert error == {"code": "HISTORY_BEHIND", "message": lookups.HISTORY_STALE}
            assert time.monotonic() - started < lookups.CLOSED_ORDER_WAIT_S
        finally:
            writer.close()


@async_test
async def test_a_cancel_without_its_market_finds_the_order_in_the_engine_not_the_history() -> None:
    """``DELETE /order`` without ``market`` looks the order's market up among the open
    orders the engine holds: an order placed a moment ago is canceled even while the
    history's writer has written nothing, and one that is not open is ``UNKNOWN_ORDER``."""
    async with running_venue() as running:
        writer = HistoryWriter(None)  # never started: the history stays empty
        running.venue.on_published = writer.offer
        running.gateway.history = writer
        try:
            mm = await running.login("mm1")
            placed = await mm.ok("order.place", place("sell", "46000000.00", "1.00000000"))
            api = HttpApi(running.gateway)
            query = f"order_id={placed['order_id']}"
            response = await get(api, "/order", query, "mm1", method="DELETE")
            assert response.status == 200, response.json()
            assert response.json()["status"] == "canceled"
            again = await get(api, "/order", query, "mm1", method="DELETE")
            assert again.status == 404
            assert again.json()["error"]["code"] == "UNKNOWN_ORDER"
        finally:
            writer.close()
