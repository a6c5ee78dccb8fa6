"""What the vendors' official SDKs share: their aiohttp transport, and their exceptions.

The ``openai`` and ``anthropic`` SDKs are built alike: both ship an aiohttp transport
(``DefaultAioHttpClient``; aiohttp measured ~8x httpx here) and one exception design
(``APITimeoutError``, ``RateLimitError``, ``APIStatusError``, ``APIConnectionError`` under a base
error). So one transport builder and one error mapping serve both; a 529 "overloaded" counts as
a server error, as it is one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any, TypeVar

import aiohttp
import httpx2

from timbridge.errors import LLMRateLimited, LLMResponseError, LLMServerError, LLMTimeout
from timbridge.http import DEFAULT_BODY_LIMIT, BodyTooLarge, capped_decoding
from timbridge.llm.base import ModelConfig

T = TypeVar("T")

__all__ = ["aiohttp_client", "map_sdk_errors", "sdk_client"]


def aiohttp_client(sdk: ModuleType, *, max_connections: int, timeout_s: float) -> Any:
    """The SDK's aiohttp-backed HTTP client, its pool sized to the calls that may be in flight,
    its decoded bodies capped (`capped_decoding`), and redirects not followed: a model API does
    not redirect, and following one would send the API key to whoever it names."""
    limits = httpx2.Limits(
        max_connections=max_connections, max_keepalive_connections=min(max_connections, 256)
    )
    return sdk.DefaultAioHttpClient(
        limits=limits,
        timeout=timeout_s,
        follow_redirects=False,
        event_hooks={"response": [capped_decoding(DEFAULT_BODY_LIMIT)]},
    )


def sdk_client(sdk: ModuleType, client_class: type[T], config: ModelConfig) -> T:
    """An SDK client for `config` on its aiohttp transport, with the SDK's own retries off
    (the engine retries and fails over)."""
    transport = aiohttp_client(
        sdk, max_connections=config.max_connections, timeout_s=config.timeout_s
    )
    # both SDK client classes take these keywords; a generic type[T] cannot say so
    return client_class(  # type: ignore[call-arg]
        api_key=config.api_key,
        base_url=config.base_url,
        timeout=config.timeout_s,
        max_retries=0,
        http_client=transport,
    )


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _too_large(exc: BaseException) -> BodyTooLarge | None:
    """The `BodyTooLarge` behind `exc`, which the SDKs wrap as a connection error."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, BodyTooLarge):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _refused(exc: BaseException) -> bool:
    """Whether a "timeout" is really a refused connection: the SDKs' aiohttp transport reports
    every aiohttp connection error as a connect timeout."""
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, aiohttp.ClientConnectorError) and not isinstance(cause, TimeoutError):
            return True
        cause = cause.__cause__
    return False


@contextlib.contextmanager
def map_sdk_errors(
    sdk: ModuleType, base: type[Exception], provider: str, model: str
) -> Iterator[None]:
    """Raise the matching `LLMError` for an exception of `sdk` (whose root class is `base`)."""
    where = {"provider": provider, "model": model}
    name = f"{provider}:{model}"
    try:
        yield
    except BodyTooLarge as exc:
        raise LLMResponseError(f"{name}: {exc}", **where) from exc
    except sdk.APITimeoutError as exc:
        if _refused(exc):
            raise LLMServerError(f"{name}: connection failed", status=0, **where) from exc
        raise LLMTimeout(f"{name}: timed out", **where) from exc
    except sdk.RateLimitError as exc:
        raise LLMRateLimited(
            f"{name}: rate limited (429)", retry_after=_retry_after(exc), **where
        ) from exc
    except sdk.APIStatusError as exc:
        status = int(exc.status_code)
        if status >= 500:
            raise LLMServerError(f"{name}: HTTP {status}", status=status, **where) from exc
        raise LLMResponseError(f"{name}: HTTP {status}: {exc.message}", **where) from exc
    except sdk.APIConnectionError as exc:
        if (too_large := _too_large(exc)) is not None:
            raise LLMResponseError(f"{name}: {too_large}", **where) from exc
        raise LLMServerError(f"{name}: connection failed", status=0, **where) from exc
    except base as exc:
        raise LLMResponseError(f"{name}: {exc}", **where) from exc
