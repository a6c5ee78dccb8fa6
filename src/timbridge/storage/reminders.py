"""Reminders: messages a robot sends later, kept in the store until sent. Each is sent once:
a process takes a due reminder by moving it from ``pending`` to ``sending`` in one guarded
update (so two processes on one PostgreSQL never both take it), and marks it ``sent`` once
Tencent has it. One taken by a process that then died is taken again after `LEASE_S`; its
message carries the same nonce, so Tencent's dedupe drops a double."""

from __future__ import annotations

import time
import uuid
from typing import Literal, NamedTuple

import sqlalchemy as sa

from timbridge.storage.place import Place
from timbridge.storage.schema import reminders, schedule_runs
from timbridge.storage.sql import Database, insert_new

__all__ = ["LEASE_S", "Reminder", "Reminders"]

#: How long a reminder taken for sending stays taken before another process may take it.
LEASE_S = 60.0


class Reminder(NamedTuple):
    id: int
    robot: str
    conversation: str
    kind: Literal["c2c", "group"]
    peer: str
    sender: str
    topic: str | None
    text: str
    due_at: float
    state: str
    identity: str


_COLUMNS = [reminders.c[name] for name in Reminder._fields]


class Reminders:
    """The reminders on `database`."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def add(self, place: Place, *, text: str, due_at: float, identity: str) -> Reminder:
        """Keep a reminder to send into `place` (the same `identity` again: the one kept
        before)."""

        def work(conn: sa.Connection) -> Reminder:
            mine = (reminders.c.identity == identity) & (reminders.c.robot == place.robot)
            found = conn.execute(sa.select(*_COLUMNS).where(mine)).first()
            if found is None:
                conn.execute(
                    reminders.insert().values(
                        **place.row(),
                        text=text[:2000],
                        due_at=due_at,
                        state="pending",
                        identity=identity,
                        created_at=time.time(),
                    )
                )
                found = conn.execute(sa.select(*_COLUMNS).where(mine)).one()
            return Reminder._make(found)

        return await self._database.run("add reminder", work)

    async def pending(self, robot: str, conversation: str, sender: str) -> list[Reminder]:
        """A user's reminders not yet sent, soonest first."""
        query = (
            sa.select(*_COLUMNS)
            .where(
                (reminders.c.robot == robot)
                & (reminders.c.conversation == conversation)
                & (reminders.c.sender == sender)
                & (reminders.c.state == "pending")
            )
            .order_by(reminders.c.due_at)
        )
        rows = await self._database.run(
            "list reminders", lambda conn: conn.execute(query).all(), writes=False
        )
        return [Reminder._make(row) for row in rows]

    async def cancel(self, number: int, robot: str, sender: str) -> bool:
        """Cancel `sender`'s pending reminder `number`; False if there is none such."""
        update = (
            reminders.update()
            .where(
                (reminders.c.id == number)
                & (reminders.c.robot == robot)
                & (reminders.c.sender == sender)
                & (reminders.c.state == "pending")
            )
            .values(state="cancelled")
        )
        changed = await self._database.run(
            "cancel reminder", lambda conn: conn.execute(update).rowcount
        )
        return bool(changed)

    async def take_due(self, now: float, limit: int = 50) -> list[Reminder]:
        """Take up to `limit` reminders due by `now` (pending, or taken and not sent within
        `LEASE_S`) for this process to send."""

        def work(conn: sa.Connection) -> list[Reminder]:
            due = (reminders.c.due_at <= now) & (
                (reminders.c.state == "pending")
                | ((reminders.c.state == "sending") & (reminders.c.claimed_at < now - LEASE_S))
            )
            candidates = conn.execute(
                sa.select(*_COLUMNS).where(due).order_by(reminders.c.due_at).limit(limit)
            ).all()
            taken = []
            for row in candidates:
                reminder = Reminder._make(row)
                claimed = conn.execute(
                    reminders.update()
                    .where((reminders.c.id == reminder.id) & (reminders.c.state == reminder.state))
                    .where(
                        (reminders.c.claimed_at.is_(None))
                        | (reminders.c.claimed_at < now - LEASE_S)
                    )
                    .values(state="sending", claimed_at=now)
                ).rowcount
                if claimed:
                    taken.append(reminder)
            return taken

        return await self._database.run("take reminders", work)

    async def finish(self, number: int, state: Literal["sent", "missed", "failed"]) -> None:
        update = (
            reminders.update()
            .where(reminders.c.id == number)
            .values(state=state, sent_at=time.time())
        )
        await self._database.run("finish reminder", lambda conn: conn.execute(update))

    async def claim_run(
        self, robot: str, name: str, fire_at: float, *, state: str = "sending"
    ) -> bool:
        """Whether this process is the one to send schedule `name`'s message of `fire_at`
        (True once, for one process, whatever the number of processes asking)."""
        claimant = uuid.uuid4().hex
        key = (
            (schedule_runs.c.robot == robot)
            & (schedule_runs.c.name == name)
            & (schedule_runs.c.fire_at == fire_at)
        )

        def work(conn: sa.Connection) -> bool:
            row = {
                "robot": robot,
                "name": name,
                "fire_at": fire_at,
                "claimant": claimant,
                "state": state,
                "created_at": time.time(),
            }
            insert_new(conn, schedule_runs, [row])
            return conn.execute(sa.select(schedule_runs.c.claimant).where(key)).scalar() == claimant

        return await self._database.run("claim schedule", work)

    async def ran_before(self, robot: str, name: str) -> bool:
        """Whether schedule `name` ever fired (or was first seen) in this store."""
        query = sa.select(sa.func.count()).where(
            (schedule_runs.c.robot == robot) & (schedule_runs.c.name == name)
        )
        found = await self._database.run(
            "read schedule", lambda conn: conn.execute(query).scalar(), writes=False
        )
        return bool(found)

    async def finish_run(self, robot: str, name: str, fire_at: float, state: str) -> None:
        update = (
            schedule_runs.update()
            .where(
                (schedule_runs.c.robot == robot)
                & (schedule_runs.c.name == name)
                & (schedule_runs.c.fire_at == fire_at)
            )
            .values(state=state)
        )
        await self._database.run("finish schedule", lambda conn: conn.execute(update))
