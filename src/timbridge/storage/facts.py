"""Long-term memory's store: facts about users, and how far each conversation has been read for
them. A fact belongs to one robot, one user and one chat (`Owner`): what a user told a robot in
private stays in the private chat, and each member of a group has the group's own. Forgetting
deletes the rows; nothing of a forgotten fact remains.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import sqlalchemy as sa

from timbridge.storage.schema import facts, memory_marks
from timbridge.storage.sql import Database, insert_new

__all__ = ["JOINED", "Fact", "Facts", "Owner", "Source"]

JOINED = -1
"""The recalled-set place of a fact new or corrected since the set was chosen: before it."""

Source = Literal["said", "learned", "tool"]
"""How a fact came to be known: the user said "remember …", the model read it from the
conversation, or the model kept it with its ``remember`` tool."""


class Owner(NamedTuple):
    """Whose facts: a robot's user, in the private chat (``scope=""``) or in a group."""

    robot: str
    user: str
    scope: str


class Fact(NamedTuple):
    id: int
    text: str
    vector: bytes | None
    embedder: str | None
    source: str
    created_at: float
    updated_at: float
    used_at: float
    recall: int | None


_COLUMNS = [facts.c[name] for name in Fact._fields]


def _fresh(text: str, vector: bytes | None, embedder: str | None, now: float) -> dict[str, Any]:
    """The columns a fact learned or corrected at `now` gets: it is used, and recalled, first."""
    return {
        "text": text[:500],
        "vector": vector,
        "embedder": embedder,
        "updated_at": now,
        "used_at": now,
        "recall": JOINED,
    }


def _marked(robot: str, conversation: str) -> sa.ColumnElement[bool]:
    return (memory_marks.c.robot == robot) & (memory_marks.c.conversation == conversation)


def _mine(owner: Owner) -> sa.ColumnElement[bool]:
    return (
        (facts.c.robot == owner.robot)
        & (facts.c.owner == owner.user)
        & (facts.c.scope == owner.scope)
    )


