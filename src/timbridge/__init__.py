"""timbridge: a production AI-chatbot backend for Tencent Cloud Chat robots."""

from timbridge._version import __version__
from timbridge.errors import (
    ConfigError,
    LLMError,
    PayloadError,
    SignatureError,
    StorageError,
    TencentAPIError,
    TencentError,
    TencentTransportError,
    TimbridgeError,
    UserSigError,
)
from timbridge.settings import Settings, load_settings

__all__ = [
    "ConfigError",
    "LLMError",
    "PayloadError",
    "Settings",
    "SignatureError",
    "StorageError",
    "TencentAPIError",
    "TencentError",
    "TencentTransportError",
    "TimbridgeError",
    "UserSigError",
    "__version__",
    "load_settings",
]
