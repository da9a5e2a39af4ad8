"""The crash test: ``alatau serve`` killed with SIGKILL mid-flow never loses what it confirmed.

Several rounds: start the server as its own process on one data directory, drive orders
from several clients (pipelined, crossing, with cancels), kill it at a random moment,
restart it.  At the end the data directory is checked in-process:

* every acknowledged order is in the journal, and every acknowledged fill and balance
  appears when the journal is replayed from the start;
* replaying the journal from scratch gives exactly the recovered state (same digest): no
  command was half applied;
* the recovered venue passes its integrity check: every asset conserved, holds equal what
  open orders need, books consistent.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import websockets

from engine.commands import PlaceOrder
from engine.licensing import load_chain
from engine.reports import BalanceReport, FillReport
from engine.state import digest
from gateway.app.serve import DEMO_PRIVATE_KEYS, ServeOptions, build_exchange
from gateway.storage.datadir import Storage, list_segments
from gateway.storage.journal import scan
from gateway.wire.auth import sign_ed25519

PARTICIPANT_OF_KEY = {"demo-bob-key": "bob", "demo-mm1-key": "mm1", "demo-broker1-key": "broker1"}
CLIENTS = [(key, DEMO_PRIVATE_KEYS[key]) for key in PARTICIPANT_OF_KEY]
ROUNDS = 3


def start_server(data_dir: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.app.cli",
            "serve",
            "--port",
            "0",
            "--quiet",
            "--data-dir",
            str(data_dir),
            "--admin-key",
            "crash-test-admin",
            "--rate",
            "100000",
            "--participant-rate",
            "100000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if "listening on" in line:
            return process, line.strip().rsplit(" ", 1)[1]
    process.kill()
    raise AssertionError("the server did not start")


async def client_flow(url: str, key: str, secret: str, tag: str, seed: int, acked: dict) -> None:
    """Pipeline orders until the connection dies; record every acknowledged response."""
    rnd = random.Random(seed)
    try:
        async with websockets.connect(url) as ws:
            ts = int(time.time() * 1000)
            await ws.send(
                json.dumps(
                    {
                        "id": 0,
                        "method": "auth.login",
                        "params": {
                            "api_key": key,
                            "timestamp": ts,
                            "signature": sign_ed25519(secret, key, ts),
                        },
                    }
                )
            )
            await ws.send(
                json.dumps({"id": -1, "method": "subscribe", "params": {"channels": ["orders"]}})
            )
            sent = 0
            open_ids: list[int] = []

            async def reader() -> None:
                async for frame in ws:
                    message = json.loads(frame)
                    if message.get("channel") == "orders":
                        acked["stream"].append((key, message["data"]))
                    elif message.get("ok") and isinstance(message.get("id"), int):
                        result = message["result"]
                        if message["id"] > 0 and isinstance(result, dict) and "order_id" in result:
                            acked["orders"].append((key, result))
                            if result["status"] in ("new", "partially_filled"):
                                open_ids.append(result["order_id"])

            read_task = asyncio.create_task(reader())
            while not read_task.done():
                sent += 1
                if open_ids and rnd.random() < 0.25:
                    order_id = open_ids.pop(rnd.randrange(len(open_ids)))
                    request = {"market": "BTC-KZT", "order_id": order_id}
                    method = "order.cancel"
                else:
                    side = rnd.choice(["buy", "sell"])
                    price = 45_000_000 + rnd.randint(-40, 40) * 1000
                    request = {
                        "market": "BTC-KZT",
                        "side": side,
                        "price": str(price),
                        "qty": f"0.{rnd.randint(1, 50):04d}",
                        "client_order_id": f"{tag}-{sent}",
                    }
                    method = "order.place"
                await ws.send(json.dumps({"id": sent, "method": method, "params": request}))
                if sent % 20 == 0:
                    await asyncio.sleep(0.002)
            await read_task
    except (websockets.ConnectionClosed, OSError):
        return


async def round_of_load(url: str, round_index: int, acked: dict, kill) -> None:
    tasks = [
        asyncio.create_task(
            client_flow(url, key, secret, f"r{round_index}c{i}", round_index * 10 + i, acked)
        )
        for i, (key, secret) in enumerate(CLIENTS)
    ]
    await asyncio.sleep(random.Random(round_index).uniform(0.4, 1.2))
    kill()
    await asyncio.wait(tasks, timeout=10)


def test_sigkill_never_loses_acknowledged_state(tmp_path):
    """Kill -9 in mid-flow, several rounds: everything acknowledged survives, nothing is
    half applied, and every asset is conserved."""
    data_dir = tmp_path / "data"
    acked: dict[str, list] = {"orders": [], "stream": []}
    for round_index in range(ROUNDS):
        process, url = start_server(data_dir)
        try:
            asyncio.run(
                round_of_load(
                    url, round_index, acked, lambda p=process: p.send_signal(signal.SIGKILL)
                )
            )
        finally:
            process.kill()
            process.wait(timeout=30)
    assert len(acked["orders"]) > 50, "the flow should have had orders acknowledged"

    # The recovered state, as the next start would see it.
    options = ServeOptions()
    storage = Storage(data_dir)
    recovered, last_seq, _ = storage.recover(load_chain(), lambda: build_exchange(options))
    storage.close(final_snapshot=False)  # as a crash leaves it
    recovered.check_integrity()

    # Replaying every journaled command from an empty venue gives exactly that state.
    replayed = build_exchange(options)
    journaled_client_ids = set()
    fills = set()
    balances = []
    seq = 0
    for segment in list_segments(data_dir):
        for record in scan(segment).records:
            assert record.seq == seq + 1
            seq = record.seq
            if isinstance(record.command, PlaceOrder) and record.command.client_order_id:
                journaled_client_ids.add(record.command.client_order_id)
            for report in replayed.execute(record.command):
                if isinstance(report, FillReport):
                    fills.add((report.order_id, report.trade_id, report.fill_qty))
                elif isinstance(report, BalanceReport):
                    balances.append(
                        (report.participant_id, report.asset, report.total, report.held)
                    )
    assert seq == last_seq
    assert digest(replayed) == digest(recovered)

    # Everything acknowledged is there.
    for _key, order in acked["orders"]:
        if order.get("client_order_id"):
            assert order["client_order_id"] in journaled_client_ids, order
        for fill in order.get("fills", ()):
            qty = int(fill["fill_qty"].replace(".", ""))
            assert (fill["order_id"], fill["trade_id"], qty) in fills, fill
    acked_fills = [data for _key, data in acked["stream"] if data["type"] == "fill"]
    for fill in acked_fills:
        qty = int(fill["fill_qty"].replace(".", ""))
        assert (fill["order_id"], fill["trade_id"], qty) in fills, fill
    replayed_balances = set(balances)
    scales = {"KZT": 2, "BTC": 8, "ETH": 8, "USDT": 6, "USDC": 6}
    acked_balances = [(key, data) for key, data in acked["stream"] if data["type"] == "balance"]
    for key, balance in acked_balances:
        total = int(balance["total"].replace(".", ""))
        held = int(balance["held"].replace(".", ""))
        assert balance["total"].split(".")[1].__len__() == scales[balance["asset"]]
        entry = (PARTICIPANT_OF_KEY[key], balance["asset"], total, held)
        assert entry in replayed_balances, entry
    if os.environ.get("CRASH_TEST_VERBOSE"):
        print(f"{len(acked['orders'])} acked orders, {len(acked_fills)} acked fills, seq {seq}")
