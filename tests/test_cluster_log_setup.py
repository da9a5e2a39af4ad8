"""Creating the command log's streams (``CommandLog.ensure_streams``) rides out a cluster
that cannot place them yet: JetStream's "no suitable peers for placement" (a peer counted
offline for a moment after the nodes start, or on a loaded machine) is tried again until
the deadline, and any other refusal is not."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("nats")

import nats.js.errors

from gateway.cluster.log import (
    COMMANDS_STREAM,
    LEASE_BUCKET,
    PLACEMENT_PENDING,
    REPORTS_STREAM,
    CommandLog,
)


class FakeJetStream:
    """Refuses each stream the first ``refusals`` times with ``error``, then creates it."""

    def __init__(self, refusals: int, err_code: int) -> None:
        self.refusals = refusals
        self.err_code = err_code
        self.attempts: list[str] = []
        self.created: list[str] = []

    async def add_stream(self, config: Any) -> None:
        self.attempts.append(config.name)
        if self.attempts.count(config.name) <= self.refusals:
            raise nats.js.errors.BadRequestError(
                code=400, err_code=self.err_code, description="no suitable peers for placement"
            )
        self.created.append(config.name)

    async def create_key_value(self, config: Any) -> str:
        self.created.append(config.bucket)
        return "bucket"


class FakeConnection:
    def __init__(self, js: FakeJetStream) -> None:
        self.js = js

    def jetstream(self, timeout: float) -> FakeJetStream:
        return self.js


def test_streams_refused_for_placement_are_created_once_the_peers_are_back() -> None:
    js = FakeJetStream(refusals=3, err_code=PLACEMENT_PENDING)
    log = CommandLog(FakeConnection(js))  # type: ignore[arg-type]
    asyncio.run(log.ensure_streams(timeout=10))
    assert js.created == [COMMANDS_STREAM, REPORTS_STREAM, LEASE_BUCKET]
    assert len(js.attempts) == 2 * 4  # each stream: three refusals, then created


def test_placement_is_not_waited_for_past_the_deadline() -> None:
    js = FakeJetStream(refusals=10_000, err_code=PLACEMENT_PENDING)
    log = CommandLog(FakeConnection(js))  # type: ignore[arg-type]
    with pytest.raises(nats.js.errors.BadRequestError):
        asyncio.run(log.ensure_streams(timeout=0.3))
    assert js.created == []


def test_another_refusal_is_not_tried_again() -> None:
    js = FakeJetStream(refusals=1, err_code=10058)  # a stream of that name, other settings
    log = CommandLog(FakeConnection(js))  # type: ignore[arg-type]
    with pytest.raises(nats.js.errors.BadRequestError):
        asyncio.run(log.ensure_streams(timeout=10))
    assert len(js.attempts) == 1
