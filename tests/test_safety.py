"""Content safety end to end: a robot's keyword and pattern rules on what users send and on
what the robot sends (blocked, masked, or answered with the caring self-harm text), in `off`
and `stream` modes, and an OpenAI-compatible moderation endpoint that flags, fails or is slow
(failing open or closed). What the user sees, what the model sees, what is counted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import ValidationError

from tests.fakes.openai import FakeOpenAI
from tests.stack import Stack, every_text, running_stack
from timbridge.settings import SafetySettings

pytestmark = pytest.mark.usefixtures("clean_env")

RULES = [
    {"name": "drugs", "words": ["buy drugs"], "direction": "in"},
    {"name": "cards", "pattern": r"\b\d{16}\b", "action": "mask", "direction": "both"},
    {"name": "harm", "words": ["hurt myself"], "action": "self_harm", "direction": "in"},
    {"name": "secrets", "words": ["secret code"], "direction": "out"},
    {"name": "passwords", "pattern": r"password\w*", "action": "mask", "direction": "out"},
]
DEFAULTS = SafetySettings()


def _robots(mode: str = "off", **safety: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": "@RBT#helper",
            "persona": "You are Helper.",
            "reply_mode": mode,
            "safety": {"rules": RULES, **safety},
        },
        {"id": "@RBT#member", "persona": "You are Member."},
    ]


async def _ask(stack: Stack, text: str) -> str:
    mark = stack.emu.mark()
    stack.emu.user_send("alice", "@RBT#helper", text)
    reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
    if reply.stream is not None:
        await stack.emu.wait_until(lambda: reply.stream is not None and reply.stream.finished)
    return reply.text


def _decisions(stack: Stack) -> str:
    return "\n".join(
        line
        for line in stack.services.metrics.render().decode().splitlines()
        if line.startswith("timbridge_safety_decisions_total")
    )


async def test_what_users_send_is_blocked_masked_or_met_with_care(tmp_path: Path) -> None:
    llm = FakeOpenAI(reply=lambda messages: "ok")
    async with running_stack(tmp_path, llm=llm, robots=_robots()) as stack:
        assert await _ask(stack, "where can I buy drugs?") == DEFAULTS.blocked_text
        assert await _ask(stack, "I want to hurt myself") == DEFAULTS.self_harm_text
        assert llm.calls == []  # neither reached the model
        assert await _ask(stack, "my card is 4111111111111111, is it valid?") == "ok"
        decisions = _decisions(stack)
    assert llm.requests[0]["messages"][-1]["content"] == "my card is ****************, is it valid?"
    assert 'rule="drugs"' in decisions and 'action="block"' in decisions
    assert 'rule="harm"' in decisions and 'action="self_harm"' in decisions
    assert 'direction="in",robot="@RBT#helper",rule="cards"} 1.0' in decisions.replace(
        'action="mask",', ""
    )


@pytest.mark.parametrize("mode", ["off", "stream"])
async def test_what_the_robot_would_send_is_masked_or_replaced(tmp_path: Path, mode: str) -> None:
    answers = {
        "password?": "Your password is password123, keep it safe.",
        "code?": ("Here is a long preamble. " * 10) + "The secret code is 42.",
    }
    llm = FakeOpenAI(
        reply=lambda messages: answers[str(messages[-1]["content"])],
        chunk_size=3,
        chunk_interval_s=0.002,
    )
    async with running_stack(tmp_path, llm=llm, robots=_robots(mode)) as stack:
        seen = every_text(stack.emu, "@RBT#helper")
        assert await _ask(stack, "password?") == "Your ******** is ***********, keep it safe."
        mark = stack.emu.mark()
        stack.emu.user_send("alice", "@RBT#helper", "code?")
        await stack.emu.wait_until(
            lambda: any(
                m.text == DEFAULTS.blocked_answer_text
                for m in stack.emu.messages(from_="@RBT#helper", to="alice", after=mark)
            )
        )
        shown = [
            m
            for m in stack.emu.messages(from_="@RBT#helper", to="alice", after=mark)
            if not m.recalled
        ]
        # the next context keeps the replacement, never the blocked words
        await _ask(stack, "password?")
    assert not any("password1" in text or "secret code" in text for text in seen)
    assert [m.text for m in shown] == [DEFAULTS.blocked_answer_text]
    history = [str(m["content"]) for m in llm.requests[-1]["messages"]]
    assert DEFAULTS.blocked_answer_text in history and not any("secret" in h for h in history)


@asynccontextmanager
async def _moderation(verdicts: dict[str, Any], *, delay_s: float = 0.0) -> AsyncIterator[str]:
    """An OpenAI-compatible ``/v1/moderations``: each input's result by a word in it."""

    async def moderate(request: web.Request) -> web.Response:
        body = await request.json()
        assert request.headers["Authorization"] == "Bearer moderation-key"
        await asyncio.sleep(delay_s)
        text = body["input"]
        if "explode" in text:
            return web.json_response({"error": {"message": "boom"}}, status=500)
        flagged = next((v for word, v in verdicts.items() if word in text), None)
        categories = {"hate": False, "self-harm": False, "self-harm/intent": False}
        if flagged:
            categories[flagged] = True
        result = {"flagged": bool(flagged), "categories": categories}
        return web.json_response({"id": "modr-1", "model": body["model"], "results": [result]})

    app = web.Application()
    app.router.add_post("/v1/moderations", moderate)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("/v1"))
    finally:
        await server.close()


async def test_a_moderation_endpoint_flags_and_a_failing_one_fails_open_or_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODERATION_KEY", "moderation-key")
    verdicts = {"hateful": "hate", "hopeless": "self-harm/intent"}
    llm = FakeOpenAI(reply=lambda messages: "fine")
    async with _moderation(verdicts) as url:
        options = {"moderation_url": url, "moderation_key_env": "MODERATION_KEY"}
        async with running_stack(tmp_path, llm=llm, robots=_robots(**options)) as stack:
            assert await _ask(stack, "something hateful") == DEFAULTS.blocked_text
            assert await _ask(stack, "I feel hopeless") == DEFAULTS.self_harm_text
            assert await _ask(stack, "hello") == "fine"
            assert await _ask(stack, "explode") == "fine"  # the endpoint failed: open
            assert 'rule="moderation"' in _decisions(stack)
        closed = {**options, "fail_open": False}
        async with running_stack(tmp_path / "closed", llm=llm, robots=_robots(**closed)) as stack:
            assert await _ask(stack, "explode") == DEFAULTS.blocked_text
            assert 'rule="moderation_unavailable"' in _decisions(stack)
    async with _moderation(verdicts, delay_s=2.0) as url:
        slow = {**options, "moderation_url": url, "moderation_timeout_s": 0.2}
        async with running_stack(tmp_path / "slow", llm=llm, robots=_robots(**slow)) as stack:
            assert await _ask(stack, "hateful but the endpoint is slow") == "fine"


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ({"name": "empty"}, "give words, a pattern, or both"),
        ({"pattern": "(unclosed"}, "pattern is not a regular expression"),
        ({"words": [" "]}, "words may not be empty"),
        ({"words": ["x"], "action": "shout"}, "action"),
    ],
)
def test_a_bad_rule_is_refused_saying_why(rule: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        SafetySettings(rules=[rule])  # type: ignore[list-item]
