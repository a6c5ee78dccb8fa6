"""Fuzzed webhook bodies against a running timbridge: whatever arrives, the answer is never a 5xx,
and a body that is refused never reaches the model.

Bodies are Tencent's own C2C and group samples with fields replaced by arbitrary JSON (wrong types,
nesting, odd strings, missing fields), plus arbitrary JSON and bytes. Each body carries a marker
in its text, so a refused body that reached the model anyway would show up in the model's log.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.stack import Stack, running_stack
from tests.test_protocol import C2C_SAMPLE, GROUP_SAMPLE
from tests.test_webhook import signed

pytestmark = pytest.mark.usefixtures("clean_env")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)


def _sample(group: bool) -> dict[str, Any]:
    base = dict(GROUP_SAMPLE if group else C2C_SAMPLE)
    if group:
        base["AtRobots_Account"] = ["@RBT#helper"]
    else:
        base["To_Account"] = "@RBT#helper"
        base["From_Account"] = "alice"
    return base


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, str, dict[str, Any] | list[Any] | bytes]:
    """A marker, the command, and a body with the marker: a sample with some fields replaced or
    dropped, or any JSON, or bytes."""
    marker = uuid.uuid4().hex
    group = draw(st.booleans())
    body = _sample(group)
    body["MsgBody"] = [{"MsgType": "TIMTextElem", "MsgContent": {"Text": f"m{marker}"}}]
    body["MsgKey"] = body["MsgId"] = marker
    fields = [*body, "MsgBody.0.MsgType", "MsgBody.0.MsgContent", "MsgBody.0.MsgContent.Text"]
    for name in draw(st.lists(st.sampled_from(fields), min_size=1, max_size=4, unique=True)):
        *path, last = name.split(".")
        target: Any = body
        for step in path:  # an earlier change may have replaced a parent: then skip this one
            if isinstance(target, list) and step.isdigit() and int(step) < len(target):
                target = target[int(step)]
            elif isinstance(target, dict):
                target = target.get(step)
            else:
                target = None
        if not isinstance(target, dict):
            continue
        if draw(st.booleans()):
            target.pop(last, None)
        else:
            target[last] = draw(json_values)
    kind = draw(st.sampled_from(["object", "object", "object", "any-json", "bytes"]))
    command = "Bot.OnGroupMessage" if group else "Bot.OnC2CMessage"
    if kind == "any-json":
        return marker, command, draw(st.lists(json_values, max_size=3))
    if kind == "bytes":
        return marker, command, draw(st.binary(max_size=64)) + marker.encode()
    return marker, command, body


class _Running:
    """A stack on its own loop in a thread, so that hypothesis drives plain calls into it."""

    def __init__(self, tmp: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stop: asyncio.Event | None = None
        self.stack: Stack | None = None
        self.tmp = tmp
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._run(),))

    async def _run(self) -> None:
        self.stop = asyncio.Event()
        async with running_stack(self.tmp) as stack:
            self.stack = stack
            self.ready.set()
            await self.stop.wait()
            await asyncio.sleep(0.5)  # let accepted bodies be answered before the models close

    def __enter__(self) -> Stack:
        self.thread.start()
        assert self.ready.wait(30)
        assert self.stack is not None
        return self.stack

    def __exit__(self, *exc: object) -> None:
        assert self.stop is not None
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)
        self.loop.close()


class Live:
    """The running stack and the markers of the bodies it refused."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.refused: list[str] = []

    def __repr__(self) -> str:  # hypothesis prints the arguments of a failing example
        return f"Live(refused={len(self.refused)})"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with _Running(tmp_path_factory.mktemp("fuzz")) as stack:
        state = Live(stack)
        yield state
    asked = orjson.dumps(stack.llm.requests).decode()
    reached = [marker for marker in state.refused if f"m{marker}" in asked]
    assert state.refused, "the fuzzer produced no refused body"
    assert reached == [], f"refused bodies that reached the model: {reached}"


def _post(stack: Stack, body: bytes, command: str) -> tuple[int, bytes]:
    query = "&".join(f"{k}={urllib.request.quote(v)}" for k, v in signed(command).items())
    request = urllib.request.Request(
        f"{stack.webhook_url}?{query}",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=mutated())
def test_no_webhook_body_gets_a_5xx_and_no_refused_body_reaches_the_model(
    live: Live, case: tuple[str, str, Any]
) -> None:
    stack, refused = live.stack, live.refused
    marker, command, body = case
    # the standard library writes what orjson will not: integers past 64 bits, lone surrogates
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, answer = _post(stack, raw, command)
    assert status < 500, answer[:300]
    envelope = orjson.loads(answer)
    assert isinstance(envelope, dict) and envelope["ActionStatus"] in ("OK", "FAIL")
    if status != 200:
        assert envelope["ActionStatus"] == "FAIL"
        assert envelope["ErrorInfo"]  # says what is wrong
        refused.append(marker)
