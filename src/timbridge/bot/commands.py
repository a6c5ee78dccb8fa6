"""Chat commands a user can send a robot: ``/help`` and ``/reset``. Each message is defined once."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["COMMANDS", "Command", "parse_command"]

COMMANDS: dict[str, str] = {
    "/help": "show what I can do",
    "/reset": "forget our conversation so far",
}

HELP_TEXT = "Commands:\n" + "\n".join(f"{name} — {what}" for name, what in COMMANDS.items())
RESET_TEXT = "Done: I have forgotten our conversation. What shall we talk about?"
UNKNOWN_TEXT = "I don't know the command {name}. " + HELP_TEXT
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
