"""The subscribers' worker process: read-only connections following a market's
book and trades (``Subscriber``), counting what arrives and checking that the book's ``seq``
is contiguous; ``subscribers_worker`` runs them between the driver's "go" and "stop" and
returns what each saw.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec

from benchmarks.gateway.client import STARTUP_TIMEOUT, TEXT, Connection, open_connection
from benchmarks.gateway.messages import Message, StreamData, decode_message
from benchmarks.gateway.workers import stdin_lines

QUIET_S = 0.5
"""Subscribers are done when no message arrived for this long after the bots finished."""

SUBSCRIBER_DRAIN_CAP = 20.0


class Subscriber(Connection):
    """A read-only connection following a market's book and trades: it counts what arrives
    and checks that the book's ``seq`` rises by exactly one per message after the snapshot."""

    def __init__(self) -> None:
        super().__init__()
        self.counting = False
        self.messages = 0
        self.book = 0  # book messages (snapshots included)
        self.book_seqs = 0  # the book changes the counted updates cover
        self.trades = 0
        self.gaps = 0
        self.snapshots = 0
        self.snapshot_seq: int | None = None
        self.last_seq: int | None = None
        self.first_ns = 0
        self.last_ns = 0
        self.subscribed = asyncio.Event()

    def on_ws_frame(self, transport: Any, frame: Any) -> None:
        if frame.msg_type is not TEXT:
            self.on_control(frame)
            return
        try:
            self.on_message(decode_message(frame.get_payload_as_memoryview()))
        except Exception as exc:
            self.fail(f"subscriber: {exc!r}")

    def on_message(self, message: Message) -> None:
        if message.id is not None:
            if not message.ok:
                self.error = "subscribe refused"
            return
        counting = self.counting
        if message.channel == "book":
            data = message.data
            if type(data) is StreamData and data.type == "snapshot":
                self.snapshots += 1
                if self.snapshot_seq is None:
                    self.snapshot_seq = message.seq
                self.subscribed.set()
            else:
                first = message.seq if message.first_seq is None else message.first_seq
                if self.last_seq is None or first != self.last_seq + 1:
                    self.gaps += 1
                if counting:
                    self.book_seqs += message.seq - first + 1
            self.last_seq = message.seq
            if counting:
                self.book += 1
        elif message.channel == "trades" and counting:
            # One trade per message, or (batched) a list of the trades of one batch.
            data = message.data
            self.trades += len(data) if type(data) is list else 1
        if counting:
            t = time.perf_counter_ns()
            if not self.messages:
                self.first_ns = t
            self.messages += 1
            self.last_ns = t


async def subscribers_worker(spec: dict[str, Any]) -> dict[str, Any]:
    import resource

    commands = stdin_lines(asyncio.get_running_loop())
    channels = [f"book:{spec['market']}", f"trades:{spec['market']}"]
    request = msgspec.json.encode(
        {"id": 1, "method": "subscribe", "params": {"channels": channels}}
    )
    subs: list[Subscriber] = []
    try:
        for _ in range(spec["subscribers"]):
            sub = await open_connection(Subscriber, spec["url"])
            subs.append(sub)
            sub.send(request)
        await asyncio.wait_for(
            asyncio.gather(*(sub.subscribed.wait() for sub in subs)), STARTUP_TIMEOUT
        )
        print("ready", flush=True)
        command = await commands.get()
        if not command.startswith("go"):
            raise SystemExit("the driver went away")
        go_ns = time.perf_counter_ns()
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        for sub in subs:
            sub.counting = True
        await commands.get()  # "stop" (or the end of input): the bots are done
        stop_ns = time.perf_counter_ns()
        # Read on until the stream has been quiet for QUIET_S: what was published has arrived.
        seen = -1
        while time.perf_counter_ns() - stop_ns < SUBSCRIBER_DRAIN_CAP * 1e9:
            total = sum(sub.messages for sub in subs)
            if total == seen:
                break
            seen = total
            await asyncio.sleep(QUIET_S)
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        end_ns = time.perf_counter_ns()
    finally:
        closed = [sub.error for sub in subs]  # what happened before this side closes
        await asyncio.gather(*(sub.close() for sub in subs), return_exceptions=True)
    cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    return {
        "go_ns": go_ns,
        "stop_ns": stop_ns,
        "end_ns": end_ns,
        "cpu_s": round(cpu, 3),
        "subscribers": [
            {
                "messages": s.messages,
                "book": s.book,
                "book_seqs": s.book_seqs,
                "trades": s.trades,
                "gaps": s.gaps,
                "snapshots": s.snapshots,
                "snapshot_seq": s.snapshot_seq,
                "final_seq": s.last_seq,
                "first_ns": s.first_ns,
                "last_ns": s.last_ns,
                "closed": error,
            }
            for s, error in zip(subs, closed, strict=True)
        ],
    }
