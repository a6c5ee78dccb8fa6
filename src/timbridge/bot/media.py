"""Images users send (``TIMImageElem``), fetched for models that can see them: only from hosts
on the allow-list (`media.allowed_hosts`, shell-style patterns), over http(s), within a size and
a time limit, and only if the bytes are an image. Anything else is refused with the reason.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Sequence
from urllib.parse import urlsplit

import aiohttp

from timbridge.errors import PayloadError
from timbridge.http import read_capped
from timbridge.llm.base import Image
from timbridge.protocol.elements import Element, ImageElem
from timbridge.settings import MediaSettings

__all__ = ["MediaFetcher", "image_urls"]

_KINDS = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif"}
_ORIGINAL, _LARGE = 1, 2


def image_urls(body: Sequence[Element]) -> list[str]:
    """One URL per image element: the large version when there is one, else the original."""
    urls = []
    for element in body:
        if isinstance(element, ImageElem):
            infos = {i.type: i.url for i in element.msg_content.image_info_array if i.url}
            url = infos.get(_LARGE) or infos.get(_ORIGINAL) or next(iter(infos.values()), "")
            if url:
                urls.append(url)
    return urls


def _mime(data: bytes) -> str | None:
    for magic, mime in _KINDS.items():
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


class MediaFetcher:
    """Fetches images under `MediaSettings`' rules on a shared HTTP session."""

    def __init__(self, session: aiohttp.ClientSession, settings: MediaSettings) -> None:
        self._session = session
        self._settings = settings

    def allowed(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
        except ValueError:  # "http://[::1" and the like: not a URL at all
            return False
        if parts.scheme not in ("http", "https") or not host:
            return False
        return any(fnmatch.fnmatchcase(host, p.lower()) for p in self._settings.allowed_hosts)

    async def fetch(self, url: str) -> Image:
        """The image at `url`; `PayloadError` saying why not."""
        if not self.allowed(url):
            raise PayloadError(
                "image", f"{url[:80]!r} is not an http(s) URL on a host of media.allowed_hosts"
            )
        limit = self._settings.max_bytes
        try:
            async with (
                asyncio.timeout(self._settings.timeout_s),
                self._session.get(url, allow_redirects=False) as response,
            ):
                if response.status != 200:
                    raise PayloadError("image", f"HTTP {response.status}")
                data = await read_capped(response, limit)
                if data is None:
                    raise PayloadError("image", f"over {limit} bytes")
        except TimeoutError:
            raise PayloadError(
                "image", f"not fetched within {self._settings.timeout_s} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise PayloadError("image", f"cannot fetch: {exc.__class__.__name__}") from exc
        mime = _mime(data)
        if mime is None:
            raise PayloadError("image", "not a PNG, JPEG, GIF or WebP image")
        return Image(mime, data)
