"""Client-side call limits: stay under Tencent's 200 calls/s per API and 40 messages/s per group.

Tencent answers 60007-family codes past its limits; waiting here first costs less than a refused
call. Tencent counts calls per second, so a bucket may not hold a whole second's calls: full,
it would let them through at once and as many again refilled within the same second. Each
bucket holds a twentieth of the limit and refills at the rest, so no second ever sees more
than the limit. Per-group limiters are kept for the most recently active groups only, so memory
stays bounded however many groups a robot is in.
"""

from __future__ import annotations

from collections import OrderedDict

from aiolimiter import AsyncLimiter

__all__ = ["GROUP_SEND_COMMANDS", "CallLimits", "per_second"]

#: Calls that put a message into a group, counted against the per-group limit.
GROUP_SEND_COMMANDS = frozenset(
    {"group_open_http_svc/send_group_msg", "stream_msg/send_group_stream_msg"}
)


def per_second(limit: float) -> AsyncLimiter:
    """A bucket that lets at most `limit` calls (two or more) into any one second: a burst of a
    twentieth of it, at least one call, then the rest of the limit per second. Under two, one
    call every 1/`limit` seconds."""
    burst = max(1.0, limit // 20)
    if limit - burst < 1:
        return AsyncLimiter(1, 1 / limit)
    return AsyncLimiter(burst, burst / (limit - burst))


class CallLimits:
    """Token buckets per REST command and per group."""

    def __init__(
        self, *, per_api: float = 200.0, per_group: float = 40.0, max_groups: int = 10_000
    ) -> None:
        self._per_api = per_api
        self._per_group = per_group
        self._max_groups = max_groups
        self._apis: dict[str, AsyncLimiter] = {}
        self._groups: OrderedDict[str, AsyncLimiter] = OrderedDict()

    async def acquire(self, command: str, group_id: str | None = None) -> None:
        """Wait until one more `command` call (into `group_id`, for group sends) is allowed."""
        limiter = self._apis.get(command)
        if limiter is None:
            limiter = self._apis[command] = per_second(self._per_api)
        await limiter.acquire()
        if group_id is not None and command in GROUP_SEND_COMMANDS:
            await self._group(group_id).acquire()

    def _group(self, group_id: str) -> AsyncLimiter:
        limiter = self._groups.get(group_id)
        if limiter is None:
            limiter = self._groups[group_id] = per_second(self._per_group)
            if len(self._groups) > self._max_groups:
                self._groups.popitem(last=False)
        else:
            self._groups.move_to_end(group_id)
        return limiter
