"""The ``fetch_url`` tool: a web page or text file as text, from hosts the operator allows.

Rules, checked for the URL the model gives and again for every redirect (followed by hand, at
most `MAX_REDIRECTS`): http or https only (no ``file:``, no other scheme); a host matching
`tools.fetch_allowed_hosts` (shell patterns); and, at connection time, no address that is
loopback, private, link-local, reserved or multicast unless `tools.fetch_allow_private` says so.
The last check is the resolver's own, so a name that resolves to a public address when checked
and to an internal one when connected (DNS rebinding) is refused too. Bodies are read up to
`tools.fetch_max_bytes` decompressed; HTML becomes text with the parser the knowledge bases use.
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from timbridge.http import http_session, read_capped
from timbridge.llm.tools import ToolSpec
from timbridge.settings import ToolsSettings
from timbridge.tools.toolbox import Tool, ToolError

__all__ = ["MAX_REDIRECTS", "UrlFetcher", "html_text"]

MAX_REDIRECTS = 3
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml+xml")


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


class _PublicResolver(AbstractResolver):
    """Resolves like aiohttp does, and refuses a name with any non-public address."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        refused = [r["host"] for r in found if not _public(r["host"])]
        if refused:
            raise OSError(f"{host} resolves to a non-public address ({refused[0]})")
        return found

    async def close(self) -> None:
        await self._inner.close()


def html_text(raw: bytes) -> str:
    """A page's title and readable text (scripts, styles and navigation left out)."""
    from selectolax.lexbor import LexborHTMLParser  # noqa: PLC0415 - only when a page comes

    tree = LexborHTMLParser(raw)
    for node in tree.css("script,style,nav,header,footer,noscript,template,svg"):
        node.decompose()
    title = tree.css_first("title")
    body = tree.body
    text = body.text(separator="\n", strip=True) if body is not None else ""
    lines = [line for line in (x.strip() for x in text.splitlines()) if line]
    head = f"# {title.text(strip=True)}\n\n" if title is not None and title.text(strip=True) else ""
    return head + "\n".join(lines)


class UrlFetcher:
    """Fetches under `ToolsSettings`' rules, on a session of its own (closed by `aclose`)."""

    def __init__(self, settings: ToolsSettings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    @property
    def tool(self) -> Tool:
        return Tool(
            ToolSpec(
                "fetch_url",
                "Fetch a web page or text file and return its text. Only some hosts are allowed: "
                "if one is refused, say so rather than guessing its content.",
                {
                    "type": "object",
                    "properties": {"url": {"type": "string", "description": "http(s) URL"}},
                    "required": ["url"],
                },
            ),
            self._run,
        )

    def _checked(self, url: str) -> str:
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
        except ValueError:
            raise ToolError(f"not a URL: {url[:100]!r}") from None
        if parts.scheme not in ("http", "https"):
            raise ToolError(f"only http and https URLs may be fetched (got {parts.scheme!r}:)")
        if not host:
            raise ToolError(f"no host in {url[:100]!r}")
        if not any(
            fnmatch.fnmatchcase(host, p.lower()) for p in self._settings.fetch_allowed_hosts
        ):
            raise ToolError(f"{host} is not a host this robot may fetch from")
        try:  # an address literal is checked here; names are checked as they resolve
            literal = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None and not self._settings.fetch_allow_private and not _public(host):
            raise ToolError(f"{host} is not a public address")
        return url

    def _connected(self) -> aiohttp.ClientSession:
        if self._session is None:
            private = self._settings.fetch_allow_private
            self._session = http_session(
                limit=16,
                headers={"User-Agent": "timbridge-fetch_url", "Accept": "text/html, text/*"},
                resolver=None if private else _PublicResolver(),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _run(self, arguments: Mapping[str, Any]) -> str:
        url = self._checked(str(arguments.get("url", "")))
        try:
            async with asyncio.timeout(self._settings.fetch_timeout_s):
                return await self._fetch(url)
        except TimeoutError:
            raise ToolError(f"no answer within {self._settings.fetch_timeout_s:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            raise ToolError(f"cannot connect: {exc.os_error}") from None
        except aiohttp.ClientError as exc:
            raise ToolError(f"cannot fetch: {type(exc).__name__}") from None

    async def _fetch(self, url: str) -> str:
        limit = self._settings.fetch_max_bytes
        for _ in range(MAX_REDIRECTS + 1):
            async with self._connected().get(url, allow_redirects=False) as response:
                if response.status in (301, 302, 303, 307, 308):
                    location = response.headers.get("Location", "")
                    url = self._checked(urljoin(url, location))  # the same rules, again
                    continue
                if response.status != 200:
                    raise ToolError(f"HTTP {response.status}")
                kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if kind and not kind.startswith(_TEXT_TYPES):
                    raise ToolError(f"not text ({kind})")
                raw = await read_capped(response, limit)
                if raw is None:
                    raise ToolError(f"the page is over {limit} bytes")
                if "html" in kind:
                    return html_text(raw)
                return raw.decode(response.get_encoding() or "utf-8", errors="replace")
        raise ToolError(f"more than {MAX_REDIRECTS} redirects")
