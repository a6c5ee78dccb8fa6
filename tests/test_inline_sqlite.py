"""SQLite used inline on the event loop (`storage.sql.InlineSQLite`): a file locked by another
connection is waited for with asyncio sleeps, never on the loop, and refused with a
`StorageError` after the wait; checkpoints copy the WAL into the database from a thread."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from timbridge.errors import StorageError
from timbridge.storage import Store, Turn
from timbridge.storage.sql import InlineSQLite, insert_new

_notes = sa.Table("notes", sa.MetaData(), sa.Column("text", sa.Text))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the file's write lock until the block ends."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield other
    finally:
        other.execute("COMMIT")
        other.close()


async def test_a_locked_file_is_waited_for_while_the_loop_runs_on(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    store = await Store.open(f"sqlite:///{path}")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    ticker = asyncio.create_task(tick())
    with _locked(path):
        writing = asyncio.create_task(store.history.add_turns("c", "m1", [Turn("user", "hi", 1)]))
        await asyncio.sleep(0.3)
        assert not writing.done()  # waiting for the lock ...
        assert ticks > 30  # ... while everything else on the loop went on
    await asyncio.wait_for(writing, 2)
    ticker.cancel()
    assert [t.content for t in await store.history.recent_turns("c")] == ["hi"]
    await store.aclose()
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT content FROM turns").fetchall() == [("hi",)]


async def test_a_lock_held_past_the_wait_is_a_storage_error_and_nothing_is_stuck(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite"
    runner = InlineSQLite(f"sqlite:///{path}", busy_wait_s=0.2)
    await runner.run("create", _notes.create)
    with _locked(path), pytest.raises(StorageError, match=r"^store note: .*database is locked"):
        await runner.run("store note", lambda conn: conn.execute(_notes.insert(), {"text": "a"}))
    await runner.run("store note", lambda conn: conn.execute(_notes.insert(), {"text": "b"}))
    rows = await runner.run("read", lambda conn: conn.execute(sa.select(_notes.c.text)).all())
    assert [r.text for r in rows] == ["b"]
    await runner.aclose()


def _checkpointed_rows(path: Path, tmp_path: Path) -> list[tuple[str]] | None:
    """The notes in the database file alone (its WAL left behind): what checkpoints copied."""
    alone = tmp_path / "alone.sqlite"
    shutil.copy(path, alone)
    with contextlib.closing(sqlite3.connect(alone)) as db:
        try:
            return db.execute("SELECT text FROM notes").fetchall()
        except sqlite3.OperationalError:  # the table itself is not in the file yet
            return None


@pytest.mark.parametrize("every_s", [0.0, 3600.0])
async def test_checkpoints_run_in_the_background_at_most_once_per_interval(
    tmp_path: Path, every_s: float
) -> None:
    path = tmp_path / "db.sqlite"
    runner = InlineSQLite(f"sqlite:///{path}", checkpoint_every_s=every_s)
    await runner.run("create", _notes.create)
    await runner.run("store note", lambda conn: conn.execute(_notes.insert(), {"text": "a"}))
    await runner.run("store note", lambda conn: conn.execute(_notes.insert(), {"text": "b"}))
    found = None
    for _ in range(100):
        found = _checkpointed_rows(path, tmp_path)
        if found == [("a",), ("b",)]:
            break
        await asyncio.sleep(0.02)
    if every_s:  # none due yet: the file alone lacks what only the WAL holds
        assert found in (None, [])
    else:
        assert found == [("a",), ("b",)]
    await runner.aclose()
    assert _checkpointed_rows(path, tmp_path) == [("a",), ("b",)]  # closing checkpoints


async def test_under_steady_writes_the_wal_still_starts_over(tmp_path: Path) -> None:
    """Checkpoints racing a steady stream of writes never catch up; once the WAL holds more
    than `wal_frames` pages, one makes writes wait, and the WAL starts over after it."""
    path = tmp_path / "db.sqlite"
    runner = InlineSQLite(f"sqlite:///{path}", checkpoint_every_s=0.0, wal_frames=50)
    await runner.run("create", _notes.create)
    for _ in range(2000):
        await runner.run("store note", lambda conn: conn.execute(_notes.insert(), {"text": "x"}))
        await asyncio.sleep(0)
    # each write appends a page; the WAL file is as long as the most it ever held at once
    pages = (path.parent / f"{path.name}-wal").stat().st_size // 4096
    assert pages < 1000, f"the WAL grew to {pages} pages: it never started over"
    rows = await runner.run(
        "count", lambda conn: conn.execute(sa.select(sa.func.count()).select_from(_notes)).scalar()
    )
    assert rows == 2000
    await runner.aclose()


_rows = sa.Table(
    "rows",
    sa.MetaData(),
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
)


async def test_insert_new_skips_conflicts_and_maps_driver_errors(tmp_path: Path) -> None:
    """`insert_new` hands SQLite the compiled statement directly: keys in any order, rows that
    are there already skipped, and the driver's own errors still `StorageError`s."""
    database = InlineSQLite(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await database.run("create", _rows.create)
    await database.run(
        "insert",
        lambda conn: insert_new(
            conn, _rows, [{"key": "a", "text": "first", "n": 1}, {"n": 2, "text": "b", "key": "b"}]
        ),
    )
    await database.run(
        "insert", lambda conn: insert_new(conn, _rows, [{"key": "a", "text": "again", "n": 9}])
    )
    stored = await database.run(
        "read", lambda conn: conn.execute(sa.select(_rows).order_by(_rows.c.key)).all()
    )
    assert [tuple(row) for row in stored] == [("a", "first", 1), ("b", "b", 2)]

    with pytest.raises(StorageError, match=r"^add rows: IntegrityError: NOT NULL"):
        await database.run(
            "add rows", lambda conn: insert_new(conn, _rows, [{"key": "c", "text": None, "n": 3}])
        )
    with pytest.raises(ValueError, match="differ in their columns"):
        await database.run(
            "add rows",
            lambda conn: insert_new(
                conn, _rows, [{"key": "d", "text": "x", "n": 4}, {"key": "e", "text": "y"}]
            ),
        )
    count = await database.run(
        "count", lambda conn: conn.execute(sa.select(sa.func.count()).select_from(_rows)).scalar()
    )
    assert count == 2  # each failed transaction left nothing behind
    await database.aclose()


async def test_a_failed_group_commit_fails_its_writers_and_the_next_one_commits(
    tmp_path: Path,
) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        with _locked(tmp_path / "db.sqlite"):
            store.database._busy_wait_s = 0.05  # type: ignore[union-attr]
            with pytest.raises(StorageError, match="database is locked"):
                await store.history.add_turns("c", "m1", [Turn("user", "lost", 1)])
        await store.history.add_turns("c", "m2", [Turn("user", "kept", 1)])
        assert [t.content for t in await store.history.recent_turns("c")] == ["kept"]
    finally:
        await store.aclose()
