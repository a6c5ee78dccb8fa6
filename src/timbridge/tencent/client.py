"""The async Tencent REST client: signing, retries, limits, error mapping.

One `TencentClient` per app and process, on one pooled `aiohttp.ClientSession` handed in by the
caller. `call` sends a typed request and returns its typed response, or raises:

* `TencentAPIError` for ``ActionStatus: FAIL`` (after retries, for transient codes),
* `TencentTransportError` when no usable answer came (after retries, when transient).

Retries use exponential backoff with jitter (`stamina`) for transient failures only: frequency
codes, 60008, 10002, 20004, 20005, HTTP 429/5xx, connection errors and timeouts. The body is
serialised once, so a retried send carries the same ``MsgRandom``/``MsgSeq``/``Random`` and
Tencent's own dedupe drops a double; each attempt gets a fresh URL ``random``. On 70001 (UserSig
expired) the admin sig is re-signed and the call retried once.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote

import aiohttp
import stamina
import structlog
from pydantic import ValidationError
from yarl import URL

from timbridge.errors import TencentAPIError, TencentTransportError
from timbridge.http import read_capped
from timbridge.protocol.rest import RestRequest, RestResponse
from timbridge.protocol.usersig import UserSigSigner
from timbridge.tencent.codes import Remedy, remedy
from timbridge.tencent.limits import CallLimits

__all__ = ["RetryPolicy", "TencentClient", "is_transient"]

ResponseT = TypeVar("ResponseT", bound=RestResponse)

_log = structlog.get_logger("timbridge.tencent")
_JSON_HEADERS = {"Content-Type": "application/json"}
_EXPIRED_USERSIG = 70001


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to retry transient failures."""

    attempts: int = 5
    timeout_s: float = 30.0
    wait_initial_s: float = 0.1
    wait_max_s: float = 5.0
    wait_jitter_s: float = 0.5


def is_transient(exc: Exception) -> bool:
    """Whether a retry may succeed where this failure happened."""
    if isinstance(exc, TencentAPIError):
        return remedy(exc.error_code) is Remedy.RETRY
    if isinstance(exc, TencentTransportError):
        return exc.transient
    return False


class TencentClient:
    """Calls Tencent's REST API as the app admin."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        sdkappid: int,
        admin: str,
        signer: UserSigSigner,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        limits: CallLimits | None = None,
        max_response_bytes: int = 8 * 1024 * 1024,
        on_result: Callable[[str, int], None] | None = None,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._query_head = f"?sdkappid={sdkappid}&identifier={quote(admin, safe='')}&usersig="
        self._admin = admin
        self._signer = signer
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._retry = retry or RetryPolicy()
        self._limits = limits or CallLimits()
        self._max_response = max_response_bytes
        self._on_result = on_result

    @property
    def base_url(self) -> str:
        return self._base

    async def call(self, request: RestRequest[ResponseT]) -> ResponseT:
        """Send `request`; return its response, or raise `TencentError` after retries."""
        body = request.to_json()
        group_id = getattr(request, "group_id", None)
        # First attempt outside stamina: its retry machinery costs more than a fast call, and
        # most calls succeed at once. A transient failure falls through to the retry loop.
        await self._limits.acquire(request.command, group_id)
        try:
            return await self._call_once(request, body)
        except (TencentAPIError, TencentTransportError) as exc:
            if not is_transient(exc) or self._retry.attempts <= 1:
                raise
            _log.info("tencent.retrying", command=request.command, error=str(exc))
        policy = self._retry
        await asyncio.sleep(policy.wait_initial_s + random.uniform(0, policy.wait_jitter_s))
        async for attempt in stamina.retry_context(
            on=is_transient,
            attempts=policy.attempts - 1,
            timeout=policy.timeout_s,
            wait_initial=policy.wait_initial_s,
            wait_max=policy.wait_max_s,
            wait_jitter=policy.wait_jitter_s,
        ):
            with attempt:
                await self._limits.acquire(request.command, group_id)
                return await self._call_once(request, body)
        raise AssertionError("unreachable: stamina raises after the last attempt")

    async def _call_once(self, request: RestRequest[ResponseT], body: bytes) -> ResponseT:
        command = request.command
        resigned = False
        while True:
            raw = await self._post(command, body)
            try:
                response = request.parse_response(raw)
            except ValidationError:
                self._report(command, -1)
                raise TencentTransportError(
                    command, f"answer is not a Tencent JSON envelope: {raw[:200]!r}", transient=True
                ) from None
            self._report(command, response.error_code)
            if response.ok:
                return response
            if response.error_code == _EXPIRED_USERSIG and not resigned:
                _log.info("tencent.usersig_renewed", command=command)
                self._signer.invalidate(self._admin)
                resigned = True
                continue
            raise TencentAPIError(response.error_code, response.error_info, command)

    def _report(self, command: str, code: int) -> None:
        if self._on_result is not None:
            self._on_result(command, code)

    async def _post(self, command: str, body: bytes) -> bytes:
        usersig = self._signer.get(self._admin)
        url = URL(
            f"{self._base}/v4/{command}{self._query_head}{usersig}"
            f"&random={random.getrandbits(32)}&contenttype=json",
            encoded=True,
        )
        try:
            # never follow a redirect: the query carries the admin's UserSig, and Tencent's REST
            # API does not redirect, so a 3xx is refused like any other non-200 status
            async with self._session.post(
                url, data=body, headers=_JSON_HEADERS, timeout=self._timeout, allow_redirects=False
            ) as resp:
                if resp.status != 200:
                    self._report(command, -1)
                    transient = resp.status == 429 or resp.status >= 500
                    raise TencentTransportError(
                        command, f"HTTP {resp.status}", status=resp.status, transient=transient
                    )
                return await self._read(command, resp)
        except TimeoutError:
            self._report(command, -1)
            raise TencentTransportError(
                command, f"no answer within {self._timeout.total} s", transient=True
            ) from None
        except aiohttp.ClientError as exc:
            self._report(command, -1)
            raise TencentTransportError(
                command, f"connection failed: {exc!r}", transient=True
            ) from exc

    async def _read(self, command: str, resp: aiohttp.ClientResponse) -> bytes:
        data = await read_capped(resp, self._max_response)
        if data is None:
            raise TencentTransportError(
                command,
                f"answer larger than {self._max_response} bytes",
                status=resp.status,
                transient=False,
            )
        return data
