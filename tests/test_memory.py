"""The SQL store on SQLite and on a real PostgreSQL server, through the same code: idempotent
writes, the history window, reset, resume records, the index behind history loads, and the
schema version and long-term memory's recalled set."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sqlite3
from pathlib import Path

import pytest

from timbridge.errors import StorageError
from timbridge.storage import Store, Turn
from timbridge.storage.facts import JOINED, Owner
from timbridge.storage.sql import async_url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sub' / 'db.sqlite'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def store(store_url: str) -> Store:
    opened = await Store.open(store_url)
    yield opened  # type: ignore[misc]
    await opened.aclose()


async def test_turns_round_trip_and_idempotency(store: Store) -> None:
    await store.history.add_turns("c", "m1", [Turn("user", "hi", 1), Turn("assistant", "hello", 2)])
    await store.history.add_turns("c", "m1", [Turn("user", "hi", 1), Turn("assistant", "other", 2)])
    await store.history.add_turns("c", "m2", [Turn("user", "again", 1)])
    history = await store.history.recent_turns("c")
    assert [(t.role, t.content, t.identity) for t in history] == [
        ("user", "hi", "m1"),
        ("assistant", "hello", "m1"),
        ("user", "again", "m2"),
    ]
    assert await store.history.reply_for("c", "m1") == "hello"
    assert await store.history.reply_for("c", "m2") is None
    assert await store.history.recent_turns("other") == []


async def test_history_survives_reopen_and_window_is_newest(store_url: str) -> None:
    url = store_url
    first = await Store.open(url)
    for n in range(100):
        await first.history.add_turns("c", f"m{n}", [Turn("user", f"u{n}", 1)])
    await first.aclose()
    again = await Store.open(url)
    history = await again.history.recent_turns("c")
    assert [t.content for t in history] == [f"u{n}" for n in range(36, 100)]
    newest = await again.history.recent_turns("c", limit=3)
    assert [t.content for t in newest] == ["u97", "u98", "u99"]
    await again.aclose()


async def test_reset_removes_only_that_conversation(store: Store) -> None:
    await store.history.add_turns("a", "1", [Turn("user", "x", 1)])
    await store.history.add_turns("b", "1", [Turn("user", "y", 1)])
    assert await store.history.reset("a") == 1
    assert await store.history.recent_turns("a") == []
    assert [t.content for t in await store.history.recent_turns("b")] == ["y"]


async def test_reply_parts_record(store: Store) -> None:
    await store.history.record_parts("m1|@RBT#a", {0: "key0", 1: "key1"})
    await store.history.record_parts("m1|@RBT#a", {1: "other"})
    assert await store.history.sent_parts("m1|@RBT#a") == {0: "key0", 1: "key1"}
    assert await store.history.sent_parts("nope") == {}


async def test_concurrent_writes_are_group_committed(store: Store) -> None:
    await asyncio.gather(
        *[
            store.history.add_turns(f"c{n % 10}", f"m{n}", [Turn("user", str(n), 1)])
            for n in range(500)
        ]
    )
    total = sum([len(await store.history.recent_turns(f"c{n}")) for n in range(10)])
    assert total == 500


async def test_history_query_uses_the_index(tmp_path: Path) -> None:
    """Loading the newest turns reads the (conversation, id) index, not the table: the same
    cost at 10 or 100 000 stored turns."""
    path = tmp_path / "db.sqlite"
    store = await Store.open(f"sqlite:///{path}")
    await store.history.add_turns("c", "1", [Turn("user", "x", 1)])
    await store.aclose()
    with contextlib.closing(sqlite3.connect(path)) as db:
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT role, content, tokens, identity FROM turns "
            "WHERE conversation = ? ORDER BY id DESC LIMIT 64",
            ("c",),
        ).fetchall()
    detail = " ".join(row[-1] for row in plan)
    assert "USING INDEX ix_turns_conversation_id" in detail
    assert "TEMP B-TREE" not in detail  # no sort of the conversation's rows


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    store = await Store.open(f"sqlite:///{path}")
    await store.aclose()
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE timbridge_schema SET version = 99")
    with pytest.raises(StorageError, match="version 99"):
        await Store.open(f"sqlite:///{path}")


async def test_unopenable_store_is_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="cannot open store"):
        await Store.open(f"sqlite:///{blocker / 'db.sqlite'}")


def test_async_urls() -> None:
    assert async_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert async_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert async_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"


async def test_processes_starting_together_on_postgresql_do_not_race(postgres_url: str) -> None:
    # three front-ends and workers starting at once each create the schema: one at a time
    stores = await asyncio.gather(*[Store.open(postgres_url) for _ in range(6)])
    try:
        await stores[0].history.add_turns("c", "m1", [Turn("user", "hi", 1)])
        assert [t.content for t in await stores[5].history.recent_turns("c")] == ["hi"]
    finally:
        for store in stores:
            await store.aclose()


async def test_a_window_evicted_while_its_turns_are_written_is_not_left_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite keeps recent windows in memory. If a conversation's window is evicted while its
    new turns are being written, the next read must load the whole history again, not find a
    window holding the new turns alone."""
    import timbridge.storage.history as store_module

    monkeypatch.setattr(store_module, "_CACHED_CONVERSATIONS", 1)
    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.history.add_turns("a", "1", [Turn("user", "old", 1)])
    writing = asyncio.create_task(store.history.add_turns("a", "2", [Turn("user", "new", 1)]))
    for _ in range(100):  # until the write is queued and waiting for its transaction
        if store.commits._pending:
            break
        await asyncio.sleep(0)
    assert store.commits._pending
    await store.history.recent_turns("b")  # evicts "a"'s window meanwhile
    await writing
    assert [t.content for t in await store.history.recent_turns("a")] == ["old", "new"]
    await store.aclose()


