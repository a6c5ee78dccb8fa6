"""The SQL store: conversation turns and sent reply parts, on SQLite or PostgreSQL.

SQLAlchemy 2 async Core gives one code path for both (aiosqlite embedded, asyncpg at scale).
The newest turns of a conversation come from the ``(conversation, id)`` index, so loading them
costs the same at 10 or 100 000 stored turns. Writes are idempotent on the inbound message's
identity: a redelivered job stores nothing twice, and the parts of a reply already sent are
known, so a retried job resumes instead of repeating.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from timbridge.errors import StorageError

__all__ = ["SCHEMA_VERSION", "Store", "Turn", "async_url"]

SCHEMA_VERSION = 1

_metadata = sa.MetaData()
_id_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

turns = sa.Table(
    "turns",
    _metadata,
    sa.Column("id", _id_type, primary_key=True, autoincrement=True),
    sa.Column("conversation", sa.String(300), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("tokens", sa.Integer, nullable=False),
    sa.Column("identity", sa.String(300), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("conversation", "identity", "role", name="uq_turns_identity"),
    sa.Index("ix_turns_conversation_id", "conversation", "id"),
)

reply_parts = sa.Table(
    "reply_parts",
    _metadata,
    sa.Column("identity", sa.String(300), primary_key=True),
    sa.Column("part", sa.Integer, primary_key=True),
    sa.Column("handle", sa.String(300), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

schema = sa.Table(
    "timbridge_schema",
    _metadata,
    sa.Column("version", sa.Integer, nullable=False),
)

Role = Literal["user", "assistant", "summary"]


@dataclass(frozen=True, slots=True)
class Turn:
    role: Role
    content: str
    tokens: int


def async_url(url: str) -> str:
    """``sqlite:///f.db`` → ``sqlite+aiosqlite:///f.db``; ``postgresql://`` → ``+asyncpg``."""
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.removeprefix("sqlite://")
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    return url


@contextlib.contextmanager
def _map_errors(what: str) -> Any:
    try:
        yield
    except SQLAlchemyError as exc:
        raise StorageError(f"{what}: {exc.__class__.__name__}: {exc}") from exc
    except OSError as exc:
        raise StorageError(f"{what}: {exc}") from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class Store:
    """History and reply bookkeeping. Build with `Store.open`; close with `aclose`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    @classmethod
    async def open(cls, url: str) -> Store:
        """Connect and bring the schema up to date."""
        full = async_url(url)
        with _map_errors(f"cannot open store {url.rsplit('@', maxsplit=1)[-1]!r}"):
            if full.startswith("sqlite+aiosqlite:///") and ":memory:" not in full:
                Path(full.removeprefix("sqlite+aiosqlite:///")).parent.mkdir(
                    parents=True, exist_ok=True
                )
            engine = create_async_engine(full, pool_pre_ping=full.startswith("postgresql"))
            if engine.dialect.name == "sqlite":
                event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
            store = cls(engine)
            await store.migrate()
        return store

    async def aclose(self) -> None:
        await self._engine.dispose()

    @contextlib.asynccontextmanager
    async def _begin(self, what: str) -> AsyncIterator[AsyncConnection]:
        with _map_errors(what):
            async with self._engine.begin() as conn:
                yield conn

    async def migrate(self) -> None:
        """Create or upgrade the schema to `SCHEMA_VERSION`; refuse a newer one."""
        async with self._begin("migrate") as conn:
            await conn.run_sync(_metadata.create_all)
            found = (await conn.execute(sa.select(schema.c.version))).scalar()
            if found is None:
                await conn.execute(schema.insert().values(version=SCHEMA_VERSION))
            elif found > SCHEMA_VERSION:
                raise StorageError(
                    f"the store's schema is version {found}; this timbridge knows up to "
                    f"{SCHEMA_VERSION}: upgrade timbridge"
                )

    async def ping(self) -> None:
        async with self._begin("ping") as conn:
            await conn.execute(sa.select(1))

    async def recent_turns(self, conversation: str, limit: int = 64) -> list[Turn]:
        """The newest `limit` turns, oldest first."""
        query = (
            sa.select(turns.c.role, turns.c.content, turns.c.tokens)
            .where(turns.c.conversation == conversation)
            .order_by(turns.c.id.desc())
            .limit(limit)
        )
        async with self._begin("load history") as conn:
            rows = (await conn.execute(query)).all()
        return [Turn(row.role, row.content, row.tokens) for row in reversed(rows)]

    async def add_turns(self, conversation: str, identity: str, items: Sequence[Turn]) -> None:
        """Store turns of one inbound message; a repeat of the same identity is ignored."""
        if not items:
            return
        now = time.time()
        rows = [
            {
                "conversation": conversation,
                "identity": identity,
                "role": t.role,
                "content": t.content,
                "tokens": t.tokens,
                "created_at": now,
            }
            for t in items
        ]
        statement = self._insert(turns).on_conflict_do_nothing()
        async with self._begin("store turns") as conn:
            await conn.execute(statement, rows)

    async def reply_for(self, conversation: str, identity: str) -> str | None:
        """The stored reply to inbound message `identity`, if a run of its job got that far."""
        query = sa.select(turns.c.content).where(
            turns.c.conversation == conversation,
            turns.c.identity == identity,
            turns.c.role == "assistant",
        )
        async with self._begin("load reply") as conn:
            return (await conn.execute(query)).scalar()

    async def sent_parts(self, identity: str) -> dict[int, str]:
        """Reply parts already sent for an inbound message: part number → Tencent handle."""
        query = sa.select(reply_parts.c.part, reply_parts.c.handle).where(
            reply_parts.c.identity == identity
        )
        async with self._begin("load reply parts") as conn:
            return {row.part: row.handle for row in (await conn.execute(query)).all()}

    async def record_part(self, identity: str, part: int, handle: str) -> None:
        statement = self._insert(reply_parts).on_conflict_do_nothing()
        async with self._begin("record reply part") as conn:
            await conn.execute(
                statement,
                {"identity": identity, "part": part, "handle": handle, "created_at": time.time()},
            )

    async def reset(self, conversation: str) -> int:
        """Forget a conversation's history; return how many turns were removed."""
        async with self._begin("reset") as conn:
            result = await conn.execute(turns.delete().where(turns.c.conversation == conversation))
        return int(result.rowcount or 0)
