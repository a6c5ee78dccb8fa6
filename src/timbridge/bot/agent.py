"""The agent loop: a robot with tools asks its model, runs the tools the model calls, gives the
model their results, and asks again, until the model answers in words or the step budget
(`tools.max_steps` model calls) is spent.

Every step's usage counts (the ledger gets the sum). Text the model says alongside its calls
("let me look that up") is part of the answer, as the live modes have already shown it. A budget
spent with calls still pending ends the answer with `STEPS_SPENT`, never with silence.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

import structlog

from timbridge.bot.sentences import STEPS_SPENT
from timbridge.llm.base import ChatMessage, Usage
from timbridge.llm.chain import Answer, ModelChain
from timbridge.tools.toolbox import Toolbox

__all__ = ["Agent"]

_log = structlog.get_logger("timbridge.agent")


class Agent:
    """Runs a robot's model with its tools."""

    def __init__(self, models: ModelChain, *, max_steps: int) -> None:
        self._models = models
        self._max_steps = max_steps

    async def answer(
        self,
        profile: str,
        messages: Sequence[ChatMessage],
        toolbox: Toolbox,
        *,
        admin: bool = False,
        on_delta: Callable[[str], Awaitable[None]] | None = None,
        on_tools: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[Answer, list[ChatMessage]]:
        """The answer, and the messages of its tool steps (the calls and their results).
        Tools with side effects are offered only when the asker is an `admin` of the robot;
        `on_tools` is awaited each time tools are about to run (a live reply's progress line)."""
        conversation = list(messages)
        said: list[str] = []
        steps: list[ChatMessage] = []
        spent = Usage()
        answer: Answer | None = None
        for step in range(1, self._max_steps + 1):
            answer = await self._models.answer(
                profile, conversation, on_delta=on_delta, tools=toolbox.specs(admin=admin)
            )
            spent = Usage(
                spent.input_tokens + answer.usage.input_tokens,
                spent.output_tokens + answer.usage.output_tokens,
                spent.cached_tokens + answer.usage.cached_tokens,
            )
            if answer.text:
                said.append(answer.text)
            if not answer.tool_calls:
                return replace(answer, text="\n\n".join(said), usage=spent), steps

            if on_tools is not None:
                await on_tools()
            results = await toolbox.run(answer.tool_calls, admin=admin)
            _log.info(
                "agent.step",
                step=step,
                tools=[call.name for call in answer.tool_calls],
                errors=sum(r.is_error for r in results),
            )
            steps.append(ChatMessage("assistant", answer.text, tool_calls=answer.tool_calls))
            steps += [
                ChatMessage(
                    "tool",
                    result.content,
                    tool_call_id=result.call.id,
                    tool_name=result.call.name,
                    is_error=result.is_error,
                )
                for result in results
            ]
            conversation = [*messages, *steps]
        assert answer is not None
        _log.warning("agent.steps_spent", steps=self._max_steps)
        if on_delta is not None:
            await on_delta(STEPS_SPENT)
        text = "\n\n".join(said) + STEPS_SPENT
        return replace(answer, text=text.strip(), usage=spent, tool_calls=()), steps
