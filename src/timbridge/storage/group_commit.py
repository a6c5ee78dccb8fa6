"""Group commit: the writes of many concurrent callers in one transaction.

Every reply stores its turns, its usage and its sent parts, and every accepted webhook stores its
job: each its own transaction would cost a commit apiece (on PostgreSQL a round trip and a WAL
flush). A writer task takes whatever is queued when the previous transaction ends and commits it
all at once; each caller still awaits its own commit, so what `write` returns is on disk.
Callers that need not wait (a finished job's removal from the inbox) use `write_soon`; such a
write that fails is kept for the next transaction, so a store that recovers still gets it.

A caller may pass `then`, run synchronously right after the transaction commits and before any
waiter resumes, in queue order: the inbox hands committed jobs to the queue that way, so that
their order in memory is their order on disk.

One bad write must not sink the others of its batch: when a transaction of several callers'
writes fails, each is tried again in a transaction of its own, so that only the writes that fail
alone fail. A write nobody waits for that fails alone while others succeed cannot be stored (a
row the store refuses, not a store that is down): it is dropped and logged, not carried into
every later transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import structlog

from timbridge.storage.sql import Database, delete_in, insert_new

__all__ = ["Delete", "GroupCommit", "Insert", "Write"]

_log = structlog.get_logger("timbridge.storage")

#: After a failed batch, how many writes are tried alone before a store that fails them all is
#: taken for down.
_PROBES = 2


@dataclass(frozen=True, slots=True)
class Insert:
    """Insert `rows` (dicts with the same keys) into `table`, skipping rows already there."""

    table: sa.Table
    rows: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete the rows of `table` whose `column` is one of `values`."""

    table: sa.Table
    column: str
    values: list[Any]


Write = Insert | Delete


@dataclass(slots=True)
class _Queued:
    writes: Sequence[Write]
    done: asyncio.Future[None] | None  # None: nobody waits (failures are logged)
    then: Callable[[], None] | None


class GroupCommit:
    """Commits queued writes in batches on `database`, one transaction per batch."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._pending: list[_Queued] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._committing = False
        self._failed_in_a_row = 0

    async def write(self, *writes: Write, then: Callable[[], None] | None = None) -> None:
        """`writes` in the next group transaction; returns once it has committed (`then` has
        run by then), raises the transaction's error if it failed."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue(_Queued(writes, done, then))
        await done

    def write_soon(self, *writes: Write) -> None:
        """`writes` in the next group transaction, without waiting; a failure is logged."""
        self._queue(_Queued(writes, None, None))

    def _queue(self, item: _Queued) -> None:
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        self._pending.append(item)
        self._wake.set()

    async def aclose(self) -> None:
        """Commit what is queued, then stop the writer."""
        if self._writer is None:
            return
        # queued, or in a transaction now; a store that keeps failing gets three tries
        while (self._pending or self._committing) and self._failed_in_a_row < 3:
            self._wake.set()
            await asyncio.sleep(0.001)
        if self._pending:
            _log.error("store.writes_lost_at_close", writes=len(self._pending))
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        self._writer = None

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            self._committing = True
            try:
                outcomes = await self._outcomes(batch)
            finally:
                self._committing = False
            failed = sum(outcome is not None for outcome in outcomes)
            self._failed_in_a_row = 0 if failed < len(batch) else self._failed_in_a_row + 1
            self._settle(batch, outcomes, store_down=failed == len(batch))

    async def _outcomes(self, batch: list[_Queued]) -> list[Exception | None]:
        """Each item's error (None: committed): the batch in one transaction, or, when that
        fails and it holds more than one item, each item in its own."""
        try:
            await self._commit(batch)
        except Exception as exc:  # noqa: BLE001 - every waiter gets it; the writer goes on
            if len(batch) == 1:
                return [exc]
            failure = exc
        else:
            return [None] * len(batch)
        outcomes: list[Exception | None] = []
        for item in batch:
            if len(outcomes) >= _PROBES and not any(o is None for o in outcomes):
                # the first ones failed alone too: the store is down, not one row bad. The rest
                # get the batch's error rather than a transaction (and a timeout) each.
                outcomes += [failure] * (len(batch) - len(outcomes))
                break
            try:
                await self._commit([item])
            except Exception as exc:  # noqa: BLE001 - this item's waiter gets it
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes

    def _settle(
        self, batch: list[_Queued], outcomes: list[Exception | None], *, store_down: bool
    ) -> None:
        """Wake the waiters. Writes nobody waits for are kept when the store is down and go
        with the next transaction (not retried on their own: a store that fails every
        transaction would spin); one that failed while others went through is dropped."""
        for item, outcome in zip(batch, outcomes, strict=True):
            if outcome is None and item.then is not None:
                item.then()
            if item.done is None:
                if outcome is not None and store_down:
                    _log.warning("store.write_deferred", error=str(outcome))
                    self._pending.append(item)
                elif outcome is not None:
                    _log.error("store.write_dropped", error=str(outcome))
            elif not item.done.done():
                if outcome is None:
                    item.done.set_result(None)
                else:
                    item.done.set_exception(outcome)

    async def _commit(self, batch: list[_Queued]) -> None:
        """One transaction: every insert of `batch`, one statement per table, then every
        delete, one statement per table and column."""
        inserts: dict[str, tuple[sa.Table, list[dict[str, Any]]]] = {}
        deletes: dict[tuple[str, str], tuple[sa.Table, list[Any]]] = {}
        for item in batch:
            for write in item.writes:
                if isinstance(write, Insert):
                    inserts.setdefault(write.table.name, (write.table, []))[1].extend(write.rows)
                else:
                    key = (write.table.name, write.column)
                    deletes.setdefault(key, (write.table, []))[1].extend(write.values)

        def work(conn: sa.Connection) -> None:
            for table, rows in inserts.values():
                insert_new(conn, table, rows)
            for (_, column), (table, values) in deletes.items():
                delete_in(conn, table, column, values)

        await self._database.run("store", work)
