"""Google Gemini through the official ``google-genai`` SDK (Gemini API: ``generateContent`` /
``streamGenerateContent?alt=sse``), streamed. The SDK's own retries are off: the engine retries
and fails over. System messages become ``system_instruction``; assistant turns the ``model``
role. A 429 becomes `LLMRateLimited` with the ``RetryInfo`` delay when the server gives one.
Tools are function declarations (their JSON Schema as ``parametersJsonSchema``); calls come back
whole as ``functionCall`` parts, and their results go back in one user turn as
``functionResponse`` parts (``{"result": ...}`` or ``{"error": ...}``), matched by name and id.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import aiohttp

from timbridge.errors import (
    LLMError,
    LLMRateLimited,
    LLMResponseError,
    LLMServerError,
    LLMTimeout,
)
from timbridge.http import BodyTooLarge, http_session
from timbridge.llm.base import ChatMessage, Delta, ModelConfig, Usage, cut_stream
from timbridge.llm.tools import MAX_CALLS_PER_STEP, ToolCall, ToolSpec

__all__ = ["Gemini"]

_DELAY = re.compile(r"^(\d+(?:\.\d+)?)s$")


def _retry_delay(details: Any) -> float | None:
    """The ``google.rpc.RetryInfo`` delay ("2s") in an error body, if there is one."""
    error = details.get("error", {}) if isinstance(details, dict) else {}
    for item in error.get("details") or []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("RetryInfo"):
            found = _DELAY.match(str(item.get("retryDelay", "")))
            if found:
                return float(found.group(1))
    return None


class Gemini:
    """A `ChatModel` on the Gemini API."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        from google import genai  # noqa: PLC0415 - only when a Gemini profile is configured
        from google.genai import errors, types  # noqa: PLC0415

        self._genai = genai
        self._types = types
        self._errors = errors
        self._session: aiohttp.ClientSession | None = None
        self._client: Any = None

    def _connected(self) -> Any:
        """The SDK client on our own aiohttp session (sized, closed by us), made in the loop."""
        if self._client is None:
            self._session = http_session(limit=self.config.max_connections)
            options = self._types.HttpOptions(
                base_url=self.config.base_url,
                timeout=int(self.config.timeout_s * 1000),
                retry_options=self._types.HttpRetryOptions(attempts=1),
                aiohttp_client=self._session,
            )
            self._client = self._genai.Client(api_key=self.config.api_key, http_options=options)
        return self._client

    @property
    def name(self) -> str:
        return self.config.name

    def _parts(self, message: ChatMessage) -> list[Any]:
        types = self._types
        if message.role == "tool":
            outcome = "error" if message.is_error else "result"
            response = types.FunctionResponse(
                id=message.tool_call_id or None,
                name=message.tool_name,
                response={outcome: message.content},
            )
            return [types.Part(function_response=response)]
        parts = [types.Part.from_bytes(data=i.data, mime_type=i.mime) for i in message.images]
        if message.content or not message.tool_calls:
            parts.append(types.Part(text=message.content))
        parts += [
            types.Part(
                function_call=types.FunctionCall(
                    id=call.id or None, name=call.name, args=dict(call.arguments)
                )
            )
            for call in message.tool_calls
        ]
        return parts

    def _request(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]
    ) -> tuple[list[Any], Any]:
        types = self._types
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        contents: list[Any] = []
        for message in messages:
            if message.role == "system":
                continue
            role = "model" if message.role == "assistant" else "user"
            parts = self._parts(message)
            if (
                message.role == "tool"
                and contents
                and contents[-1].role == "user"
                and all(p.function_response is not None for p in contents[-1].parts)
            ):  # the results of one step travel together
                contents[-1].parts.extend(parts)
            else:
                contents.append(types.Content(role=role, parts=parts))
        declarations = [
            types.FunctionDeclaration(
                name=t.name, description=t.description, parameters_json_schema=dict(t.parameters)
            )
            for t in tools
        ]
        config = types.GenerateContentConfig(
            system_instruction=system or None,
            max_output_tokens=self.config.max_tokens,
            tools=[types.Tool(function_declarations=declarations)] if declarations else None,
        )
        return contents, config

    #: Whether `stream` takes tools (function calling).
    supports_tools = True

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncGenerator[Delta, None]:
        contents, config = self._request(messages, tools)
        usage = Usage()
        models = self._connected().aio.models
        try:
            if self.config.stream:
                chunks = await models.generate_content_stream(
                    model=self.config.model, contents=contents, config=config
                )
                finished = False
                async for chunk in chunks:
                    text = _text(chunk)
                    if text:
                        yield Delta(text=text)
                    if calls := _calls(chunk):
                        yield Delta(tool_calls=calls)
                    usage = _usage(chunk) or usage
                    finished = finished or _finished(chunk)
                if not finished:
                    raise cut_stream("gemini", self.config.model)
            else:
                reply = await models.generate_content(
                    model=self.config.model, contents=contents, config=config
                )
                yield Delta(text=_text(reply), tool_calls=_calls(reply))
                usage = _usage(reply) or usage
        except self._errors.APIError as exc:
            raise self._mapped(exc) from exc
        except TimeoutError as exc:
            raise LLMTimeout(f"{self.name}: timed out", **self._where) from exc
        except BodyTooLarge as exc:
            raise LLMResponseError(f"{self.name}: {exc}", **self._where) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise LLMServerError(
                f"{self.name}: connection failed: {exc}", status=0, **self._where
            ) from exc
        except ValueError as exc:  # a malformed stream
            raise LLMResponseError(f"{self.name}: {exc}", **self._where) from exc
        yield Delta(usage=usage)

    @property
    def _where(self) -> dict[str, str]:
        return {"provider": "gemini", "model": self.config.model}

    def _mapped(self, exc: Any) -> LLMError:
        code = int(getattr(exc, "code", 0) or 0)
        message = getattr(exc, "message", "") or str(exc)
        if code == 429:
            return LLMRateLimited(
                f"{self.name}: rate limited (429)",
                retry_after=_retry_delay(getattr(exc, "details", None)),
                **self._where,
            )
        if code >= 500:
            return LLMServerError(f"{self.name}: HTTP {code}", status=code, **self._where)
        return LLMResponseError(f"{self.name}: HTTP {code}: {message}", **self._where)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aio.aclose()
        if self._session is not None:
            await self._session.close()


