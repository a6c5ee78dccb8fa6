"""The OpenAI-compatible provider on the official ``openai`` SDK (``client = "sdk"``).

The same requests as `timbridge.llm.providers.openai.OpenAICompatible` (the default), through the
SDK and its aiohttp transport: for endpoints that need what only the SDK does. It costs about ten
times the CPU per call (see that module). The SDK's own retries are off: timeouts, retries and
failover are the engine's (`timbridge.llm.chain.ModelChain`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Sequence

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from timbridge.errors import LLMResponseError
from timbridge.llm.base import ChatMessage, Delta, ModelConfig, Usage, cut_stream
from timbridge.llm.providers.openai import cached_tokens, chat_request, stream_fields
from timbridge.llm.providers.sdk import map_sdk_errors, sdk_client
from timbridge.llm.tools import CallAssembler, ToolSpec

__all__ = ["OpenAISDK", "map_openai_errors"]


def map_openai_errors(provider: str, model: str) -> contextlib.AbstractContextManager[None]:
    """Translate the ``openai`` SDK's exceptions into the `LLMError` tree."""
    return map_sdk_errors(openai, openai.OpenAIError, provider, model)


class OpenAISDK:
    """A `ChatModel` for any OpenAI-compatible endpoint, on the ``openai`` SDK."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self._client = sdk_client(openai, openai.AsyncOpenAI, self.config)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def base_url(self) -> str:
        return str(self._client.base_url)

    async def aclose(self) -> None:
        await self._client.close()

    #: Whether `stream` takes tools (function calling).
    supports_tools = True

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncGenerator[Delta, None]:
        request = chat_request(self.config.model, messages, self.config.max_tokens, tools)
        # The SDK's typed `chat.completions.create` re-walks every message through its
        # TypedDict transform (measured ~10 ms a call with 20 turns); the body built here is
        # already wire-ready, so it goes through the SDK's own low-level `post` instead, which
        # keeps the SDK's auth, errors and stream parsing.
        with map_openai_errors(self.config.provider, self.config.model):
            if not self.config.stream:
                # the SDK hands back a str when the body is not JSON
                completion: object = await self._client.post(
                    "/chat/completions", body=request, cast_to=ChatCompletion
                )
                if not isinstance(completion, ChatCompletion) or not completion.choices:
                    raise LLMResponseError(
                        f"{self.name}: answer is not a completion with choices",
                        provider=self.config.provider,
                        model=self.config.model,
                    )
                message = completion.choices[0].message
                whole = CallAssembler()
                for index, call in enumerate(message.tool_calls or ()):
                    function = getattr(call, "function", None)
                    if function is not None:
                        whole.add(index, call.id, function.name, function.arguments or "")
                yield Delta(text=message.content or "", tool_calls=whole.calls())
                if completion.usage is not None:
                    yield Delta(
                        usage=Usage(
                            completion.usage.prompt_tokens,
                            completion.usage.completion_tokens,
                            cached_tokens(completion.usage.model_dump()),
                        )
                    )
                return
            chunks = await self._client.post(
                "/chat/completions",
                body=stream_fields(request),
                cast_to=ChatCompletionChunk,
                stream=True,
                stream_cls=openai.AsyncStream[ChatCompletionChunk],
            )
            finished = False
            assembler = CallAssembler()
            async for chunk in chunks:
                delta = chunk.choices[0].delta if chunk.choices else None
                if delta is not None and delta.content:
                    yield Delta(text=delta.content)
                for piece in (delta.tool_calls or ()) if delta is not None else ():
                    name = piece.function.name if piece.function else None
                    arguments = (piece.function.arguments if piece.function else None) or ""
                    assembler.add(piece.index, piece.id, name, arguments)
                if chunk.choices and chunk.choices[0].finish_reason:
                    finished = True
                    if calls := assembler.calls():
                        yield Delta(tool_calls=calls)
                if chunk.usage is not None:
                    yield Delta(
                        usage=Usage(
                            chunk.usage.prompt_tokens,
                            chunk.usage.completion_tokens,
                            cached_tokens(chunk.usage.model_dump()),
                        )
                    )
            if not finished:
                raise cut_stream(self.config.provider, self.config.model)
