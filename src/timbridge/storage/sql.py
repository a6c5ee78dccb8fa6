"""SQL engines for the parts that keep data (history, inbox, knowledge): one URL scheme, one set
of connection rules, one error mapping, on SQLite (embedded) or PostgreSQL (scale-out).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
import structlog
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from timbridge.errors import StorageError
from timbridge.redact import public_url

__all__ = [
    "ID_TYPE",
    "AsyncSQL",
    "Database",
    "InlineSQLite",
    "async_url",
    "create_engine",
    "delete_in",
    "fetch_all",
    "insert_new",
    "map_errors",
    "migration_lock",
    "open_database",
]

T = TypeVar("T")
_log = structlog.get_logger("timbridge.storage.sql")

#: An autoincrementing row id: 64 bits on PostgreSQL, SQLite's own rowid there.
ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: Key of the PostgreSQL advisory lock that serialises schema changes across processes.
_MIGRATION_LOCK = 0x74696D62  # "timb"


def async_url(url: str) -> str:
    """``sqlite:///f.db`` → ``sqlite+aiosqlite:///f.db``; ``postgresql://`` → ``+asyncpg``."""
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.removeprefix("sqlite://")
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    return url


@contextlib.contextmanager
def map_errors(what: str) -> Iterator[None]:
    """Database and OS errors inside become `StorageError`s that say what was being done."""
    try:
        yield
    except (SQLAlchemyError, sqlite3.Error) as exc:  # the latter from `insert_new`'s fast path
        raise StorageError(f"{what}: {exc.__class__.__name__}: {exc}") from exc
    except OSError as exc:
        raise StorageError(f"{what}: {exc}") from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def create_engine(url: str, *, pool_size: int = 20) -> AsyncEngine:
    """An async engine for `url` (``sqlite:///…`` or ``postgresql://…``); no I/O yet.

    SQLite gets one connection (it has one writer, and writers on several connections wait in
    SQLite's busy handler, which sleeps up to 100 ms at a time), WAL, and its parent folder.
    """
    full = async_url(url)
    with map_errors(f"cannot open store {public_url(url)!r}"):
        if full.startswith("sqlite+aiosqlite:///") and ":memory:" not in full:
            Path(full.removeprefix("sqlite+aiosqlite:///")).parent.mkdir(
                parents=True, exist_ok=True
            )
        if full.startswith("sqlite") and ":memory:" in full:  # one shared connection (tests)
            return create_async_engine(full)
        if full.startswith("sqlite"):
            engine = create_async_engine(full, pool_size=1, max_overflow=0, pool_timeout=60)
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
            return engine
        return create_async_engine(
            full, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size // 2
        )


def _inline_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL: a commit appends, no fsync
    cursor.execute("PRAGMA busy_timeout=0")  # never sleep on the loop: `run` retries instead
    cursor.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints (with fsyncs) run on a thread
    cursor.execute("PRAGMA journal_size_limit=67108864")  # a WAL started over shrinks to 64 MB
    cursor.close()


def _busy(exc: sa.exc.OperationalError | sqlite3.OperationalError) -> bool:
    """Whether SQLite refused because another connection holds the lock (retry later)."""
    error = exc.orig if isinstance(exc, sa.exc.OperationalError) else exc
    return getattr(error, "sqlite_errorcode", None) in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED


@functools.lru_cache(maxsize=64)
def _sqlite_insert(table: sa.Table, keys: frozenset[str]) -> tuple[str, tuple[str, ...]]:
    """``INSERT … ON CONFLICT DO NOTHING`` of the columns `keys` of `table` in SQLite's SQL,
    compiled once, and the order of its ``?`` parameters."""
    statement = sqlite.insert(table).on_conflict_do_nothing()
    compiled = statement.compile(dialect=sqlite.dialect(), column_keys=list(keys))
    return str(compiled), tuple(compiled.positiontup or ())


@functools.lru_cache(maxsize=64)
def _sqlite_select(statement: sa.Select[Any]) -> tuple[str, tuple[str, ...], dict[str, Any]]:
    """`statement` compiled once for SQLite: its SQL, the order of its ``?`` parameters, and
    the values of those it binds itself (a ``LIMIT``)."""
    compiled = statement.compile(dialect=sqlite.dialect())
    return str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params)


def _driver(conn: sa.Connection) -> sqlite3.Connection:
    """The `sqlite3` connection under `conn` (in `conn`'s transaction)."""
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


