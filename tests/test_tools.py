"""Tools: a robot whose model calls tools gets their results and answers with them
(emulator → engine → fake OpenAI that calls tools in the real wire format → toolbox → model
again → emulator); the step budget ends a loop that never stops; failing calls become error
results the model sees; the built-in tools themselves."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import Call, FakeOpenAI
from tests.stack import Stack, every_text, running_stack, vendor_models
from timbridge.bot.sentences import LOOKING_UP, STEPS_SPENT
from timbridge.errors import ConfigError
from timbridge.llm.tools import ToolCall, ToolSpec
from timbridge.tools.builtin import calculate, current_time
from timbridge.tools.toolbox import Tool, Toolbox, ToolError

pytestmark = pytest.mark.usefixtures("clean_env")

ROBOT = [
    {
        "id": "@RBT#helper",
        "persona": "You are Helper.",
        "tools": ["calculator", "current_time"],
    }
]


def _results(messages: list[dict[str, Any]]) -> list[str]:
    """The tool results a request carries, in order, in OpenAI's shape (``tool`` messages),
    Anthropic's (``tool_result`` blocks in the user's turn) or Gemini's (``functionResponse``)."""
    found = []
    for message in messages:
        if "parts" in message:  # Gemini: functionResponse parts
            parts = message["parts"]
            responses = [
                p["functionResponse"]["response"] for p in parts if "functionResponse" in p
            ]
            found += [r.get("result") or r["error"] for r in responses]
        elif message["role"] == "tool":
            found.append(message["content"])
        elif isinstance(message["content"], list):
            found += [b["content"] for b in message["content"] if b["type"] == "tool_result"]
    return found


def two_then_one(messages: list[dict[str, Any]]) -> list[Call] | None:
    """Two calls in the first step, a third in the second, then the answer."""
    done = len(_results(messages))
    if done == 0:
        return [
            ("calculator", {"expression": "17*23"}),
            ("current_time", {"timezone": "Asia/Shanghai"}),
        ]
    if done == 2:
        return [("calculator", {"expression": "391+9"})]
    return None


def answer_from_results(messages: list[dict[str, Any]]) -> str:
    return "results: " + " | ".join(_results(messages))


@pytest.mark.parametrize("client", ["direct", "sdk"])
@pytest.mark.parametrize("reply_mode", ["off", "stream"])
@pytest.mark.parametrize("stream", [True, False])
async def test_two_calls_in_one_step_and_a_third_in_the_next_are_answered_with_their_results(
    tmp_path: Path, stream: bool, reply_mode: str, client: str
) -> None:
    llm = FakeOpenAI(tool_calls=two_then_one, reply=answer_from_results, chunk_size=3)
    robots = [{**ROBOT[0], "reply_mode": reply_mode}]
    options = {"stream": stream, "client": client}
    async with running_stack(tmp_path, llm=llm, robots=robots, model_options=options) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "what is 17*23+9, and the time in Shanghai?")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice", limit_s=15)
    assert reply.text.startswith("results: 391 | ")
    assert "Asia/Shanghai" in reply.text and reply.text.endswith(" | 400")
    assert len(llm.requests) == 3  # two steps with calls, one that answers
    first, second, third = llm.requests
    assert [t["function"]["name"] for t in first["tools"]] == ["calculator", "current_time"]
    # the second request carries the first step's calls and both results, by call id
    calls = second["messages"][-3]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["calculator", "current_time"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"expression": "17*23"}
    results = second["messages"][-2:]
    assert [r["tool_call_id"] for r in results] == [c["id"] for c in calls]
    assert results[0]["content"] == "391"
    assert third["messages"][-1] == {
        "role": "tool",
        "tool_call_id": third["messages"][-2]["tool_calls"][0]["id"],
        "content": "400",
    }


@asynccontextmanager
async def vendor_stack(
    tmp: Path, fake: FakeAnthropic | FakeGemini, provider: str, **options: Any
) -> AsyncIterator[Stack]:
    """The stack with the robot's model on `fake`, a vendor SDK's fake server (key: FAKE_KEY)."""
    async with (
        vendor_models(fake, provider, key_env="FAKE_KEY", retries=0, **options) as models,
        running_stack(tmp, models=models, robots=ROBOT) as stack,
    ):
        yield stack


