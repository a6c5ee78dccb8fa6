"""A robot's safety rules, compiled: keyword and regular-expression lists that block a message
or mask what matches, in one direction or both, and a self-harm rule whose answer is a caring
message instead of the model's.

Masks keep the text's length (``*`` for each masked character), so a live reply can mask what
it has not shown yet without moving what it has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from timbridge.settings import SafetyRule, SafetySettings

__all__ = ["Direction", "Rules", "Verdict"]

Direction = Literal["in", "out"]
Action = Literal["allow", "mask", "block", "self_harm"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the rules decided: the action, the rule's name, and the text to use (masked)."""

    action: Action
    text: str
    rule: str = ""


@dataclass(frozen=True, slots=True)
class _Compiled:
    name: str
    pattern: re.Pattern[str]
    action: Literal["block", "mask", "self_harm"]
    directions: frozenset[str]


def _compile(index: int, rule: SafetyRule) -> _Compiled:
    parts = [re.escape(word) for word in rule.words]
    if rule.pattern:
        parts.append(f"(?:{rule.pattern})")
    directions = frozenset({"in", "out"} if rule.direction == "both" else {rule.direction})
    name = rule.name or f"rule{index}"
    return _Compiled(name, re.compile("|".join(parts), re.IGNORECASE), rule.action, directions)


class Rules:
    """One robot's rules, checked in their order: the first block or self-harm rule that
    matches decides; masks apply together."""

    def __init__(self, settings: SafetySettings) -> None:
        self.settings = settings
        self._rules = [_compile(n, rule) for n, rule in enumerate(settings.rules)]

    def check(self, text: str, direction: Direction) -> Verdict:
        masked = text
        masked_by = ""
        for rule in self._rules:
            if direction not in rule.directions:
                continue
            if rule.action == "mask":
                masked, count = rule.pattern.subn(lambda m: "*" * len(m.group(0)), masked)
                masked_by = masked_by or (rule.name if count else "")
            elif rule.pattern.search(text):
                return Verdict(rule.action, text, rule.name)
        return Verdict("mask", masked, masked_by) if masked_by else Verdict("allow", text)
