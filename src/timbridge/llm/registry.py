"""Every provider timbridge speaks to, in one table: `settings` validates `models.NAME.provider`
against it (a test keeps the two equal), `services` builds models from it, `timbridge init`'s
template and `check` read it, and the README's provider list is checked against it.

OpenAI-compatible vendors are presets: a base URL, a default model and the name of the API-key
variable; anything the profile sets itself wins. Default models change as vendors release new
ones: set ``model`` for the one you want. Endpoints are the international ones; China-region
URLs are noted. Anthropic and Gemini run on their vendors' SDKs; the offline model needs
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["PROVIDERS", "Family", "Provider"]

#: How a provider is spoken to: the OpenAI Chat Completions API, Anthropic's Messages API, the
#: Gemini API, or no API at all.
Family = Literal["openai", "anthropic", "gemini", "offline"]


@dataclass(frozen=True, slots=True)
class Provider:
    family: Family
    base_url: str | None = None  # None: the SDK's own endpoint (or none at all)
    model: str | None = None  # None: the profile must name one
    api_key_env: str | None = None  # None: the server takes no key
    note: str = ""


PROVIDERS: dict[str, Provider] = {
    "openai": Provider("openai", "https://api.openai.com/v1", "gpt-4o-mini", "OPENAI_API_KEY"),
    "deepseek": Provider(
        "openai", "https://api.deepseek.com/v1", "deepseek-chat", "DEEPSEEK_API_KEY"
    ),
    "minimax": Provider(
        "openai",
        "https://api.minimax.io/v1",
        "MiniMax-M2.5",
        "MINIMAX_API_KEY",
        "China: https://api.minimaxi.com/v1",
    ),
    "qwen": Provider(
        "openai",
        "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        "qwen-plus",
        "DASHSCOPE_API_KEY",
        "China: https://dashscope.aliyuncs.com/compatible-mode/v1",
    ),
    "moonshot": Provider(
        "openai",
        "https://api.moonshot.ai/v1",
        "moonshot-v1-8k",
        "MOONSHOT_API_KEY",
        "China: https://api.moonshot.cn/v1",
    ),
    "ollama": Provider("openai", "http://127.0.0.1:11434/v1", "llama3.2"),
    "vllm": Provider("openai", "http://127.0.0.1:8000/v1"),
    "anthropic": Provider("anthropic", api_key_env="ANTHROPIC_API_KEY"),
    "gemini": Provider("gemini", api_key_env="GEMINI_API_KEY"),
    "offline": Provider("offline"),
}
