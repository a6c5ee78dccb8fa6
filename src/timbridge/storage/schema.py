"""The tables of the store, and the one migration that creates or upgrades them.

Version history: 1 turns and reply parts; 2 the usage ledger; 3 the inbox (accepted messages not
yet answered); 4 tickets (conversations handed to people), knowledge gaps (questions a base
could not answer), ratings (what users thought) and reminders; 5 the ledger's cached tokens
(a column: the one change `create_all` cannot make, so `migrate` adds it); 6 long-term memory
(facts about users, and how far each conversation has been read for them).
"""

from __future__ import annotations

import sqlalchemy as sa

from timbridge.errors import StorageError
from timbridge.storage.sql import ID_TYPE, migration_lock

__all__ = [
    "SCHEMA_VERSION",
    "facts",
    "gaps",
    "inbox",
    "memory_marks",
    "migrate",
    "ratings",
    "reminders",
    "reply_parts",
    "schedule_runs",
    "tickets",
    "turns",
    "usage",
]

SCHEMA_VERSION = 6

_metadata = sa.MetaData()

turns = sa.Table(
    "turns",
    _metadata,
    sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    sa.Column("conversation", sa.String(300), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("tokens", sa.Integer, nullable=False),
    sa.Column("identity", sa.String(300), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("conversation", "identity", "role", name="uq_turns_identity"),
    sa.Index("ix_turns_conversation_id", "conversation", "id"),
)

reply_parts = sa.Table(
    "reply_parts",
    _metadata,
    sa.Column("identity", sa.String(300), primary_key=True),
    sa.Column("part", sa.Integer, primary_key=True),
    sa.Column("handle", sa.String(300), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

usage = sa.Table(
    "usage",
    _metadata,
    sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    sa.Column("robot", sa.String(64), nullable=False),
    sa.Column("sender", sa.String(64), nullable=False),
    sa.Column("group_id", sa.String(100), nullable=True),
    sa.Column("identity", sa.String(300), nullable=False),
    sa.Column("purpose", sa.String(16), nullable=False),  # answer | summary
    sa.Column("profile", sa.String(100), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("input_tokens", sa.Integer, nullable=False),
    sa.Column("output_tokens", sa.Integer, nullable=False),
    # of input_tokens, read from the provider's prompt cache (version 5)
    sa.Column("cached_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("day", sa.String(10), nullable=False),  # UTC, YYYY-MM-DD
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("identity", "robot", "purpose", name="uq_usage_identity"),
    sa.Index("ix_usage_robot_sender_day", "robot", "sender", "day"),
    sa.Index("ix_usage_robot_group_day", "robot", "group_id", "day"),
)

#: Accepted messages not yet answered, one row per (message, robot): written before the webhook
#: answers OK, deleted when the job is done. `seq` is the order of acceptance (assigned by the
#: one process that owns the inbox), so per-conversation order survives a restart.
inbox = sa.Table(
    "inbox",
    _metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("robot", sa.String(64), nullable=False),
    sa.Column("conversation", sa.String(300), nullable=False),
    sa.Column("identity", sa.String(300), nullable=False),
    sa.Column("command", sa.String(64), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("trace_id", sa.String(32), nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.UniqueConstraint("identity", "robot", name="uq_inbox_identity"),
)

#: Conversations handed to human agents: numbered, open until an agent closes them (or they idle).
tickets = sa.Table(
    "tickets",
    _metadata,
    sa.Column("number", ID_TYPE, primary_key=True, autoincrement=True),
    sa.Column("robot", sa.String(64), nullable=False),
    sa.Column("conversation", sa.String(300), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),  # c2c | group
    sa.Column("peer", sa.String(100), nullable=False),  # the user, or the GroupId
    sa.Column("sender", sa.String(64), nullable=False),  # who asked
    sa.Column("topic", sa.String(100), nullable=True),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("state", sa.String(8), nullable=False),  # open | closed
    sa.Column("opened_at", sa.Float, nullable=False),
    sa.Column("active_at", sa.Float, nullable=False),
    sa.Column("closed_at", sa.Float, nullable=True),
    sa.Column("closed_by", sa.String(64), nullable=True),
    sa.Column("identity", sa.String(300), nullable=False),  # the message that opened it
    sa.UniqueConstraint("identity", "robot", name="uq_tickets_identity"),
    sa.Index("ix_tickets_conversation_state", "conversation", "state"),
)

#: Questions a robot's knowledge base could not answer, for `kb gaps`: the newest are kept.
gaps = sa.Table(
    "gaps",
    _metadata,
    sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    sa.Column("kb", sa.String(100), nullable=False),
    sa.Column("robot", sa.String(64), nullable=False),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("why", sa.String(16), nullable=False),  # no_passage | model_unsure
    sa.Column("asked_at", sa.Float, nullable=False),
    sa.Index("ix_gaps_kb_id", "kb", "id"),
)

#: What users thought (``/rate 1-5``): of an answer, or of a ticket closed shortly before.
ratings = sa.Table(
    "ratings",
    _metadata,
    sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    sa.Column("robot", sa.String(64), nullable=False),
    sa.Column("conversation", sa.String(300), nullable=False),
    sa.Column("sender", sa.String(64), nullable=False),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("comment", sa.String(500), nullable=False),
    sa.Column("ticket", sa.BigInteger, nullable=True),
    sa.Column("identity", sa.String(300), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("identity", "robot", name="uq_ratings_identity"),
    sa.Index("ix_ratings_robot_created", "robot", "created_at"),
)

#: Messages to send later (``/remind``, the ``schedule`` tool): sent once, by one process.
reminders = sa.Table(
    "reminders",
    _metadata,
    sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    sa.Column("robot", sa.String(64), nullable=False),
    sa.Column("conversation", sa.String(300), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),  # c2c | group
    sa.Column("peer", sa.String(100), nullable=False),
    sa.Column("sender", sa.String(64), nullable=False),
    sa.Column("topic", sa.String(100), nullable=True),
    sa.Column("text", sa.String(2000), nullable=False),
    sa.Column("due_at", sa.Float, nullable=False),
    sa.Column(
        "state", sa.String(10), nullable=False
    ),  # pending | sending | sent | cancelled | missed
    sa.Column("claimed_at", sa.Float, nullable=True),
    sa.Column("sent_at", sa.Float, nullable=True),
    sa.Column("identity", sa.String(300), nullable=False),  # the message that asked for it
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("identity", "robot", name="uq_reminders_identity"),
    sa.Index("ix_reminders_state_due", "state", "due_at"),
    sa.Index("ix_reminders_conversation", "conversation", "state"),
)

#: Each time an operator's scheduled message fired (`robots[].schedules`): the one process whose
#: row this is sends it, so it goes out once however many workers there are.
schedule_runs = sa.Table(
    "schedule_runs",
    _metadata,
    sa.Column("robot", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("fire_at", sa.Float, primary_key=True),
    sa.Column("claimant", sa.String(32), nullable=False),
    sa.Column("state", sa.String(10), nullable=False),  # sending | sent | skipped
    sa.Column("created_at", sa.Float, nullable=False),
)

#: What robots with long-term memory know about their users: one row per fact, per robot, user
#: and chat (``scope``: empty for the private chat, else the GroupId), with the fact's embedding.
#: Forgetting deletes the row.
facts = sa.Table(
    "facts",
    _metadata,
    sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    sa.Column("robot", sa.String(64), nullable=False),
    sa.Column("owner", sa.String(64), nullable=False),  # the user the fact is about
    sa.Column("scope", sa.String(100), nullable=False),  # "" (private chat) or the GroupId
    sa.Column("text", sa.String(500), nullable=False),
    sa.Column("vector", sa.LargeBinary, nullable=True),  # float32, unit length
    sa.Column("embedder", sa.String(64), nullable=True),  # the vector's space
    sa.Column("source", sa.String(16), nullable=False),  # said | learned | tool
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("used_at", sa.Float, nullable=False),
    # the fact's place in the owner's recalled set (NULL: not in it), the part of their facts
    # that goes into contexts while they are more than the budget holds (chosen once per batch,
    # so that the prompt's prefix stays the same); a new or corrected fact joins it first (-1)
    sa.Column("recall", sa.Integer, nullable=True),
    sa.Index("ix_facts_owner", "robot", "owner", "scope", "id"),
)

#: How far each conversation's history has been read for facts: the identity of the last
#: message read (the messages after it are the next batch).
memory_marks = sa.Table(
    "memory_marks",
    _metadata,
    sa.Column("robot", sa.String(64), primary_key=True),
    sa.Column("conversation", sa.String(300), primary_key=True),
    sa.Column("identity", sa.String(300), nullable=False),  # "": nothing read yet
    sa.Column("read_at", sa.Float, nullable=False),
    # a process reading the conversation's next batch holds it until then (one reader at a time)
    sa.Column("reading_until", sa.Float, nullable=False),
)

_schema = sa.Table(
    "timbridge_schema",
    _metadata,
    sa.Column("version", sa.Integer, nullable=False),
)


def migrate(conn: sa.Connection) -> None:
    """Create or upgrade the schema to `SCHEMA_VERSION`; refuse a newer one."""
    migration_lock(conn)
    _metadata.create_all(conn)
    found = conn.execute(sa.select(_schema.c.version)).scalar()
    if found is not None and found < 5:  # the ledger gained cached_tokens
        columns = {c["name"] for c in sa.inspect(conn).get_columns("usage")}
        if "cached_tokens" not in columns:
            conn.execute(
                sa.text("ALTER TABLE usage ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0")
            )
    if found is None:
        conn.execute(_schema.insert().values(version=SCHEMA_VERSION))
    elif found < SCHEMA_VERSION:  # create_all added what is new; nothing changes shape
        conn.execute(_schema.update().values(version=SCHEMA_VERSION))
    elif found > SCHEMA_VERSION:
        raise StorageError(
            f"the store's schema is version {found}; this timbridge knows up to "
            f"{SCHEMA_VERSION}: upgrade timbridge"
        )
