"""Long-term memory (robots with ``memory = "long"``): facts about each user, kept beyond the
context window and put back into it.

- **Learning.** Explicit ("remember that …", "记住 …") facts are kept at once, with no model
  call, so the offline model has memory too. The rest is read by the model in batches: once a
  conversation has `memory.extract_every` new messages, or its history no longer fits the context
  (before anything rolls out of sight), one call reads the new messages against what is known
  and answers with new facts and corrections. A message costs no extra call; the batch costs one
  call per `extract_every` messages, and nothing is lost: a batch that fails is read again.
  The call runs in the background (`read_soon`), so the next message need not wait for it,
  except before a fold; `/memory` and `/forget` wait for it and have the rest read too
  (`caught_up`), so that they are current and nothing deleted is learned again. One process
  at a time reads a conversation's batch: it holds it in the store while it does.
- **Merging.** A correction names the fact it replaces; a new fact nearly identical to a known
  one (`memory.same_above`, cosine of their embeddings) replaces it instead of repeating it.
- **Recalling.** All of a user's facts go into the context, oldest first, while they fit
  `memory.budget_tokens`: a block that stays byte-identical from message to message, so the
  providers' prompt caches keep it. Past the budget, a *recalled set* is chosen once per batch:
  the facts named in what the user wrote in it, then the nearest to it (embeddings) and the
  most recent. New and corrected facts join the set at once, ahead of it. The block shows what
  of the set fits, and, for one message, any fact the message names by a rare word ("how is
  Mochi?"). It changes when the facts or the set do (once per batch at most), not with every
  message, and a message costs no embedding.
- **Scope.** A fact belongs to one user in one chat: the private chat's stay there, and in a
  group each member has their own (a batch's fact is kept only for a member who wrote in it).
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import orjson
import structlog

from timbridge.bot.admission import ledger_entry
from timbridge.bot.conversation import Conversation
from timbridge.errors import LLMError, StorageError, TimbridgeError
from timbridge.knowledge.embed import Embedder
from timbridge.llm.base import ChatMessage
from timbridge.llm.chain import ModelChain
from timbridge.llm.tokens import count_tokens
from timbridge.metrics import Metrics
from timbridge.settings import Settings
from timbridge.storage.facts import Fact, Facts, Owner, Source
from timbridge.storage.history import History, Turn

__all__ = [
    "EXTRACT_PROMPT",
    "LongMemory",
    "Notebook",
    "explicit_fact",
    "owner_of",
    "parse_extraction",
]

_log = structlog.get_logger("timbridge.memory")

_READING_AT_ONCE = 64
"""Conversations read for facts in the background at once; a reading past it is done inline."""
_READING_HOLD_S = 300.0
"""How long a process holds a batch it reads (the others leave it alone): a process that dies
while reading delays that conversation's batch by this much at most."""

EXTRACT_PROMPT = (
    "You keep an assistant's long-term memory of its users. Below are the facts already known "
    "(numbered) and the newest messages of a chat. List what is worth remembering for later "
    "conversations: a user's name, their preferences, the people, pets and events in their "
    "life, their plans, what they asked to be remembered. Only what users said about "
    "themselves: not what the assistant said, not small talk. Write each fact as one short "
    "sentence in the language of the chat. When a message changes or corrects a known fact, "
    'give that fact\'s number as "replaces". Answer with JSON only: {"facts": [{"user": '
    '"<user id as in the messages>", "fact": "<the fact>", "replaces": <number or null>}]}, '
    'and {"facts": []} when nothing is worth keeping.'
)
FACTS_INTRO = (
    "What you remember about {user} from earlier conversations (use it where it helps; do not "
    "recite it):"
)
_KNOWN_PER_USER = 40  # known facts shown to the extractor per user in a batch
_LINE_CHARS = 600  # of each message shown to the extractor
_RECENCY_WEIGHT = 0.15  # how much being recent counts against being near the message
_HALF_LIFE_S = 30 * 86400.0
_MAX_FACT_CHARS = 300
_FORGET_ABOVE = 0.5  # how near a fact must be to what the forget tool names

