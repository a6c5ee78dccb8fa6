"""What every HTTP client of the process shares: the pooled aiohttp session it is built on, and
bounded reads of what another server sends (Tencent's answers, fetched images, model bodies), so
that no answer is read past the caller's cap.

Caps count the bytes *after* decompression. A ``Content-Length`` counts the bytes on the wire,
which a compressed body multiplies (a 1 MB gzip bomb inflates to 1 GB), so it only ever lets a
read stop early, never skip the count. aiohttp inflates in bounded steps as the reader asks for
more, so a reader that stops at its cap never holds more than the cap and one step.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import aiohttp

__all__ = [
    "DEFAULT_BODY_LIMIT",
    "BodyTooLarge",
    "capped_decoding",
    "http_session",
    "read_capped",
]

_CHUNK = 64 * 1024

#: What a session's `read()` / `json()` / `text()` accept unless the session says otherwise.
DEFAULT_BODY_LIMIT = 8 * 1024 * 1024


class BodyTooLarge(aiohttp.ClientPayloadError):
    """A response body that, decompressed, is larger than its reader's cap."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"response body over {limit} bytes (decompressed)")
        self.limit = limit


class _CappedResponse(aiohttp.ClientResponse):
    """A response whose whole-body reads stop at `DEFAULT_BODY_LIMIT` decompressed bytes."""

    async def read(self) -> bytes:
        if self._body is None:
            try:
                self._body = await _read_within(self, DEFAULT_BODY_LIMIT)
            except BaseException:
                self.close()
                raise
        return await super().read()


def http_session(
    *,
    limit: int = 256,
    headers: Mapping[str, str] | None = None,
    timeout: aiohttp.ClientTimeout | None = None,
    resolver: aiohttp.abc.AbstractResolver | None = None,
) -> aiohttp.ClientSession:
    """A pooled session: keep-alive, at most `limit` connections, no cookie jar, and no
    whole-body read (`read`, `json`, `text`, by us or by an SDK on this session) past
    `DEFAULT_BODY_LIMIT` decompressed bytes: past it they raise `BodyTooLarge` (readers with a
    smaller cap use `read_capped`)."""
    connector = aiohttp.TCPConnector(
        limit=limit, limit_per_host=limit, ttl_dns_cache=300, resolver=resolver
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers=headers,
        timeout=timeout or aiohttp.client.DEFAULT_TIMEOUT,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=True,
        raise_for_status=False,
        response_class=_CappedResponse,
    )


async def _read_within(response: aiohttp.ClientResponse, limit: int) -> bytes:
    declared = response.content_length
    if declared is not None and declared > limit and not response.headers.get("Content-Encoding"):
        raise BodyTooLarge(limit)
    data = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK):
        data += chunk
        if len(data) > limit:
            raise BodyTooLarge(limit)
    return bytes(data)


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The body of `response`, or None once it proves larger than `limit` bytes once
    decompressed (by an uncompressed ``Content-Length``, or while it is read)."""
    try:
        return await _read_within(response, limit)
    except BodyTooLarge:
        response.close()
        return None


class _Counted:
    """httpx's own decoder for the response (which inflates in bounded pieces, lazily), its
    output counted against `limit`."""

    def __init__(self, inner: Any, limit: int) -> None:
        self._inner = inner
        self._left = limit
        self._limit = limit

    def _counted(self, pieces: Iterable[bytes]) -> Iterator[bytes]:
        for piece in pieces:
            self._left -= len(piece)
            if self._left < 0:
                raise BodyTooLarge(self._limit)
            yield piece

    def decode(self, data: bytes) -> Iterator[bytes]:
        return self._counted(self._inner.decode(data))

    def flush(self) -> Iterator[bytes]:
        return self._counted(self._inner.flush())


def capped_decoding(limit: int) -> Any:
    """An httpx ``response`` event hook that caps the response's decoded body at `limit` bytes:
    for the vendors' SDKs, whose httpx layer inflates what their aiohttp transport hands it
    undecoded. Reading past the cap raises `BodyTooLarge` (wrapped by httpx's decoding error
    where httpx catches it)."""

    async def hook(response: Any) -> None:
        # httpx picks its decoder lazily into `_decoder`: the one seam to put a bound on it
        response._decoder = _Counted(response._get_content_decoder(), limit)

    return hook
