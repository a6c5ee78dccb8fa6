"""What long-term memory costs per message, against the same robot without it, in one run.

Two robots on one stack in this process (the project's Tencent emulator, a fake
OpenAI-compatible model on loopback, timbridge's services): ``@RBT#plain`` keeps the history
only, ``@RBT#friend`` has ``memory = "long"`` and starts with `--facts` facts about the user
(40 are more than the default `memory.budget_tokens` holds, so its recalled set is in play; 10
fit, so all of them go into every context). Each
robot answers one `--turns`-message conversation. Reported: CPU per reply (this process: the
emulator and the fake model are in it, so the ratio understates memory's share of timbridge's
own work), model calls per message (the extraction batches), prompt tokens per message, and
the share of the prompt the fake's prefix cache would have served (a provider's prompt cache
keeps the longest prefix identical to the conversation's previous request).

Usage: ``python bench/memory.py [--turns 60] [--facts 40]``
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

from timbridge.bot.memory import EXTRACT_PROMPT
from timbridge.emulator import Emulator, EmulatorConfig
from timbridge.llm.tokens import count_tokens
from timbridge.logs import configure_logging
from timbridge.runtime.services import Services
from timbridge.settings import Settings
from timbridge.storage.facts import Owner

APP, KEY, TOKEN = 1400000888, "bench-key", "bench-token"
PLAIN, FRIEND = "@RBT#plain", "@RBT#friend"


class Model:
    """An OpenAI-compatible chat endpoint: the extractor's JSON, else a short answer; it
    counts calls, prompt tokens and what a prefix cache would have served."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.prompt: dict[str, int] = {}
        self.cached: dict[str, int] = {}
        self._previous: dict[str, list[Any]] = {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        messages = body["messages"]
        persona = str(messages[0]["content"])
        robot = FRIEND if "friend" in persona or persona == EXTRACT_PROMPT else PLAIN
        self.calls[robot] = self.calls.get(robot, 0) + 1
        if persona == EXTRACT_PROMPT:
            text = '{"facts": [{"user": "alice", "fact": "alice mentioned the weather"}]}'
        else:
            before = self._previous.get(robot, [])
            same = 0
            for old, new in zip(before, messages, strict=False):
                if old != new:
                    break
                same += 1
            self._previous[robot] = messages
            tokens = [count_tokens(str(m["content"])) for m in messages]
            self.prompt[robot] = self.prompt.get(robot, 0) + sum(tokens)
            self.cached[robot] = self.cached.get(robot, 0) + sum(tokens[:same])
            text = "Sounds good, tell me more."
        base = {"id": "x", "object": "chat.completion.chunk", "created": int(time.time())}
        base["model"] = body["model"]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for delta, finish in (({"role": "assistant", "content": text}, None), ({}, "stop")):
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            await response.write(b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n")
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        await response.write(b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}))
        await response.write(b"\n\ndata: [DONE]\n\n")
        await response.write_eof()
        return response


_SUBJECTS = (
    "sister",
    "brother",
    "manager",
    "neighbour",
    "best friend",
    "dentist",
    "cousin",
    "landlord",
)
_NAMES = ("Lin", "Mochi", "Ravi", "Sofia", "Kenji", "Amara", "Tomas", "Yuki")
_TEMPLATES = (
    "alice's {subject} is called {name}",
    "alice is planning a trip to see {name}, her {subject}, in spring",
    "alice lent her bike to {name} ({subject}) last month",
    "alice and {name} (her {subject}) play badminton on Thursdays",
    "alice is worried about {name}, her {subject}, who is ill",
)


def _facts(count: int) -> list[str]:
    """`count` different facts of the shapes a companion learns (people, plans, habits)."""
    made = [
        template.format(subject=subject, name=_NAMES[(n + k) % len(_NAMES)])
        for k, template in enumerate(_TEMPLATES)
        for n, subject in enumerate(_SUBJECTS)
    ]
    return made[:count]


