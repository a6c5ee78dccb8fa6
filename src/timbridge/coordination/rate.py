"""Per-user message limits, in process (the Redis coordinator does the same in one Lua script):
messages per key within a sliding window, per robot.

A sliding 60 s window of message times per key. Over the limit, `check` says how long until the
next message is allowed, and whether the user has already been told (they are told once per
full window, not for every message). Keys idle for a window are forgotten, so memory follows
the number of active users.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Decision", "MessageRate"]

WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_s: float = 0.0
    notify: bool = False  # over the limit, and the user has not been told in this window


class MessageRate:
    """Messages per key within the last minute, against a limit."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._times: dict[str, deque[float]] = {}
        self._told_until: dict[str, float] = {}
        self._checks = 0

    def check(self, key: str, limit: int) -> Decision:
        """Count one message for `key` if `limit` (per minute) allows it; 0 means no limit."""
        if limit <= 0:
            return Decision(allowed=True)
        now = self._clock()
        self._checks += 1
        if self._checks % 1024 == 0:
            self._forget_idle(now)
        times = self._times.setdefault(key, deque())
        while times and times[0] <= now - WINDOW_S:
            times.popleft()
        if len(times) < limit:
            times.append(now)
            return Decision(allowed=True)
        retry_after = times[0] + WINDOW_S - now
        notify = self._told_until.get(key, 0.0) <= now
        if notify:
            self._told_until[key] = now + retry_after
        return Decision(allowed=False, retry_after_s=retry_after, notify=notify)

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, t in self._times.items() if not t or t[-1] <= now - WINDOW_S]:
            del self._times[key]
            self._told_until.pop(key, None)
