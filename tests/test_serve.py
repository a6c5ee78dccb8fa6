"""`timbridge serve` as a real process: it answers through the emulator, logs JSON lines that
carry the trace id and conversation, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from pathlib import Path

import aiohttp
import orjson
from aiohttp.test_utils import TestServer

from tests.fakes.openai import FakeOpenAI
from tests.processes import own_env, timbridge
from tests.stack import APP, KEY, TOKEN
from timbridge.emulator import Emulator, EmulatorConfig


async def test_serve_process_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    emu = Emulator(
        EmulatorConfig(
            sdkappid=APP,
            secret_key=KEY,
            callback_token=TOKEN,
            robots=("@RBT#helper",),
            users=("alice",),
        )
    )
    llm = FakeOpenAI()
    emu_server = TestServer(emu.create_app(), host="127.0.0.1", port=0)
    llm_server = TestServer(llm.app(), host="127.0.0.1", port=0)
    await emu_server.start_server()
    await llm_server.start_server()
    config = tmp_path / "timbridge.toml"
    config.write_text(
        f"""
[tencent]
sdkappid = {APP}
api_base = "{str(emu_server.make_url("")).rstrip("/")}"

[server]
host = "127.0.0.1"
port = 0

[store]
url = "sqlite:///{tmp_path / "state" / "timbridge.db"}"

[models.default]
provider = "openai"
base_url = "{llm_server.make_url("/v1")}"
model = "fake"
api_key_env = "FAKE_KEY"

[[robots]]
id = "@RBT#helper"
persona = "You are Helper."
""",
        encoding="utf-8",
    )
    env = own_env()
    env |= {
        "TIMBRIDGE_TENCENT__SECRET_KEY": KEY,
        "TIMBRIDGE_TENCENT__CALLBACK_TOKEN": TOKEN,
        "FAKE_KEY": "sk-test",
    }
    proc = await timbridge("serve", "--config", str(config), env=env, cwd=tmp_path)
    assert proc.stderr is not None
    lines: list[dict[str, object]] = []
    try:
        async with asyncio.timeout(30):
            while True:
                raw = await proc.stderr.readline()
                assert raw, "serve exited before starting"
                lines.append(orjson.loads(raw))
                if lines[-1]["event"] == "serve.started":
                    break
        port = lines[-1]["port"]
        emu.set_callback(f"http://127.0.0.1:{port}/im", TOKEN)
        emu.user_send("alice", "@RBT#helper", "hello over a real process")
        reply = await emu.wait_message(from_="@RBT#helper", to="alice", limit_s=20)
        assert reply.text == "echo: hello over a real process"
        assert llm.requests[0]["messages"][0]["content"] == "You are Helper."
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(proc.communicate(), 30)
        await emu_server.close()
        await llm_server.close()
    assert proc.returncode == 0
    lines += [orjson.loads(line) for line in rest.splitlines()]
    events = [line["event"] for line in lines]
    assert "serve.stopped" in events
    answered = next(line for line in lines if line["event"] == "model.answered")
    assert answered["conversation"] == "c2c:@RBT#helper:alice"
    assert len(str(answered["trace_id"])) == 16
    assert KEY not in str(lines) and TOKEN not in str(lines) and "sk-test" not in str(lines)


def _offline_config(tmp_path: Path, port: int) -> tuple[Path, dict[str, str]]:
    """A configuration for `serve` on `port` with the offline model and SQLite in `tmp_path`,
    and the environment that goes with it."""
    config = tmp_path / "timbridge.toml"
    config.write_text(
        f'[tencent]\nsdkappid = {APP}\n[server]\nhost = "127.0.0.1"\nport = {port}\n'
        f'[store]\nurl = "sqlite:///{tmp_path / "timbridge.db"}"\n'
        '[models.default]\nprovider = "offline"\n[[robots]]\nid = "@RBT#helper"\n',
        encoding="utf-8",
    )
    env = own_env()
    return config, env | {"TIMBRIDGE_TENCENT__SECRET_KEY": KEY}


async def _offline_serve(tmp_path: Path, port: int) -> asyncio.subprocess.Process:
    """`serve --log-level warning` on `port` (`_offline_config`)."""
    config, env = _offline_config(tmp_path, port)
    return await timbridge(
        *("--log-level", "warning", "serve", "--config", str(config)), env=env, cwd=tmp_path
    )


async def test_an_explicit_log_level_is_kept_by_serve(tmp_path: Path) -> None:
    """serve logs at info by default; ``--log-level warning`` leaves out info lines (it used
    to be read as "no level given")."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = await _offline_serve(tmp_path, port)
    try:
        async with aiohttp.ClientSession() as session, asyncio.timeout(30):
            while proc.returncode is None:  # no start-up line to wait for: ask until it answers
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert err.decode() == ""  # serve.started and serve.stopped are info lines


