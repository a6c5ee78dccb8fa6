"""Chat commands a user can send a robot: ``/help`` and ``/reset``. Each message is defined once."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["COMMANDS", "Command", "parse_command", "usage_text"]

COMMANDS: dict[str, str] = {
    "/help": "show what I can do",
    "/reset": "forget our conversation so far",
    "/compact": "summarise our conversation so far, to keep it short",
    "/usage": "show the tokens you have used today",
}

HELP_TEXT = "Commands:\n" + "\n".join(f"{name} — {what}" for name, what in COMMANDS.items())
RESET_TEXT = "Done: I have forgotten our conversation. What shall we talk about?"
UNKNOWN_TEXT = "I don't know the command {name}. " + HELP_TEXT
BUDGET_TEXT = (
    "{who} used today's {limit} tokens. You can write again after 00:00 UTC, "
    "in {hours} h {minutes} min."
)
COMPACT_TEXT = "Done: I summarised our conversation ({turns} turns) to keep it short."
NOTHING_TO_COMPACT_TEXT = "There is nothing to summarise yet."
LIMIT_TEXT = (
    "You are writing faster than I can answer (at most {limit} messages a minute). "
    "Please write again in {seconds} s; messages until then go unanswered."
)

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
