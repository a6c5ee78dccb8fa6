"""Conversation history: turns, sent reply parts and the usage ledger, on SQLite or PostgreSQL.

Writes go through the store's group commit (`timbridge.storage.group_commit`). With SQLite, which
serves one process, transactions run inline on the event loop (`timbridge.storage.sql.InlineSQLite`)
and the newest turns of recently active conversations are kept in memory, so loading history
costs no query.

The newest turns of a conversation come from the ``(conversation, id)`` index, so loading them
costs the same at 10 or 100 000 stored turns. Writes are idempotent on the inbound message's
identity: a redelivered job stores nothing twice, and the parts of a reply already sent are
known, so a retried job resumes instead of repeating.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeVar, cast

import sqlalchemy as sa

from timbridge.storage.group_commit import GroupCommit, Insert
from timbridge.storage.schema import reply_parts, turns, usage
from timbridge.storage.sql import Database, fetch_all

__all__ = ["History", "Purpose", "Turn", "UsageRecord", "Window", "utc_day"]

Role = Literal["user", "assistant", "summary", "tools"]
T = TypeVar("T")

Purpose = Literal["answer", "summary", "memory"]
"""What a model call was for, in the usage ledger."""


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One model call, for budgets and billing: who asked which robot, and what it cost."""

    robot: str
    sender: str
    group_id: str | None
    identity: str
    purpose: Purpose
    profile: str
    model: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0  # of input_tokens, read from the provider's prompt cache


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
        "cached_tokens": record.cached_tokens,
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
#: The most memory the cached windows take together (their texts, by `sys.getsizeof`, plus a
#: fixed cost per turn); the least recently used conversations go first.
CACHE_BYTES = 64 * 1024 * 1024
_TURN_OVERHEAD = 120
#: What is loaded of a user turn (or a summary): a message this long is far past any context
#: budget, so the rest would only take memory. A robot's own answers are loaded whole: a resumed
#: job sends the stored answer (they are bounded by the profile's `max_answer_chars`).
TURN_LOADED_CHARS = 16 * 1024


def _loaded(content: str, role: str) -> str:
    if role == "assistant" or len(content) <= TURN_LOADED_CHARS:
        return content
    return content[:TURN_LOADED_CHARS]


def _size(window: Window) -> int:
    return sum(sys.getsizeof(content) + _TURN_OVERHEAD for _, content, _, _ in window)


_content = sa.case(
    (turns.c.role == "assistant", turns.c.content),
    else_=sa.func.substr(turns.c.content, 1, TURN_LOADED_CHARS),
)
#: The newest turns of one conversation, newest first (from the ``(conversation, id)`` index).
_history = (
    sa.select(turns.c.role, _content.label("content"), turns.c.tokens, turns.c.identity)
    .where(turns.c.conversation == sa.bindparam("conversation"))
    .order_by(turns.c.id.desc())
    .limit(_WINDOW)
)


class History:
    """Turns, usage and reply bookkeeping on `database`, written through `commits`.

    Every operation is one synchronous function of a connection, run in one transaction: on
    SQLite inline on the event loop, on PostgreSQL through asyncpg (`timbridge.storage.sql`).
    """

    def __init__(
        self, database: Database, commits: GroupCommit, *, cache_bytes: int = CACHE_BYTES
    ) -> None:
        self._database = database
        self._commits = commits
        self._cache: OrderedDict[str, Window] | None = (
            OrderedDict() if database.dialect == "sqlite" else None
        )
        self._cache_bytes = cache_bytes
        self._cached_bytes = 0
        self._sizes: dict[str, int] = {}

    @property
    def cached_bytes(self) -> int:
        """The memory the cached windows take, as counted against `cache_bytes`."""
        return self._cached_bytes

    def _cache_put(self, conversation: str, window: Window) -> None:
        """Cache `window` as the newest; evict the least recently used past either bound."""
        assert self._cache is not None
        size = _size(window)
        self._cached_bytes += size - self._sizes.get(conversation, 0)
        self._cache[conversation] = window
        self._cache.move_to_end(conversation)
        self._sizes[conversation] = size
        while self._cache and (
            len(self._cache) > _CACHED_CONVERSATIONS or self._cached_bytes > self._cache_bytes
        ):
            evicted, _ = self._cache.popitem(last=False)
            self._cached_bytes -= self._sizes.pop(evicted)

    async def _run(
        self, what: str, work: Callable[[sa.Connection], T], *, writes: bool = True
    ) -> T:
        """`work` in one transaction; errors become `StorageError`s naming `what`."""
        return await self._database.run(what, work, writes=writes)

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
            window = loaded
            self._cache_put(conversation, loaded)
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
            added = tuple((t.role, _loaded(t.content, t.role), t.tokens, t.identity) for t in items)
            self._cache_put(conversation, (*window, *added)[-_WINDOW:])

    async def add_turns(
        self,
        conversation: str,
        identity: str,
        items: Sequence[Turn],
        *,
        usage_record: UsageRecord | None = None,
    ) -> None:
        """Store turns of one inbound message, and what the answer cost (`usage_record`); a
        repeat of the same identity is ignored. Both go in the same group transaction, as two
        writes: the ledger never depends on the turns being stored (a budget must hold even
        when history cannot be kept), and raises only after both were tried."""
        known: set[tuple[str, str]] = set()
        if self._cache is not None:
            known = {(identity, role) for role, _, _, identity in await self._recent(conversation)}
        fresh = [
            Turn(t.role, t.content, t.tokens, identity)
            for t in items
            if (identity, t.role) not in known
        ]
        now = time.time()
        writes: list[Insert] = []
        if usage_record is not None:
            writes.append(Insert(usage, [_usage_row(usage_record, now)]))
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
            writes.append(Insert(turns, rows))
        if not writes:
            return
        results = await asyncio.gather(
            *(self._commits.write(write) for write in writes), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
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
            self._cache_put(conversation, ())
        return int(removed or 0)

    # --- usage ledger ---------------------------------------------------------------------

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

    async def cache_share_on(self, day: str, robot: str, *, sender: str) -> tuple[int, int]:
        """Prompt tokens `robot` spent on `day` for `sender`, and how many came from the
        providers' prompt caches."""
        query = sa.select(
            sa.func.coalesce(sa.func.sum(usage.c.input_tokens), 0),
            sa.func.coalesce(sa.func.sum(usage.c.cached_tokens), 0),
        ).where(usage.c.robot == robot, usage.c.day == day, usage.c.sender == sender)
        row = await self._run("read usage", lambda conn: conn.execute(query).one(), writes=False)
        return int(row[0]), int(row[1])

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
            await self._commits.write(Insert(reply_parts, rows))
