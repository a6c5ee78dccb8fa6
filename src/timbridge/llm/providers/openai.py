"""The OpenAI-compatible provider: Chat Completions over the process's own aiohttp session.

One provider serves every endpoint that speaks OpenAI's Chat Completions: OpenAI, DeepSeek,
MiniMax, Qwen (DashScope compatible mode), Moonshot, Ollama, vLLM. Streaming uses
``stream_options.include_usage`` so the last chunk carries the token usage. There are no retries
here: timeouts, retries and failover are the engine's (`timbridge.llm.chain.ModelChain`).

Why not the official SDK on this path: it costs ~1.35 ms of CPU per streamed call here, against
~0.12 ms for the same request on aiohttp (``bench/pipeline.py``'s profile; its aiohttp transport
is already in use, the cost is the SDK's own request and typed-response machinery), which alone
held ``serve`` under 400 replies/s. The wire protocol on this path is one POST and its
server-sent events, so this client speaks it directly. It sends the same JSON body and
credentials as the SDK and maps the same failures to the same errors
(``tests/test_openai_provider.py`` runs both against one fake server); ``client = "sdk"`` in a
model profile selects the SDK (`timbridge.llm.providers.openai_sdk`) instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from typing import Any

import aiohttp
import orjson

from timbridge._version import __version__
from timbridge.errors import LLMRateLimited, LLMResponseError, LLMServerError, LLMTimeout
from timbridge.http import BodyTooLarge, http_session, read_capped
from timbridge.llm.base import ChatMessage, Delta, ModelConfig, Usage, cut_stream
from timbridge.llm.tools import CallAssembler, ToolCall, ToolSpec

__all__ = ["DEFAULT_BASE_URL", "OpenAICompatible", "chat_request", "stream_fields"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_ERROR_BODY_LIMIT = 64 * 1024  # of an error answer, read for its message
#: The largest server-sent event accepted: a delta is a few tokens; far larger is not an answer.
MAX_EVENT_BYTES = 1024 * 1024


def chat_request(
    model: str,
    messages: Sequence[ChatMessage],
    max_tokens: int | None,
    tools: Sequence[ToolSpec] = (),
) -> dict[str, Any]:
    """The Chat Completions body for `messages` (without the streaming fields)."""
    request: dict[str, Any] = {"model": model, "messages": [_message_of(m) for m in messages]}
    if max_tokens is not None:
        request["max_tokens"] = max_tokens
    if tools:
        request["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": dict(t.parameters),
                },
            }
            for t in tools
        ]
    return request


def _message_of(message: ChatMessage) -> dict[str, Any]:
    """One message in OpenAI's shape: a tool result answers its call by id; an assistant
    message that called tools carries them, with its text (or null) as content."""
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.tool_calls:
        calls = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json()},
            }
            for call in message.tool_calls
        ]
        return {"role": "assistant", "content": message.content or None, "tool_calls": calls}
    return {"role": message.role, "content": _content(message)}


def stream_fields(request: dict[str, Any]) -> dict[str, Any]:
    """`request` asking for server-sent events, the last one carrying the usage."""
    return {**request, "stream": True, "stream_options": {"include_usage": True}}


def _content(message: ChatMessage) -> str | list[dict[str, Any]]:
    """Plain text, or text and images as content parts (the vision format)."""
    if not message.images:
        return message.content
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
    parts += [{"type": "image_url", "image_url": {"url": i.data_url()}} for i in message.images]
    return parts


class OpenAICompatible:
    """A `ChatModel` for any OpenAI-compatible endpoint."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self._base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._url = f"{self._base_url}/chat/completions"
        self._headers = {
            "Authorization": f"Bearer {config.api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"timbridge/{__version__}",
        }
        # httpx's meaning of a timeout, as the SDK has it: per connect and per read
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=config.timeout_s,
            sock_connect=config.timeout_s,
            sock_read=config.timeout_s,
        )
        self._session: aiohttp.ClientSession | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def base_url(self) -> str:
        return f"{self._base_url}/"

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _connected(self) -> aiohttp.ClientSession:
        """The provider's pooled session, made on first use (inside the running loop)."""
        if self._session is None:
            self._session = http_session(
                limit=self.config.max_connections, headers=self._headers, timeout=self._timeout
            )
        return self._session

    @contextlib.contextmanager
    def _mapped(self) -> Iterator[None]:
        """Transport failures as `LLMError`s (HTTP statuses are mapped where they are read)."""
        where = {"provider": self.config.provider, "model": self.config.model}
        try:
            yield
        except TimeoutError as exc:  # aiohttp's timeouts are TimeoutErrors too
            raise LLMTimeout(f"{self.name}: timed out", **where) from exc
        except BodyTooLarge as exc:  # a bomb, not a hiccup: no retry
            raise LLMResponseError(f"{self.name}: {exc}", **where) from exc
        except aiohttp.ClientError as exc:
            raise LLMServerError(
                f"{self.name}: connection failed ({type(exc).__name__})", status=0, **where
            ) from exc
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise LLMResponseError(f"{self.name}: malformed answer ({exc})", **where) from exc

    #: Whether `stream` takes tools (function calling).
    supports_tools = True

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncGenerator[Delta, None]:
        request = chat_request(self.config.model, messages, self.config.max_tokens, tools)
        body = orjson.dumps(stream_fields(request) if self.config.stream else request)
        with self._mapped():
            # no redirect: following one would hand the API key to whichever host it names
            async with self._connected().post(
                self._url, data=body, allow_redirects=False
            ) as response:
                if response.status != 200:  # a redirect too: it is not followed
                    await self._refuse(response)
                answer = self._streamed if self.config.stream else self._whole
                async for delta in answer(response):
                    yield delta

    async def _whole(self, response: aiohttp.ClientResponse) -> AsyncIterator[Delta]:
        answer = orjson.loads(await response.read())
        choices = answer.get("choices") or []
        if not choices:
            raise self._malformed("answer has no choices")
        message = choices[0]["message"]
        yield Delta(text=message.get("content") or "")
        if calls := _tool_calls(message.get("tool_calls")):
            yield Delta(tool_calls=calls)
        usage = _usage(answer.get("usage"))
        if usage is not None:
            yield Delta(usage=usage)

    async def _streamed(self, response: aiohttp.ClientResponse) -> AsyncIterator[Delta]:
        finished = False
        assembler = CallAssembler()
        async for data in _events(response.content, self._malformed):
            if data == b"[DONE]":
                finished = True
                break
            chunk = orjson.loads(data)
            if chunk.get("error"):  # some servers report failures as an event
                raise self._malformed(_message(chunk))
            choices = chunk.get("choices")
            delta = (choices[0].get("delta") or {}) if choices else {}
            if text := delta.get("content"):
                yield Delta(text=text)
            for piece in delta.get("tool_calls") or ():  # a call's id and name, then its args
                function = piece.get("function") or {}
                assembler.add(
                    int(piece.get("index", 0)),
                    piece.get("id"),
                    function.get("name"),
                    function.get("arguments") or "",
                )
            if choices and choices[0].get("finish_reason"):
                finished = True
                if calls := assembler.calls():
                    yield Delta(tool_calls=calls)
            usage = _usage(chunk.get("usage"))
            if usage is not None:
                yield Delta(usage=usage)
        if not finished:
            raise cut_stream(self.config.provider, self.config.model)

    def _malformed(self, what: str) -> LLMResponseError:
        return LLMResponseError(
            f"{self.name}: {what}", provider=self.config.provider, model=self.config.model
        )

    async def _refuse(self, response: aiohttp.ClientResponse) -> None:
        """Raise the `LLMError` for an error status, with the server's own message."""
        where = {"provider": self.config.provider, "model": self.config.model}
        status = response.status
        try:
            body = await read_capped(response, _ERROR_BODY_LIMIT)
            message = _message(orjson.loads(body)) if body else response.reason or ""
        except (orjson.JSONDecodeError, aiohttp.ClientError, TimeoutError):
            message = response.reason or ""
        if status == 429:
            raise LLMRateLimited(
                f"{self.name}: rate limited (429)",
                retry_after=_retry_after(response.headers),
                **where,
            )
        if status >= 500:
            raise LLMServerError(f"{self.name}: HTTP {status}", status=status, **where)
        raise LLMResponseError(f"{self.name}: HTTP {status}: {message}", **where)


