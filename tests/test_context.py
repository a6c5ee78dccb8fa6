"""The context sent to a model (`bot.context`): the newest turns within the budget."""

from __future__ import annotations

from timbridge.bot import tool_turns
from timbridge.bot.context import build_context
from timbridge.llm.base import ChatMessage
from timbridge.llm.tokens import count_tokens
from timbridge.llm.tools import ToolCall
from timbridge.storage import Turn
from timbridge.storage.history import TURN_LOADED_CHARS


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


def _tools_turn() -> Turn:
    steps = [
        ChatMessage("assistant", "", tool_calls=(ToolCall("c1", "calculator", {"e": "2+2"}),)),
        ChatMessage("tool", "4", tool_call_id="c1", tool_name="calculator"),
    ]
    content = tool_turns.encode(steps)
    return Turn("tools", content, count_tokens(content))


def test_tool_steps_replay_after_their_question_and_never_without_it() -> None:
    history = [Turn("user", "q " * 200, 400), _tools_turn(), Turn("assistant", "4", 1)]
    whole, _ = build_context("p", history, "new", budget=5000, answer_tokens=100)
    assert [m.role for m in whole] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert whole[2].tool_calls[0].arguments == {"e": "2+2"} and whole[3].content == "4"
    # the question does not fit: its calls are left out with it (an orphan result is refused)
    cut, dropped = build_context("p", history, "new", budget=300, answer_tokens=100)
    assert [m.role for m in cut] == ["system", "assistant", "user"] and dropped == 2


def test_an_unreadable_or_incomplete_tools_turn_replays_nothing() -> None:
    assert tool_turns.decode("not json") == []
    assert tool_turns.decode('[{"calls": [{"id": "a", "name": "x"}], "results": []}]') == []


def test_a_stored_tools_turn_is_bounded_and_keeps_its_latest_steps() -> None:
    steps = []
    for n in range(40):
        steps.append(ChatMessage("assistant", "", tool_calls=(ToolCall(f"c{n}", "t", {}),)))
        steps.append(ChatMessage("tool", "x" * 5000, tool_call_id=f"c{n}", tool_name="t"))
    content = tool_turns.encode(steps)
    assert len(content) <= TURN_LOADED_CHARS
    replayed = tool_turns.decode(content)
    assert replayed[-1].tool_call_id == "c39"
    assert len(replayed[-1].content) == tool_turns.STORED_RESULT_CHARS