@pytest.mark.parametrize("stream", [True, False])
async def test_anthropic_calls_tools_in_steps_and_answers_with_their_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    monkeypatch.setenv("FAKE_KEY", "sk-ant-test")
    fake = FakeAnthropic(tool_calls=two_then_one, reply=answer_from_results)
    async with vendor_stack(tmp_path, fake, "anthropic", stream=stream) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "what is 17*23+9, and the time in Shanghai?")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice", limit_s=15)
    assert reply.text.startswith("results: 391 | ") and reply.text.endswith(" | 400")
    assert len(fake.requests) == 3
    first, second, _ = fake.requests
    assert [t["name"] for t in first["tools"]] == ["calculator", "current_time"]
    assert first["tools"][0]["input_schema"]["required"] == ["expression"]
    # the calls go back as the assistant's tool_use blocks, the results in the user's turn
    uses = second["messages"][-2]["content"]
    assert [(b["type"], b["name"]) for b in uses] == [
        ("tool_use", "calculator"),
        ("tool_use", "current_time"),
    ]
    assert uses[0]["input"] == {"expression": "17*23"}
    results = second["messages"][-1]
    assert results["role"] == "user"
    assert [b["tool_use_id"] for b in results["content"]] == [b["id"] for b in uses]


async def test_gemini_calls_tools_in_steps_and_answers_with_their_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KEY", "gm-test")
    fake = FakeGemini(tool_calls=two_then_one, reply=answer_from_results)
    async with vendor_stack(tmp_path, fake, "gemini") as stack:
        stack.emu.user_send("alice", "@RBT#helper", "17*23+9, and the time in Shanghai?")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice", limit_s=15)
    assert reply.text.startswith("results: 391 | ") and reply.text.endswith(" | 400")
    assert len(fake.requests) == 3
    first, second, _ = fake.requests
    declared = first["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in declared] == ["calculator", "current_time"]
    # the SDK writes the proto field name; Google's JSON parsing takes it as well as camelCase
    schema = declared[0].get("parametersJsonSchema") or declared[0]["parameters_json_schema"]
    assert schema["required"] == ["expression"]
    calls, results = second["contents"][-2:]
    assert calls["role"] == "model"
    assert [p["functionCall"]["name"] for p in calls["parts"]] == ["calculator", "current_time"]
    assert results["role"] == "user"  # both results in one turn, matched by name and id
    responses = [p["functionResponse"] for p in results["parts"]]
    assert [(r["name"], r["id"]) for r in responses] == [
        (p["functionCall"]["name"], p["functionCall"]["id"]) for p in calls["parts"]
    ]
    assert responses[0]["response"] == {"result": "391"}


async def test_the_tool_steps_are_kept_and_replayed_with_the_next_message(tmp_path: Path) -> None:
    def first_message_only(messages: list[dict[str, Any]]) -> list[Call] | None:
        users = [m for m in messages if m["role"] == "user"]
        return two_then_one(messages) if len(users) == 1 else None

    llm = FakeOpenAI(tool_calls=first_message_only, reply=answer_from_results)
    async with running_stack(tmp_path, llm=llm, robots=ROBOT) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "what is 17*23+9?")
        await stack.emu.wait_message(from_="@RBT#helper", to="alice", limit_s=15)
        mark = stack.emu.mark()
        stack.emu.user_send("alice", "@RBT#helper", "and what did you compute?")
        await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark, limit_s=15)
        kept = await stack.services.store.history.recent_turns("c2c:@RBT#helper:alice")
    assert [t.role for t in kept] == ["user", "tools", "assistant", "user", "assistant"]
    replayed = llm.requests[-1]["messages"]
    roles = [m["role"] for m in replayed]
    assert roles == [
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    assert [c["function"]["name"] for c in replayed[2]["tool_calls"]] == [
        "calculator",
        "current_time",
    ]
    assert replayed[3]["content"] == "391" and replayed[6]["content"] == "400"
    assert replayed[3]["tool_call_id"] == replayed[2]["tool_calls"][0]["id"]


async def test_a_model_that_never_stops_calling_is_stopped_by_the_step_budget(
    tmp_path: Path,
) -> None:
    llm = FakeOpenAI(tool_calls=lambda messages: [("calculator", {"expression": "1+1"})])
    async with running_stack(tmp_path, llm=llm, robots=ROBOT, tools={"max_steps": 3}) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "loop forever")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice", limit_s=15)
    assert len(llm.requests) == 3
    assert reply.text == STEPS_SPENT.strip()


