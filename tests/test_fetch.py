"""The ``fetch_url`` tool's rules, against a real HTTP server on loopback: what it fetches and
how (HTML to text, caps), and every refusal the model is told of (scheme, host list, loopback
and private addresses, redirects off the list)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.processes import loopback
from timbridge.settings import ToolsSettings
from timbridge.tools.fetch import UrlFetcher
from timbridge.tools.toolbox import ToolError

PAGE = b"""<html><head><title>Opening hours</title><style>p{}</style></head>
<body><nav>menu</nav><h1>Hours</h1><p>Mon-Fri 9-18</p><script>alert(1)</script></body></html>"""


def _app() -> web.Application:
    app = web.Application()

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=PAGE, content_type="text/html")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 5000, content_type="text/plain")

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG", content_type="image/png")

    async def away(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    for path, handler in (("/page", page), ("/big", big), ("/image", image), ("/away", away)):
        app.router.add_get(path, handler)
    return app


@pytest.fixture
async def base() -> AsyncIterator[str]:
    async with loopback(_app()) as (server,):
        yield str(server.make_url("")).rstrip("/")


def _fetcher(*hosts: str, private: bool = True, max_bytes: int = 4096) -> UrlFetcher:
    return UrlFetcher(
        ToolsSettings(
            fetch_allowed_hosts=hosts, fetch_allow_private=private, fetch_max_bytes=max_bytes
        )
    )


async def _fetch(fetcher: UrlFetcher, url: str) -> str:
    try:
        return await fetcher.tool.run({"url": url})
    finally:
        await fetcher.aclose()


async def test_an_allowed_page_comes_back_as_its_text(base: str) -> None:
    text = await _fetch(_fetcher("127.0.0.1"), base + "/page")
    assert text == "# Opening hours\n\nHours\nMon-Fri 9-18"


async def test_a_redirect_on_the_list_is_followed(base: str) -> None:
    text = await _fetch(_fetcher("127.0.0.1"), f"{base}/away?to={base}/page")
    assert text.startswith("# Opening hours")


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("file:///etc/passwd", "only http and https URLs may be fetched (got 'file':)"),
        ("ftp://127.0.0.1/x", "only http and https URLs may be fetched (got 'ftp':)"),
        ("http://example.org/", "example.org is not a host this robot may fetch from"),
        ("http:///nohost", "no host in"),
    ],
)
async def test_other_schemes_and_hosts_off_the_list_are_refused(url: str, error: str) -> None:
    with pytest.raises(ToolError) as caught:
        await _fetch(_fetcher("127.0.0.1"), url)
    assert str(caught.value).startswith(error)


async def test_a_redirect_to_a_host_off_the_list_is_refused(base: str) -> None:
    with pytest.raises(ToolError, match=r"evil\.example is not a host this robot may fetch from"):
        await _fetch(_fetcher("127.0.0.1"), f"{base}/away?to=http://evil.example/steal")


@pytest.mark.parametrize("host", ["127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254"])
async def test_loopback_and_private_addresses_are_refused_even_when_listed(host: str) -> None:
    with pytest.raises(ToolError, match=re.escape(f"{host} is not a public address")):
        await _fetch(_fetcher(host, private=False), f"http://{host}/page")


async def test_a_name_that_resolves_to_loopback_is_refused_when_it_connects(base: str) -> None:
    port = base.rsplit(":", 1)[1]
    with pytest.raises(ToolError, match="non-public address"):
        await _fetch(_fetcher("localhost", private=False), f"http://localhost:{port}/page")


async def test_big_and_non_text_bodies_are_refused(base: str) -> None:
    with pytest.raises(ToolError, match="over 4096 bytes"):
        await _fetch(_fetcher("127.0.0.1"), base + "/big")
    with pytest.raises(ToolError, match=r"not text \(image/png\)"):
        await _fetch(_fetcher("127.0.0.1"), base + "/image")
