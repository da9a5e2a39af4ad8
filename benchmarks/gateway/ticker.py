"""The fixed-rate mode's clock (``Ticker``): each bot's next send at its scheduled
time, within microseconds, from a Linux timerfd (uvloop's timers round to milliseconds).  Apart
from the bots because it is the one piece of the open-loop measurement that is about time,
not about the protocol.
"""

from __future__ import annotations

import asyncio
import ctypes
import heapq
import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.gateway.bots import Bot

_CLOCK_MONOTONIC = 1

_TFD_TIMER_ABSTIME = 1

_TFD_NONBLOCK = os.O_NONBLOCK

_TFD_CLOEXEC = os.O_CLOEXEC


class _TimeSpec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _ITimerSpec(ctypes.Structure):
    _fields_ = (("it_interval", _TimeSpec), ("it_value", _TimeSpec))


class Ticker:
    """The fixed-rate mode's clock: calls each bot's ``pump`` at its next scheduled send.

    uvloop's timers round to whole milliseconds (a shorter wait runs at once), so waiting for
    a schedule with ``asyncio.sleep`` either sends late or spins the event loop until the time
    comes; a Linux timerfd, watched by the event loop, wakes the worker within microseconds of
    it.  Without timerfd (not Linux), the event loop's timers are used.

    Given ``period_ns`` (the spacing of the connections' staggered schedules: every send
    falls on that grid), the timerfd is armed once, periodic, from the first schedule on, and
    each expiry sends what fell due (a heap of the bots' next send times): the one system call
    per send that re-arming a one-shot timer costs (a third of the load generator's CPU at
    30,000 requests/s, measured with py-spy) is gone.  The period is rounded down to whole
    nanoseconds, so the expiries run at most a little ahead of the schedule: a send is never
    early, and late by less than one period (33 µs at 30,000/s over 8 connections), which
    its latency, counted from the schedule, includes.  Without ``period_ns`` the timer is
    re-armed, one-shot, at the earliest due time after each expiry."""

    def __init__(self, period_ns: float = 0.0) -> None:
        self.loop = asyncio.get_running_loop()
        self.heap: list[tuple[int, int, Bot]] = []
        self.period_ns = int(period_ns)  # 0: one-shot, re-armed at each due time
        self.armed = 0  # the time the alarm is set for (periodic: its first expiry; 0: unset)
        self.handle: asyncio.TimerHandle | None = None
        self.fd = -1
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
            if fd >= 0 and time.get_clock_info("perf_counter").implementation.endswith(
                "(CLOCK_MONOTONIC)"
            ):
                self.fd = fd
                self.settime = libc.timerfd_settime
                self.spec = _ITimerSpec()
                self.loop.add_reader(fd, self.on_timerfd)
            elif fd >= 0:
                os.close(fd)
        except (OSError, AttributeError):
            pass

    @property
    def periodic(self) -> bool:
        return self.period_ns > 0 and self.fd >= 0

    def add(self, bot: Bot, at_ns: int) -> None:
        heapq.heappush(self.heap, (at_ns, bot.index, bot))
        if not self.armed or (at_ns < self.armed and not self.periodic):
            self.arm(at_ns)

    def arm(self, at_ns: int) -> None:
        self.armed = at_ns
        if self.fd >= 0:
            spec = self.spec
            spec.it_value.tv_sec, spec.it_value.tv_nsec = divmod(at_ns, 1_000_000_000)
            spec.it_interval.tv_sec, spec.it_interval.tv_nsec = divmod(
                self.period_ns, 1_000_000_000
            )
            self.settime(self.fd, _TFD_TIMER_ABSTIME, ctypes.byref(self.spec), None)
        else:
            if self.handle is not None:
                self.handle.cancel()
            delay = (at_ns - time.perf_counter_ns()) / 1e9
            self.handle = self.loop.call_later(max(delay, 0.0), self.tick)

    def disarm(self) -> None:
        self.armed = 0
        if self.fd >= 0:
            spec = self.spec
            spec.it_value.tv_sec = spec.it_value.tv_nsec = 0
            spec.it_interval.tv_sec = spec.it_interval.tv_nsec = 0
            self.settime(self.fd, 0, ctypes.byref(spec), None)
        elif self.handle is not None:
            self.handle.cancel()

    def on_timerfd(self) -> None:
        try:
            os.read(self.fd, 8)
        except BlockingIOError:  # re-armed since it became readable
            return
        self.tick()

    def tick(self) -> None:
        now = time.perf_counter_ns()
        heap = self.heap
        while heap and heap[0][0] <= now:
            _, _, bot = heapq.heappop(heap)
            try:
                due = bot.pump(now)
            except Exception as exc:
                bot.fail(f"bot {bot.index}: {exc!r}")
                continue
            if due:
                heapq.heappush(heap, (due, bot.index, bot))
        if not heap:
            self.disarm()
        elif not self.periodic:
            self.arm(heap[0][0])

    def close(self) -> None:
        self.heap.clear()
        if self.handle is not None:
            self.handle.cancel()
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1
