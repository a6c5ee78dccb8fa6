"""What coordination provides, whichever backend: dedupe, and a queue that runs the jobs of one
conversation one at a time, in arrival order, and different conversations concurrently."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Coordinator", "Handler", "Job"]


@dataclass(frozen=True, slots=True)
class Job:
    """One inbound message to answer. `body` is the webhook body as received (re-parseable)."""

    conversation: str
    robot: str
    command: str
    body: bytes
    identity: str
    trace_id: str
    received_at: float
    #: The parsed event, when the job never left this process (skips parsing twice).
    event: object = field(default=None, compare=False)


Handler = Callable[[Job], Awaitable[None]]


class Coordinator(Protocol):
    """Dedupe and ordered, concurrent job processing."""

    async def first_seen(self, identity: str) -> bool:
        """Mark `identity` as seen; False if it was already (within the dedupe window)."""
        ...

    async def enqueue(self, job: Job) -> None:
        """Accept a job; it runs after the earlier jobs of its conversation."""
        ...

    async def start(self, handler: Handler) -> None:
        """Begin running jobs with `handler`."""
        ...

    async def close(self, grace_s: float) -> None:
        """Stop accepting; let running and queued jobs finish within `grace_s`, then stop."""
        ...

    def depth(self) -> int:
        """Jobs accepted and not yet finished."""
        ...

    async def ping(self) -> None:
        """Raise if the backend is unreachable."""
        ...
