"""The process's secrets, kept out of every text that leaves it.

A provider's 401 page may echo the API key it was sent; a database driver's error may quote the
URL with its password. Whatever the source, the configured secrets (`Settings.secrets`: the
Tencent secret key, the callback token, each model profile's API key, passwords in store and
coordination URLs) are registered once at start, and every log line, every `check` result and
every command error passes through `redact`, which replaces them with ``[redacted]``.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["REDACTED", "mask", "public_url", "redact", "redact_event", "remember"]

REDACTED = "[redacted]"
_MIN_LENGTH = 6  # shorter values would redact ordinary words: "secret", "123"
_MAX_SECRETS = 64

_secrets: list[str] = []  # longest first, so that a secret containing another goes whole


def remember(values: Iterable[str | None]) -> None:
    """Add `values` to the secrets kept out of logs and messages (empty and short ones are
    ignored; at most a few dozen are kept, as configuration holds no more)."""
    known = set(_secrets)
    for value in values:
        if value and len(value) >= _MIN_LENGTH and value not in known:
            known.add(value)
    _secrets[:] = sorted(known, key=len, reverse=True)[:_MAX_SECRETS]


def redact(text: str) -> str:
    """`text` with every remembered secret replaced by ``[redacted]``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_event(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
    """A structlog processor: `redact` every string field of the event (tracebacks too, when it
    runs after their formatting)."""
    if _secrets:
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = redact(value)
            elif isinstance(value, BaseException):
                event[key] = redact(str(value))
    return event


def mask(secret: str) -> str:
    """A secret as it may be shown to its owner: its last four characters only."""
    return f"…{secret[-4:]}" if len(secret) > 8 else "…"


def public_url(url: str) -> str:
    """`url` as it may be shown: no user, password or query (where keys travel)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(not a URL)"
    host = f"[{host}]" if ":" in host else host
    if "://" in url:  # kept even with no host (sqlite:///file.db), which urlunsplit drops
        return f"{parts.scheme}://{host}{port}{parts.path}"
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))
