"""UserSig: Tencent's TLS sig v2 (HMAC-SHA256), signed and verified exactly as Tencent does.

A UserSig is ``base64url*(zlib(JSON))`` where the JSON holds the identifier, SDKAppID, issue time,
lifetime and ``TLS.sig = base64(HMAC-SHA256(key, content))`` (protocol reference §6). The key is the
console secret used as its UTF-8 bytes. `sign` and `verify` are pure functions; `UserSigSigner`
caches the admin's sig for REST calls and renews it well before it expires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from timbridge.errors import UserSigError, UserSigProblem

__all__ = [
    "DEFAULT_EXPIRE",
    "UserSigInfo",
    "UserSigSigner",
    "decode",
    "sign",
    "verify",
]

#: Tencent's default lifetime: 180 days.
DEFAULT_EXPIRE = 180 * 86400

_TO_URL = str.maketrans({"+": "*", "/": "-", "=": "_"})
_FROM_URL = str.maketrans({"*": "+", "-": "/", "_": "="})
_MAX_DECOMPRESSED = 64 * 1024


@dataclass(frozen=True, slots=True)
class UserSigInfo:
    """The fields of a decoded UserSig."""

    identifier: str
    sdkappid: int
    time: int
    expire: int
    sig: str
    userbuf: bytes | None = None

    @property
    def expires_at(self) -> int:
        """Unix second after which the sig is no longer valid."""
        return self.time + self.expire


def _content_sig(key: str, info: UserSigInfo, userbuf_b64: str | None) -> str:
    identifier, sdkappid, issued, expire = info.identifier, info.sdkappid, info.time, info.expire
    content = (
        f"TLS.identifier:{identifier}\nTLS.sdkappid:{sdkappid}\n"
        f"TLS.time:{issued}\nTLS.expire:{expire}\n"
    )
    if userbuf_b64 is not None:
        content += f"TLS.userbuf:{userbuf_b64}\n"
    digest = hmac.new(key.encode(), content.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def sign(
    sdkappid: int,
    key: str,
    identifier: str,
    *,
    expire: int = DEFAULT_EXPIRE,
    now: float | None = None,
    userbuf: bytes | None = None,
) -> str:
    """A UserSig for `identifier`, valid for `expire` seconds from `now`."""
    issued = int(time.time() if now is None else now)
    userbuf_b64 = base64.b64encode(userbuf).decode() if userbuf is not None else None
    doc: dict[str, Any] = {
        "TLS.ver": "2.0",
        "TLS.identifier": identifier,
        "TLS.sdkappid": sdkappid,
        "TLS.expire": expire,
        "TLS.time": issued,
    }
    if userbuf_b64 is not None:
        doc["TLS.userbuf"] = userbuf_b64
    unsigned = UserSigInfo(identifier, sdkappid, issued, expire, sig="")
    doc["TLS.sig"] = _content_sig(key, unsigned, userbuf_b64)
    packed = zlib.compress(orjson.dumps(doc))
    return base64.b64encode(packed).decode().translate(_TO_URL)


def decode(usersig: str) -> UserSigInfo:
    """Unpack a UserSig without checking it; `UserSigError(MALFORMED)` if it cannot be read."""
    try:
        raw = usersig.strip().translate(_FROM_URL)
        packed = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
        inflater = zlib.decompressobj()
        text = inflater.decompress(packed, _MAX_DECOMPRESSED)
        if not inflater.eof:
            raise ValueError("truncated or oversized")
        doc = orjson.loads(text)
        userbuf_b64 = doc.get("TLS.userbuf")
        return UserSigInfo(
            identifier=str(doc["TLS.identifier"]),
            sdkappid=int(doc["TLS.sdkappid"]),
            time=int(doc["TLS.time"]),
            expire=int(doc["TLS.expire"]),
            sig=str(doc["TLS.sig"]),
            userbuf=base64.b64decode(userbuf_b64) if userbuf_b64 is not None else None,
        )
    except (ValueError, TypeError, KeyError, AttributeError, zlib.error, binascii.Error) as exc:
        raise UserSigError(UserSigProblem.MALFORMED, f"cannot decode UserSig ({exc})") from None


def verify(
    usersig: str, *, sdkappid: int, key: str, identifier: str, now: float | None = None
) -> UserSigInfo:
    """Check a UserSig; return its fields, or raise `UserSigError` saying what is wrong.

    Checked in this order: it decodes (MALFORMED), it is for this app (OTHER_APP) and this user
    (OTHER_USER), it has not expired (EXPIRED), its HMAC matches the key (BAD_SIGNATURE).
    """
    info = decode(usersig)
    if info.sdkappid != sdkappid:
        raise UserSigError(
            UserSigProblem.OTHER_APP, f"signed for SDKAppID {info.sdkappid}, not {sdkappid}"
        )
    if info.identifier != identifier:
        raise UserSigError(
            UserSigProblem.OTHER_USER, f"signed for {info.identifier!r}, not {identifier!r}"
        )
    current = time.time() if now is None else now
    if current > info.expires_at:
        raise UserSigError(
            UserSigProblem.EXPIRED, f"expired {int(current - info.expires_at)} s ago"
        )
    userbuf_b64 = base64.b64encode(info.userbuf).decode() if info.userbuf is not None else None
    expected = _content_sig(key, info, userbuf_b64)
    if not hmac.compare_digest(expected.encode(), info.sig.encode()):
        raise UserSigError(UserSigProblem.BAD_SIGNATURE, "HMAC does not match this secret key")
    return info


class UserSigSigner:
    """Signs UserSigs for one app and caches them per identifier until close to expiry.

    A cached sig is renewed once a quarter of its lifetime remains, or at once after
    `invalidate` (Tencent said 70001: expired).
    """

    def __init__(
        self,
        sdkappid: int,
        key: str,
        *,
        expire: int = 7 * 86400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sdkappid = sdkappid
        self._key = key
        self._expire = expire
        self._clock = clock
        self._cache: dict[str, tuple[str, float]] = {}

    def __repr__(self) -> str:  # never show the key
        return f"UserSigSigner(sdkappid={self.sdkappid})"

    def get(self, identifier: str) -> str:
        """A valid UserSig for `identifier`, from the cache when it is fresh enough."""
        now = self._clock()
        cached = self._cache.get(identifier)
        if cached is not None and now < cached[1]:
            return cached[0]
        usersig = sign(self.sdkappid, self._key, identifier, expire=self._expire, now=now)
        self._cache[identifier] = (usersig, now + self._expire * 0.75)
        return usersig

    def invalidate(self, identifier: str) -> None:
        """Forget the cached sig so the next `get` signs anew."""
        self._cache.pop(identifier, None)
