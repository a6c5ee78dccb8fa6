"""Tickets: conversations handed to human agents, kept in the store so that they survive
restarts and are shared by every worker. A conversation has at most one open ticket (its jobs
run one at a time, so opening is never raced); the message that opened a ticket opens no
second one when its job runs again."""

from __future__ import annotations

import time
from typing import Literal, NamedTuple

import sqlalchemy as sa

from timbridge.storage.place import Place
from timbridge.storage.schema import tickets
from timbridge.storage.sql import Database

__all__ = ["Ticket", "Tickets"]


class Ticket(NamedTuple):
    number: int
    robot: str
    conversation: str
    kind: Literal["c2c", "group"]
    peer: str
    sender: str
    topic: str | None
    reason: str
    state: Literal["open", "closed"]
    opened_at: float
    active_at: float
    closed_at: float | None
    closed_by: str | None
    identity: str


_COLUMNS = [tickets.c[name] for name in Ticket._fields]


class Tickets:
    """The tickets on `database` (written at once, not through the group commit: they are few,
    and an agent's reply must find the ticket that was just opened)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def open(self, place: Place, *, reason: str, identity: str) -> tuple[Ticket, bool]:
        """The conversation's open ticket, opened now unless there is one; and whether it is
        new. The same `identity` (a job run again) finds the ticket it opened."""
        now = time.time()
        robot, conversation = place.robot, place.conversation

        def work(conn: sa.Connection) -> tuple[Ticket, bool]:
            found = conn.execute(
                sa.select(*_COLUMNS).where(
                    (tickets.c.robot == robot)
                    & (
                        (tickets.c.identity == identity)
                        | ((tickets.c.conversation == conversation) & (tickets.c.state == "open"))
                    )
                )
            ).first()
            if found is not None:
                return Ticket._make(found), False
            conn.execute(
                tickets.insert().values(
                    **place.row(),
                    reason=reason[:500],
                    state="open",
                    opened_at=now,
                    active_at=now,
                    identity=identity,
                )
            )
            row = conn.execute(
                sa.select(*_COLUMNS).where(
                    (tickets.c.identity == identity) & (tickets.c.robot == robot)
                )
            ).one()
            return Ticket._make(row), True

        return await self._database.run("open ticket", work)

    async def open_for(self, robot: str, conversation: str) -> Ticket | None:
        """The conversation's open ticket, if any."""
        query = sa.select(*_COLUMNS).where(
            (tickets.c.robot == robot)
            & (tickets.c.conversation == conversation)
            & (tickets.c.state == "open")
        )
        row = await self._database.run(
            "read ticket", lambda conn: conn.execute(query).first(), writes=False
        )
        return None if row is None else Ticket._make(row)

    async def get(self, robot: str, number: int) -> Ticket | None:
        query = sa.select(*_COLUMNS).where(
            (tickets.c.robot == robot) & (tickets.c.number == number)
        )
        row = await self._database.run(
            "read ticket", lambda conn: conn.execute(query).first(), writes=False
        )
        return None if row is None else Ticket._make(row)

    async def closed_lately(self, robot: str, conversation: str, within_s: float) -> Ticket | None:
        """The conversation's ticket closed in the last `within_s` seconds, if any."""
        query = (
            sa.select(*_COLUMNS)
            .where(
                (tickets.c.robot == robot)
                & (tickets.c.conversation == conversation)
                & (tickets.c.state == "closed")
                & (tickets.c.closed_at >= time.time() - within_s)
            )
            .order_by(tickets.c.number.desc())
            .limit(1)
        )
        row = await self._database.run(
            "read ticket", lambda conn: conn.execute(query).first(), writes=False
        )
        return None if row is None else Ticket._make(row)

    async def touch(self, number: int) -> None:
        """Something was said under the ticket: its idle time starts again."""
        update = tickets.update().where(tickets.c.number == number).values(active_at=time.time())
        await self._database.run("touch ticket", lambda conn: conn.execute(update))

    async def close(self, number: int, by: str) -> bool:
        """Close ticket `number`; False if it was not open."""
        update = (
            tickets.update()
            .where((tickets.c.number == number) & (tickets.c.state == "open"))
            .values(state="closed", closed_at=time.time(), closed_by=by[:64])
        )
        changed = await self._database.run(
            "close ticket", lambda conn: conn.execute(update).rowcount
        )
        return bool(changed)

    async def listing(
        self, *, robot: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[Ticket]:
        """The newest tickets first, at most `limit`, of one robot or state when given."""
        query = sa.select(*_COLUMNS).order_by(tickets.c.number.desc()).limit(limit)
        if robot is not None:
            query = query.where(tickets.c.robot == robot)
        if state is not None:
            query = query.where(tickets.c.state == state)
        rows = await self._database.run(
            "list tickets", lambda conn: conn.execute(query).all(), writes=False
        )
        return [Ticket._make(row) for row in rows]
