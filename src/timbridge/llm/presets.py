"""Presets for OpenAI-compatible vendors: ``provider = "deepseek"`` and friends.

A preset fills in the base URL, a default model and the name of the API-key variable; anything
the profile sets itself wins. Default models change as vendors release new ones: set ``model``
for the one you want. Endpoints are the international ones; China-region URLs are noted.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PRESETS", "Preset"]


@dataclass(frozen=True, slots=True)
class Preset:
    base_url: str
    model: str | None  # None: the profile must name one
    api_key_env: str | None  # None: the server takes no key
    note: str = ""


PRESETS: dict[str, Preset] = {
    "openai": Preset("https://api.openai.com/v1", "gpt-4o-mini", "OPENAI_API_KEY"),
    "deepseek": Preset("https://api.deepseek.com/v1", "deepseek-chat", "DEEPSEEK_API_KEY"),
    "minimax": Preset(
        "https://api.minimax.io/v1",
        "MiniMax-M2.5",
        "MINIMAX_API_KEY",
        "China: https://api.minimaxi.com/v1",
    ),
    "qwen": Preset(
        "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        "qwen-plus",
        "DASHSCOPE_API_KEY",
        "China: https://dashscope.aliyuncs.com/compatible-mode/v1",
    ),
    "moonshot": Preset(
        "https://api.moonshot.ai/v1",
        "moonshot-v1-8k",
        "MOONSHOT_API_KEY",
        "China: https://api.moonshot.cn/v1",
    ),
    "ollama": Preset("http://127.0.0.1:11434/v1", "llama3.2", None),
    "vllm": Preset("http://127.0.0.1:8000/v1", None, None),
}
