"""The inbox: accepted messages not yet answered, kept in the store so that an acknowledged
message survives a crash, SIGTERM or a restart (the embedded deployment; Redis keeps its own).

A job is written before the webhook answers OK (through the group commit, so a burst of webhooks
shares one transaction) and deleted when it is done. Deletion need not wait: a job whose
deletion was lost runs again after a restart, and finds its stored reply and sent parts, so it
sends nothing twice. Order: rows carry the sequence number of their acceptance, and are read
back in it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import NamedTuple

import sqlalchemy as sa

from timbridge.storage.group_commit import Delete, GroupCommit, Insert
from timbridge.storage.schema import inbox
from timbridge.storage.sql import Database

__all__ = ["Inbox", "InboxEntry"]


class InboxEntry(NamedTuple):
    """One stored job: one inbound message for one robot."""

    seq: int
    robot: str
    conversation: str
    identity: str
    command: str
    body: bytes
    trace_id: str
    received_at: float


_COLUMNS = [inbox.c[name] for name in InboxEntry._fields]


class Inbox:
    """Durable jobs on `database`, written through `commits`."""

    def __init__(self, database: Database, commits: GroupCommit) -> None:
        self._database = database
        self._commits = commits

    async def put(self, entries: Sequence[InboxEntry], *, then: Callable[[], None]) -> None:
        """Store `entries` (an entry already there is skipped); `then` runs right after the
        commit, before this returns. Raises `StorageError` when they could not be stored."""
        rows = [entry._asdict() for entry in entries]
        await self._commits.write(Insert(inbox, rows), then=then)

    def done(self, seq: int) -> None:
        """Forget the job `seq` (in the next group transaction; nobody waits for it)."""
        self._commits.write_soon(Delete(inbox, "seq", [seq]))

    async def pending(self) -> tuple[int, Counter[str]]:
        """The newest sequence number stored (0 when empty), and the stored jobs per robot."""

        def read(conn: sa.Connection) -> tuple[int, Counter[str]]:
            newest = conn.execute(sa.select(sa.func.max(inbox.c.seq))).scalar()
            counts = conn.execute(
                sa.select(inbox.c.robot, sa.func.count()).group_by(inbox.c.robot)
            ).all()
            return int(newest or 0), Counter({robot: int(n) for robot, n in counts})

        return await self._database.run("read inbox", read, writes=False)

    async def load(self, after: int, limit: int) -> list[InboxEntry]:
        """Up to `limit` stored jobs with a sequence number above `after`, oldest first."""
        query = sa.select(*_COLUMNS).where(inbox.c.seq > after).order_by(inbox.c.seq).limit(limit)

        def read(conn: sa.Connection) -> list[InboxEntry]:
            return [InboxEntry._make(row) for row in conn.execute(query)]

        return await self._database.run("load inbox", read, writes=False)