_EXPLICIT = re.compile(
    r"^\s*(?:please\s+)?remember(?:\s+that\b|\s*[:,])?\s+(?!when\b|what\b|how\b|who\b|where\b|"
    r"why\b|if\b|me\b)(?P<fact>\S.{1,298}?)\s*[.!]*\s*$",
    re.IGNORECASE | re.DOTALL,
)
_EXPLICIT_ZH = re.compile(
    r"^\s*(?:请)?(?:记住|记得)[:：,，]?\s*(?P<fact>\S.{1,298}?)\s*[。！!]*\s*$"
)


def explicit_fact(text: str) -> str | None:
    """What the user asked to be remembered ("remember that my cat is called Mochi" → "my cat
    is called Mochi"); None when `text` asks no such thing (a question never does)."""
    if text.rstrip().endswith(("?", "？")):
        return None
    match = _EXPLICIT.match(text) or _EXPLICIT_ZH.match(text)
    return match.group("fact").strip() if match else None


def owner_of(conv: Conversation) -> Owner:
    """Whose facts a conversation's sender has: theirs, in this chat."""
    return Owner(conv.robot, conv.sender, "" if conv.kind == "c2c" else conv.peer)


class Learned:
    """One fact the extractor found: for which user, and which known fact it replaces."""

    __slots__ = ("replaces", "text", "user")

    def __init__(self, user: str, text: str, replaces: int | None) -> None:
        self.user = user
        self.text = text
        self.replaces = replaces


def parse_extraction(answer: str, users: Sequence[str], known: int) -> list[Learned]:
    """The facts in the extractor's `answer`: those of `users` (the batch's writers; a fact
    about anyone else is dropped), `replaces` kept only when it is a number from 1 to `known`.
    An answer that is not the JSON asked for yields nothing."""
    start, end = answer.find("{"), answer.rfind("}")
    if start < 0 or end < start:
        return []
    try:
        data: Any = orjson.loads(answer[start : end + 1])
    except orjson.JSONDecodeError:
        return []
    items = data.get("facts") if isinstance(data, dict) else None
    found: list[Learned] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        user, text, replaces = item.get("user"), item.get("fact"), item.get("replaces")
        if len(users) == 1 and user is None:
            user = users[0]
        if user not in users or not isinstance(text, str) or not text.strip():
            continue
        number = replaces if isinstance(replaces, int) and 1 <= replaces <= known else None
        found.append(Learned(str(user), " ".join(text.split())[:_MAX_FACT_CHARS], number))
    return found


def _as_bytes(vector: np.ndarray[Any, Any] | None) -> bytes | None:
    return None if vector is None or not vector.size else vector.astype(np.float32).tobytes()


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


@functools.lru_cache(maxsize=8192)
def _cost(text: str) -> int:
    """What a fact costs in the context (its tokens and its line's)."""
    return count_tokens(text) + 2


_COMMON_WORDS = (
    "the and you your are was were her his she him how why who what when where did does has "
    "had have for not but can all any one our out get got see now day way too yes its new old "
    "that this with from they them their there been will would could should about just like "
    "very much some more most also than then into over only well"
)
_COMMON = frozenset(_COMMON_WORDS.split())


@functools.lru_cache(maxsize=8192)
def _words(text: str) -> frozenset[str]:
    """The words of `text` that can name something: three letters or more and not common;
    in Chinese or Japanese text (no spaces), its pairs of characters."""
    found: set[str] = set()
    for word in _norm(text).split():
        if word.isascii():
            if len(word) >= 3 and word not in _COMMON and not word.isdigit():
                found.add(word)
        else:
            found.update(word[i : i + 2] for i in range(max(len(word) - 1, 1)))
    return frozenset(found)


def _named(known: Sequence[Fact], message: str) -> set[int]:
    """The facts `message` names: it has a word of theirs that at most two facts have (a
    name, a place, a pet: "how is Mochi?"), so that they are recalled although not chosen."""
    said = _words(message)
    if not said:
        return set()
    words = {f.id: _words(f.text) for f in known}
    rare = Counter(w for mine in words.values() for w in mine)
    return {n for n, mine in words.items() if any(rare[w] <= 2 for w in mine & said)}


