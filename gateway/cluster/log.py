"""The replicated command log and the report stream, on NATS JetStream.

Two streams, each replicated on three nodes with file storage:

* ``ALATAU_COMMANDS`` (subject ``alatau.commands``): one message per gateway batch, a
  ``CommandBatch``: the gateway's stamped commands and queries of one event-loop turn.  Its
  stream sequence is the venue's order.  A gateway appends with ``Nats-Msg-Id``
  ``"{gateway_id}:{batch_no}"``; the stream drops a second message with the same id within
  its duplicate window, so a retry after a lost acknowledgement (a stream leader that died
  between storing and answering) never appends a batch twice.
* ``ALATAU_REPORTS`` (subject ``alatau.reports``): one ``ReportBatch`` per command batch,
  published by the leading replica with ``Nats-Msg-Id`` ``"r{stream_seq}"`` and
  ``Nats-Expected-Last-Sequence`` ``stream_seq - 1``: the report of command ``n`` is report
  stream message ``n``, a second publication of it is dropped (as a duplicate within the
  window, or as out of place after it), and no report can skip one.

``CommandLog.append`` returns once the stream's PubAck has come back, which JetStream sends
once the message is stored on a quorum of the stream's replicas (2 of 3), retrying with the
same id through a stream-leader election for up to ``append_timeout`` seconds.

What a gateway host (``ClusterHost``, next) uses: ``CommandLog.connect``,
``ensure_streams``, ``append`` (or ``append_many``), ``reports(start_seq)`` and
``ReportBatch.results()``; what a replica uses: ``commands(start_seq)``,
``publish_report``, ``last_seq`` and ``lease``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any, cast

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    StorageType,
    StreamConfig,
)
from nats.js.kv import KeyValue

from engine.commands import Command
from engine.exchange import Exchange
from gateway.hosts.process import Answer, Reports, answer_struct, answer_value
from gateway.sequencer.host import Item, Outcomes
from gateway.sequencer.queries import QUERY_KINDS, Query, answer

COMMANDS_STREAM = "ALATAU_COMMANDS"
COMMANDS_SUBJECT = "alatau.commands"
REPORTS_STREAM = "ALATAU_REPORTS"
REPORTS_SUBJECT = "alatau.reports"
LEASE_BUCKET = "alatau_lease"
LEASE_KEY = "leader"

Outcome = Reports | Answer


class CommandBatch(msgspec.Struct, array_like=True, frozen=True):
    """One gateway's batch: its stamped commands and queries, in order."""

    gateway_id: str
    batch_no: int
    items: list[Command | Query]

    @property
    def msg_id(self) -> str:
        return f"{self.gateway_id}:{self.batch_no}"


class ReportBatch(msgspec.Struct, array_like=True, frozen=True):
    """What command batch ``stream_seq`` did: per item its reports or its answer."""

    stream_seq: int
    gateway_id: str
    batch_no: int
    outcomes: list[Outcome]

    @property
    def msg_id(self) -> str:
        return f"r{self.stream_seq}"

    def results(self) -> Outcomes:
        """Per item, as ``EngineHost.execute`` gives them: a command's list of reports,
        a query's answer."""
        results: Outcomes = []
        for outcome in self.outcomes:
            if type(outcome) is Reports:
                results.append(outcome.reports)
            else:
                results.append(answer_value(outcome))
        return results


encoder = msgspec.msgpack.Encoder()
command_batch_decoder = msgspec.msgpack.Decoder(CommandBatch)
report_batch_decoder = msgspec.msgpack.Decoder(ReportBatch)


def execute_batch(exchange: Exchange, stream_seq: int, batch: CommandBatch) -> ReportBatch:
    """Apply one command batch to ``exchange``: the same for every replica and for a
    single-process replay, so their reports are equal."""
    return ReportBatch(
        stream_seq, batch.gateway_id, batch.batch_no, run_items(exchange, batch.items)
    )


