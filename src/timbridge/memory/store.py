"""The SQL store: conversation turns and sent reply parts, on SQLite or PostgreSQL.

Speed: concurrent writes are grouped into one transaction by a writer task ("group commit"; each
caller still awaits its own commit). With SQLite, which serves one process, transactions run
inline on the event loop (`timbridge.sql.InlineSQLite`: a WAL commit of a few rows costs less
than handing it to a thread), and the newest turns of recently active conversations are kept in
memory, so loading history costs no query.

SQLAlchemy 2 Core gives one code path for both: each operation is a function of a connection,
run inline on SQLite and through asyncpg (``run_sync``) on PostgreSQL.
The newest turns of a conversation come from the ``(conversation, id)`` index, so loading them
costs the same at 10 or 100 000 stored turns. Writes are idempotent on the inbound message's
identity: a redelivered job stores nothing twice, and the parts of a reply already sent are
known, so a retried job resumes instead of repeating.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeVar, cast

import sqlalchemy as sa

from timbridge.errors import StorageError
from timbridge.sql import Database, fetch_all, insert_new, migration_lock, open_database

__all__ = ["SCHEMA_VERSION", "Store", "Turn", "UsageRecord", "utc_day"]

SCHEMA_VERSION = 2  # 2: the usage ledger

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

usage = sa.Table(
    "usage",
    _metadata,
    sa.Column("id", _id_type, primary_key=True, autoincrement=True),
    sa.Column("robot", sa.String(64), nullable=False),
    sa.Column("sender", sa.String(64), nullable=False),
    sa.Column("group_id", sa.String(100), nullable=True),
    sa.Column("identity", sa.String(300), nullable=False),
    sa.Column("purpose", sa.String(16), nullable=False),  # answer | summary
    sa.Column("profile", sa.String(100), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("input_tokens", sa.Integer, nullable=False),
    sa.Column("output_tokens", sa.Integer, nullable=False),
    sa.Column("day", sa.String(10), nullable=False),  # UTC, YYYY-MM-DD
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("identity", "robot", "purpose", name="uq_usage_identity"),
    sa.Index("ix_usage_robot_sender_day", "robot", "sender", "day"),
    sa.Index("ix_usage_robot_group_day", "robot", "group_id", "day"),
)

schema = sa.Table(
    "timbridge_schema",
    _metadata,
    sa.Column("version", sa.Integer, nullable=False),
)

Role = Literal["user", "assistant", "summary"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One model call, for budgets and billing: who asked which robot, and what it cost."""

    robot: str
    sender: str
    group_id: str | None
    identity: str
    purpose: Literal["answer", "summary"]
    profile: str
    model: str
    input_tokens: int
    output_tokens: int


def utc_day(at: float | None = None) -> str:
    """The UTC calendar day of `at` (now by default): budgets reset at 00:00 UTC."""
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() if at is None else at))


class Turn(NamedTuple):
    """One stored turn."""

    role: Role
    content: str
    tokens: int
    identity: str = ""


def _usage_row(record: UsageRecord, now: float) -> dict[str, Any]:
    return {
        "robot": record.robot,
        "sender": record.sender,
        "group_id": record.group_id,
        "identity": record.identity,
        "purpose": record.purpose,
        "profile": record.profile,
        "model": record.model,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "day": utc_day(now),
        "created_at": now,
    }


_WINDOW = 64  # newest turns loaded per job (and kept in memory per conversation, SQLite)
#: A cached window: the turns as plain tuples ``(role, content, tokens, identity)``, oldest
#: first, in a tuple that is replaced, never changed. The garbage collector stops tracking a
#: plain tuple of strings and ints once a collection has seen it (not a `Turn`: CPython
#: untracks exact tuples only), and then the tuple holding them, so that a full cache (20 000
#: windows, 1.3 million turns) adds nothing to any collection's pause.
Window = tuple[tuple[Role, str, int, str], ...]
_CACHED_CONVERSATIONS = 20_000


#: The newest turns of one conversation, newest first (from the ``(conversation, id)`` index).
_history = (
    sa.select(turns.c.role, turns.c.content, turns.c.tokens, turns.c.identity)
    .where(turns.c.conversation == sa.bindparam("conversation"))
    .order_by(turns.c.id.desc())
    .limit(_WINDOW)
)


