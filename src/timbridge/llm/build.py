"""Turning a model profile into the `ChatModel` that speaks its provider's API, by the
provider table's family (`timbridge.llm.registry`)."""

from __future__ import annotations

from collections.abc import Callable

from timbridge.errors import ConfigError
from timbridge.llm.base import ChatModel, ModelConfig
from timbridge.llm.providers.anthropic import AnthropicMessages
from timbridge.llm.providers.gemini import Gemini
from timbridge.llm.providers.offline import OfflineModel
from timbridge.llm.providers.openai import OpenAICompatible
from timbridge.llm.providers.openai_sdk import OpenAISDK
from timbridge.llm.registry import PROVIDERS
from timbridge.settings import ModelProfile

__all__ = ["build_model"]


#: The classes of the providers on their vendor's own SDK.
_VENDOR_SDKS: dict[str, Callable[[ModelConfig], ChatModel]] = {
    "anthropic": AnthropicMessages,
    "gemini": Gemini,
}


def build_model(name: str, profile: ModelProfile, *, max_connections: int = 1000) -> ChatModel:
    """The `ChatModel` a profile describes; `ConfigError` when it cannot be built."""
    provider = PROVIDERS.get(profile.provider)
    if provider is None:  # settings validate the name against the same table
        raise ConfigError(
            f"models.{name}.provider", f"one of {', '.join(PROVIDERS)} (got {profile.provider!r})"
        )
    if provider.family == "offline":
        return OfflineModel()
    model = profile.model or provider.model
    if not model:
        raise ConfigError(f"models.{name}.model", f"required for provider {profile.provider}")
    if provider.family == "openai":  # every OpenAI-compatible vendor: the preset's endpoint
        base_url = profile.base_url or provider.base_url
        # the preset's key variable goes with the preset's endpoint; an own base_url (a proxy,
        # a local server) needs `api_key_env` if it wants a key
        key_env = None if profile.base_url else provider.api_key_env
    else:  # the SDK's own endpoint unless the profile names one
        base_url, key_env = profile.base_url, provider.api_key_env
    config = ModelConfig(
        model=model,
        api_key=profile.api_key(name, key_env),
        base_url=base_url,
        timeout_s=profile.timeout_s,
        stream=profile.stream,
        max_tokens=profile.max_tokens,
        provider=profile.provider,
        max_connections=max_connections,
        cache_prompts=profile.cache_prompts,
    )
    if provider.family == "openai":
        return (OpenAISDK if profile.client == "sdk" else OpenAICompatible)(config)
    return _VENDOR_SDKS[provider.family](config)