def run_items(exchange: Exchange, items: Sequence[Item]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for item in items:
        if type(item) in QUERY_KINDS:  # not isinstance: see QUERY_KINDS
            query = cast(Query, item)
            outcomes.append(answer_struct(query, answer(exchange, query)))
        else:
            # A command here (no typing.cast: a Python call per command on the order path).
            command: Command = item  # type: ignore[assignment]
            outcomes.append(Reports(exchange.execute(command)))
    return outcomes


class AppendFailed(Exception):
    """An append was not acknowledged within the log's ``append_timeout``: it may or may
    not be in the stream (a retry with the same message id settles which, within the
    duplicate window)."""


# Errors after which the same publication is retried: the connection is reconnecting, the
# stream has no leader for the moment, or the answer did not come in time.
RETRIABLE = (
    nats.errors.TimeoutError,
    asyncio.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.ServerError,
)
WRONG_LAST_SEQUENCE = 10071  # JetStream's error code for Nats-Expected-Last-Sequence
PLACEMENT_PENDING = 10005
"""JetStream's error code for "no suitable peers for placement" (``insufficient resources``):
a stream or bucket asks for more replicas than the cluster sees online at that moment.  Just
after the nodes start, or while one is slow to answer its heartbeats (a loaded machine), the
meta leader counts a peer offline for a moment: creating the streams then fails with this,
and is tried again until ``ensure_streams``' deadline (a CI run failed four cluster tests on
it, all passing when run again)."""


class CommandLog:
    """The two streams and the lease bucket over one NATS connection."""

    def __init__(
        self,
        nc: Client,
        *,
        replicas: int = 3,
        duplicate_window: float = 120.0,
        append_timeout: float = 30.0,
        attempt_timeout: float = 2.0,
    ) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=attempt_timeout)
        self.replicas = replicas
        self.duplicate_window = duplicate_window
        self.append_timeout = append_timeout
        self.attempt_timeout = attempt_timeout
        self.retries = 0  # publications sent again (for the measurements)

    @classmethod
    async def connect(cls, servers: list[str], name: str = "alatau", **options: Any) -> CommandLog:
        nc = await nats.connect(
            servers,
            name=name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.1,
            connect_timeout=2,
            allow_reconnect=True,
        )
        return cls(nc, **options)

    async def close(self) -> None:
        await self.nc.close()

    # -- set up ---------------------------------------------------------------------------

    async def ensure_streams(self, timeout: float = 30.0) -> None:
        """Create the two streams and the lease bucket if absent (idempotent)."""
        deadline = time.monotonic() + timeout
        for name, subject in (
            (COMMANDS_STREAM, COMMANDS_SUBJECT),
            (REPORTS_STREAM, REPORTS_SUBJECT),
        ):
            config = StreamConfig(
                name=name,
                subjects=[subject],
                storage=StorageType.FILE,
                num_replicas=self.replicas,
                duplicate_window=self.duplicate_window,
                allow_direct=True,
            )
            await self._retry(lambda c=config: self.js.add_stream(c), deadline)
        await self.lease()

    async def lease(self) -> KeyValue:
        """The lease bucket (created if absent)."""
        config = KeyValueConfig(
            bucket=LEASE_BUCKET, history=1, replicas=self.replicas, storage=StorageType.FILE
        )
        kv: KeyValue = await self._retry(
            lambda: self.js.create_key_value(config), time.monotonic() + 30
        )
        return kv

    async def _retry(self, attempt: Any, deadline: float) -> Any:
        """Set-up calls (streams, the lease bucket), tried again until ``deadline`` while
        the cluster cannot answer or place them yet."""
        while True:
            try:
                return await attempt()
            except RETRIABLE:
                if time.monotonic() > deadline:
                    raise
            except nats.js.errors.BadRequestError as exc:
                if exc.err_code != PLACEMENT_PENDING or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.1)

    # -- commands -------------------------------------------------------------------------

    async def append(self, batch: CommandBatch) -> int:
        """Append one batch; its stream sequence, once stored on a quorum of replicas."""
        seq, _ = await self.append_raw(encoder.encode(batch), batch.msg_id)
        return seq

    async def append_many(self, batches: Sequence[CommandBatch]) -> list[int]:
        """Append several batches pipelined (each in order on the connection, each
        retried alone); their stream sequences."""
        return list(await asyncio.gather(*(self.append(batch) for batch in batches)))

    async def append_raw(
        self, data: bytes, msg_id: str, subject: str = COMMANDS_SUBJECT
    ) -> tuple[int, bool]:
        """Publish ``data`` with ``msg_id`` until JetStream acknowledges it: (stream seq,
        whether it was a duplicate of an earlier publication).  ``AppendFailed`` after
        ``append_timeout`` seconds."""
        deadline = time.monotonic() + self.append_timeout
        headers = {"Nats-Msg-Id": msg_id}
        pause = 0.02
        while True:
            try:
                ack = await self.js.publish(
                    subject, data, timeout=self.attempt_timeout, headers=headers
                )
                return ack.seq, bool(ack.duplicate)
            except RETRIABLE as error:
                if time.monotonic() + pause > deadline:
                    raise AppendFailed(
                        f"{msg_id} not acknowledged in {self.append_timeout} s: {error!r}"
                    ) from error
                self.retries += 1
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.25)

    async def commands(self, start_seq: int = 1) -> AsyncGenerator[tuple[int, CommandBatch], None]:
        """Every command batch from ``start_seq`` on, in stream order, without end."""
        async for seq, data in self._read(COMMANDS_SUBJECT, start_seq):
            yield seq, command_batch_decoder.decode(data)

    # -- reports --------------------------------------------------------------------------

    async def publish_report(self, report: ReportBatch, data: bytes | None = None) -> bool:
        """Publish one report batch at report-stream position ``report.stream_seq``: True
        if it was stored now, False if it was there already.  ``LogGap`` if the stream is
        behind (an earlier report is missing); ``AppendFailed`` if no answer in time."""
        payload = data if data is not None else encoder.encode(report)
        headers = {
            "Nats-Msg-Id": report.msg_id,
            "Nats-Expected-Last-Sequence": str(report.stream_seq - 1),
        }
        deadline = time.monotonic() + self.append_timeout
        while True:
            try:
                ack = await self.js.publish(
                    REPORTS_SUBJECT, payload, timeout=self.attempt_timeout, headers=headers
                )
                return not ack.duplicate
            except nats.js.errors.APIError as error:
                if error.err_code != WRONG_LAST_SEQUENCE:
                    if isinstance(error, RETRIABLE) and time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
                        continue
                    raise
                last = await self.last_seq(REPORTS_STREAM)
                if last >= report.stream_seq:
                    return False
                raise LogGap(
                    f"report {report.stream_seq}: the report stream ends at {last}"
                ) from error
            except RETRIABLE as error:
                if time.monotonic() > deadline:
                    raise AppendFailed(f"{report.msg_id}: {error!r}") from error
                await asyncio.sleep(0.05)

    async def reports(self, start_seq: int = 1) -> AsyncGenerator[ReportBatch, None]:
        """Every report batch from ``start_seq`` on, in order, without end."""
        async for _, data in self._read(REPORTS_SUBJECT, start_seq):
            yield report_batch_decoder.decode(data)

    # -- reading --------------------------------------------------------------------------

    async def last_seq(self, stream: str) -> int:
        """The stream's last sequence (0 when empty), as its leader sees it."""
        info = await self._retry(
            lambda: self.js.stream_info(stream), time.monotonic() + self.append_timeout
        )
        return int(info.state.last_seq)

    async def _read(self, subject: str, start_seq: int) -> AsyncGenerator[tuple[int, bytes], None]:
        """(stream seq, payload) from ``start_seq`` on, exactly in order: an ordered
        consumer, which nats-py recreates from the next sequence when a message is missed
        or its heartbeats stop (a node died)."""
        expected = start_seq
        sub = await self._retry(
            lambda: self.js.subscribe(
                subject,
                ordered_consumer=True,
                idle_heartbeat=0.5,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                config=ConsumerConfig(opt_start_seq=start_seq),
            ),
            time.monotonic() + self.append_timeout,
        )
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=1.0)
                except nats.errors.TimeoutError:
                    continue
                seq = msg.metadata.sequence.stream
                if seq < expected:
                    continue
                if seq > expected:
                    raise LogGap(f"{subject}: got {seq}, expected {expected}")
                expected += 1
                yield seq, msg.data
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()


class LogGap(Exception):
    """A stream skipped a sequence where one was expected."""