class Facts:
    """The facts on `database`."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def of(self, owner: Owner) -> list[Fact]:
        """Everything known about `owner`, oldest first."""
        query = sa.select(*_COLUMNS).where(_mine(owner)).order_by(facts.c.id)
        rows = await self._database.run(
            "read facts", lambda conn: conn.execute(query).all(), writes=False
        )
        return [Fact._make(row) for row in rows]

    async def add(
        self,
        owner: Owner,
        text: str,
        *,
        vector: bytes | None,
        embedder: str | None,
        source: Source,
        keep: int,
    ) -> int:
        """Keep a new fact about `owner` (in their recalled set: what is new is recalled), and
        then at most `keep` of theirs (the ones used longest ago go); the new fact's id."""
        now = time.time()

        def work(conn: sa.Connection) -> int:
            added = conn.execute(
                facts.insert()
                .values(
                    robot=owner.robot,
                    owner=owner.user,
                    scope=owner.scope,
                    source=source,
                    created_at=now,
                    **_fresh(text, vector, embedder, now),
                )
                .returning(facts.c.id)
            ).scalar_one()
            stale = (
                sa.select(facts.c.id)
                .where(_mine(owner))
                .order_by(facts.c.used_at.desc(), facts.c.id.desc())
                .offset(keep)
            )
            old = [row[0] for row in conn.execute(stale)]
            if old:
                conn.execute(facts.delete().where(facts.c.id.in_(old)))
            return int(added)

        return await self._database.run("add fact", work)

    async def replace(
        self, owner: Owner, number: int, text: str, *, vector: bytes | None, embedder: str | None
    ) -> bool:
        """Change `owner`'s fact `number` to `text` (a correction, recalled from now on); False
        if it is not theirs."""
        now = time.time()
        update = (
            facts.update()
            .where(_mine(owner) & (facts.c.id == number))
            .values(**_fresh(text, vector, embedder, now))
        )
        changed = await self._database.run(
            "replace fact", lambda conn: conn.execute(update).rowcount
        )
        return bool(changed)

    async def used(self, numbers: Sequence[int]) -> None:
        """Note that facts `numbers` went into a context (what is used stays longest)."""
        if not numbers:
            return
        update = facts.update().where(facts.c.id.in_(list(numbers))).values(used_at=time.time())
        await self._database.run("note facts used", lambda conn: conn.execute(update))

    async def choose(self, owner: Owner, numbers: Sequence[int]) -> None:
        """Make facts `numbers`, in this order, `owner`'s recalled set (and note them used);
        the others leave it."""
        chosen = facts.c.id.in_(list(numbers))
        place: sa.ColumnElement[Any] = (
            sa.case({n: i for i, n in enumerate(numbers)}, value=facts.c.id, else_=None)
            if numbers
            else sa.null()
        )
        used = sa.case((chosen, time.time()), else_=facts.c.used_at)
        update = facts.update().where(_mine(owner)).values(recall=place, used_at=used)
        await self._database.run("choose facts", lambda conn: conn.execute(update))

    async def delete(self, owner: Owner, numbers: Sequence[int]) -> int:
        """Delete `owner`'s facts `numbers`; how many there were."""
        delete = facts.delete().where(_mine(owner) & facts.c.id.in_(list(numbers)))
        return int(
            await self._database.run("forget facts", lambda conn: conn.execute(delete).rowcount)
        )

    async def delete_user(self, robot: str, user: str) -> int:
        """Delete everything `robot` knows about `user`, in every chat; how many facts."""
        delete = facts.delete().where((facts.c.robot == robot) & (facts.c.owner == user))
        return int(
            await self._database.run("forget user", lambda conn: conn.execute(delete).rowcount)
        )

    async def mark(self, robot: str, conversation: str) -> str | None:
        """The identity of the last message of `conversation` read for facts, if any."""
        query = sa.select(memory_marks.c.identity).where(_marked(robot, conversation))
        found = await self._database.run(
            "read memory mark", lambda conn: conn.execute(query).scalar(), writes=False
        )
        return str(found) if found else None

    async def claim_reading(self, robot: str, conversation: str, *, for_s: float) -> bool:
        """Hold `conversation`'s next batch for this process for `for_s` seconds (or until
        `set_mark` or `release_reading`); False if another process holds it."""

        def work(conn: sa.Connection) -> bool:
            now = time.time()
            until = now + for_s
            free = _marked(robot, conversation) & (memory_marks.c.reading_until <= now)
            if conn.execute(memory_marks.update().where(free).values(reading_until=until)).rowcount:
                return True
            row = {"robot": robot, "conversation": conversation, "identity": ""}
            insert_new(conn, memory_marks, [{**row, "read_at": 0.0, "reading_until": until}])
            held = sa.select(memory_marks.c.reading_until).where(_marked(robot, conversation))
            return bool(conn.execute(held).scalar() == until)

        return bool(await self._database.run("claim memory reading", work))

    async def release_reading(self, robot: str, conversation: str) -> None:
        """Give up the hold on `conversation`'s next batch without having read it."""
        update = memory_marks.update().where(_marked(robot, conversation)).values(reading_until=0.0)
        await self._database.run("release memory reading", lambda conn: conn.execute(update))

    async def set_mark(self, robot: str, conversation: str, identity: str) -> None:
        """`conversation` has been read for facts up to the message `identity` (and the hold
        on it is given up)."""
        row = {"robot": robot, "conversation": conversation, "identity": identity}

        def work(conn: sa.Connection) -> None:
            now = time.time()
            update = (
                memory_marks.update()
                .where(_marked(robot, conversation))
                .values(identity=identity, read_at=now, reading_until=0.0)
            )
            if not conn.execute(update).rowcount:
                insert_new(conn, memory_marks, [{**row, "read_at": now, "reading_until": 0.0}])

        await self._database.run("keep memory mark", work)
