"""The store: one database (SQLite embedded, PostgreSQL at scale), its schema, one group commit,
and what is kept in it: the history, the inbox, the tickets, the knowledge gaps,
the ratings, the reminders and long-term memory's facts."""

from __future__ import annotations

import sqlalchemy as sa

from timbridge.errors import StorageError
from timbridge.storage.facts import Facts
from timbridge.storage.gaps import Gaps
from timbridge.storage.group_commit import GroupCommit
from timbridge.storage.history import History
from timbridge.storage.inbox import Inbox
from timbridge.storage.ratings import Ratings
from timbridge.storage.reminders import Reminders
from timbridge.storage.schema import migrate
from timbridge.storage.sql import Database, open_database
from timbridge.storage.tickets import Tickets

__all__ = ["Store"]


class Store:
    """Open with `Store.open(url)`; close with `aclose` (which commits what is queued)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.commits = GroupCommit(database)
        self.history = History(database, self.commits)
        self.inbox = Inbox(database, self.commits)
        self.tickets = Tickets(database)
        self.gaps = Gaps(database, self.commits)
        self.ratings = Ratings(database, self.commits)
        self.reminders = Reminders(database)
        self.facts = Facts(database)

    @classmethod
    async def open(cls, url: str) -> Store:
        """Connect and bring the schema up to date."""
        store = cls(open_database(url))
        try:
            await store.database.run("migrate", migrate)
        except StorageError:
            await store.database.aclose()  # leave no connection behind
            raise
        return store

    async def ping(self) -> None:
        """Raise `StorageError` if the database does not answer."""
        await self.database.run("ping", lambda conn: conn.execute(sa.select(1)), writes=False)

    async def aclose(self) -> None:
        """Commit what is queued, then close every connection."""
        await self.commits.aclose()
        await self.database.aclose()
