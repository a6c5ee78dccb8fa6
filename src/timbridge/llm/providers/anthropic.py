"""The Anthropic provider: the Messages API on the official ``anthropic`` SDK, streaming.

The persona goes into ``system``; the conversation must open with a user turn (older assistant
turns cut by the budget are dropped), and consecutive turns of one role are merged, as the API
expects alternating roles. ``max_tokens`` is required by the API: 1024 when the profile sets none.
Usage comes from ``message_start`` (input) and ``message_delta`` (output). The SDK's retries are
off: the engine retries and fails over.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import replace
from typing import Any

import anthropic

from timbridge.errors import LLMResponseError
from timbridge.llm.base import ChatMessage, Delta, ModelConfig, Usage, cut_stream
from timbridge.llm.providers.sdk import map_sdk_errors, sdk_client
from timbridge.llm.tools import ToolSpec

__all__ = ["DEFAULT_MAX_TOKENS", "AnthropicMessages", "to_anthropic"]

DEFAULT_MAX_TOKENS = 1024


def to_anthropic(messages: Sequence[ChatMessage]) -> tuple[str, list[dict[str, Any]]]:
    """``(system, messages)`` in the Messages API's shape."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        if not turns and message.role == "assistant":
            continue  # the API wants the first turn to be the user's
        if message.images:  # content blocks: the images, then the text
            blocks: list[dict[str, Any]] = [
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": i.mime, "data": i.base64()},
                }
                for i in message.images
            ]
            turns.append(
                {
                    "role": message.role,
                    "content": [*blocks, {"type": "text", "text": message.content}],
                }
            )
        elif turns and turns[-1]["role"] == message.role and isinstance(turns[-1]["content"], str):
            turns[-1]["content"] += "\n\n" + message.content
        else:
            turns.append({"role": message.role, "content": message.content})
    return system, turns


class AnthropicMessages:
    """A `ChatModel` for Anthropic's Messages API (or a compatible endpoint)."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = replace(config, max_tokens=config.max_tokens or DEFAULT_MAX_TOKENS)
        self._client = sdk_client(anthropic, anthropic.AsyncAnthropic, self.config)

    @property
    def name(self) -> str:
        return self.config.name

    async def aclose(self) -> None:
        await self._client.close()

    @property
    def supports_tools(self) -> bool:
        return False

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncGenerator[Delta, None]:
        system, turns = to_anthropic(messages)
        request: dict[str, Any] = {
            "model": self.config.model,
            "max_tokens": self.config.max_tokens,
            "messages": turns,
        }
        if system:
            request["system"] = system
        with map_sdk_errors(anthropic, anthropic.AnthropicError, "anthropic", self.config.model):
            if not self.config.stream:
                message = await self._client.messages.create(**request)
                text = "".join(b.text for b in message.content if b.type == "text")
                if not text and message.stop_reason == "refusal":
                    raise LLMResponseError(
                        f"{self.name}: the model refused",
                        provider="anthropic",
                        model=self.config.model,
                    )
                yield Delta(text=text)
                yield Delta(usage=Usage(message.usage.input_tokens, message.usage.output_tokens))
                return
            input_tokens = output_tokens = 0
            finished = False
            events = await self._client.messages.create(**request, stream=True)
            async for event in events:
                if event.type == "message_stop":
                    finished = True
                elif event.type == "message_start":
                    input_tokens = event.message.usage.input_tokens
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    yield Delta(text=event.delta.text)
                elif event.type == "message_delta":
                    output_tokens = event.usage.output_tokens
            if not finished:
                raise cut_stream("anthropic", self.config.model)
            yield Delta(usage=Usage(input_tokens, output_tokens))
