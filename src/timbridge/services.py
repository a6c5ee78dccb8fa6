"""Services: builds everything a process needs from `Settings`, and closes it.

Nothing else creates clients or sessions: commands and the webhook app receive what they need
from here (STYLE.md rule 7).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from timbridge.settings import Settings
from timbridge.tencent.client import RetryPolicy, TencentClient
from timbridge.usersig import UserSigSigner

__all__ = ["http_session", "open_tencent", "tencent_client"]


def http_session(*, limit: int = 256) -> aiohttp.ClientSession:
    """The process's pooled HTTP session: keep-alive, bounded connections, no cookie jar."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, ttl_dns_cache=300)
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=True,
        raise_for_status=False,
    )


def tencent_client(
    settings: Settings, session: aiohttp.ClientSession, *, retry: RetryPolicy | None = None
) -> TencentClient:
    """A `TencentClient` for the configured app; `ConfigError` if credentials are missing."""
    sdkappid, key = settings.tencent.credentials()
    return TencentClient(
        session,
        base_url=settings.tencent.base_url,
        sdkappid=sdkappid,
        admin=settings.tencent.admin,
        signer=UserSigSigner(sdkappid, key),
        timeout_s=settings.tencent.timeout_s,
        retry=retry,
    )


@asynccontextmanager
async def open_tencent(settings: Settings) -> AsyncIterator[TencentClient]:
    """A `TencentClient` on its own session, closed on exit: for one-shot commands."""
    settings.tencent.credentials()  # fail on missing credentials before opening anything
    async with http_session(limit=8) as session:
        yield tencent_client(settings, session)
