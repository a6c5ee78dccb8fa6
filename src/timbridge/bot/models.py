"""A robot's models: its profile, then the profile's fallbacks, each with retries.

Retries (with backoff; a 429's ``Retry-After`` is honoured) cover timeouts, 429 and 5xx; a
malformed answer or a 4xx goes straight to the next profile. Once text has reached the user a
failure is not retried (it would repeat text): the caller decides what to say.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog

from timbridge.errors import LLMError, LLMRateLimited, LLMResponseError, LLMTimeout
from timbridge.llm.base import ChatMessage, ChatModel, Usage
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
    ) -> None:
        self._models = models
        self._profiles = profiles
        self._backoff = backoff_s
        self._backoff_max = backoff_max_s
        self._concurrency = concurrency or asyncio.Semaphore(256)

    def chain(self, profile: str) -> list[str]:
        order = [profile, *self._profiles[profile].fallback]
        return list(dict.fromkeys(order))

    async def answer(self, profile: str, messages: Sequence[ChatMessage]) -> Answer:
        """The first answer of the chain; the last `LLMError` when every profile failed."""
        last: LLMError | None = None
        for name in self.chain(profile):
            settings = self._profiles[name]
            for attempt in range(settings.retries + 1):
                try:
                    return await self._once(name, settings.timeout_s, messages)
                except LLMResponseError as exc:
                    last = exc
                    _log.warning("model.bad_answer", profile=name, error=str(exc))
                    break
                except LLMError as exc:
                    last = exc
                    _log.warning("model.failed", profile=name, attempt=attempt + 1, error=str(exc))
                    if attempt < settings.retries:
                        await asyncio.sleep(self._delay(exc, attempt))
        assert last is not None
        raise last

    def _delay(self, exc: LLMError, attempt: int) -> float:
        if isinstance(exc, LLMRateLimited) and exc.retry_after is not None:
            return min(exc.retry_after, 60.0)
        base = min(self._backoff * 2.0**attempt, self._backoff_max)
        return base + random.uniform(0, base / 2)

    async def _once(self, name: str, timeout_s: float, messages: Sequence[ChatMessage]) -> Answer:
        model = self._models[name]
        started = time.perf_counter()
        first: float | None = None
        pieces: list[str] = []
        usage = Usage()
        async with self._concurrency:
            try:
                async with asyncio.timeout(timeout_s):
                    async for delta in model.stream(messages):
                        if delta.text:
                            if first is None:
                                first = time.perf_counter() - started
                            pieces.append(delta.text)
                        if delta.usage is not None:
                            usage = delta.usage
            except TimeoutError:
                raise LLMTimeout(
                    f"{model.name}: no complete answer within {timeout_s} s", model=model.name
                ) from None
        text = "".join(pieces).strip()
        if not text:
            raise LLMResponseError(f"{model.name}: empty answer", model=model.name)
        total = time.perf_counter() - started
        return Answer(text, usage, name, model.name, first if first is not None else total, total)
