"""The context sent to a model (`bot.context`): the newest turns within the budget."""

from __future__ import annotations

from timbridge.bot.context import build_context
from timbridge.llm.tokens import count_tokens
from timbridge.storage import Turn


def test_context_keeps_newest_turns_within_budget() -> None:
    history = [
        Turn(
            "user" if n % 2 == 0 else "assistant",
            f"turn {n} " + "word " * 50,
            count_tokens(f"turn {n} " + "word " * 50),
        )
        for n in range(40)
    ]
    messages, dropped = build_context("persona", history, "new", budget=2000, answer_tokens=500)
    assert dropped == len(history) - (len(messages) - 2)
    assert messages[0].role == "system" and messages[-1].content == "new"
    kept = messages[1:-1]
    assert kept[-1].content.startswith("turn 39")
    assert 10 < len(kept) < 40
    assert sum(count_tokens(m.content) for m in messages) <= 2000 - 500
