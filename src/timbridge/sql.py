"""SQL engines for the parts that keep data (memory, knowledge): one URL scheme, one set of
connection rules, one error mapping, on SQLite (embedded) or PostgreSQL (scale-out).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from timbridge.errors import StorageError

__all__ = [
    "async_url",
    "create_engine",
    "map_errors",
    "migration_lock",
    "safe_url",
    "sqlite_reader",
]

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


def safe_url(url: str) -> str:
    """The URL without credentials, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.rsplit("@", maxsplit=1)[-1]


@contextlib.contextmanager
def map_errors(what: str) -> Iterator[None]:
    """Database and OS errors inside become `StorageError`s that say what was being done."""
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


def create_engine(url: str, *, pool_size: int = 20) -> AsyncEngine:
    """An async engine for `url` (``sqlite:///…`` or ``postgresql://…``); no I/O yet.

    SQLite gets one connection (it has one writer, and writers on several connections wait in
    SQLite's busy handler, which sleeps up to 100 ms at a time), WAL, and its parent folder.
    """
    full = async_url(url)
    with map_errors(f"cannot open store {safe_url(url)!r}"):
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


def _reader_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.execute("PRAGMA busy_timeout=100")  # readers of a WAL file do not wait for writers
    cursor.close()


def sqlite_reader(url: str) -> sa.Engine | None:
    """For an SQLite file, a synchronous read-only engine to query from the event loop itself;
    None for anything else.

    An indexed read of a few dozen rows from a local file takes ~0.1 ms. Through aiosqlite the
    same read is several hand-overs to its thread and back, each waiting for the busy loop:
    new conversations arriving at 500 a second waited 1.2 s (p99) for their history that way.
    """
    plain = url.replace("sqlite+aiosqlite://", "sqlite://", 1)
    if not plain.startswith("sqlite:///") or ":memory:" in plain:
        return None
    with map_errors(f"cannot open store {safe_url(url)!r}"):
        engine = sa.create_engine(plain, pool_size=1, max_overflow=0)
    event.listen(engine, "connect", _reader_pragmas)
    return engine


async def migration_lock(conn: AsyncConnection) -> None:
    """Hold, until `conn`'s transaction ends, the lock that lets one process at a time create
    or change tables: processes starting together on PostgreSQL would otherwise race inside
    ``CREATE TABLE`` (a duplicate-key error on ``pg_type``). SQLite's writer lock already does."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
