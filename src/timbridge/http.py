"""What every HTTP client of the process shares: the pooled aiohttp session it is built on, and
bounded reads of what another server sends (Tencent's answers, fetched images, model error
bodies), so that no answer is read past the caller's cap."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

__all__ = ["http_session", "read_capped"]

_CHUNK = 64 * 1024


def http_session(
    *,
    limit: int = 256,
    headers: Mapping[str, str] | None = None,
    timeout: aiohttp.ClientTimeout | None = None,
) -> aiohttp.ClientSession:
    """A pooled session: keep-alive, at most `limit` connections, no cookie jar."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, ttl_dns_cache=300)
    return aiohttp.ClientSession(
        connector=connector,
        headers=headers,
        timeout=timeout or aiohttp.client.DEFAULT_TIMEOUT,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=True,
        raise_for_status=False,
    )


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The body of `response`, or None once it proves larger than `limit` bytes (by its
    ``Content-Length``, or while it is read)."""
    if response.content_length is not None:
        if response.content_length > limit:
            return None
        return await response.read()
    data = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK):
        data += chunk
        if len(data) > limit:
            return None
    return bytes(data)
