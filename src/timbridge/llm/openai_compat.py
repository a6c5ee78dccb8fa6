"""The OpenAI-compatible provider, on the official ``openai`` SDK.

One provider serves every endpoint that speaks OpenAI's Chat Completions: OpenAI, DeepSeek,
MiniMax, Qwen (DashScope compatible mode), Moonshot, Ollama, vLLM. Streaming uses
``stream_options.include_usage`` so the last chunk carries the token usage. The SDK's own retries
are off: timeouts, retries and failover are the engine's (DESIGN.md §3 "Models").
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx2
import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from timbridge.errors import LLMRateLimited, LLMResponseError, LLMServerError, LLMTimeout
from timbridge.llm.base import ChatMessage, Delta, Usage

__all__ = ["OpenAICompatible", "map_openai_errors"]


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


@contextlib.contextmanager
def map_openai_errors(provider: str, model: str) -> Iterator[None]:
    """Translate the SDK's exceptions into the `LLMError` tree."""
    where = {"provider": provider, "model": model}
    try:
        yield
    except openai.APITimeoutError as exc:
        raise LLMTimeout(f"{provider}:{model}: timed out", **where) from exc
    except openai.RateLimitError as exc:
        raise LLMRateLimited(
            f"{provider}:{model}: rate limited (429)", retry_after=_retry_after(exc), **where
        ) from exc
    except openai.APIStatusError as exc:
        if exc.status_code >= 500:
            raise LLMServerError(
                f"{provider}:{model}: HTTP {exc.status_code}", status=exc.status_code, **where
            ) from exc
        raise LLMResponseError(
            f"{provider}:{model}: HTTP {exc.status_code}: {exc.message}", **where
        ) from exc
    except openai.APIConnectionError as exc:
        raise LLMServerError(f"{provider}:{model}: connection failed", status=0, **where) from exc
    except openai.OpenAIError as exc:
        raise LLMResponseError(f"{provider}:{model}: {exc}", **where) from exc


class OpenAICompatible:
    """A `ChatModel` for any OpenAI-compatible endpoint."""

    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        base_url: str | None,
        timeout_s: float,
        stream: bool = True,
        max_tokens: int | None = None,
        provider: str = "openai",
        max_connections: int = 1000,
    ) -> None:
        self._model = model
        self._provider = provider
        self._stream = stream
        self._max_tokens = max_tokens
        # The SDK's aiohttp transport (aiohttp measured ~8x httpx here), its pool sized to
        # the number of model calls that may be in flight.
        http_client = openai.DefaultAioHttpClient(
            limits=httpx2.Limits(
                max_connections=max_connections,
                max_keepalive_connections=min(max_connections, 256),
            ),
            timeout=timeout_s,
        )
        self._client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout_s,
            max_retries=0,
            http_client=http_client,
        )

    @property
    def name(self) -> str:
        return f"{self._provider}:{self._model}"

    async def aclose(self) -> None:
        await self._client.close()

    def _request(self, messages: Sequence[ChatMessage]) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self._model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
        }
        if self._max_tokens is not None:
            request["max_tokens"] = self._max_tokens
        return request

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[Delta]:
        request = self._request(messages)
        # The SDK's typed `chat.completions.create` re-walks every message through its
        # TypedDict transform (measured ~10 ms a call with 20 turns); the body built here is
        # already wire-ready, so it goes through the SDK's own low-level `post` instead, which
        # keeps the SDK's auth, errors and stream parsing.
        with map_openai_errors(self._provider, self._model):
            if not self._stream:
                completion = await self._client.post(
                    "/chat/completions", body=request, cast_to=ChatCompletion
                )
                if not completion.choices:
                    raise LLMResponseError(
                        f"{self.name}: answer has no choices",
                        provider=self._provider,
                        model=self._model,
                    )
                yield Delta(text=completion.choices[0].message.content or "")
                if completion.usage is not None:
                    yield Delta(
                        usage=Usage(
                            completion.usage.prompt_tokens, completion.usage.completion_tokens
                        )
                    )
                return
            chunks = await self._client.post(
                "/chat/completions",
                body={**request, "stream": True, "stream_options": {"include_usage": True}},
                cast_to=ChatCompletionChunk,
                stream=True,
                stream_cls=openai.AsyncStream[ChatCompletionChunk],
            )
            async for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield Delta(text=chunk.choices[0].delta.content)
                if chunk.usage is not None:
                    yield Delta(
                        usage=Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                    )
