"""``alatau serve --engine-process``: the engine in a process of its own behaves like the
engine in the gateway's process, keeps what it acknowledged across a restart, and when it
dies the gateway stops acknowledging instead of carrying on without it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import websockets

from engine.commands import Deposit
from engine.licensing import CheckChain
from gateway.hosts.process import (
    SEND_EARLY,
    BookDepth,
    Hello,
    ProcessHost,
    venue_config,
)
from gateway.sequencer.venue import MAX_UNPUBLISHED_BATCHES, JournalFailed, Venue
from gateway.storage.datadir import Storage
from tests.kit.commands import soak_venue

from .gateway_harness import (
    ADMIN_KEY,
    Client,
    L2Book,
    async_test,
    connect,
    login_params,
    serving,
    trades_of,
)

BTC = "BTC-KZT"


def limit(side: str, price: int, qty: str, **extra: object) -> dict:
    return {"market": BTC, "side": side, "price": str(price), "qty": qty, **extra}


def engine_pids(data_dir: Path) -> list[int]:
    """The engine processes serving ``data_dir`` (found by their command line)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if b"gateway.hosts.process" in cmdline and str(data_dir).encode() in cmdline:
            pids.append(int(entry))
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the engine process in /proc")
@async_test
async def test_trading_through_the_engine_process_and_a_restart(tmp_path) -> None:
    async with serving(tmp_path) as (url, clients):
        assert len(engine_pids(tmp_path)) == 1
        watcher = await connect(url, clients)
        await watcher.ok("subscribe", {"channels": [f"book:{BTC}", f"trades:{BTC}"]})
        mm1, bob = await connect(url, clients, "mm1"), await connect(url, clients, "bob")
        asks = await mm1.ok(
            "order.batch",
            {"orders": [limit("sell", 45_000_000 + 1_000 * i, "0.01") for i in range(5)]},
        )
        ask_ids = [item["result"]["order_id"] for item in asks]
        taken = await bob.ok("order.place", limit("buy", 45_001_000, "0.015", tif="IOC"))
        assert taken["status"] == "filled"
        assert [f["fill_price"] for f in taken["fills"]] == ["45000000.00", "45001000.00"]
        canceled = await mm1.ok(
            "order.cancel_batch",
            {"orders": [{"market": BTC, "order_id": ask_ids[4]}, {"market": BTC, "order_id": 1}]},
        )
        assert [item["ok"] for item in canceled] == [True, False]
        # queries are answered by the engine process, in sequence
        open_ids = {o["order_id"] for o in (await mm1.ok("orders.open"))["orders"]}
        assert open_ids == set(ask_ids[1:4])
        kzt = next(b for b in await bob.ok("account.balances") if b["asset"] == "KZT")
        assert kzt["held"] == "0.00"
        # the reference price follows the last trade; an operator's halt reaches the gateway
        btc = next(m for m in await bob.ok("markets.list") if m["symbol"] == BTC)
        assert btc["reference_price"] == "45001000.00"
        admin = await connect(url, clients)
        await admin.ok("auth.admin", {"admin_key": ADMIN_KEY})
        await admin.ok("admin.market", {"market": BTC, "status": "halted"})
        refused = await bob.error("order.place", limit("buy", 44_000_000, "0.01"))
        assert refused["code"] == "MARKET_HALTED"
        btc = next(m for m in await bob.ok("markets.list") if m["symbol"] == BTC)
        assert btc["status"] == "halted"
        await admin.ok("admin.market", {"market": BTC, "status": "open"})
        # the streamed book, rebuilt, is the book a fresh snapshot shows
        trades = await watcher.wait_stream(f"trades:{BTC}", lambda ms: len(trades_of(ms)) == 2)
        assert [t["price"] for t in trades_of(trades)] == ["45000000.00", "45001000.00"]
        late = await connect(url, clients)
        await late.ok("subscribe", {"channels": [f"book:{BTC}"]})
        (snapshot,) = await late.wait_stream(f"book:{BTC}", lambda ms: len(ms) == 1)
        streamed = await watcher.wait_stream(
            f"book:{BTC}", lambda ms: ms[-1]["seq"] == snapshot["seq"]
        )
        rebuilt = L2Book.rebuild(streamed)
        assert rebuilt == L2Book.rebuild([snapshot])
        balances_before = await mm1.ok("account.balances")

    assert engine_pids(tmp_path) == []  # it exited with the gateway
    async with serving(tmp_path) as (url, clients):
        mm1 = await connect(url, clients, "mm1")
        assert {o["order_id"] for o in (await mm1.ok("orders.open"))["orders"]} == set(ask_ids[1:4])
        assert await mm1.ok("account.balances") == balances_before
        late = await connect(url, clients)
        await late.ok("subscribe", {"channels": [f"book:{BTC}"]})
        (again,) = await late.wait_stream(f"book:{BTC}", lambda ms: len(ms) == 1)
        assert again == snapshot  # the same book at the same seq


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the engine process in /proc")
@async_test
async def test_when_the_engine_process_dies_nothing_more_is_acknowledged(tmp_path) -> None:
    with pytest.raises(JournalFailed):
        async with serving(tmp_path) as (url, clients):
            bob = await connect(url, clients, "bob")
            await bob.ok("order.place", limit("buy", 44_000_000, "0.01"))
            (pid,) = engine_pids(tmp_path)
            os.kill(pid, signal.SIGKILL)
            for _ in range(100):  # until the gateway has seen the link go
                response = await bob.call("order.place", limit("buy", 44_000_000, "0.01"))
                if not response["ok"]:
                    break
                await asyncio.sleep(0.05)
            assert response["error"]["code"] == "VENUE_STOPPED", response
            assert "failed" in response["error"]["message"]


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX")
@async_test
async def test_sigterm_to_the_whole_process_group_stops_cleanly_with_a_final_snapshot(
    tmp_path,
) -> None:
    """A service manager stops a service by signalling every process in it (systemd's
    default): the engine must outlive the signal long enough to answer what it has and
    write its final snapshot, so the restart replays nothing."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.app.cli",
            "serve",
            "--engine-process",
            "--port",
            "0",
            "--quiet",
            "--data-dir",
            str(tmp_path),
            "--admin-key",
            ADMIN_KEY,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        url = await asyncio.to_thread(listening_url, process)
        bob = Client(await websockets.connect(url))
        bob.start_reading()
        await bob.ok("auth.login", login_params("bob"))
        placed = await bob.ok("order.place", limit("buy", 44_000_000, "0.01"))
        os.killpg(process.pid, signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 30)
        await bob.close()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    _, stderr = process.communicate()
    assert code == 0, stderr
    assert not engine_pids(tmp_path)
    storage = Storage(tmp_path)
    exchange, _, summary = storage.recover(CheckChain(), lambda: None)
    storage.close(final_snapshot=False)
    assert "0 journal records replayed" in summary, summary
    assert [o.order_id for o in exchange.open_orders("bob")] == [placed["order_id"]]


def listening_url(process: subprocess.Popen) -> str:
    """The url a ``--quiet`` ``alatau serve`` prints once it listens."""
    assert process.stdout is not None
    for line in process.stdout:
        if "listening on" in line:
            return line.strip().rsplit(" ", 1)[1]
    raise AssertionError("the server did not start")


class _SilentEngine:
    """An engine link that takes batches and never answers (a stalled engine)."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.sent: list[list] = []

    def send_batch(self, items: list) -> asyncio.Future:
        self.sent.append(items)
        return asyncio.get_running_loop().create_future()


@async_test
async def test_a_stalled_engine_is_not_sent_more_than_the_in_flight_bound() -> None:
    """Commands pouring in while the engine does not answer are held by the gateway once
    MAX_UNPUBLISHED_BATCHES batches are in flight, instead of being sent without bound."""
    exchange = soak_venue()
    hello = Hello(
        last_seq=0,
        recovered="test",
        config=venue_config(exchange),
        books=[BookDepth(symbol, 0, [], []) for symbol in exchange.books],
        last_price=[],
    )
    link = _SilentEngine()
    venue = Venue(ProcessHost(link, hello, process=None))  # type: ignore[arg-type]
    deposit = Deposit(ts=0, participant_id="p0", asset="KZT", amount=1)
    for _ in range(SEND_EARLY * (MAX_UNPUBLISHED_BATCHES + 10)):
        venue.submit(lambda ts: deposit)
    assert len(link.sent) == MAX_UNPUBLISHED_BATCHES
    assert sum(map(len, link.sent)) == SEND_EARLY * MAX_UNPUBLISHED_BATCHES
