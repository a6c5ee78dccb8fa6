"""Content safety: a robot's rules on what users send and on what it is about to send
(`rules`), and an OpenAI-compatible moderation endpoint (`moderation`). Import from the modules."""

__all__: list[str] = []