Outcome = Literal["added", "updated", "same"]


class LongMemory:
    """Facts about users: learned, merged, recalled into contexts, listed and forgotten."""

    def __init__(
        self,
        settings: Settings,
        facts: Facts,
        history: History,
        models: ModelChain,
        *,
        embedder: Embedder | None,
        metrics: Metrics,
    ) -> None:
        self._config = settings.memory
        self._robots = {r.id: r for r in settings.robots if r.memory == "long"}
        self._offline = {
            r.id for r in settings.robots if settings.models[r.model].provider == "offline"
        }
        self._facts = facts
        self._history = history
        self._models = models
        self._embedder = embedder
        self._metrics = metrics
        self._grace_s = settings.server.shutdown_grace_s
        self._reading: dict[str, asyncio.Task[None]] = {}  # conversation → its batch being read
        self._closed = False

    def __contains__(self, robot: str) -> bool:
        return robot in self._robots

    async def _vectors(self, texts: list[str]) -> list[np.ndarray[Any, Any] | None]:
        """The texts' embeddings; none when there is no embedder or it fails (then facts are
        matched by their words and chosen by recency)."""
        if self._embedder is None or not texts:
            return [None] * len(texts)
        try:
            matrix = await self._embedder.embed(texts)
        except TimbridgeError as exc:
            _log.warning("memory.embed_failed", error=str(exc))
            return [None] * len(texts)
        return [row if row.size else None for row in matrix]

    def _vector_of(self, fact: Fact) -> np.ndarray[Any, Any] | None:
        if fact.vector is None or self._embedder is None or fact.embedder != self._embedder.name:
            return None
        return np.frombuffer(fact.vector, dtype=np.float32)

    async def known(self, conv: Conversation) -> list[Fact]:
        """What the robot knows about the conversation's sender, here; oldest first."""
        return await self._facts.of(owner_of(conv))

    async def keep(
        self,
        owner: Owner,
        text: str,
        source: Source,
        *,
        replaces: int | None = None,
        known: list[Fact] | None = None,
    ) -> tuple[Outcome, int]:
        """Keep `text` about `owner`: as a correction of fact `replaces`, as an update of a
        known fact it nearly repeats, or as a new one."""
        text = " ".join(text.split())[:_MAX_FACT_CHARS]
        known = await self._facts.of(owner) if known is None else known
        (vector,) = await self._vectors([text])
        name = self._embedder.name if vector is not None and self._embedder else None
        same = next((f for f in known if _norm(f.text) == _norm(text)), None)
        if same is not None and replaces in (None, same.id):
            return "same", same.id
        if replaces is None and vector is not None:
            vectors = [(self._vector_of(f), f) for f in known]
            scored = [(float(v @ vector), f) for v, f in vectors if v is not None]
            best = max(scored, default=None, key=lambda pair: pair[0])
            if best is not None and best[0] >= self._config.same_above:
                replaces = best[1].id
        blob = _as_bytes(vector)
        if replaces is not None and await self._facts.replace(
            owner, replaces, text, vector=blob, embedder=name
        ):
            self._metrics.memory_facts.labels(owner.robot, "updated").inc()
            return "updated", replaces
        number = await self._facts.add(
            owner, text, vector=blob, embedder=name, source=source, keep=self._config.per_user
        )
        self._metrics.memory_facts.labels(owner.robot, "added").inc()
        return "added", number

    async def recall(self, conv: Conversation, message: str) -> ChatMessage | None:
        """The system message of what is remembered about the sender, within the budget; None
        when nothing is."""
        known = await self.known(conv)
        if not known:
            return None
        chosen = await self._within_budget(owner_of(conv), known, message)
        if not chosen:
            return None
        lines = "\n".join(f"- {f.text}" for f in chosen)
        return ChatMessage("system", f"{FACTS_INTRO.format(user=conv.sender)}\n{lines}")

    async def _within_budget(self, owner: Owner, known: list[Fact], message: str) -> list[Fact]:
        """`known` when it fits the budget; else as much as fits of: the facts the message names,
        those new or corrected since the recalled set was chosen, the set as it was ranked. In
        id order, the order they were learned."""
        budget = self._config.budget_tokens
        if sum(_cost(f.text) for f in known) <= budget:
            return known
        recalled = [f for f in known if f.recall is not None]
        if not recalled:
            recalled = await self._choose(owner, known, message)
        named = _named(known, message)
        ranked = sorted(recalled, key=lambda f: (f.recall or 0, -f.updated_at))
        order = [f for f in known if f.id in named] + [f for f in ranked if f.id not in named]
        taken: set[int] = set()
        left = budget
        for fact in order:
            if _cost(fact.text) <= left:
                taken.add(fact.id)
                left -= _cost(fact.text)
        await self._facts.used(sorted(taken & named))
        return [f for f in known if f.id in taken]

    async def _choose(self, owner: Owner, known: list[Fact], about: str) -> list[Fact]:
        """Make the facts `about` names, then those nearest it (embeddings, else shared words)
        and the most recent, as many as the budget holds, `owner`'s recalled set; that set."""
        named = _named(known, about)
        (query,) = await self._vectors([about])
        words = set(_norm(about).split())
        now = time.time()

        def score(fact: Fact) -> float:
            vector = self._vector_of(fact)
            if query is not None and vector is not None:
                near = float(vector @ query)
            else:  # no embeddings: the share of the fact's words `about` has
                mine = set(_norm(fact.text).split())
                near = len(mine & words) / max(len(mine), 1)
            recent = math.exp(-max(0.0, now - fact.updated_at) * math.log(2) / _HALF_LIFE_S)
            return near + _RECENCY_WEIGHT * recent

        chosen: list[Fact] = []
        left = self._config.budget_tokens
        for fact in sorted(known, key=lambda f: (f.id in named, score(f)), reverse=True):
            if _cost(fact.text) <= left:
                chosen.append(fact)
                left -= _cost(fact.text)
        await self._facts.choose(owner, [f.id for f in chosen])
        return [f._replace(recall=place) for place, f in enumerate(chosen)]

    async def said(self, conv: Conversation, text: str) -> str | None:
        """Keep what the user asked to be remembered in `text`, if they asked; what was kept."""
        fact = explicit_fact(text)
        if fact is None:
            return None
        await self.keep(owner_of(conv), fact, "said")
        return fact

    async def forget(self, conv: Conversation, what: str) -> list[str]:
        """Delete the sender's facts (here) that `what` names: ``all``, a number from the
        ``/memory`` list, or words they contain. The texts deleted."""
        owner = owner_of(conv)
        known = await self._facts.of(owner)
        what = what.strip()
        if what.lower() in ("all", "everything", "全部"):
            gone = known
        elif what.lstrip("#").isdigit():
            index = int(what.lstrip("#"))
            gone = [known[index - 1]] if 1 <= index <= len(known) else []
        else:
            words = set(_norm(what).split())
            gone = [f for f in known if words and words <= set(_norm(f.text).split())]
        if gone:
            await self._facts.delete(owner, [f.id for f in gone])
            self._metrics.memory_facts.labels(conv.robot, "forgotten").inc(len(gone))
        return [f.text for f in gone]

    async def forget_like(self, conv: Conversation, text: str) -> str | None:
        """Delete the sender's fact nearest `text` (the ``forget`` tool's words are the model's,
        not the fact's), if one is near enough; its text. A reading under way lands first."""
        await self.settled(conv)
        owner = owner_of(conv)
        known = await self._facts.of(owner)
        (query,) = await self._vectors([text])
        words = set(_norm(text).split())

        def near(fact: Fact) -> float:
            vector = self._vector_of(fact)
            if query is not None and vector is not None:
                return float(vector @ query)
            mine = set(_norm(fact.text).split())
            return len(mine & words) / max(len(mine | words), 1)

        best = max(known, key=near, default=None)
        if best is None or near(best) < _FORGET_ABOVE:
            return None
        await self._facts.delete(owner, [best.id])
        self._metrics.memory_facts.labels(conv.robot, "forgotten").inc()
        return best.text

    async def forget_user(self, conv: Conversation) -> int:
        """Delete everything the robot knows about the sender, in every chat (once the readings
        under way are over, so that none adds a fact after it)."""
        await self.settled()
        gone = await self._facts.delete_user(conv.robot, conv.sender)
        self._metrics.memory_facts.labels(conv.robot, "forgotten").inc(gone)
        return gone

    async def read_soon(self, conv: Conversation) -> None:
        """After an answer: read the conversation for facts (`read`) in the background, so that
        its next message need not wait for the model. One reading per conversation at a time
        (the messages after it are the next batch's), at most `_READING_AT_ONCE` in all: past
        that, the reading is done before returning, which slows the answers instead of
        growing. Nothing is lost to a crash or a shutdown: an unfinished batch is read again."""
        if self._closed or conv.robot not in self._robots or conv.robot in self._offline:
            return
        if conv.key in self._reading:
            return
        if len(self._reading) >= _READING_AT_ONCE:
            await self._read_logged(conv)
            return
        task = asyncio.create_task(self._read_logged(conv), name=f"memory.read {conv.key}")
        self._reading[conv.key] = task
        task.add_done_callback(lambda _: self._reading.pop(conv.key, None))

    async def settled(self, conv: Conversation | None = None) -> None:
        """Once the reading of `conv` under way, if any (or every reading, without `conv`), is
        over: what the user sees and deletes includes what it learned."""
        tasks = list(self._reading.values()) if conv is None else [self._reading.get(conv.key)]
        waits = [t for t in tasks if t is not None and t is not asyncio.current_task()]
        if waits:
            await asyncio.wait(waits)

    async def caught_up(self, conv: Conversation) -> None:
        """Once what the conversation holds unread is read, however little (one model call, if
        there is any): before the sender sees or deletes what is known, so that `/memory` is
        current and nothing deleted is learned again from a message not read yet."""
        await self.read(conv, overflowing=True)

    async def _read_logged(self, conv: Conversation) -> None:
        """Read batch after batch while one is due (messages that came during a reading make
        the next); errors logged, the batch left for the next answer."""
        try:
            while not self._closed and await self.read(conv, overflowing=False) is not None:
                pass
        except StorageError as exc:
            _log.error("memory.not_read", error=str(exc))
        except Exception:  # noqa: BLE001 - a background task: its error would go unseen
            _log.exception("memory.read_failed")

    async def aclose(self) -> None:
        """Let the readings under way finish within the shutdown grace; cancel the rest (their
        batches are read again after the restart)."""
        self._closed = True
        tasks = list(self._reading.values())
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=self._grace_s)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    async def read(self, conv: Conversation, *, overflowing: bool) -> int | None:
        """When the conversation has a batch of unread messages (or its history `overflowing`
        the context, about to be folded), have the model read them for facts; how many were
        kept, None if no batch was read (none was due, or the model failed: then it is read
        again next time). A reading of it under way in the background is waited for first."""
        if conv.robot not in self._robots or conv.robot in self._offline:
            return None
        await self.settled(conv)
        if not await self._unread(conv, overflowing=overflowing):
            return None
        if not await self._facts.claim_reading(conv.robot, conv.key, for_s=_READING_HOLD_S):
            return None  # another process is reading it
        marked = False
        try:
            unread = await self._unread(conv, overflowing=overflowing)  # it may have moved on
            if not unread:
                return None
            kept = await self._extract(conv, unread)
            if kept is None:  # the model failed: the same batch is read next time
                return None
            said = [t for t in unread if t.role == "user"]
            await self._facts.set_mark(conv.robot, conv.key, said[-1].identity)
            marked = True
            return kept
        finally:
            if not marked:
                await self._facts.release_reading(conv.robot, conv.key)

    async def _unread(self, conv: Conversation, *, overflowing: bool) -> list[Turn]:
        """The conversation's messages not read for facts yet, if they make a batch (or any,
        when `overflowing`); else none."""
        history = await self._history.recent_turns(conv.key)
        mark = await self._facts.mark(conv.robot, conv.key)
        start = max((i + 1 for i, t in enumerate(history) if t.identity == mark), default=0)
        unread = [t for t in history[start:] if t.role in ("user", "assistant")]
        said = sum(t.role == "user" for t in unread)
        if not said or (said < self._config.extract_every and not overflowing):
            return []
        return unread

    def _lines(self, conv: Conversation, turns: Sequence[Turn]) -> tuple[list[str], list[str]]:
        """The batch as ``writer: text`` lines, and its writers (in a group the stored turns
        already say who wrote them)."""
        lines: list[str] = []
        users: dict[str, None] = {}
        prefixed = conv.kind == "group" and not conv.member_scoped
        for turn in turns:
            text = turn.content[:_LINE_CHARS]
            if turn.role == "assistant":
                lines.append(f"assistant: {text}")
                continue
            user, sep, rest = text.partition(": ")
            if not (prefixed and sep):
                user, rest = conv.sender, text
            users[user] = None
            lines.append(f"{user}: {rest}")
        return lines, list(users)

    async def _extract(self, conv: Conversation, turns: Sequence[Turn]) -> int | None:
        lines, users = self._lines(conv, turns)
        scope = "" if conv.kind == "c2c" else conv.peer
        owners = {u: Owner(conv.robot, u, scope) for u in users}
        known = {u: await self._facts.of(o) for u, o in owners.items()}
        shown: list[tuple[str, Fact]] = [(u, f) for u in users for f in known[u][-_KNOWN_PER_USER:]]
        listing = "\n".join(f"[{n}] ({u}) {f.text}" for n, (u, f) in enumerate(shown, start=1))
        request = [
            ChatMessage("system", EXTRACT_PROMPT),
            ChatMessage(
                "user",
                f"Known facts:\n{listing or '(none)'}\n\nMessages:\n" + "\n".join(lines),
            ),
        ]
        profile = self._robots[conv.robot].model
        try:
            answer = await self._models.answer(profile, request)
        except LLMError as exc:
            self._metrics.memory_extractions.labels(conv.robot, "failed").inc()
            _log.warning("memory.extract_failed", error=str(exc))
            return None
        identity = f"memory|{turns[-1].identity}"
        await self._history.add_turns(
            conv.key, identity, [], usage_record=ledger_entry(conv, identity, answer, "memory")
        )
        learned = parse_extraction(answer.text, users, len(shown))
        kept = 0
        for fact in learned:
            replaces = None
            if fact.replaces is not None:
                whose, old = shown[fact.replaces - 1]
                replaces = old.id if whose == fact.user else None
            outcome, _ = await self.keep(
                owners[fact.user], fact.text, "learned", replaces=replaces, known=known[fact.user]
            )
            kept += outcome != "same"
            known[fact.user] = await self._facts.of(owners[fact.user])
        for user, owner in owners.items():  # what the batch was about is recalled next
            if sum(_cost(f.text) for f in known[user]) > self._config.budget_tokens:
                wrote = [line.partition(": ")[2] for line in lines if line.startswith(f"{user}: ")]
                await self._choose(owner, known[user], " ".join(wrote))
        self._metrics.memory_extractions.labels(conv.robot, "read").inc()
        _log.info("memory.read", messages=len(lines), facts=len(learned), kept=kept)
        return kept


class Notebook:
    """The ``remember`` and ``forget`` tools' work for one conversation's sender."""

    def __init__(self, memory: LongMemory, conv: Conversation) -> None:
        self._memory = memory
        self._conv = conv

    async def remember(self, fact: str) -> str:
        outcome, _ = await self._memory.keep(owner_of(self._conv), fact, "tool")
        return {"added": "Kept", "updated": "Updated what you knew", "same": "Already known"}[
            outcome
        ] + f": {fact}"

    async def forget(self, fact: str) -> str:
        gone = await self._memory.forget_like(self._conv, fact)
        return f"Forgot: {gone}" if gone else "error: nothing remembered matches that"