async def test_an_unknown_log_level_is_refused(tmp_path: Path) -> None:
    proc = await timbridge("--log-level", "loud", "robots", "list", cwd=tmp_path)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert "--log-level must be debug, info, warning or error" in err.decode()


async def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await _offline_serve(tmp_path, port)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    text = err.decode()
    assert proc.returncode == 2, text
    assert "Traceback" not in text
    assert text.strip().splitlines()[-1].startswith(f"error: cannot listen on 127.0.0.1:{port}: ")


async def _stderr_until(marker: str, *args: str, env: dict[str, str], cwd: Path) -> str:
    """What ``timbridge *args`` writes to stderr until a line holds `marker` (then SIGTERM)."""
    proc = await timbridge(*args, env=env, cwd=cwd)
    assert proc.stderr is not None
    seen = ""
    try:
        async with asyncio.timeout(60):
            while marker not in seen:
                line = await proc.stderr.readline()
                if not line:
                    break
                seen += line.decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)
    return seen


async def test_the_playground_banner_shows_a_configured_key_only_by_its_end(
    tmp_path: Path,
) -> None:
    secret = "my-own-secret-key-0123456789"
    env = own_env()
    env |= {"TIMBRIDGE_TENCENT__SECRET_KEY": secret}
    banner = await _stderr_until(
        "Ctrl-C", "playground", "--port", "0", "--no-browser", env=env, cwd=tmp_path
    )
    assert "secret key …6789 (configured)" in banner, banner
    assert secret not in banner


async def test_serve_warns_at_start_about_a_model_it_cannot_reach(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port, dead = probe.getsockname()[1], socket.socket()
    with dead:
        dead.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        closed = dead.getsockname()[1]
        config = tmp_path / "timbridge.toml"
        config.write_text(
            f'[tencent]\nsdkappid = {APP}\n[server]\nhost = "127.0.0.1"\nport = {port}\n'
            f'[store]\nurl = "sqlite:///{tmp_path / "timbridge.db"}"\n'
            f'[models.default]\nprovider = "openai"\nmodel = "m"\napi_key_env = "K"\n'
            f'base_url = "http://user:pw@127.0.0.1:{closed}/v1?key=k"\n'
            '[[robots]]\nid = "@RBT#helper"\n',
            encoding="utf-8",
        )
        env = own_env()
        env |= {"TIMBRIDGE_TENCENT__SECRET_KEY": KEY, "K": "sk-unused-key"}
        seen = await _stderr_until(
            "model.unreachable", "serve", "--config", str(config), env=env, cwd=tmp_path
        )
    warning = next(line for line in seen.splitlines() if "model.unreachable" in line)
    assert f'"url":"http://127.0.0.1:{closed}/v1"' in warning  # no user, password or query
    assert "pw" not in warning and "key=k" not in warning


async def test_serve_honours_log_format_console(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config, env = _offline_config(tmp_path, port)
    args = ("--log-format", "console", "serve", "--config", str(config))
    seen = await _stderr_until("serve.started", *args, env=env, cwd=tmp_path)
    started = next(line for line in seen.splitlines() if "serve.started" in line)
    assert not started.lstrip().startswith("{")  # a readable line, not JSON
    assert "[info     ] serve.started" in started
