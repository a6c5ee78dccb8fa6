"""Stopping answers: the question was recalled, or its sender wrote ``/cancel``.

The webhook notes either in the coordinator (shared by every process of a deployment):
``recall:{identity}`` for a recalled message, ``cancel:{conversation}:{sender}`` for a
``/cancel``, holding when it came and its identity. A job checks them before it starts (a
message recalled or cancelled while it waited is never answered), and while its model and tools
run one loop per process reads the notes of every running job each `WATCH_EVERY_S` and cancels
the task of a job that was stopped: the model's connection is closed and the tools are
cancelled. The engine then withdraws or ends what was already shown.

A job stopped by ``/cancel`` notes ``stopped:{conversation}:{sender}`` with the identity of the
``/cancel``, so that the command, which runs after it (a conversation's jobs run in order), can
say whether it stopped anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import structlog

from timbridge.coordination.base import Flags, Job
from timbridge.errors import CoordinationError

__all__ = ["NOTE_TTL_S", "WATCH_EVERY_S", "Cancels", "Stop", "Watched"]

_log = structlog.get_logger("timbridge.cancels")

#: How long a recall or a ``/cancel`` is kept: a job that waits longer than this (a long outage)
#: is answered although its question was recalled.
NOTE_TTL_S = 3600.0
#: How often the notes of running jobs are read (one read for all of them).
WATCH_EVERY_S = 0.25


class Stop(enum.StrEnum):
    """Why an answer stops."""

    RECALLED = "recalled"
    CANCELLED = "cancelled"


def _recall_key(identity: str) -> str:
    return f"recall:{identity}"


def _cancel_key(conversation: str, sender: str) -> str:
    return f"cancel:{conversation}:{sender}"


def _stopped_key(conversation: str, sender: str) -> str:
    return f"stopped:{conversation}:{sender}"


def _why(job: Job, recall: str | None, cancel: str | None) -> Stop | None:
    if recall is not None:
        return Stop.RECALLED
    if cancel is not None:
        at, _, _ = cancel.partition("|")
        with contextlib.suppress(ValueError):
            if job.received_at < float(at):  # came before the /cancel
                return Stop.CANCELLED
    return None


@dataclass(slots=True)
class Watched:
    """A running answer: its job, who asked, the task to cancel, and why it was stopped."""

    job: Job
    sender: str
    task: asyncio.Future[Any]
    why: Stop | None = None


class Cancels:
    """Notes recalls and ``/cancel``, and stops the answers they concern."""

    def __init__(self, flags: Flags, *, every_s: float = WATCH_EVERY_S) -> None:
        self._flags = flags
        self._every = every_s
        self._running: dict[int, Watched] = {}
        self._watcher: asyncio.Task[None] | None = None

    # --- the webhook's side -------------------------------------------------------------

    async def recalled(self, identities: tuple[str, ...]) -> None:
        """Note that the messages `identities` were recalled."""
        for identity in identities:
            await self._flags.note(_recall_key(identity), "1", NOTE_TTL_S)

    async def cancel(self, conversation: str, sender: str, at: float, identity: str) -> None:
        """Note that `sender` asked at `at` (message `identity`) to stop their answers."""
        await self._flags.note(_cancel_key(conversation, sender), f"{at!r}|{identity}", NOTE_TTL_S)

    # --- the engine's side --------------------------------------------------------------

    async def check(self, job: Job, sender: str) -> Stop | None:
        """Why `job` must not be answered at all (None: answer it)."""
        try:
            recall, cancel = await self._flags.notes(
                [_recall_key(job.identity), _cancel_key(job.conversation, sender)]
            )
            why = _why(job, recall, cancel)
            if why is Stop.CANCELLED:
                await self._note_stopped(job, sender, cancel)
        except CoordinationError as exc:  # unreadable: answering beats losing the message
            _log.warning("cancels.unreadable", error=str(exc))
            return None
        return why

    async def stopped_by(self, conversation: str, sender: str, identity: str) -> bool:
        """Whether the ``/cancel`` `identity` stopped an answer."""
        (noted,) = await self._flags.notes([_stopped_key(conversation, sender)])
        return noted == identity

    async def _note_stopped(self, job: Job, sender: str, cancel: str | None) -> None:
        _, _, identity = (cancel or "").partition("|")
        await self._flags.note(_stopped_key(job.conversation, sender), identity, NOTE_TTL_S)

    @contextlib.contextmanager
    def watching(self, job: Job, sender: str, task: asyncio.Future[Any]) -> Iterator[Watched]:
        """Watch `task` (a job's model and tools) while the body runs: it is cancelled if the
        job is stopped, and the `Watched` says why."""
        watched = Watched(job, sender, task)
        self._running[id(watched)] = watched
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())
        try:
            yield watched
        finally:
            del self._running[id(watched)]

    async def _watch(self) -> None:
        try:
            while self._running:
                await asyncio.sleep(self._every)
                await self._look()
        finally:
            self._watcher = None

    async def _look(self) -> None:
        running = [w for w in self._running.values() if w.why is None]
        keys: list[str] = []
        for w in running:
            keys += [_recall_key(w.job.identity), _cancel_key(w.job.conversation, w.sender)]
        try:
            values = await self._flags.notes(keys)
        except CoordinationError as exc:  # answers go on; the next look tries again
            _log.warning("cancels.unreadable", error=str(exc))
            return
        for n, w in enumerate(running):
            why = _why(w.job, values[2 * n], values[2 * n + 1])
            if why is None or w.task.done():
                continue
            w.why = why
            w.task.cancel()
            _log.info("answer.stopping", why=why.value, trace_id=w.job.trace_id)
            if why is Stop.CANCELLED:
                with contextlib.suppress(CoordinationError):
                    await self._note_stopped(w.job, w.sender, values[2 * n + 1])
