"""What keeps the page and control API local: a web page the developer happens to visit must not
drive the emulator (re-point its webhook, send as a user, read the chat).

- **Host**: every page and control request must name a loopback host (``127.0.0.1``,
  ``localhost``, ``[::1]``) or one the emulator was told to answer to. A DNS-rebinding page
  (``Host: evil.example`` resolving to 127.0.0.1) is refused.
- **Origin**: a state-changing request (POST, DELETE) that carries an ``Origin`` must come from
  the page itself.
- **Token**: a state-changing request must carry ``X-Timbridge-Token`` with this run's random
  token, which only the page (and the banner of the command that started it) knows. A custom
  header cannot be sent cross-site without a CORS preflight, which nothing here answers, and a
  ``text/plain`` form post cannot carry it.

Tencent's REST API (``/v4/…``) is not guarded: it is signed with a UserSig, as on Tencent.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import orjson
from aiohttp import web

__all__ = ["TOKEN_HEADER", "PageGuard"]

TOKEN_HEADER = "X-Timbridge-Token"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _refused(status: int, code: str, detail: str) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"error": code, "detail": detail}),
        content_type="application/json",
    )


def _hostname(host: str) -> str:
    """``127.0.0.1:8080`` → ``127.0.0.1``; ``[::1]:8080`` → ``[::1]``."""
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class PageGuard:
    """Checks one run's page and control requests (`token`: this run's secret)."""

    def __init__(self, token: str, hosts: tuple[str, ...] = ()) -> None:
        self.token = token
        self._hosts = _LOOPBACK | {h.lower() for h in hosts if h not in ("0.0.0.0", "::")}

    def refusal(self, request: web.Request) -> web.Response | None:
        """Why `request` is refused (a 403 with the reason), or None."""
        host = _hostname((request.headers.get("Host") or "").lower())
        if host not in self._hosts:
            return _refused(403, "host_not_allowed", f"the page answers to {sorted(self._hosts)}")
        if request.method not in _CHANGES:
            return None
        origin = request.headers.get("Origin")
        if origin is not None and (urlsplit(origin).netloc.lower() != request.host.lower()):
            return _refused(403, "cross_site", f"requests from {origin[:80]!r} are refused")
        sent = request.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(sent.encode(), self.token.encode()):
            return _refused(
                403, "bad_token", f"state-changing calls need the {TOKEN_HEADER} header"
            )
        return None

    def guarded(self, handler: Handler) -> Handler:
        """`handler`, answering only requests that pass `refusal`."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            refused = self.refusal(request)
            return refused if refused is not None else await handler(request)

        return guarded
