"""The OpenAI-compatible provider, on the official ``openai`` SDK.

One provider serves every endpoint that speaks OpenAI's Chat Completions: OpenAI, DeepSeek,
MiniMax, Qwen (DashScope compatible mode), Moonshot, Ollama, vLLM. Streaming uses
``stream_options.include_usage`` so the last chunk carries the token usage. The SDK's own retries
are off: timeouts, retries and failover are the engine's (DESIGN.md §3 "Models").
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from timbridge.errors import LLMResponseError
from timbridge.llm.base import ChatMessage, Delta, Usage
from timbridge.llm.sdk import map_sdk_errors, sdk_client

__all__ = ["OpenAICompatible", "map_openai_errors"]


def map_openai_errors(provider: str, model: str) -> contextlib.AbstractContextManager[None]:
    """Translate the ``openai`` SDK's exceptions into the `LLMError` tree."""
    return map_sdk_errors(openai, openai.OpenAIError, provider, model)


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
        self._client = sdk_client(
            openai,
            openai.AsyncOpenAI,
            api_key=api_key,
            base_url=base_url,
            timeout_s=timeout_s,
            max_connections=max_connections,
        )

    @property
    def name(self) -> str:
        return f"{self._provider}:{self._model}"

    @property
    def base_url(self) -> str:
        return str(self._client.base_url)

    async def aclose(self) -> None:
        await self._client.close()

    def _request(self, messages: Sequence[ChatMessage]) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self._model,
            "messages": [{"role": m.role, "content": _content(m)} for m in messages],
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


def _content(message: ChatMessage) -> str | list[dict[str, Any]]:
    """Plain text, or text and images as content parts (the vision format)."""
    if not message.images:
        return message.content
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
    parts += [{"type": "image_url", "image_url": {"url": i.data_url()}} for i in message.images]
    return parts
