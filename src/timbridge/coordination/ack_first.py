"""Webhook first: in one process, jobs start in the pauses of webhook traffic.

The webhook and the workers of `timbridge serve` share one event loop, which runs their
callbacks in turn. Left alone, a burst of webhooks gets only the share of the loop that the
answers leave it, so acknowledgements slow down exactly when Tencent sends most. `AckFirst`
holds jobs back during a burst, that is while the newest `dense` messages were all accepted
within `window_s` (64 in 50 ms: 1 280 messages/s, about what one process answers on two
cores; steady traffic below that is never held, and the 50 ms span keeps a burst a burst
through the short gaps that the loop's own long passes put between arrivals). Held jobs start
when the burst stops, and at the latest `max_wait_s` after it began; after that, jobs and
webhooks share the loop until the burst ends, since a burst that long is overload and holding
jobs back longer would only grow the backlog. Either way, jobs are let go a `batch` per loop
pass, so that no pass hands the loop to thousands of jobs at once.

Whatever the bursts, no job is held once it is `max_wait_s` old (from its acceptance): under a
sustained flood the rate of acceptances dips below the burst threshold now and then, and each
dip would otherwise start a new burst and a new hold, so that the workers starved (measured: 30
answers/s against a capacity of 670 through a 15 s flood). A job older than that has waited its
share; it starts at once, beside the webhooks.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

__all__ = ["AckFirst"]


class AckFirst:
    """Holds job starts back while webhooks arrive faster than `dense` per `window_s`."""

    def __init__(
        self, max_wait_s: float, *, window_s: float = 0.05, dense: int = 64, batch: int = 16
    ) -> None:
        self._max_wait = max_wait_s
        self._window = window_s
        self._batch = batch
        self._recent: deque[float] = deque([-1e9] * dense, maxlen=dense)  # newest accepts
        self._since = -1e9  # when the current burst began
        self._waiting: deque[tuple[float, asyncio.Future[None]]] = deque()  # (deadline, job)
        self._timer: asyncio.TimerHandle | None = None
        self._off = max_wait_s <= 0

    def accepted(self) -> None:
        """The webhook accepted a message (called once per message, before its jobs queue)."""
        if self._off:
            return
        now = time.monotonic()
        recent = self._recent
        if now - recent[0] >= self._window:  # not a burst before this message
            self._since = now
        recent.append(now)

    def _held(self, now: float) -> bool:
        return now - self._recent[0] < self._window and now - self._since < self._max_wait

    async def turn(self, age_s: float = 0.0) -> None:
        """Return when a job that was accepted `age_s` seconds ago may start."""
        if self._off or age_s >= self._max_wait:
            return
        if not self._waiting and not self._held(time.monotonic()):
            return
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.append((time.monotonic() + self._max_wait - age_s, future))
        if self._timer is None:
            self._arm(loop)
        await future  # a cancelled job cancels its future, which `_release` then skips

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        now = time.monotonic()
        due = min(self._recent[0] + self._window, self._since + self._max_wait)
        if self._waiting:
            due = min(due, self._waiting[0][0])
        self._timer = loop.call_later(max(0.0, due - now), self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = time.monotonic()
        while self._waiting and self._waiting[0][0] <= now:  # held its share: it goes now
            _, future = self._waiting.popleft()
            if not future.done():
                future.set_result(None)
        if not self._held(now):
            self._release(self._batch)
        if self._waiting:
            self._arm(loop)

    def _release(self, count: int) -> None:
        while count > 0 and self._waiting:
            _, future = self._waiting.popleft()
            if not future.done():
                future.set_result(None)
                count -= 1

    def close(self) -> None:
        """Release every held job and hold none from now on (shutdown drains the queue)."""
        self._off = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._release(len(self._waiting))
