"""MCP servers as tools, with a real MCP server on the official SDK (`tests.fakes.mcp_server`)
over stdio and over streamable HTTP: a robot calls its tools, a server that dies mid-call is an
error result and comes back, and a server absent at start holds nothing up."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fakes.openai import Call, FakeOpenAI
from tests.processes import own_env, timbridge
from tests.stack import running_stack

pytestmark = pytest.mark.usefixtures("clean_env")

SERVER = str(Path(__file__).resolve().parent / "fakes" / "mcp_server.py")
STDIO = {"command": sys.executable, "args": [SERVER, "stdio"]}


def _results(messages: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "tool"]


def calling(*calls: Call) -> Any:
    """A model that makes `calls` once per user message, then answers with the results."""

    def decide(messages: list[dict[str, Any]]) -> list[Call] | None:
        return None if messages[-1]["role"] == "tool" else list(calls)

    return decide


def results(messages: list[dict[str, Any]]) -> str:
    after_last_question = []
    for message in messages:
        if message["role"] == "user":
            after_last_question = []
        elif message["role"] == "tool":
            after_last_question.append(message["content"])
    return "results: " + " | ".join(after_last_question)


def _robot(*tools: str) -> list[dict[str, Any]]:
    return [{"id": "@RBT#helper", "persona": "You are Helper.", "tools": list(tools)}]


async def test_a_stdio_server_s_tools_are_offered_and_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOUT_SUFFIX", "from the environment")
    llm = FakeOpenAI(
        tool_calls=calling(("calc__add", {"a": 2, "b": 3}), ("calc__shout", {"text": "hi"})),
        reply=results,
    )
    mcp = {"calc": {**STDIO, "pass_env": ["SHOUT_SUFFIX"]}}
    async with running_stack(tmp_path, llm=llm, robots=_robot("mcp:calc/*"), mcp=mcp) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "2+3, and shout hi")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice", limit_s=20)
    assert reply.text == "results: 5 | HI (from the environment)"
    offered = [t["function"]["name"] for t in llm.requests[0]["tools"]]
    # (forget, annotated destructive, is for a robot's admins, and this robot has none)
    assert offered == ["calc__add", "calc__shout", "calc__slow", "calc__die"]
    schema = llm.requests[0]["tools"][0]["function"]["parameters"]
    assert sorted(schema["required"]) == ["a", "b"]


async def test_an_allow_list_offers_only_the_named_tool(tmp_path: Path) -> None:
    llm = FakeOpenAI(tool_calls=calling(("calc__die", {})), reply=results)
    robots = _robot("mcp:calc/add", "calculator")
    async with running_stack(tmp_path, llm=llm, robots=robots, mcp={"calc": STDIO}) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "die")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice", limit_s=20)
    assert [t["function"]["name"] for t in llm.requests[0]["tools"]] == ["calculator", "calc__add"]
    assert reply.text == "results: error: no tool named 'calc__die'"


async def test_tools_with_side_effects_are_offered_and_run_for_the_robot_s_admins_only(
    tmp_path: Path,
) -> None:
    """``forget`` is annotated destructive by its server; ``add`` is named in `admin_tools`."""
    llm = FakeOpenAI(
        tool_calls=calling(("calc__forget", {}), ("calc__add", {"a": 1, "b": 1})), reply=results
    )
    robots = [{**_robot("mcp:calc/*")[0], "admins": ["alice"]}]
    mcp = {"calc": {**STDIO, "admin_tools": ["add"]}}
    async with running_stack(tmp_path, llm=llm, robots=robots, mcp=mcp) as stack:
        stack.emu.user_send("bob", "@RBT#helper", "forget it all")
        refused = await stack.emu.wait_message(from_="@RBT#helper", to="bob", limit_s=20)
        offered_to_bob = [t["function"]["name"] for t in llm.requests[0]["tools"]]
        stack.emu.user_send("alice", "@RBT#helper", "forget it all")
        done = await stack.emu.wait_message(from_="@RBT#helper", to="alice", limit_s=20)
        offered_to_alice = [t["function"]["name"] for t in llm.requests[2]["tools"]]
    assert offered_to_bob == ["calc__shout", "calc__slow", "calc__die"]
    assert "calc__forget" in offered_to_alice and "calc__add" in offered_to_alice
    assert refused.text == (
        "results: error: only this robot's admins may use calc__forget"
        " | error: only this robot's admins may use calc__add"
    )
    assert done.text == "results: forgotten | 2"


async def test_a_server_that_dies_mid_call_is_an_error_result_and_comes_back(
    tmp_path: Path,
) -> None:
    def decide(messages: list[dict[str, Any]]) -> list[Call] | None:
        if messages[-1]["role"] == "tool":
            return None
        question = messages[-1]["content"]
        return [("calc__die", {})] if question == "die" else [("calc__add", {"a": 1, "b": 1})]

    llm = FakeOpenAI(tool_calls=decide, reply=results)
    async with running_stack(
        tmp_path, llm=llm, robots=_robot("mcp:calc/*"), mcp={"calc": STDIO}
    ) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "die")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice", limit_s=20)
        assert reply.text.startswith("results: error: the MCP server 'calc' failed")
        # the keeper starts it again (after a 1 s backoff)
        assert await stack.services.mcp["calc"].wait_connected(20)
        mark = stack.emu.mark()
        stack.emu.user_send("alice", "@RBT#helper", "add")
        again = await stack.emu.wait_message(
            from_="@RBT#helper", to="alice", after=mark, limit_s=20
        )
    assert again.text == "results: 2"


async def test_a_server_absent_at_start_holds_no_answer_up(tmp_path: Path) -> None:
    llm = FakeOpenAI(tool_calls=calling(("gone__add", {"a": 1, "b": 1})))
    mcp = {"gone": {"command": str(tmp_path / "no-such-server")}}
    async with asyncio.timeout(30):
        async with running_stack(tmp_path, llm=llm, robots=_robot("mcp:gone/*"), mcp=mcp) as stack:
            stack.emu.user_send("alice", "@RBT#helper", "hello")
            reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice", limit_s=20)
    assert reply.text == "echo: hello"  # answered without the tools it does not have
    assert "tools" not in llm.requests[0]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def http_server() -> AsyncIterator[str]:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, SERVER, "http", str(port)),
        env=own_env(SHOUT_SUFFIX="over http"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        async with aiohttp.ClientSession() as session, asyncio.timeout(30):
            while True:
                try:
                    async with session.get(url) as resp:
                        if resp.status < 500:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        await proc.wait()


async def test_a_streamable_http_server_s_tools_are_called(
    tmp_path: Path, http_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_TOKEN", "secret-token")
    llm = FakeOpenAI(tool_calls=calling(("web__shout", {"text": "hello"})), reply=results)
    mcp = {"web": {"url": http_server, "headers_env": {"Authorization": "MCP_TOKEN"}}}
    async with running_stack(tmp_path, llm=llm, robots=_robot("mcp:web/shout"), mcp=mcp) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "shout hello")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice", limit_s=20)
    assert reply.text == "results: HELLO (over http)"
    assert [t["function"]["name"] for t in llm.requests[0]["tools"]] == ["web__shout"]


def test_a_robot_naming_an_unconfigured_server_is_refused_with_the_key(tmp_path: Path) -> None:
    from timbridge.errors import ConfigError
    from timbridge.settings import Settings

    with pytest.raises(Exception) as caught:
        Settings(robots=[{"id": "@RBT#a", "tools": ["mcp:nope/*"]}])
    assert "robots[0].tools" in str(caught.value) and "names no configured MCP server" in str(
        caught.value
    )
    _ = ConfigError


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "timbridge.toml"
    config.write_text(
        f'[mcp.calc]\ncommand = "{sys.executable}"\nargs = ["{SERVER}", "stdio"]\n'
        f'[mcp.gone]\ncommand = "{tmp_path / "missing"}"\n'
        '[[robots]]\nid = "@RBT#helper"\n'
        'tools = ["calculator", "mcp:calc/add", "mcp:calc/forget", "mcp:gone/*"]\n'
        '[[robots]]\nid = "@RBT#quiet"\n',
        encoding="utf-8",
    )
    return config


async def test_tools_list_shows_each_robot_s_tools_and_why_a_server_is_missing(
    tmp_path: Path,
) -> None:
    proc = await timbridge("tools", "list", "--config", str(_config(tmp_path)), cwd=tmp_path)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0] == "@RBT#helper:"
    assert lines[1].startswith("  calculator  Evaluate an arithmetic expression")
    assert lines[2] == "  calc__add  Add two numbers."
    assert lines[3] == "  calc__forget  Forget everything (a side effect).  [admins only]"
    assert lines[4].startswith("  mcp:gone/*  unreachable: ")
    assert lines[5] == "@RBT#quiet: no tools"


def test_check_lists_a_server_s_tools_or_says_why_it_cannot_reach_it(tmp_path: Path) -> None:
    from timbridge.cli.checks import _mcp
    from timbridge.settings import load_settings

    checks = asyncio.run(_mcp(load_settings(_config(tmp_path))))
    by_item = {c.item: c for c in checks}
    assert by_item["mcp calc"].verdict == "ok"
    assert by_item["mcp calc"].detail == (
        "connected; tools: calc__add, calc__shout, calc__slow,"
        " calc__forget [admins only], calc__die"
    )
    assert by_item["mcp gone"].verdict == "fail"
    assert "mcp.gone" in by_item["mcp gone"].fix
