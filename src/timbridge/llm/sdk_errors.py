"""Translating the vendors' SDK exceptions into the `LLMError` tree.

The official ``openai`` and ``anthropic`` SDKs share one exception design (``APITimeoutError``,
``RateLimitError``, ``APIStatusError``, ``APIConnectionError`` under a base error), so one
mapping serves both; a 529 "overloaded" counts as a server error, as it is one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType

from timbridge.errors import LLMRateLimited, LLMResponseError, LLMServerError, LLMTimeout

__all__ = ["map_sdk_errors"]


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


@contextlib.contextmanager
def map_sdk_errors(
    sdk: ModuleType, base: type[Exception], provider: str, model: str
) -> Iterator[None]:
    """Raise the matching `LLMError` for an exception of `sdk` (whose root class is `base`)."""
    where = {"provider": provider, "model": model}
    name = f"{provider}:{model}"
    try:
        yield
    except sdk.APITimeoutError as exc:
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
        raise LLMServerError(f"{name}: connection failed", status=0, **where) from exc
    except base as exc:
        raise LLMResponseError(f"{name}: {exc}", **where) from exc
