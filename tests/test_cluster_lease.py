"""A standby replica's lease loop rides out the races of taking the lease: when the key it
read as missing turns out, inside nats-py's ``create``, to be gone again or not yet
visible (``KeyNotFoundError``, seen when the leader's clean stop deleted it), the replica
tries again next round instead of dying, and takes the lease once it is free."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("nats")

import nats.js.errors

from gateway.cluster.log import LEASE_KEY
from gateway.cluster.replica import Replica


class FakeLease:
    """A lease bucket with no key; ``create`` fails ``races`` times as nats-py's does when
    the key vanishes between its write and its read, then succeeds."""

    def __init__(self, races: int) -> None:
        self.races = races
        self.creates = 0

    async def get(self, key: str) -> Any:
        assert key == LEASE_KEY
        raise nats.js.errors.KeyNotFoundError

    async def create(self, key: str, value: bytes) -> int:
        self.creates += 1
        if self.creates <= self.races:
            raise nats.js.errors.KeyNotFoundError
        return 41

    async def update(self, key: str, value: bytes, last: int) -> int:
        return last + 1  # the leader renewing its lease


class FakeLog:
    def __init__(self, lease: FakeLease) -> None:
        self._lease = lease

    async def lease(self) -> FakeLease:
        return self._lease

    async def last_seq(self, stream: str) -> int:
        return 0


@pytest.mark.parametrize("races", [1, 3])
def test_a_standby_survives_a_lost_race_for_the_lease_and_takes_it_later(
    tmp_path: Path, races: int
) -> None:
    async def run() -> tuple[list[dict[str, Any]], FakeLease, bool]:
        lease = FakeLease(races)
        events: list[dict[str, Any]] = []
        log: Any = FakeLog(lease)
        replica = Replica(log, "r1", tmp_path, lease=0.03, emit=events.append)
        task = asyncio.create_task(replica._hold_lease())
        for _ in range(200):
            if replica.leader or task.done():
                break
            await asyncio.sleep(0.01)
        crashed = task.done()
        if crashed:
            task.result()  # the error that killed the loop, if any
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return events, lease, replica.leader

    events, lease, leader = asyncio.run(run())
    assert leader, events
    assert lease.creates == races + 1
    assert [e["event"] for e in events] == ["leading"]