async def test_concurrent_first_loads_of_one_conversation_agree(
    store: Store, store_url: str
) -> None:
    await store.history.add_turns("c", "1", [Turn("user", "one", 1)])
    fresh = await Store.open(store_url)  # nothing cached yet
    loads = await asyncio.gather(*[fresh.history.recent_turns("c") for _ in range(5)])
    await fresh.history.add_turns("c", "2", [Turn("user", "two", 1)])
    assert all([t.content for t in load] == ["one"] for load in loads)
    assert [t.content for t in await fresh.history.recent_turns("c")] == ["one", "two"]
    await fresh.aclose()


async def test_cached_windows_are_invisible_to_the_garbage_collector(tmp_path: Path) -> None:
    """A full cache holds 1.3 million turns: kept as tuples of strings and ints, the collector
    stops tracking them, and then their window, so they add nothing to a pause."""
    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        for n in range(70):  # more than the 64-turn window: the window is replaced, not grown
            await store.history.add_turns("c", f"m{n}", [Turn("user", f"q{n}", 1)])
        history = await store.history.recent_turns("c")
        assert len(history) == 64
        assert history[-1].content == "q69"
        gc.collect()  # the turns; the window in the same pass or, as here, the next one
        gc.collect()
        window = store.history._cache["c"]  # type: ignore[index]
        assert isinstance(window, tuple)
        assert not gc.is_tracked(window)
        assert not any(gc.is_tracked(turn) for turn in window)
    finally:
        await store.aclose()


async def test_a_users_recalled_set_is_chosen_in_order_and_new_facts_join_it_first(
    store: Store,
) -> None:
    alice, bob = Owner("@RBT#a", "alice", ""), Owner("@RBT#a", "bob", "")
    ids = [
        await store.facts.add(
            alice, f"fact {n}", vector=None, embedder=None, source="learned", keep=9
        )
        for n in range(5)
    ]
    theirs = await store.facts.add(bob, "bob's", vector=None, embedder=None, source="said", keep=9)
    assert [f.recall for f in await store.facts.of(alice)] == [JOINED] * 5  # new: recalled

    await store.facts.choose(alice, [ids[3], ids[0]])
    assert [f.recall for f in await store.facts.of(alice)] == [1, None, None, 0, None]
    assert [f.recall for f in await store.facts.of(bob)] == [JOINED]  # someone else's: as was

    assert await store.facts.replace(alice, ids[2], "fact 2, corrected", vector=None, embedder=None)
    assert [f.recall for f in await store.facts.of(alice)] == [1, None, JOINED, 0, None]
    await store.facts.choose(alice, [])
    assert [f.recall for f in await store.facts.of(alice)] == [None] * 5
    assert not await store.facts.replace(alice, theirs, "not hers", vector=None, embedder=None)


async def test_one_process_at_a_time_holds_a_conversation_s_batch_for_reading(
    store_url: str,
) -> None:
    first, second = await Store.open(store_url), await Store.open(store_url)  # two processes
    try:
        assert await first.facts.mark("@RBT#a", "c") is None
        assert await first.facts.claim_reading("@RBT#a", "c", for_s=60)
        assert not await second.facts.claim_reading("@RBT#a", "c", for_s=60)  # held
        assert await second.facts.claim_reading("@RBT#a", "other", for_s=60)  # another chat
        assert await first.facts.mark("@RBT#a", "c") is None  # holding is not having read
        await first.facts.set_mark("@RBT#a", "c", "m6")  # read: the hold is given up
        assert await second.facts.mark("@RBT#a", "c") == "m6"
        assert await second.facts.claim_reading("@RBT#a", "c", for_s=60)
        await second.facts.release_reading("@RBT#a", "c")  # given up unread
        assert await first.facts.claim_reading("@RBT#a", "c", for_s=0)  # held for no time...
        assert await second.facts.claim_reading("@RBT#a", "c", for_s=60)  # ...so free again
        assert await second.facts.mark("@RBT#a", "c") == "m6"
    finally:
        await first.aclose()
        await second.aclose()
