"""The model providers, each under the name of the API it speaks: the OpenAI Chat Completions
API (direct, or through the vendor SDK), Anthropic's Messages API, the Gemini API, and the
offline model that needs no API at all."""

__all__: list[str] = []
