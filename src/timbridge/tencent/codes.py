"""Tencent REST ``ErrorCode``s: what each means, and whether a retry can help (reference §1.5).

The table is the one source for the client's retry decision, for the CLI's error lines and for
the README's error-code section (a test keeps the README in step).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["CODES", "CodeInfo", "Remedy", "describe", "remedy"]


class Remedy(enum.Enum):
    """What a caller should do about a code."""

    RETRY = "retry with backoff"
    RESIGN = "sign a new UserSig and retry once"
    FIX = "fix the request or configuration; retrying will not help"


@dataclass(frozen=True, slots=True)
class CodeInfo:
    meaning: str
    remedy: Remedy
    hint: str = ""


_R, _S, _F = Remedy.RETRY, Remedy.RESIGN, Remedy.FIX

CODES: dict[int, CodeInfo] = {
    10002: CodeInfo("internal server error", _R),
    10004: CodeInfo("invalid parameter", _F, "check the request fields"),
    10007: CodeInfo("no permission for this operation", _F, "e.g. adding members to an AVChatRoom"),
    10008: CodeInfo("invalid request", _F, "not admin, or the robot quota (20) is reached"),
    10010: CodeInfo("group does not exist or was dissolved", _F),
    10014: CodeInfo("group is full", _F),
    10015: CodeInfo("invalid group ID", _F),
    10019: CodeInfo("unknown UserID", _F, "import the account first"),
    10021: CodeInfo("custom GroupId already taken", _F),
    20004: CodeInfo("network error on the send path", _R),
    20005: CodeInfo("internal error on the send path", _R),
    60002: CodeInfo("HTTP or URL parse error", _F),
    60003: CodeInfo("request body is not valid JSON", _F),
    60004: CodeInfo("account or signature error in the URL or body", _F, "check tencent.admin"),
    60005: CodeInfo("account or signature error in the URL or body", _F, "check tencent.admin"),
    60006: CodeInfo("SDKAppID invalid", _F, "check tencent.sdkappid"),
    60007: CodeInfo("REST call frequency over the limit", _R),
    60008: CodeInfo("service timeout or bad HTTP format", _R),
    60009: CodeInfo("bad resource: unknown service or command in the URL", _F),
    60010: CodeInfo("needs app-admin permission", _F, "tencent.admin must be an app admin"),
    60011: CodeInfo("SDKAppID request frequency over the limit", _R),
    60012: CodeInfo("SDKAppID missing from the URL", _F),
    60013: CodeInfo("response JSON parse error", _R),
    60014: CodeInfo("account swap timeout", _R),
    60015: CodeInfo("an account in the body must be a string", _F),
    60016: CodeInfo("SDKAppID disabled", _F, "see the console"),
    60017: CodeInfo("request disabled", _F, "see the console"),
    60018: CodeInfo("too many requests, retry later", _R),
    60019: CodeInfo("too many requests, retry later", _R),
    60020: CodeInfo("paid package expired", _F, "renew it in the console"),
    60021: CodeInfo("calling IP not allowed", _F, "check the console's IP allow-list"),
    70001: CodeInfo("UserSig expired", _S),
    70003: CodeInfo("UserSig could not be parsed", _F, "is the secret key complete?"),
    70009: CodeInfo("UserSig verification failed", _F, "wrong secret key, or another app's key"),
    70013: CodeInfo("identifier differs from the one inside the UserSig", _F),
    70014: CodeInfo("SDKAppID differs from the one inside the UserSig", _F),
    70016: CodeInfo("secret key not found", _F, "wrong data-centre host? check tencent.region"),
    70020: CodeInfo("SDKAppID not found", _F, "wrong data-centre host? check tencent.region"),
    70050: CodeInfo("UserSig failed too many times", _F, "wait at least a minute"),
    70051: CodeInfo("account blacklisted", _F),
    70107: CodeInfo("user account not imported", _F, "import the account first"),
    90001: CodeInfo("request body is not valid JSON", _F),
    90002: CodeInfo("MsgBody is not a valid element array", _F),
}


def remedy(code: int) -> Remedy:
    """What to do about `code`; unknown codes are permanent."""
    info = CODES.get(code)
    return info.remedy if info else Remedy.FIX


def describe(code: int) -> str:
    """One line for people: ``70107 user account not imported (import the account first)``."""
    info = CODES.get(code)
    if info is None:
        return f"{code} (not in timbridge's table: see Tencent's error-code list)"
    return f"{code} {info.meaning}" + (f" ({info.hint})" if info.hint else "")