def _text(response: Any) -> str:
    """The text parts of a response's first candidate (``.text`` warns on other parts)."""
    candidates = getattr(response, "candidates", None) or []
    if not candidates or candidates[0].content is None:
        return ""
    return "".join(part.text for part in candidates[0].content.parts or [] if part.text)


def _calls(response: Any) -> tuple[ToolCall, ...]:
    """The function calls of a response's first candidate (Gemini sends each one whole)."""
    candidates = getattr(response, "candidates", None) or []
    if not candidates or candidates[0].content is None:
        return ()
    found = [p.function_call for p in candidates[0].content.parts or [] if p.function_call]
    return tuple(
        ToolCall.parsed(
            call.id or f"{call.name}_{index}", call.name or "", json.dumps(call.args or {})
        )
        for index, call in enumerate(found[:MAX_CALLS_PER_STEP])
    )


def _finished(response: Any) -> bool:
    """Whether a streamed chunk ends the answer (its candidate carries a finish reason)."""
    candidates = getattr(response, "candidates", None) or []
    return bool(candidates) and candidates[0].finish_reason is not None


def _usage(response: Any) -> Usage | None:
    meta = getattr(response, "usage_metadata", None)
    if meta is None:
        return None
    return Usage(
        input_tokens=int(meta.prompt_token_count or 0),
        output_tokens=int(meta.candidates_token_count or 0),
        cached_tokens=int(getattr(meta, "cached_content_token_count", 0) or 0),
    )
