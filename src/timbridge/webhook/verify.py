"""Checks on a webhook before its body is trusted: ``SdkAppid``, and ``Sign`` / ``RequestTime``
when a callback token is configured (sha256(token + RequestTime), constant-time compare, 60 s
window). Each failure names what was wrong; nothing here echoes a secret."""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass

from timbridge.protocol.callbacks import callback_sign

__all__ = ["SIGN_WINDOW_S", "Refusal", "check_request"]

SIGN_WINDOW_S = 60


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    code: str
    detail: str


def check_request(
    query: Mapping[str, str], *, sdkappid: int | None, token: str | None, now: float | None = None
) -> Refusal | None:
    """None when the request may proceed, else why it is refused."""
    if sdkappid is not None:
        given = query.get("SdkAppid")
        if given is None:
            return Refusal(400, "missing_sdkappid", "SdkAppid is missing from the query")
        if given != str(sdkappid):
            return Refusal(403, "foreign_sdkappid", f"SdkAppid {given[:20]!r} is not this app")
    if token is None:
        return None
    sign, request_time = query.get("Sign"), query.get("RequestTime")
    if not sign or not request_time:
        return Refusal(401, "missing_sign", "Sign and RequestTime are required")
    try:
        stamp = int(request_time)
    except ValueError:
        return Refusal(401, "bad_request_time", "RequestTime must be Unix seconds")
    current = time.time() if now is None else now
    if abs(current - stamp) > SIGN_WINDOW_S:
        return Refusal(401, "stale_request", f"RequestTime is over {SIGN_WINDOW_S} s away")
    expected = callback_sign(token, request_time)
    if not hmac.compare_digest(expected.encode(), sign.strip().lower().encode()):
        return Refusal(401, "bad_sign", "Sign does not match the callback token")
    return None
