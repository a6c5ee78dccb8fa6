"""Chat commands a user can send a robot: ``/help`` and ``/reset``. Each message is defined once."""

from __future__ import annotations

import re
from dataclasses import dataclass

from timbridge.bot.sentences import COMMANDS

__all__ = ["COMMANDS", "Command", "parse_command", "usage_text"]

_COMMAND = re.compile(r"^/([A-Za-z][A-Za-z0-9_-]{0,31})(?:\s|$)")


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # "/help", "/reset", or the unknown one as typed

    @property
    def known(self) -> bool:
        return self.name in COMMANDS


def parse_command(text: str) -> Command | None:
    """The command `text` starts with, if it is one (``/word``); else None."""
    match = _COMMAND.match(text)
    return Command("/" + match.group(1).lower()) if match else None


def usage_text(used: int, limit: int, group_used: int | None, group_limit: int) -> str:
    """The answer to ``/usage``."""
    mine = f"Today (UTC) you have used {used} tokens"
    mine += f" of your {limit} daily limit." if limit else " (no daily limit)."
    if group_used is None:
        return mine
    group = f" This group has used {group_used} tokens"
    return mine + group + (f" of its {group_limit} daily limit." if group_limit else ".")
