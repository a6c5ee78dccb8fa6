"""The names of the Redis coordinator's keys, all under one prefix (``timbridge:`` unless
`coordination.prefix` says otherwise), so that several deployments can share one Redis:

* ``seen:{identity}``: dedupe, ``SET NX EX``.
* ``mbox:{conversation}``: the conversation's jobs, a list in arrival order.
* ``active``: the set of conversations that are scheduled or being worked on.
* ``ready``: a stream with one entry per active conversation, read by the consumer group
  ``workers``. Whoever holds the entry owns the conversation.
* ``depth``: jobs queued and not yet finished, over all processes.
* ``rate:{key}`` / ``told:{key}``: a per-minute window (a sorted set of message times) and
  whether its sender was told of the limit in the current window.
* ``claim:{key}``: who holds a claim (bursts). ``once:{key}``: something done within a while
  (the busy notice, the budget notice). ``note:{key}``: a small fact kept for a while (a
  recalled message, a ``/cancel``).
"""

from __future__ import annotations

__all__ = ["Keys"]


class Keys:
    """Every key name, under `prefix`."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.rstrip(":") + ":"
        self.active = self.prefix + "active"
        self.ready = self.prefix + "ready"
        self.depth = self.prefix + "depth"

    def seen(self, identity: str) -> str:
        return f"{self.prefix}seen:{identity}"

    def mbox(self, conversation: str) -> str:
        return f"{self.prefix}mbox:{conversation}"

    def rate(self, key: str) -> str:
        return f"{self.prefix}rate:{key}"

    def told(self, key: str) -> str:
        return f"{self.prefix}told:{key}"

    def claim(self, key: str) -> str:
        return f"{self.prefix}claim:{key}"

    def once(self, key: str) -> str:
        return f"{self.prefix}once:{key}"

    def note(self, key: str) -> str:
        return f"{self.prefix}note:{key}"