async def test_a_failing_call_is_an_error_result_the_model_answers_from(tmp_path: Path) -> None:
    def calls(messages: list[dict[str, Any]]) -> list[Call] | None:
        if _results(messages):
            return None
        return [
            ("calculator", {"expression": "import os"}),
            ("current_time", {"timezone": "Mars/Olympus"}),
            ("fetch_url", {"url": "http://x"}),  # not one of this robot's tools
        ]

    llm = FakeOpenAI(tool_calls=calls, reply=answer_from_results)
    async with running_stack(tmp_path, llm=llm, robots=ROBOT) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "break things")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice", limit_s=15)
    results = reply.text.removeprefix("results: ").split(" | ")
    assert results[0].startswith("error: not an expression")
    assert results[1].startswith("error: unknown time zone 'Mars/Olympus'")
    assert results[2] == "error: no tool named 'fetch_url'"


async def test_edit_mode_shows_a_progress_line_while_tools_run_replaced_by_the_answer(
    tmp_path: Path,
) -> None:
    llm = FakeOpenAI(tool_calls=two_then_one, reply=answer_from_results, delay_s=0.3)
    robots = [{**ROBOT[0], "reply_mode": "edit"}]
    async with running_stack(tmp_path, llm=llm, robots=robots) as stack:
        seen = every_text(stack.emu, "@RBT#helper")
        stack.emu.user_send("alice", "@RBT#helper", "17*23, the time in Shanghai, then +9")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice", limit_s=15)
        await stack.emu.wait_until(lambda: reply.text.startswith("results: 391"))
        await stack.services.coordination.idle()  # type: ignore[attr-defined]
    assert seen[0] == LOOKING_UP  # the first thing the user sees while the tools run
    assert LOOKING_UP not in reply.text and reply.text.endswith("| 400")
    assert len(stack.emu.messages(from_="@RBT#helper")) == 1  # one message, edited in place


async def test_a_robot_without_tools_is_offered_none(tmp_path: Path) -> None:
    llm = FakeOpenAI(tool_calls=lambda messages: [("calculator", {"expression": "1"})])
    async with running_stack(tmp_path, llm=llm) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "hello")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
    assert reply.text == "echo: hello"
    assert "tools" not in llm.requests[0]


async def test_an_unknown_tool_name_stops_start_up_with_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        async with running_stack(tmp_path, robots=[{**ROBOT[0], "tools": ["shell"]}]):
            pass
    assert caught.value.key == "robots[0].tools"
    assert "no tool named 'shell'" in str(caught.value)


@pytest.mark.parametrize(
    ("expression", "value"),
    [("17*23+9", "400"), ("2^10", "1024"), ("sqrt(2)", "1.41421356237"), ("7/2", "3.5")],
)
def test_the_calculator_computes_arithmetic(expression: str, value: str) -> None:
    assert calculate(expression) == value


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("__import__('os')", "not arithmetic"),
        ("9**99999999", "exponent over"),
        ("1/0", "cannot compute"),
        ("(" * 300, "over 200 characters"),
        ("True+1", "not arithmetic"),
    ],
)
def test_the_calculator_refuses_anything_else(expression: str, error: str) -> None:
    with pytest.raises(ToolError, match=error):
        calculate(expression)


async def test_the_current_time_names_its_zone() -> None:
    assert "Asia/Shanghai (" in await current_time({"timezone": "Asia/Shanghai"})
    assert " UTC (" in await current_time({})


async def test_a_slow_or_broken_tool_gives_an_error_result_and_big_results_are_cut() -> None:
    import asyncio

    async def slow(arguments: Any) -> str:
        await asyncio.sleep(5)
        return "late"

    async def broken(arguments: Any) -> str:
        raise RuntimeError("bug")

    async def big(arguments: Any) -> str:
        return "x" * 10_000

    toolbox = Toolbox(
        [
            Tool(ToolSpec(n, n), run)
            for n, run in (("slow", slow), ("broken", broken), ("big", big))
        ],
        timeout_s=0.2,
        max_result_chars=100,
    )
    results = await toolbox.run(
        [
            ToolCall("1", "slow", {}),
            ToolCall("2", "broken", {}),
            ToolCall.parsed("3", "big", "[1]"),
            ToolCall("4", "big", {}),
        ],
        admin=False,
    )
    assert [r.is_error for r in results] == [True, True, True, False]
    assert results[0].content == "error: no result within 0.2 s"
    assert results[1].content == "error: the tool failed (RuntimeError)"
    assert results[2].content == "error: arguments are not a JSON object"
    assert results[3].content.startswith("x" * 100) and results[3].content.endswith(
        "[cut at 100 characters]"
    )
