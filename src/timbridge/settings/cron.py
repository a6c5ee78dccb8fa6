"""Cron expressions, through `croniter` (untyped, so behind these two typed functions)."""

from __future__ import annotations

from datetime import datetime

from croniter import croniter

__all__ = ["previous_fire", "valid_cron"]


def valid_cron(expression: str) -> bool:
    """Whether `expression` is a five-field cron expression."""
    return len(expression.split()) == 5 and bool(croniter.is_valid(expression))


def previous_fire(expression: str, now: datetime) -> datetime:
    """The latest time at or before `now` (aware) that `expression` names, in `now`'s zone."""
    found: datetime = croniter(expression, now).get_prev(datetime)
    if croniter.match(expression, now.replace(second=0, microsecond=0)):
        return now.replace(second=0, microsecond=0)
    return found
