"""What coordination provides, whichever backend: dedupe, and a queue that runs the jobs of one
conversation one at a time, in arrival order, and different conversations concurrently.

A handler that raises `HandBack` leaves its job at the head of its conversation, to run again
after the delay it names, with `Job.tries` one higher; the handler bounds the tries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from timbridge.coordination.rate import Decision
from timbridge.protocol.callbacks import CallbackEvent

__all__ = ["Coordinator", "Flags", "Handler", "Job", "Queue"]


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
    event: CallbackEvent | None = field(default=None, compare=False)
    #: Its place in the order of acceptance, in the embedded inbox (0: not stored there).
    seq: int = field(default=0, compare=False)
    #: How many times a run of it was handed back (`HandBack`) before this one.
    tries: int = field(default=0, compare=False)


Handler = Callable[[Job], Awaitable[None]]


class Queue(Protocol):
    """Dedupe, and ordered and concurrent job processing.

    Backend failures raise `CoordinationError` (the webhook then answers non-OK, so Tencent
    delivers again).
    """

    async def submit(self, identity: str, jobs: Sequence[Job]) -> bool:
        """Queue `jobs` (one inbound message, one job per robot it is for) unless `identity` was
        seen within the dedupe window: False then, and nothing is queued. Both happen or neither,
        so a message refused for a backend failure is not remembered as seen."""
        ...

    async def peek(self, conversation: str) -> list[Job]:
        """The jobs of `conversation` queued behind the one running now, in order."""
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

    def backlog(self) -> dict[str, int]:
        """Jobs accepted and not yet finished, per robot (as last known to this process)."""
        ...

    def oldest_wait_s(self) -> float:
        """How long the oldest job this process knows of has waited (0: none waits)."""
        ...

    async def ping(self) -> None:
        """Raise if the backend is unreachable."""
        ...


class Flags(Protocol):
    """Small shared facts the engine's policies keep: who holds a key, whether something was
    already done within a while, and per-minute rates. Shared by every process of a deployment
    on the same backend as the queue."""

    async def claim(self, key: str, owner: str, ttl_s: float) -> str:
        """Make `owner` the holder of `key` unless someone holds it; the holder after the call
        (so a holder asking again, after a restart, finds itself)."""
        ...

    async def once(self, key: str, ttl_s: float) -> bool:
        """True the first time `key` is asked for within `ttl_s` seconds, False after."""
        ...

    async def rate(self, key: str, limit: int) -> Decision:
        """Count one message for `key` if `limit` per minute allows it (0: no limit)."""
        ...

    async def note(self, key: str, value: str, ttl_s: float) -> None:
        """Keep `value` under `key` for `ttl_s` seconds (a later note replaces it)."""
        ...

    async def notes(self, keys: Sequence[str]) -> list[str | None]:
        """What is noted under each of `keys`, in order (None: nothing, or expired)."""
        ...


class Coordinator(Queue, Flags, Protocol):
    """Both roles, as every backend provides them."""
