"""Every exception timbridge raises, in one tree.

* TimbridgeError
  x ConfigError ............ a configuration key is missing or wrong (names the key)
  x SignatureError ......... a webhook Sign / RequestTime failed verification
    + UserSigError ......... a UserSig is malformed, foreign, expired or forged (has `.problem`)
  x PayloadError ........... a wire payload is malformed (names the field)
  x TencentError ........... a Tencent REST call failed
    + TencentAPIError ...... Tencent answered ActionStatus FAIL (has `.error_code`)
    + TencentTransportError  no usable answer: connection, timeout, HTTP status, non-JSON, too big
  x LLMError ............... a model call failed
    + LLMTimeout
    + LLMRateLimited ....... HTTP 429 (has `.retry_after`)
    + LLMServerError ....... HTTP 5xx (has `.status`)
    + LLMResponseError ..... the model answered something unusable
  x StorageError ........... the store failed
  x CoordinationError ...... the queue backend (Redis) failed or is shutting down

Errors carry fields, not only text: callers branch on `error_code`, `problem`, `field`, never on
the message.
"""

from __future__ import annotations

import enum

__all__ = [
    "ConfigError",
    "CoordinationError",
    "HandBack",
    "LLMError",
    "LLMRateLimited",
    "LLMResponseError",
    "LLMServerError",
    "LLMTimeout",
    "PayloadError",
    "SignatureError",
    "StorageError",
    "TencentAPIError",
    "TencentError",
    "TencentTransportError",
    "TimbridgeError",
    "UserSigError",
    "UserSigProblem",
]


class TimbridgeError(Exception):
    """Base of every timbridge exception."""


class ConfigError(TimbridgeError):
    """A configuration value is missing or invalid.

    `key` is the dotted settings key (``tencent.sdkappid``); `env` the environment variable that
    sets it; the message is one line that says what was expected.
    """

    def __init__(self, key: str, message: str, *, env: str | None = None) -> None:
        self.key = key
        self.env = env
        where = f"{key} ({env})" if env else key
        super().__init__(f"{where}: {message}")


class SignatureError(TimbridgeError):
    """A signature did not verify."""


class UserSigProblem(enum.StrEnum):
    """Why a UserSig was refused."""

    MALFORMED = "malformed"
    OTHER_APP = "other_app"
    OTHER_USER = "other_user"
    EXPIRED = "expired"
    BAD_SIGNATURE = "bad_signature"


class UserSigError(SignatureError):
    """A UserSig was refused; `problem` says why."""

    def __init__(self, problem: UserSigProblem, detail: str) -> None:
        self.problem = problem
        self.detail = detail
        super().__init__(f"{problem.value}: {detail}")


class PayloadError(TimbridgeError):
    """A payload is not what the protocol says; `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class TencentError(TimbridgeError):
    """A Tencent REST call failed; `command` is ``service/command``."""

    def __init__(self, command: str, message: str) -> None:
        self.command = command
        super().__init__(message)


class TencentAPIError(TencentError):
    """Tencent answered ``ActionStatus: FAIL`` with a non-zero ``ErrorCode``."""

    def __init__(self, error_code: int, error_info: str, command: str) -> None:
        self.error_code = error_code
        self.error_info = error_info
        super().__init__(command, f"{command}: ErrorCode {error_code}: {error_info}")


class TencentTransportError(TencentError):
    """No usable answer from Tencent: connection, timeout, HTTP status, non-JSON or oversized.

    `status` is the HTTP status when there was one; `transient` says whether retrying may help.
    """

    def __init__(
        self, command: str, message: str, *, status: int | None = None, transient: bool
    ) -> None:
        self.status = status
        self.transient = transient
        super().__init__(command, f"{command}: {message}")


class LLMError(TimbridgeError):
    """A model call failed; `provider` and `model` say which."""

    def __init__(self, message: str, *, provider: str = "", model: str = "") -> None:
        self.provider = provider
        self.model = model
        super().__init__(message)


class LLMTimeout(LLMError):
    """The model did not answer in time."""


class LLMRateLimited(LLMError):
    """HTTP 429; `retry_after` is the server's hint in seconds, when it gave one."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, provider: str = "", model: str = ""
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, provider=provider, model=model)


class LLMServerError(LLMError):
    """HTTP 5xx from the model server."""

    def __init__(self, message: str, *, status: int, provider: str = "", model: str = "") -> None:
        self.status = status
        super().__init__(message, provider=provider, model=model)


class LLMResponseError(LLMError):
    """The model answered, but not with something usable (bad request, refusal, malformed)."""


class StorageError(TimbridgeError):
    """The store failed."""


class HandBack(TimbridgeError):
    """A job cannot run now for a reason that may pass (its store failed before any answer went
    out): the coordinator runs it again after `after_s`, in its place in the conversation, and a
    worker of the scale-out mode stops taking work for that long, so a healthy one takes it."""

    def __init__(self, reason: str, *, after_s: float) -> None:
        super().__init__(reason)
        self.after_s = after_s


class CoordinationError(TimbridgeError):
    """The coordination backend (Redis) is unreachable or refused, or is shutting down."""
