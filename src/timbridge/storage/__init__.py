"""Everything timbridge keeps: the history, the inbox of accepted messages, on SQLite or
PostgreSQL, with one set of SQL rules (`storage.sql`) and one group commit."""

from timbridge.storage.history import History, Turn, UsageRecord
from timbridge.storage.inbox import Inbox, InboxEntry
from timbridge.storage.schema import SCHEMA_VERSION
from timbridge.storage.store import Store

__all__ = ["SCHEMA_VERSION", "History", "Inbox", "InboxEntry", "Store", "Turn", "UsageRecord"]