async def run(turns: int, facts: int) -> None:
    model = Model()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", model.handle)
    emu = Emulator(
        EmulatorConfig(
            sdkappid=APP,
            secret_key=KEY,
            callback_token=TOKEN,
            robots=(PLAIN, FRIEND),
            users=("alice",),
            webhook_backoff_s=0.01,
        )
    )
    llm_server = TestServer(app, host="127.0.0.1", port=0)
    emu_server = TestServer(emu.create_app(), host="127.0.0.1", port=0)
    await llm_server.start_server()
    await emu_server.start_server()
    with tempfile.TemporaryDirectory() as tmp:
        robot: dict[str, Any] = {"burst_window_s": 0}
        settings = Settings(
            tencent={
                "sdkappid": APP,
                "secret_key": KEY,
                "callback_token": TOKEN,
                "api_base": str(emu_server.make_url("")).rstrip("/"),
            },
            store={"url": f"sqlite:///{Path(tmp) / 'bench.db'}"},
            models={
                "default": {
                    "provider": "openai",
                    "model": "m",
                    "api_key_env": "HOME",
                    "base_url": str(llm_server.make_url("/v1")),
                }
            },
            robots=[
                {"id": PLAIN, "persona": "You are a plain companion.", **robot},
                {"id": FRIEND, "persona": "You are a friend.", "memory": "long", **robot},
            ],
        )
        async with Services.open(settings) as services:
            bot = TestServer(services.webhook_app(), host="127.0.0.1", port=0)
            await bot.start_server()
            emu.set_callback(str(bot.make_url(settings.server.path)), TOKEN)
            await services.start_workers()
            memory = services.engine._memory
            assert memory is not None
            owner = Owner(FRIEND, "alice", "")
            for text in _facts(facts):
                await memory.keep(owner, text, "learned")
            known = len(await services.store.facts.of(owner))
            cpu: dict[str, float] = {}
            for name in (PLAIN, FRIEND):
                started = time.process_time()
                for n in range(turns):
                    mark = emu.mark()
                    emu.user_send("alice", name, f"message {n}: how was your day, and mine?")
                    await emu.wait_message(from_=name, to="alice", after=mark)
                    # as a person writes: the reading of a batch (in the background, after
                    # the reply) is over before the next message, and its CPU is counted
                    await services.coordination.idle()  # type: ignore[attr-defined]
                    await memory.settled()
                cpu[name] = (time.process_time() - started) / turns
            await services.stop_workers()
            await bot.close()
    await emu_server.close()
    await llm_server.close()
    print(f"{turns} messages per robot, {known} facts known to {FRIEND}")
    print(f"{'':34}{'history only':>14}{'long memory':>14}{'ratio':>8}")

    def line(label: str, plain: float, friend: float, fmt: str) -> None:
        ratio = friend / plain if plain else float("nan")
        print(f"{label:34}{plain:>14{fmt}}{friend:>14{fmt}}{ratio:>8.2f}")

    line("CPU per reply (ms, whole process)", cpu[PLAIN] * 1e3, cpu[FRIEND] * 1e3, ".2f")
    line("model calls per message", model.calls[PLAIN] / turns, model.calls[FRIEND] / turns, ".2f")
    prompt = {r: model.prompt[r] / turns for r in (PLAIN, FRIEND)}
    line("prompt tokens per answer", prompt[PLAIN], prompt[FRIEND], ".0f")
    share = {r: model.cached[r] / max(model.prompt[r], 1) for r in (PLAIN, FRIEND)}
    line("prompt share a prefix cache serves", share[PLAIN], share[FRIEND], ".2f")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--facts", type=int, default=40)
    args = parser.parse_args()
    configure_logging(level="warning")  # the figures, not a log line per message
    asyncio.run(run(args.turns, args.facts))


if __name__ == "__main__":
    main()
