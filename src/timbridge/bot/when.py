"""When a reminder is due, from what a user writes: ``in 20 minutes``, ``at 9:30``,
``tomorrow at 9``, ``2026-12-24 18:00`` (in the robot's time zone), then the text to send."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = ["parse_when"]

_UNITS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
}  # fmt: skip
_IN = re.compile(r"^in\s+(\d{1,6})\s*([a-z]+)\b\s*(.*)$", re.IGNORECASE | re.DOTALL)
_AT = re.compile(
    r"^(tomorrow\s+)?(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*(am|pm)?\b\s*(.*)$",
    re.IGNORECASE | re.DOTALL,
)
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{1,2}):(\d{2}))?\s+(.*)$", re.DOTALL)


def parse_when(text: str, now: datetime, zone: ZoneInfo) -> tuple[datetime, str] | None:
    """The moment `text` names and the rest of it (the reminder's text), or None when it names
    no moment (or an impossible one). `now` is aware; the result is in `zone`."""
    text = text.strip()
    local = now.astimezone(zone)
    if match := _IN.match(text):
        unit = _UNITS.get(match.group(2).lower())
        if unit is None:
            return None
        return local + timedelta(seconds=int(match.group(1)) * unit), match.group(3).strip()
    if match := _DATE.match(text):
        year, month, day, hour, minute, rest = match.groups()
        try:
            due = datetime(
                int(year), int(month), int(day), int(hour or 9), int(minute or 0), tzinfo=zone
            )
        except ValueError:
            return None
        return due, rest.strip()
    if (match := _AT.match(text)) and (match.group(1) or text.lower().startswith("at")):
        tomorrow, hour_text, minute_text, half, rest = match.groups()
        hour, minute = int(hour_text), int(minute_text or 0)
        if half:
            if not 1 <= hour <= 12:
                return None
            hour = hour % 12 + (12 if half.lower() == "pm" else 0)
        if hour > 23 or minute > 59:
            return None
        due = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if tomorrow or due <= local:
            due += timedelta(days=1)
        return due, rest.strip()
    return None
