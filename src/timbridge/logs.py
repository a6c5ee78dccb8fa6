"""Structured logging: structlog to stderr, JSON for services, readable lines for commands.

Event names are dotted (``webhook.rejected``) and carry fields; `sdkappid`, `callback_command`,
`robot`, `conversation` and `trace_id` are bound through contextvars where they are known, so
every line of one message's journey carries them. Secrets are never passed to a logger, and the
configured ones are removed from every line anyway (`timbridge.redact`): an upstream error text
may quote them.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import orjson
import structlog

from timbridge.redact import redact_event

__all__ = ["configure_logging"]

LogFormat = Literal["json", "console"]


def configure_logging(fmt: LogFormat = "console", level: str = "info") -> None:
    """Send every structlog event to stderr as JSON lines or as readable console lines."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if fmt == "json":
        structlog.configure(
            processors=[
                *shared,
                structlog.processors.format_exc_info,
                redact_event,
                structlog.processors.JSONRenderer(serializer=orjson.dumps),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(numeric),
            logger_factory=structlog.BytesLoggerFactory(sys.stderr.buffer),
            cache_logger_on_first_use=True,
        )
    else:
        structlog.configure(
            processors=[
                *shared,
                structlog.processors.format_exc_info,
                redact_event,
                structlog.dev.ConsoleRenderer(colors=False),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(numeric),
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
            cache_logger_on_first_use=True,
        )
