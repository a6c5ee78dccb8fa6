"""The model interface every provider implements: streamed text deltas, then usage."""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from timbridge.errors import LLMServerError
from timbridge.llm.tools import ToolCall, ToolSpec

__all__ = [
    "ChatMessage",
    "ChatModel",
    "Delta",
    "Image",
    "ModelConfig",
    "Source",
    "Usage",
    "cut_stream",
]

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class Source:
    """A passage of a knowledge base that a message quotes (`title`: where it comes from)."""

    title: str
    text: str
    score: float


@dataclass(frozen=True, slots=True)
class Image:
    """An image sent with a user message, for models that can see (``vision``)."""

    mime: str
    data: bytes

    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode()}"

    def base64(self) -> str:
        return base64.b64encode(self.data).decode()


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str
    #: The passages `content` quotes, for models that answer from them directly (offline).
    sources: tuple[Source, ...] = ()
    #: Images the user sent with this message (vision models only).
    images: tuple[Image, ...] = ()
    #: An assistant message: the tools it called (its `content` is what it said meanwhile).
    tool_calls: tuple[ToolCall, ...] = ()
    #: A ``tool`` message: the call it answers (its `content` is the tool's result).
    tool_call_id: str = ""
    #: A ``tool`` message: the tool's name (Gemini matches results by name); whether it failed.
    tool_name: str = ""
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """What every provider is built from (`llm.build` fills it from a model profile)."""

    model: str
    api_key: str
    base_url: str | None = None  # None: the provider's own endpoint
    timeout_s: float = 60.0  # per connect and per read, as httpx means it
    stream: bool = True
    max_tokens: int | None = None
    provider: str = "openai"  # the provider's name in the table, for logs and metrics
    max_connections: int = 1000
    cache_prompts: bool = True  # set prompt-cache breakpoints where the API takes them

    @property
    def name(self) -> str:
        return f"{self.provider}:{self.model}"


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0  # all of the prompt, cached or not
    output_tokens: int = 0
    #: Of `input_tokens`, those the provider read from its prompt cache (cheaper).
    cached_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of the answer (`text`); the tools the model calls, once each call is complete;
    or, last, the call's `usage`."""

    text: str = ""
    usage: Usage | None = None
    tool_calls: tuple[ToolCall, ...] = ()


class ChatModel(Protocol):
    """A model that answers a conversation. Implementations raise only `LLMError`s."""

    @property
    def name(self) -> str:
        """``provider:model``, for logs and metrics."""
        ...

    @property
    def supports_tools(self) -> bool:
        """Whether `stream` takes `tools` (a provider without function calling: False)."""
        ...

    def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncGenerator[Delta, None]:
        """The answer as it is generated; the last delta may carry `usage`. With `tools`, the
        model may answer with calls (`Delta.tool_calls`) instead of, or after, text."""
        ...

    async def aclose(self) -> None: ...


def cut_stream(provider: str, model: str) -> LLMServerError:
    """The error for a stream that ended without the provider's end marker (``[DONE]``, a
    finish reason, ``message_stop``): the connection was cut, so what arrived is not the whole
    answer. A server error, so it is retried when nothing was shown yet."""
    return LLMServerError(
        f"{provider}:{model}: the stream ended before the answer did (no end marker)",
        status=0,
        provider=provider,
        model=model,
    )