async def _lines(content: aiohttp.StreamReader, too_long: Any) -> AsyncIterator[bytes]:
    """The lines of `content`, each at most `MAX_EVENT_BYTES` (else `too_long(what)` is raised):
    aiohttp's own line reader fails on a line over 128 KiB with a bare ValueError."""
    pending = bytearray()
    async for chunk in content.iter_any():
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            yield bytes(pending[start:end])
            start = end + 1
        del pending[:start]
        if len(pending) > MAX_EVENT_BYTES:
            raise too_long(f"a stream line over {MAX_EVENT_BYTES} bytes")
    if pending:
        yield bytes(pending)


async def _events(content: aiohttp.StreamReader, too_long: Any) -> AsyncIterator[bytes]:
    """The ``data`` of each server-sent event (lines joined with newlines, per the standard)."""
    data: list[bytes] = []
    size = 0
    async for raw in _lines(content, too_long):
        line = raw.rstrip(b"\r")
        if not line:
            if data:
                yield b"\n".join(data)
                data, size = [], 0
        elif line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
            size += len(line)
            if size > MAX_EVENT_BYTES:
                raise too_long(f"a stream event over {MAX_EVENT_BYTES} bytes")
    if data:
        yield b"\n".join(data)


def _tool_calls(found: Any) -> tuple[ToolCall, ...]:
    """The calls of a whole (not streamed) assistant message."""
    calls = CallAssembler()
    for index, call in enumerate(found or ()):
        function = call.get("function") or {}
        calls.add(index, call.get("id"), function.get("name"), function.get("arguments") or "")
    return calls.calls()


def _usage(found: Any) -> Usage | None:
    if not isinstance(found, dict):
        return None
    return Usage(
        int(found.get("prompt_tokens") or 0),
        int(found.get("completion_tokens") or 0),
        cached_tokens(found),
    )


def cached_tokens(usage: Any) -> int:
    """The cached prompt tokens an OpenAI-style usage object reports: OpenAI's
    ``prompt_tokens_details.cached_tokens``, or DeepSeek's ``prompt_cache_hit_tokens``."""
    details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
    found = details.get("cached_tokens") if isinstance(details, dict) else None
    if found is None and isinstance(usage, dict):
        found = usage.get("prompt_cache_hit_tokens")
    return int(found or 0) if isinstance(found, int | float) else 0


def _message(body: Any) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the body itself, shortened."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return str(error or body)[:300]


def _retry_after(headers: Any) -> float | None:
    """The server's wait hint: ``retry-after-ms`` (OpenAI) or ``Retry-After`` in seconds."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) * scale
        except ValueError:
            continue
    return None
