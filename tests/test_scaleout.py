"""The scale-out deployment under faults, with real processes: `timbridge worker` and
`timbridge serve --no-workers` on a real redis-server and PostgreSQL, the emulator and a fake
OpenAI server on loopback.

Exactly-once is judged by the emulator's history: per user, the robot's replies must be the
answers to that user's messages, each once, in order.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest

from tests.fakes.openai import FakeOpenAI
from tests.processes import loopback, own_env, timbridge
from tests.servers import _free_port
from timbridge.emulator import Emulator, EmulatorConfig
from timbridge.protocol.callbacks import callback_sign

APP = 1400000888
KEY = "scale-secret-key"
TOKEN = "scale-callback-token"
ROBOT = "@RBT#helper"

pytestmark = pytest.mark.usefixtures("clean_env")


@dataclass
class World:
    emu: Emulator
    llm: FakeOpenAI
    config: Path
    env: dict[str, str]


@pytest.fixture
async def world(
    tmp_path: Path, redis_url: str, redis_prefix: str, postgres_url: str
) -> AsyncIterator[World]:
    users = tuple(f"user{n:02d}" for n in range(50))
    emu = Emulator(
        EmulatorConfig(
            sdkappid=APP,
            secret_key=KEY,
            callback_token=TOKEN,
            robots=(ROBOT,),
            users=users,
            webhook_backoff_s=0.05,
        )
    )
    llm = FakeOpenAI(delay_s=0.03)  # replies are in flight when a worker dies
    async with loopback(emu.create_app(), llm.app()) as (emu_server, llm_server):
        config = tmp_path / "timbridge.toml"
        config.write_text(
            f"[tencent]\nsdkappid = {APP}\n"
            f'api_base = "{str(emu_server.make_url("")).rstrip("/")}"\n'
            f'[store]\nurl = "{postgres_url}"\n'
            f'[coordination]\nurl = "{redis_url}"\nprefix = "{redis_prefix}"\nvisibility_s = 2\n'
            f'[models.default]\nprovider = "openai"\nbase_url = "{llm_server.make_url("/v1")}"\n'
            f'model = "fake"\nretries = 1\n[[robots]]\nid = "{ROBOT}"\nburst_window_s = 0\n',
            encoding="utf-8",
        )
        env = own_env()
        env |= {"TIMBRIDGE_TENCENT__SECRET_KEY": KEY, "TIMBRIDGE_TENCENT__CALLBACK_TOKEN": TOKEN}
        yield World(emu, llm, config, env)


async def _spawn(
    world: World, *args: str, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """A timbridge process (`env`: variables added to the world's); its log goes to a file
    beside the config (pytest keeps it)."""
    logs = sorted(world.config.parent.glob("*.log"))
    with (world.config.parent / f"{args[0]}-{len(logs)}.log").open("wb") as log:
        return await timbridge(
            *("--log-level", "info", *args, "--config", str(world.config)),
            env=world.env | (env or {}),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )


async def _serving(url: str, limit_s: float = 30) -> None:
    async with aiohttp.ClientSession() as http, asyncio.timeout(limit_s):
        while True:
            try:
                async with http.get(url + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


async def _stop(*procs: asyncio.subprocess.Process) -> None:
    for proc in procs:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _replies_by_user(emu: Emulator, users: list[str]) -> dict[str, list[str]]:
    return {u: [m.text for m in emu.messages(from_=ROBOT, to=u)] for u in users}


def _expected(users: list[str], count: int) -> dict[str, list[str]]:
    return {u: [f"echo: {u} message {n}" for n in range(count)] for u in users}


async def test_a_worker_killed_mid_run_loses_and_doubles_nothing(world: World) -> None:
    frontend_port = _free_port()
    frontend = await _spawn(world, "serve", "--no-workers", "--port", str(frontend_port))
    workers = [await _spawn(world, "worker") for _ in range(2)]
    base = f"http://127.0.0.1:{frontend_port}"
    try:
        await _serving(base)
        world.emu.set_callback(base + "/im", TOKEN)
        users = [f"user{n:02d}" for n in range(50)]
        for n in range(10):
            for user in users:
                world.emu.user_send(user, ROBOT, f"{user} message {n}")
        await world.emu.wait_messages(120, from_=ROBOT, limit_s=60)
        workers[0].kill()  # SIGKILL: no goodbye, its conversations stay claimed
        await workers[0].wait()
        await world.emu.wait_messages(500, from_=ROBOT, limit_s=90)
        await asyncio.sleep(1.0)  # a double would land now
        assert _replies_by_user(world.emu, users) == _expected(users, 10)
    finally:
        await _stop(frontend, *workers)


async def test_front_ends_restart_while_another_accepts(world: World) -> None:
    ports = [_free_port(), _free_port()]
    fronts = [await _spawn(world, "serve", "--no-workers", "--port", str(p)) for p in ports]
    worker = await _spawn(world, "worker")
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    users = [f"user{n:02d}" for n in range(20)]
    try:
        for url in urls:
            await _serving(url)
        world.emu.set_callback(urls[0] + "/im", TOKEN)
        for user in users:
            world.emu.user_send(user, ROBOT, f"{user} message 0")
        world.emu.set_callback(urls[1] + "/im", TOKEN)  # the balancer drains front-end 0
        fronts[0].send_signal(signal.SIGTERM)
        for n in (1, 2):
            for user in users:
                world.emu.user_send(user, ROBOT, f"{user} message {n}")
        assert await asyncio.wait_for(fronts[0].wait(), 30) == 0
        fronts[0] = await _spawn(world, "serve", "--no-workers", "--port", str(ports[0]))
        await _serving(urls[0])
        world.emu.set_callback(urls[0] + "/im", TOKEN)
        for user in users:
            world.emu.user_send(user, ROBOT, f"{user} message 3")

        await world.emu.wait_messages(80, from_=ROBOT, limit_s=60)
        # Tencent delivering one message twice, once to each front-end: answered once
        body = (
            b'{"CallbackCommand":"Bot.OnC2CMessage","From_Account":"user00","To_Account":"'
            + ROBOT.encode()
            + b'","MsgSeq":777,"MsgRandom":777,"MsgTime":1700000000,"MsgKey":"777_777_1",'
            b'"OnlineOnlyFlag":0,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":'
            b'{"Text":"user00 message 4"}}]}'
        )
        now = str(int(time.time()))
        query = (
            f"?SdkAppid={APP}&CallbackCommand=Bot.OnC2CMessage&contenttype=json"
            f"&ClientIP=127.0.0.1&OptPlatform=RESTAPI&RequestTime={now}"
            f"&Sign={callback_sign(TOKEN, now)}"
        )
        async with aiohttp.ClientSession() as http:
            for url in urls:
                async with http.post(url + "/im" + query, data=body) as resp:
                    assert resp.status == 200
                    assert (await resp.json())["ActionStatus"] == "OK"
        await world.emu.wait_messages(81, from_=ROBOT, limit_s=60)
        await asyncio.sleep(1.0)
        expected = _expected(users, 4)
        expected["user00"].append("echo: user00 message 4")
        assert _replies_by_user(world.emu, users) == expected
    finally:
        await _stop(*fronts, worker)


async def test_webhook_refuses_when_redis_is_down_and_recovers(
    world: World, tmp_path: Path
) -> None:
    from tests.servers import redis_server_on

    (tmp_path / "r").mkdir()
    with redis_server_on(tmp_path / "r") as (url, restart_redis, stop_redis):
        text = world.config.read_text(encoding="utf-8")
        start = text.index("[coordination]")
        end = text.index("[models.default]")
        world.config.write_text(
            text[:start] + f'[coordination]\nurl = "{url}"\n' + text[end:], encoding="utf-8"
        )
        port = _free_port()
        front = await _spawn(world, "serve", "--port", str(port))  # front-end and workers
        base = f"http://127.0.0.1:{port}"
        try:
            await _serving(base)
            world.emu.set_callback(base + "/im", TOKEN)
            world.emu.user_send("user01", ROBOT, "user01 message 0")
            await world.emu.wait_messages(1, from_=ROBOT, to="user01", limit_s=30)
            stop_redis()
            now = str(int(time.time()))
            query = (
                f"?SdkAppid={APP}&CallbackCommand=Bot.OnC2CMessage&contenttype=json"
                f"&RequestTime={now}&Sign={callback_sign(TOKEN, now)}"
            )
            body = (
                b'{"CallbackCommand":"Bot.OnC2CMessage","From_Account":"user02","To_Account":"'
                + ROBOT.encode()
                + b'","MsgSeq":1,"MsgRandom":1,"MsgTime":1700000000,"MsgKey":"1_1_1",'
                b'"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"hi"}}]}'
            )
            async with aiohttp.ClientSession() as http:
                async with http.post(base + "/im" + query, data=body) as resp:
                    assert resp.status == 503
                    refusal = await resp.json()
                assert refusal["ActionStatus"] == "FAIL"
                assert refusal["ErrorInfo"].startswith("unavailable: cannot queue")
                async with http.get(base + "/readyz") as resp:
                    assert resp.status == 503
                    assert "coordination" in str(await resp.json())
                restart_redis()
                async with asyncio.timeout(20):  # Tencent's redelivery: accepted now
                    while True:
                        async with http.post(base + "/im" + query, data=body) as resp:
                            if resp.status == 200:
                                break
                        await asyncio.sleep(0.2)
            # the worker side recovered by itself too: the redelivered message is answered
            reply = await world.emu.wait_message(from_=ROBOT, to="user02", limit_s=30)
            assert reply.text == "echo: hi"
        finally:
            await _stop(front)


async def test_a_worker_whose_postgresql_fails_hands_its_jobs_back(
    world: World, postgres_url: str
) -> None:
    """One worker's database role is locked for 4 s and its connections cut
    (`pg_terminate_backend`), while the other worker stays healthy: the failing worker hands
    its jobs back and rests, the healthy one answers them, and nobody gets the apology.
    0 lost, 0 doubled."""
    import asyncpg

    parts = urlsplit(postgres_url)
    role = f"tb_worker_{os.getpid()}"
    admin = await asyncpg.connect(postgres_url)
    await admin.execute(f'CREATE ROLE "{role}" LOGIN SUPERUSER')
    host = parts.netloc.rsplit("@", 1)[-1]
    failing_url = urlunsplit((parts.scheme, f"{role}@{host}", parts.path, "", ""))
    frontend_port = _free_port()
    frontend = await _spawn(world, "serve", "--no-workers", "--port", str(frontend_port))
    healthy = await _spawn(world, "worker")
    failing = await _spawn(world, "worker", env={"TIMBRIDGE_STORE__URL": failing_url})
    base = f"http://127.0.0.1:{frontend_port}"
    users = [f"user{n:02d}" for n in range(40)]
    try:
        await _serving(base)
        world.emu.set_callback(base + "/im", TOKEN)
        for n in range(6):
            for user in users:
                world.emu.user_send(user, ROBOT, f"{user} message {n}")
        await world.emu.wait_messages(40, from_=ROBOT, limit_s=60)
        await admin.execute(f'ALTER ROLE "{role}" NOLOGIN')
        await admin.execute(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
        )
        await asyncio.sleep(4.0)
        await admin.execute(f'ALTER ROLE "{role}" LOGIN')
        await world.emu.wait_messages(240, from_=ROBOT, limit_s=90)
        await asyncio.sleep(1.0)  # a double would land now
        assert _replies_by_user(world.emu, users) == _expected(users, 6)
    finally:
        await _stop(frontend, healthy, failing)
        await admin.execute(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
        )
        await admin.execute(f'REASSIGN OWNED BY "{role}" TO CURRENT_USER')
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()
