"""Conversation history and sent-reply records in SQL (SQLite embedded, PostgreSQL at scale)."""

from timbridge.memory.store import SCHEMA_VERSION, Store, Turn

__all__ = ["SCHEMA_VERSION", "Store", "Turn"]
