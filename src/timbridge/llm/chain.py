"""A robot's models: its profile, then the profile's fallbacks, each with retries.

Retries (with backoff; a 429's ``Retry-After`` is honoured) cover timeouts, 429 and 5xx; a
malformed answer or a 4xx goes straight to the next profile. A circuit breaker skips a profile
that failed `breaker_failures` calls in a row for `breaker_cooldown_s`, so users do not wait on
retries that will fail; after the cool-down one call tries it again. When every profile of a
chain is open, they are all tried anyway rather than failing at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from timbridge.errors import LLMError, LLMRateLimited, LLMResponseError, LLMTimeout
from timbridge.llm.base import ChatMessage, ChatModel, Usage
from timbridge.llm.tools import ToolCall, ToolSpec
from timbridge.printable import printable
from timbridge.settings import ModelProfile

__all__ = ["Answer", "ModelChain"]

_log = structlog.get_logger("timbridge.models")


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    usage: Usage
    profile: str
    model: str
    first_token_s: float
    total_s: float
    #: The model said more than the profile's `max_answer_chars`: `text` is the first part.
    cut: bool = False
    #: The tools the model called (with tools offered); `text` is what it said meanwhile.
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass
class _Breaker:
    failures: int = 0
    open_until: float = 0.0


class ModelChain:
    """Calls a robot's model profiles in order until one answers."""

    def __init__(
        self,
        models: Mapping[str, ChatModel],
        profiles: Mapping[str, ModelProfile],
        *,
        backoff_s: float = 0.5,
        backoff_max_s: float = 8.0,
        concurrency: asyncio.Semaphore | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._models = models
        self._profiles = profiles
        self._backoff = backoff_s
        self._backoff_max = backoff_max_s
        self._concurrency = concurrency or asyncio.Semaphore(256)
        self._clock = clock
        self._breakers = {name: _Breaker() for name in profiles}

    def is_open(self, profile: str) -> bool:
        """Whether `profile`'s circuit is open (it is skipped while others remain)."""
        return self._breakers[profile].open_until > self._clock()

    def _failed(self, name: str) -> None:
        breaker = self._breakers[name]
        breaker.failures += 1
        settings = self._profiles[name]
        if breaker.failures >= settings.breaker_failures:
            breaker.open_until = self._clock() + settings.breaker_cooldown_s
            _log.warning(
                "model.circuit_opened",
                profile=name,
                failures=breaker.failures,
                cooldown_s=settings.breaker_cooldown_s,
            )

    def chain(self, profile: str) -> list[str]:
        order = [profile, *self._profiles[profile].fallback]
        return list(dict.fromkeys(order))

    async def answer(
        self,
        profile: str,
        messages: Sequence[ChatMessage],
        *,
        on_delta: Callable[[str], Awaitable[None]] | None = None,
        tools: Sequence[ToolSpec] = (),
    ) -> Answer:
        """The first answer of the chain; the last `LLMError` when every profile failed.

        `tools` go to the profiles whose provider supports them; the others answer without.

        With `on_delta`, each piece of text is handed over as it arrives. Once a piece has been
        handed over, a failure is final: retrying would show the user the start twice.
        """
        emitted = [False]

        async def relay(piece: str) -> None:
            emitted[0] = True
            assert on_delta is not None
            await on_delta(piece)

        last: LLMError | None = None
        chain = self.chain(profile)
        closed = [name for name in chain if not self.is_open(name)]
        for skipped in (name for name in chain if name not in closed):
            _log.info("model.skipped_open_circuit", profile=skipped)
        for name in closed or chain:
            settings = self._profiles[name]
            for attempt in range(settings.retries + 1):
                try:
                    answer = await self._once(
                        name, settings.timeout_s, messages, relay if on_delta else None, tools
                    )
                except LLMError as exc:
                    if emitted[0]:
                        self._failed(name)
                        raise
                    if not isinstance(exc, LLMResponseError):
                        last = exc
                        _log.warning(
                            "model.failed", profile=name, attempt=attempt + 1, error=str(exc)
                        )
                        if attempt < settings.retries:
                            await asyncio.sleep(self._delay(exc, attempt))
                        continue
                    last = exc
                    _log.warning("model.bad_answer", profile=name, error=str(exc))
                    break
                else:
                    self._breakers[name] = _Breaker()
                    return answer
            self._failed(name)
        assert last is not None
        raise last

    def _delay(self, exc: LLMError, attempt: int) -> float:
        if isinstance(exc, LLMRateLimited) and exc.retry_after is not None:
            return min(exc.retry_after, 60.0)
        base = min(self._backoff * 2.0**attempt, self._backoff_max)
        return base + random.uniform(0, base / 2)

    async def _once(
        self,
        name: str,
        timeout_s: float,
        messages: Sequence[ChatMessage],
        on_delta: Callable[[str], Awaitable[None]] | None,
        tools: Sequence[ToolSpec] = (),
    ) -> Answer:
        model = self._models[name]
        offered = tools if tools and model.supports_tools else ()
        started = time.perf_counter()
        first: float | None = None
        pieces: list[str] = []
        left = self._profiles[name].max_answer_chars
        usage = Usage()
        calls: tuple[ToolCall, ...] = ()
        async with self._concurrency:
            try:
                async with (
                    asyncio.timeout(timeout_s),
                    contextlib.aclosing(
                        model.stream(messages, offered) if offered else model.stream(messages)
                    ) as deltas,
                ):
                    async for delta in deltas:
                        if delta.usage is not None:
                            usage = delta.usage
                        calls += delta.tool_calls
                        if not delta.text:
                            continue
                        if first is None:
                            first = time.perf_counter() - started
                        piece = printable(delta.text)[:left]
                        left -= len(piece)
                        pieces.append(piece)
                        if on_delta is not None and piece:
                            await on_delta(piece)
                        if left <= 0:  # the rest is not read: closing the stream hangs up
                            _log.warning(
                                "model.answer_cut",
                                profile=name,
                                chars=self._profiles[name].max_answer_chars,
                            )
                            break
            except TimeoutError:
                raise LLMTimeout(
                    f"{model.name}: no complete answer within {timeout_s} s", model=model.name
                ) from None
        text = "".join(pieces).strip()
        if not text and not calls:
            raise LLMResponseError(f"{model.name}: empty answer", model=model.name)
        total = time.perf_counter() - started
        first_s = first if first is not None else total
        return Answer(
            text, usage, name, model.name, first_s, total, cut=left <= 0, tool_calls=calls
        )
