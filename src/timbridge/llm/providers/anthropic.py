"""The Anthropic provider: the Messages API on the official ``anthropic`` SDK, streaming.

The persona goes into ``system``; the conversation must open with a user turn (older assistant
turns cut by the budget are dropped), and consecutive turns of one role are merged, as the API
expects alternating roles. ``max_tokens`` is required by the API: 1024 when the profile sets none.
Tools go as ``tools`` with ``input_schema``; calls come back as ``tool_use`` blocks (streamed as
``input_json_delta`` fragments), and their results go back in the user's turn as ``tool_result``.
Usage comes from ``message_start`` (input) and ``message_delta`` (output). The SDK's retries are
off: the engine retries and fails over.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence
from dataclasses import replace
from typing import Any

import anthropic

from timbridge.errors import LLMResponseError
from timbridge.llm.base import ChatMessage, Delta, ModelConfig, Usage, cut_stream
from timbridge.llm.providers.sdk import map_sdk_errors, sdk_client
from timbridge.llm.tools import CallAssembler, ToolCall, ToolSpec

__all__ = ["DEFAULT_MAX_TOKENS", "AnthropicMessages", "to_anthropic"]

DEFAULT_MAX_TOKENS = 1024


def _blocks(message: ChatMessage) -> str | list[dict[str, Any]]:
    """A message's content: plain text, or blocks (images, tool calls, tool results)."""
    if message.role == "tool":
        result = {"type": "tool_result", "tool_use_id": message.tool_call_id}
        result["content"] = message.content
        return [result | ({"is_error": True} if message.is_error else {})]
    if message.tool_calls:
        text = [{"type": "text", "text": message.content}] if message.content else []
        return text + [
            {"type": "tool_use", "id": c.id, "name": c.name, "input": dict(c.arguments)}
            for c in message.tool_calls
        ]
    if message.images:  # the images, then the text
        images: list[dict[str, Any]] = [
            {
                "type": "image",
                "source": {"type": "base64", "media_type": i.mime, "data": i.base64()},
            }
            for i in message.images
        ]
        return [*images, {"type": "text", "text": message.content}]
    return message.content


def _as_blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def to_anthropic(messages: Sequence[ChatMessage]) -> tuple[str, list[dict[str, Any]]]:
    """``(system, messages)`` in the Messages API's shape: tool results travel in the user's
    turn, and consecutive turns of one role are merged."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "user" if message.role == "tool" else message.role
        if not turns and role == "assistant":
            continue  # the API wants the first turn to be the user's
        content = _blocks(message)
        if turns and turns[-1]["role"] == role:
            previous = turns[-1]["content"]
            if isinstance(previous, str) and isinstance(content, str):
                turns[-1]["content"] = previous + "\n\n" + content
            else:
                turns[-1]["content"] = _as_blocks(previous) + _as_blocks(content)
        else:
            turns.append({"role": role, "content": content})
    return system, turns


_EPHEMERAL = {"type": "ephemeral"}


def _cache_breakpoints(request: dict[str, Any]) -> None:
    """Two of the four prompt-cache breakpoints Anthropic allows: after the system prompt, and
    after the newest turn, so that the next request of the conversation, which starts with all
    of this one, reads it from the cache. A prefix under the model's minimum (1 024 tokens for
    most) is simply not cached, at no cost."""
    if system := request.get("system"):
        request["system"] = [{"type": "text", "text": system, "cache_control": _EPHEMERAL}]
    turns = request["messages"]
    if turns:
        last = turns[-1]
        blocks = [dict(block) for block in _as_blocks(last["content"])]
        if blocks:
            blocks[-1]["cache_control"] = _EPHEMERAL
            turns[-1] = {**last, "content": blocks}


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

    #: Whether `stream` takes tools (function calling).
    supports_tools = True

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
        if self.config.cache_prompts:
            _cache_breakpoints(request)
        if tools:
            request["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)}
                for t in tools
            ]
        with map_sdk_errors(anthropic, anthropic.AnthropicError, "anthropic", self.config.model):
            if not self.config.stream:
                message = await self._client.messages.create(**request)
                text = "".join(b.text for b in message.content if b.type == "text")
                calls = tuple(
                    ToolCall.parsed(b.id, b.name, json.dumps(b.input))
                    for b in message.content
                    if b.type == "tool_use"
                )
                if not text and message.stop_reason == "refusal":
                    raise LLMResponseError(
                        f"{self.name}: the model refused",
                        provider="anthropic",
                        model=self.config.model,
                    )
                yield Delta(text=text, tool_calls=calls)
                yield Delta(usage=_usage(message.usage, message.usage.output_tokens))
                return
            async for delta in self._streamed(request):
                yield delta

    async def _streamed(self, request: dict[str, Any]) -> AsyncGenerator[Delta, None]:
        started: Any = None
        output_tokens = 0
        finished = False
        assembler = CallAssembler()
        events = await self._client.messages.create(**request, stream=True)
        async for event in events:
            if event.type == "message_stop":
                finished = True
            elif event.type == "message_start":
                started = event.message.usage
            elif event.type == "content_block_start" and event.content_block.type == "tool_use":
                block = event.content_block
                assembler.add(event.index, block.id, block.name, "")
            elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                yield Delta(text=event.delta.text)
            elif event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                assembler.add(event.index, None, None, event.delta.partial_json)
            elif event.type == "message_delta":
                output_tokens = event.usage.output_tokens
        if not finished:
            raise cut_stream("anthropic", self.config.model)
        if calls := assembler.calls():
            yield Delta(tool_calls=calls)
        yield Delta(usage=_usage(started, output_tokens))


def _usage(found: Any, output_tokens: int) -> Usage:
    """Anthropic counts the prompt in three parts: uncached ``input_tokens``, tokens written
    to the cache and tokens read from it; the prompt is all three, the cached part the last."""
    if found is None:
        return Usage(0, output_tokens)
    read = int(getattr(found, "cache_read_input_tokens", 0) or 0)
    written = int(getattr(found, "cache_creation_input_tokens", 0) or 0)
    return Usage(int(found.input_tokens or 0) + read + written, output_tokens, read)
