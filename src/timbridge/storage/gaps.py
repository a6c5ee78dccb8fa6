"""Knowledge gaps: the questions a robot's knowledge base had no answer for, kept so that an
operator learns which documents to write next (`timbridge kb gaps`). Written without waiting
(through the group commit), at most `KEPT` per base: older ones are pruned now and then."""

from __future__ import annotations

import asyncio
import time
from typing import Literal, NamedTuple

import sqlalchemy as sa
import structlog

from timbridge.errors import StorageError
from timbridge.storage.group_commit import GroupCommit, Insert
from timbridge.storage.schema import gaps
from timbridge.storage.sql import Database

__all__ = ["KEPT", "Gap", "Gaps"]

_log = structlog.get_logger("timbridge.storage")

#: The most questions kept per knowledge base.
KEPT = 10_000
_PRUNE_EVERY = 200
_QUESTION_CHARS = 1000


class Gap(NamedTuple):
    kb: str
    robot: str
    question: str
    why: str
    asked_at: float


class Gaps:
    """The gaps on `database`."""

    def __init__(self, database: Database, commits: GroupCommit) -> None:
        self._database = database
        self._commits = commits
        self._since_prune = 0
        self._pruning: asyncio.Task[None] | None = None

    def record(
        self, kb: str, robot: str, question: str, why: Literal["no_passage", "model_unsure"]
    ) -> None:
        """Keep a question `kb` could not answer (in the next group transaction)."""
        row = {
            "kb": kb,
            "robot": robot,
            "question": question[:_QUESTION_CHARS],
            "why": why,
            "asked_at": time.time(),
        }
        self._commits.write_soon(Insert(gaps, [row]))
        self._since_prune += 1
        if self._since_prune >= _PRUNE_EVERY and self._pruning is None:
            self._since_prune = 0
            self._pruning = asyncio.get_running_loop().create_task(self._prune(kb))

    async def _prune(self, kb: str) -> None:
        """Forget all but the newest `KEPT` questions of `kb`."""

        def work(conn: sa.Connection) -> None:
            cut = conn.execute(
                sa.select(gaps.c.id)
                .where(gaps.c.kb == kb)
                .order_by(gaps.c.id.desc())
                .offset(KEPT)
                .limit(1)
            ).scalar()
            if cut is not None:
                conn.execute(gaps.delete().where((gaps.c.kb == kb) & (gaps.c.id <= cut)))

        try:
            await self._database.run("prune gaps", work)
        except StorageError as exc:  # the next prune tries again
            _log.warning("gaps.not_pruned", error=str(exc))
        finally:
            self._pruning = None

    async def listing(self, kb: str, *, since: float = 0.0) -> list[Gap]:
        """The questions kept for `kb` asked after `since`, oldest first."""
        query = (
            sa.select(gaps.c.kb, gaps.c.robot, gaps.c.question, gaps.c.why, gaps.c.asked_at)
            .where((gaps.c.kb == kb) & (gaps.c.asked_at >= since))
            .order_by(gaps.c.id)
        )
        rows = await self._database.run(
            "read gaps", lambda conn: conn.execute(query).all(), writes=False
        )
        return [Gap._make(row) for row in rows]
