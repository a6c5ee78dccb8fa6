"""Screening a robot's traffic with its `[robots.safety]`: what a user sends, before the model
sees it; what the robot is about to send, before the user does (the growing text of a live
reply against the rules, the whole answer also against the moderation endpoint).

Every decision other than "allow" is counted (`timbridge_safety_decisions_total{robot, rule,
direction, action}`) and logged, without the text unless `log_text`.
"""

from __future__ import annotations

import aiohttp
import structlog

from timbridge.metrics import Metrics
from timbridge.safety.moderation import Moderation
from timbridge.safety.rules import Direction, Rules, Verdict
from timbridge.settings import Settings

__all__ = ["Screen", "Verdict"]

_log = structlog.get_logger("timbridge.safety")


class Screen:
    """The safety of every robot that has some."""

    def __init__(
        self, settings: Settings, session: aiohttp.ClientSession | None, metrics: Metrics
    ) -> None:
        self._metrics = metrics
        self._rules = {r.id: Rules(r.safety) for r in settings.robots if r.safety is not None}
        self._moderation = {
            r.id: Moderation(session, r.safety)
            for r in settings.robots
            if r.safety is not None and r.safety.moderation_url and session is not None
        }

    def __contains__(self, robot: str) -> bool:
        return robot in self._rules

    def replacement(self, robot: str, verdict: Verdict, direction: Direction) -> str:
        """What is said instead of a blocked message (or of the answer to one)."""
        safety = self._rules[robot].settings
        if verdict.action == "self_harm":
            return safety.self_harm_text
        return safety.blocked_text if direction == "in" else safety.blocked_answer_text

    def growing(self, robot: str, text: str) -> Verdict:
        """The rules alone, on the text of a live reply so far (not counted: the final
        check counts)."""
        return self._rules[robot].check(text, "out")

    async def check(self, robot: str, text: str, direction: Direction) -> Verdict:
        """The rules, then the moderation endpoint (for text the rules let through)."""
        rules = self._rules.get(robot)
        if rules is None:
            return Verdict("allow", text)
        verdict = rules.check(text, direction)
        moderation = self._moderation.get(robot)
        if verdict.action in ("allow", "mask") and moderation is not None:
            said = await moderation.check(verdict.text)
            if said is None and not rules.settings.fail_open:
                verdict = Verdict("block", text, "moderation_unavailable")
            elif said in ("block", "self_harm"):
                verdict = Verdict(said, text, "moderation")
        if verdict.action != "allow":
            self._metrics.safety.labels(robot, verdict.rule, direction, verdict.action).inc()
            fields = {"text": text[:500]} if rules.settings.log_text else {}
            _log.info(
                "safety.decided",
                direction=direction,
                action=verdict.action,
                rule=verdict.rule,
                **fields,
            )
        return verdict