def fetch_all(
    conn: sa.Connection, statement: sa.Select[Any], params: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """The rows of `statement` (built once, with ``bindparam``s named as in `params`) as
    tuples, inside `conn`'s transaction. On SQLite it goes straight to the driver, as in
    `insert_new`: it is the history load of every conversation not in memory."""
    if conn.dialect.name != "sqlite":
        return [tuple(row) for row in conn.execute(statement, params)]
    sql, order, bound = _sqlite_select(statement)
    rows: list[tuple[Any, ...]] = (
        _driver(conn)
        .execute(sql, tuple(params[k] if k in params else bound[k] for k in order))
        .fetchall()
    )
    return rows


def insert_new(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` (dicts with the same keys) into `table`, skipping any that conflict with
    a row already there, inside `conn`'s transaction.

    On SQLite the compiled statement goes straight to the driver's ``executemany``: the
    store writes after every reply, and SQLAlchemy's per-statement work (building, cache key,
    parameter processing) was 14 % of ``serve``'s CPU at 500 messages/s (py-spy, against 10 %
    for SQLite itself). Elsewhere it is an ordinary Core statement.
    """
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(postgresql.insert(table).on_conflict_do_nothing(), rows)
        return
    sql, order = _sqlite_insert(table, frozenset(rows[0]))
    if any(len(row) != len(order) for row in rows):
        raise ValueError(f"rows for {table.name} differ in their columns")
    _driver(conn).executemany(sql, [tuple(row[k] for k in order) for row in rows])


_DELETE_CHUNK = 500  # values per ``IN (…)``: far under PostgreSQL's limit of bound parameters


def delete_in(conn: sa.Connection, table: sa.Table, column: str, values: list[Any]) -> None:
    """Delete the rows of `table` whose `column` is one of `values`, in `conn`'s transaction.

    On SQLite one compiled ``DELETE … WHERE column = ?`` goes to the driver's ``executemany``
    (as in `insert_new`: every finished job deletes its inbox row, and a statement with an
    ``IN`` list of varying length would be compiled anew by SQLAlchemy each time)."""
    if conn.dialect.name == "sqlite":
        sql = _sqlite_delete(table, column)
        _driver(conn).executemany(sql, [(value,) for value in values])
        return
    for start in range(0, len(values), _DELETE_CHUNK):
        chunk = values[start : start + _DELETE_CHUNK]
        conn.execute(table.delete().where(table.c[column].in_(chunk)))


@functools.lru_cache(maxsize=64)
def _sqlite_delete(table: sa.Table, column: str) -> str:
    statement = table.delete().where(table.c[column] == sa.bindparam("value"))
    return str(statement.compile(dialect=sqlite.dialect()))


class InlineSQLite:
    """An SQLite database used from the event loop itself: each transaction runs to its end
    synchronously, on one connection.

    Why not aiosqlite: an indexed read or a WAL commit of a few rows takes ~0.1 ms, but through
    aiosqlite each statement is a hand-over to its thread and back, each waiting for the busy
    loop. At 500 messages a second that made history loads wait 1.2 s (p99) and each group
    commit ~5 ms; running whole transactions on a thread instead fought the loop for the GIL.

    What keeps the loop free:

    * a commit in WAL mode with ``synchronous=NORMAL`` appends to the WAL without an fsync;
    * the busy timeout is 0: a transaction that finds the file locked by another connection
      (another process, the knowledge store) is rolled back and tried again after an asyncio
      sleep, for up to `busy_wait_s`, instead of sleeping in SQLite's busy handler;
    * checkpoints (copying the WAL into the database, with fsyncs) run on a thread, once a
      `checkpoint_every_s` when something was written (``wal_autocheckpoint`` is off).

    A checkpoint racing a steady stream of writes never quite catches up, and the WAL only
    starts over after one that does: it grew to 93 MB over 20 000 replies in the benchmark.
    So once the WAL holds more than `wal_frames` pages, the next checkpoint makes writes wait
    until it is done (reads go on); the passes before it copied most pages already, so the
    wait is short (5-20 ms, mostly its fsyncs), and the next write starts the WAL over.
    Each wait delays the replies being stored meanwhile, so `wal_frames` trades disk for
    fewer of them: at 500 replies/s (11 pages each) 4 096 pages (16 MB) made 14 waits in
    10 s, enough to set the overhead p99; 16 384 (64 MB, the size a WAL started over shrinks
    to) makes 4.
    """

    def __init__(
        self,
        url: str,
        *,
        busy_wait_s: float = 5.0,
        checkpoint_every_s: float = 0.25,
        wal_frames: int = 16384,
    ) -> None:
        plain = url.replace("sqlite+aiosqlite://", "sqlite://", 1)
        self._path: Path | None = None
        with map_errors(f"cannot open store {public_url(url)!r}"):
            if ":memory:" in plain:
                self._engine = sa.create_engine(
                    plain, poolclass=StaticPool, connect_args={"check_same_thread": False}
                )
            else:
                self._path = Path(plain.removeprefix("sqlite:///"))
                self._path.parent.mkdir(parents=True, exist_ok=True)
                self._engine = sa.create_engine(plain, pool_size=1, max_overflow=0)
                event.listen(self._engine, "connect", _inline_pragmas)
        self._connection: sa.Connection | None = None
        self._busy_wait_s = busy_wait_s
        self._checkpoint_every_s = checkpoint_every_s
        self._wal_frames = wal_frames
        self._changes = 0  # the connection's total_changes when the last checkpoint began
        self._last_checkpoint = time.monotonic()
        self._checkpointing: asyncio.Future[int] | None = None
        self._holding_writes = False  # the running checkpoint makes writes wait
        self._hold_next = False  # the WAL outgrew `wal_frames`: the next one will
        self._later: asyncio.TimerHandle | None = None
        self._closing = False

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    async def run(self, what: str, work: Callable[[sa.Connection], T], *, writes: bool = True) -> T:
        """`work` in one transaction (committed if it returns, rolled back if it raises);
        errors become `StorageError`s that say `what` was being done. Work that `writes` waits
        while a checkpoint that holds writes runs."""
        give_up = time.monotonic() + self._busy_wait_s
        while True:
            while writes and self._holding_writes and self._checkpointing is not None:
                await asyncio.wait([self._checkpointing])
            with map_errors(what):
                try:
                    if self._connection is None:
                        self._connection = self._engine.connect()
                    with self._connection.begin():
                        result = work(self._connection)
                    self._maybe_checkpoint()
                    return result
                except (sa.exc.OperationalError, sqlite3.OperationalError) as exc:
                    if not _busy(exc) or time.monotonic() >= give_up:
                        raise
            await asyncio.sleep(0.005)

    def _maybe_checkpoint(self) -> None:
        """Start a checkpoint when something was written since the last one began: one at a
        time, one per `checkpoint_every_s`, else one is set to start when it is due."""
        if self._closing or self._path is None or self._connection is None:
            return
        if self._checkpointing is not None:
            return  # `_checkpointed` looks again
        changes = self._connection.connection.dbapi_connection.total_changes  # type: ignore[union-attr]
        if changes == self._changes:
            return
        loop = asyncio.get_running_loop()
        wait = self._last_checkpoint + self._checkpoint_every_s - time.monotonic()
        if wait > 0:
            if self._later is None:
                self._later = loop.call_later(wait, self._due)
            return
        self._changes, self._last_checkpoint = changes, time.monotonic()
        self._holding_writes, self._hold_next = self._hold_next, False
        self._checkpointing = loop.run_in_executor(None, self._checkpoint, self._path)
        self._checkpointing.add_done_callback(self._checkpointed)

    def _due(self) -> None:
        self._later = None
        self._maybe_checkpoint()

    @staticmethod
    def _checkpoint(path: Path) -> int:
        """Copy what the WAL holds into the database, on a thread, waiting for nobody
        (``PASSIVE``); how many pages the WAL holds since it last started over."""
        with contextlib.closing(sqlite3.connect(path, timeout=0)) as connection:
            _, frames, _ = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(frames)

    def _checkpointed(self, done: asyncio.Future[int]) -> None:
        self._checkpointing = None
        self._holding_writes = False
        if done.cancelled():
            return
        if (exc := done.exception()) is not None:
            _log.warning("store.checkpoint_failed", error=str(exc))  # the next one tries again
        else:
            self._hold_next = done.result() > self._wal_frames  # not started over for a while
        self._maybe_checkpoint()  # for what was written meanwhile

    async def aclose(self) -> None:
        """Wait for a checkpoint in progress, then close (SQLite checkpoints what is left)."""
        self._closing = True
        if self._later is not None:
            self._later.cancel()
        if self._checkpointing is not None:
            await asyncio.wait([self._checkpointing])
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._engine.dispose()


class AsyncSQL:
    """A database reached through an async driver (asyncpg): each transaction on a pooled
    connection, its work run with ``run_sync``. The same interface as `InlineSQLite`."""

    def __init__(self, url: str) -> None:
        self._engine = create_engine(url)

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    async def run(self, what: str, work: Callable[[sa.Connection], T], *, writes: bool = True) -> T:
        """`work` in one transaction; errors become `StorageError`s that say `what` was being
        done. (`writes` matters to SQLite only.)"""
        del writes
        with map_errors(what):
            async with self._engine.begin() as conn:
                return await conn.run_sync(work)

    async def aclose(self) -> None:
        await self._engine.dispose()


Database = InlineSQLite | AsyncSQL


def open_database(url: str) -> Database:
    """SQLite inline on the event loop, anything else through its async driver; no I/O yet."""
    if url.startswith(("sqlite://", "sqlite+aiosqlite://")):
        return InlineSQLite(url)
    return AsyncSQL(url)


def migration_lock(conn: sa.Connection) -> None:
    """Hold, until `conn`'s transaction ends, the lock that lets one process at a time create
    or change tables: processes starting together on PostgreSQL would otherwise race inside
    ``CREATE TABLE`` (a duplicate-key error on ``pg_type``). SQLite's writer lock already does.
    (From an async connection: ``await conn.run_sync(migration_lock)``.)"""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
