"""An OpenAI-compatible moderation endpoint (``POST {base}/moderations``), asked about one text:
flagged or not, and whether for self-harm. A failure or a timeout is `None`: the caller decides
whether that lets the text through (`fail_open`)."""

from __future__ import annotations

import os
from typing import Any, Literal

import aiohttp
import orjson
import structlog

from timbridge.http import read_capped
from timbridge.settings import SafetySettings

__all__ = ["Moderation"]

_log = structlog.get_logger("timbridge.safety")
_ANSWER_LIMIT = 256 * 1024


class Moderation:
    """Asks `settings.moderation_url` on a shared session."""

    def __init__(self, session: aiohttp.ClientSession, settings: SafetySettings) -> None:
        assert settings.moderation_url is not None
        self._session = session
        self._url = settings.moderation_url.rstrip("/") + "/moderations"
        self._model = settings.moderation_model
        self._key_env = settings.moderation_key_env
        self._timeout = aiohttp.ClientTimeout(total=settings.moderation_timeout_s)

    async def check(self, text: str) -> Literal["allow", "block", "self_harm"] | None:
        """The endpoint's verdict on `text`; None when it could not give one."""
        headers = {"Content-Type": "application/json"}
        if key := os.environ.get(self._key_env):
            headers["Authorization"] = f"Bearer {key}"
        body = orjson.dumps({"model": self._model, "input": text})
        try:
            async with self._session.post(
                self._url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as resp:
                raw = await read_capped(resp, _ANSWER_LIMIT)
                if resp.status != 200 or raw is None:
                    _log.warning("moderation.failed", status=resp.status)
                    return None
            result: Any = orjson.loads(raw)["results"][0]
        except (aiohttp.ClientError, TimeoutError) as exc:
            _log.warning("moderation.unreachable", error=type(exc).__name__)
            return None
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            _log.warning("moderation.malformed")
            return None
        if not isinstance(result, dict) or not result.get("flagged"):
            return "allow"
        categories = result.get("categories") or {}
        harm = any(v for k, v in categories.items() if str(k).startswith("self-harm"))
        return "self_harm" if harm else "block"