def _migrate(conn: sa.Connection) -> None:
    """Create or upgrade the schema to `SCHEMA_VERSION`; refuse a newer one."""
    migration_lock(conn)
    _metadata.create_all(conn)
    found = conn.execute(sa.select(schema.c.version)).scalar()
    if found is None:
        conn.execute(schema.insert().values(version=SCHEMA_VERSION))
    elif found < SCHEMA_VERSION:  # create_all added what is new; nothing changes shape
        conn.execute(schema.update().values(version=SCHEMA_VERSION))
    elif found > SCHEMA_VERSION:
        raise StorageError(
            f"the store's schema is version {found}; this timbridge knows up to "
            f"{SCHEMA_VERSION}: upgrade timbridge"
        )


class Store:
    """History and reply bookkeeping. Build with `Store.open`; close with `aclose`.

    Every operation is one synchronous function of a connection, run in one transaction by
    `_run`: on SQLite inline on the event loop, on PostgreSQL through asyncpg (`timbridge.sql`).
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        dialect = database.dialect
        self._cache: OrderedDict[str, Window] | None = (
            OrderedDict() if dialect == "sqlite" else None
        )
        self._pending: list[
            tuple[tuple[tuple[sa.Table, list[dict[str, Any]]], ...], asyncio.Future[None]]
        ] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._committing = False

    @classmethod
    async def open(cls, url: str) -> Store:
        """Connect and bring the schema up to date."""
        store = cls(open_database(url))
        try:
            await store.migrate()
        except StorageError:
            await store._database.aclose()  # leave no connection behind
            raise
        return store

    async def aclose(self) -> None:
        """Commit what is queued, then close every connection."""
        if self._writer is not None:
            while self._pending or self._committing:  # queued, or in a transaction now
                self._wake.set()
                await asyncio.sleep(0.001)
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await self._database.aclose()

    async def _run(
        self, what: str, work: Callable[[sa.Connection], T], *, writes: bool = True
    ) -> T:
        """`work` in one transaction; errors become `StorageError`s naming `what`."""
        return await self._database.run(what, work, writes=writes)

    async def migrate(self) -> None:
        """Create or upgrade the schema to `SCHEMA_VERSION`; refuse a newer one."""
        await self._run("migrate", _migrate)

    async def ping(self) -> None:
        await self._run("ping", lambda conn: conn.execute(sa.select(1)), writes=False)

    # --- group commit ---------------------------------------------------------------------

    async def _write(self, *writes: tuple[sa.Table, list[dict[str, Any]]]) -> None:
        """Insert the rows of each ``(table, rows)`` (skipping ones already there), all in the
        next group transaction."""
        loop = asyncio.get_running_loop()
        if self._writer is None:
            self._writer = loop.create_task(self._write_loop())
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((writes, done))
        self._wake.set()
        await done

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            outcome: Exception | None = None
            self._committing = True
            try:
                await self._commit([writes for writes, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every waiter gets it; the writer goes on
                outcome = exc
            finally:
                self._committing = False
            for _, done in batch:
                if done.done():
                    continue
                if outcome is None:
                    done.set_result(None)
                else:
                    done.set_exception(outcome)

    async def _commit(self, batch: list[tuple[tuple[sa.Table, list[dict[str, Any]]], ...]]) -> None:
        """One transaction inserting every row of `batch`, one statement per table."""
        by_table: dict[str, tuple[sa.Table, list[dict[str, Any]]]] = {}
        for writes in batch:
            for table, rows in writes:
                by_table.setdefault(table.name, (table, []))[1].extend(rows)

        def insert(conn: sa.Connection) -> None:
            for table, rows in by_table.values():
                insert_new(conn, table, rows)

        await self._run("store", insert)

    # --- turns ----------------------------------------------------------------------------

    async def recent_turns(self, conversation: str, limit: int = _WINDOW) -> list[Turn]:
        """The newest `limit` turns (at most the window of 64), oldest first."""
        window = await self._recent(conversation)
        return [Turn._make(turn) for turn in window[-limit:]] if limit > 0 else []

    async def _recent(self, conversation: str) -> Window:
        """The conversation's window of newest turns: the cached one (SQLite), else loaded."""
        window = self._window(conversation)
        if window is not None:
            return window
        rows = await self._run(
            "load history",
            lambda conn: fetch_all(conn, _history, {"conversation": conversation}),
            writes=False,
        )
        loaded = cast(Window, tuple(reversed(rows)))  # rows are (role, content, tokens, identity)
        if self._cache is None:
            return loaded
        window = self._cache.get(conversation)
        if window is None:
            window = self._cache[conversation] = loaded
            while len(self._cache) > _CACHED_CONVERSATIONS:
                self._cache.popitem(last=False)
        # else another caller loaded it while this one waited, and turns written since are
        # in it already: it is the newer of the two
        return window

    def _window(self, conversation: str) -> Window | None:
        """The cached window of `conversation` (marked as recently used), if it is cached."""
        if self._cache is None:
            return None
        window = self._cache.get(conversation)
        if window is not None:
            self._cache.move_to_end(conversation)
        return window

    def _remember(self, conversation: str, items: Sequence[Turn]) -> None:
        """Add written turns to the conversation's cached window. A window is only ever made
        from a whole load: one evicted meanwhile is loaded again when next needed."""
        assert self._cache is not None
        window = self._window(conversation)
        if window is not None:
            added = tuple((t.role, t.content, t.tokens, t.identity) for t in items)
            self._cache[conversation] = (*window, *added)[-_WINDOW:]

    async def add_turns(
        self,
        conversation: str,
        identity: str,
        items: Sequence[Turn],
        *,
        usage_record: UsageRecord | None = None,
    ) -> None:
        """Store turns of one inbound message, and in the same transaction what the answer cost
        (`usage_record`); a repeat of the same identity is ignored."""
        known: set[tuple[str, str]] = set()
        if self._cache is not None:
            known = {(identity, role) for role, _, _, identity in await self._recent(conversation)}
        fresh = [
            Turn(t.role, t.content, t.tokens, identity)
            for t in items
            if (identity, t.role) not in known
        ]
        now = time.time()
        writes = [(usage, [_usage_row(usage_record, now)])] if usage_record is not None else []
        if fresh:
            rows = [
                {
                    "conversation": conversation,
                    "identity": identity,
                    "role": t.role,
                    "content": t.content,
                    "tokens": t.tokens,
                    "created_at": now,
                }
                for t in fresh
            ]
            writes.append((turns, rows))
        if not writes:
            return
        await self._write(*writes)
        if fresh and self._cache is not None:
            self._remember(conversation, fresh)

    async def reply_for(self, conversation: str, identity: str) -> str | None:
        """The stored reply to inbound message `identity`, if a run of its job got that far."""
        for role, content, _, said_to in await self._recent(conversation):
            if said_to == identity and role == "assistant":
                return content
        if self._cache is not None:
            return None  # the window is the whole recent history of this process
        query = sa.select(turns.c.content).where(
            turns.c.conversation == conversation,
            turns.c.identity == identity,
            turns.c.role == "assistant",
        )
        found: str | None = await self._run(
            "load reply", lambda conn: conn.execute(query).scalar(), writes=False
        )
        return found

    async def reset(self, conversation: str) -> int:
        """Forget a conversation's history; return how many turns were removed."""
        removed = await self._run(
            "reset",
            lambda conn: (
                conn.execute(turns.delete().where(turns.c.conversation == conversation)).rowcount
            ),
        )
        if self._cache is not None:
            self._cache[conversation] = ()
        return int(removed or 0)

    # --- usage ledger ---------------------------------------------------------------------

    async def record_usage(self, record: UsageRecord) -> None:
        """Add a model call to the ledger (once per message, robot and purpose)."""
        await self._write((usage, [_usage_row(record, time.time())]))

    async def tokens_on(
        self, day: str, robot: str, *, sender: str | None = None, group_id: str | None = None
    ) -> int:
        """Tokens (in + out) `robot` spent on `day` for one sender, or in one group."""
        total = sa.func.coalesce(sa.func.sum(usage.c.input_tokens + usage.c.output_tokens), 0)
        query = sa.select(total).where(usage.c.robot == robot, usage.c.day == day)
        if sender is not None:
            query = query.where(usage.c.sender == sender)
        if group_id is not None:
            query = query.where(usage.c.group_id == group_id)
        return int(
            await self._run("read usage", lambda conn: conn.execute(query).scalar(), writes=False)
            or 0
        )

    # --- reply parts ----------------------------------------------------------------------

    async def sent_parts(self, identity: str) -> dict[int, str]:
        """Reply parts already sent for an inbound message: part number → Tencent handle."""
        query = sa.select(reply_parts.c.part, reply_parts.c.handle).where(
            reply_parts.c.identity == identity
        )
        rows = await self._run(
            "load reply parts", lambda conn: conn.execute(query).all(), writes=False
        )
        return {row.part: row.handle for row in rows}

    async def record_parts(self, identity: str, handles: dict[int, str]) -> None:
        """Remember which parts of the reply to `identity` went out, with their handles."""
        now = time.time()
        rows = [
            {"identity": identity, "part": part, "handle": handle, "created_at": now}
            for part, handle in handles.items()
        ]
        if rows:
            await self._write((reply_parts, rows))
