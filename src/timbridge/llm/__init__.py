"""Models: the `ChatModel` interface, providers, and offline token counting."""

from timbridge.llm.anthropic_messages import AnthropicMessages
from timbridge.llm.base import ChatMessage, ChatModel, Delta, Usage
from timbridge.llm.openai_compat import OpenAICompatible
from timbridge.llm.tokens import count_tokens

__all__ = [
    "AnthropicMessages",
    "ChatMessage",
    "ChatModel",
    "Delta",
    "OpenAICompatible",
    "Usage",
    "count_tokens",
]
