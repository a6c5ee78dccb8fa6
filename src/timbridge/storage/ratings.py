"""Ratings: what users thought of the robot's answers, or of a person's help (``/rate 1-5``),
kept for operators; a rating given shortly after a ticket closed is the ticket's."""

from __future__ import annotations

import time
from typing import NamedTuple

import sqlalchemy as sa

from timbridge.storage.group_commit import GroupCommit, Insert
from timbridge.storage.schema import ratings
from timbridge.storage.sql import Database

__all__ = ["Rating", "Ratings"]


class Rating(NamedTuple):
    robot: str
    sender: str
    score: int
    comment: str
    ticket: int | None
    created_at: float


class Ratings:
    """The ratings on `database`."""

    def __init__(self, database: Database, commits: GroupCommit) -> None:
        self._database = database
        self._commits = commits

    async def add(
        self,
        *,
        robot: str,
        conversation: str,
        sender: str,
        score: int,
        comment: str,
        ticket: int | None,
        identity: str,
    ) -> None:
        """Keep a rating (the same `identity` twice: once)."""
        row = {
            "robot": robot,
            "conversation": conversation,
            "sender": sender,
            "score": score,
            "comment": comment[:500],
            "ticket": ticket,
            "identity": identity,
            "created_at": time.time(),
        }
        await self._commits.write(Insert(ratings, [row]))

    async def for_ticket(self, ticket: int) -> list[Rating]:
        query = sa.select(
            ratings.c.robot,
            ratings.c.sender,
            ratings.c.score,
            ratings.c.comment,
            ratings.c.ticket,
            ratings.c.created_at,
        ).where(ratings.c.ticket == ticket)
        rows = await self._database.run(
            "read ratings", lambda conn: conn.execute(query).all(), writes=False
        )
        return [Rating._make(row) for row in rows]
