"""Acknowledged means durable: `timbridge serve` as a real process, on its default SQLite store,
killed or stopped with messages still unanswered, then started again on the same files.

What the users see is read from the emulator's stored messages: every message gets exactly one
answer, whatever happened to the process in between.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import orjson

from tests.fakes.openai import FakeOpenAI
from tests.processes import loopback, own_env, timbridge
from tests.stack import APP, KEY, TOKEN
from timbridge.emulator import Emulator, EmulatorConfig

USERS = tuple(f"user{n:02d}" for n in range(40))
ROBOT = "@RBT#helper"


def _config(tmp_path: Path, emulator_url: str, llm_url: str, *, grace_s: float = 20) -> Path:
    config = tmp_path / "timbridge.toml"
    config.write_text(
        f"""
[tencent]
sdkappid = {APP}
api_base = "{emulator_url}"

[server]
host = "127.0.0.1"
port = 0
shutdown_grace_s = {grace_s}

[store]
url = "sqlite:///{tmp_path / "state" / "timbridge.db"}"

[models.default]
provider = "openai"
base_url = "{llm_url}/v1"
model = "fake"
api_key_env = "FAKE_KEY"
timeout_s = 60
retries = 0

[[robots]]
id = "{ROBOT}"
burst_window_s = 0
""",
        encoding="utf-8",
    )
    return config


class Serve:
    """One `timbridge serve` process and the JSON lines it logged."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, object]] = []

    async def started(self) -> int:
        assert self.proc.stderr is not None
        async with asyncio.timeout(30):
            while True:
                raw = await self.proc.stderr.readline()
                assert raw, f"serve exited before starting: {self.lines}"
                self.lines.append(orjson.loads(raw))
                if self.lines[-1]["event"] == "serve.started":
                    return int(str(self.lines[-1]["port"]))

    async def finish(self) -> int:
        """The exit code, once the process has ended; the rest of its log is read."""
        _, rest = await asyncio.wait_for(self.proc.communicate(), 60)
        self.lines += [orjson.loads(line) for line in rest.splitlines()]
        assert self.proc.returncode is not None
        return self.proc.returncode

    def events(self, name: str) -> list[dict[str, object]]:
        return [line for line in self.lines if line["event"] == name]


async def _serve(config: Path, cwd: Path) -> Serve:
    env = own_env()
    env |= {
        "TIMBRIDGE_TENCENT__SECRET_KEY": KEY,
        "TIMBRIDGE_TENCENT__CALLBACK_TOKEN": TOKEN,
        "FAKE_KEY": "sk-test",
    }
    return Serve(await timbridge("serve", "--config", str(config), env=env, cwd=cwd))


@asynccontextmanager
async def _world(tmp_path: Path, llm: FakeOpenAI) -> AsyncIterator[tuple[Emulator, str, str]]:
    emu = Emulator(
        EmulatorConfig(
            sdkappid=APP,
            secret_key=KEY,
            callback_token=TOKEN,
            robots=(ROBOT,),
            users=USERS,
            webhook_backoff_s=0.05,
        )
    )
    async with loopback(emu.create_app(), llm.app()) as (emu_server, llm_server):
        yield (
            emu,
            str(emu_server.make_url("")).rstrip("/"),
            str(llm_server.make_url("")).rstrip("/"),
        )


async def _all_acknowledged(emu: Emulator, count: int) -> None:
    await emu.webhooks.idle()
    acked = [d for d in emu.webhooks.log if d.delivered and d.status == 200]
    assert len(acked) == count, [(d.status, d.errors) for d in emu.webhooks.log]


def _answers(emu: Emulator) -> Counter[str]:
    """Users → how many answers the robot sent them."""
    return Counter(m.to_account for m in emu.messages(from_=ROBOT))


async def test_a_sigkilled_serve_answers_every_acknowledged_message_once_after_restart(
    tmp_path: Path,
) -> None:
    llm = FakeOpenAI(delay_s=2.0)  # every answer takes 2 s: the kill lands mid-answer
    async with _world(tmp_path, llm) as (emu, emu_url, llm_url):
        config = _config(tmp_path, emu_url, llm_url)
        first = await _serve(config, tmp_path)
        port = await first.started()
        emu.set_callback(f"http://127.0.0.1:{port}/im", TOKEN)
        for user in USERS:
            emu.user_send(user, ROBOT, f"question from {user}")
        await _all_acknowledged(emu, len(USERS))
        await asyncio.sleep(0.5)  # the model has the calls; none has answered
        first.proc.send_signal(signal.SIGKILL)
        await first.finish()
        assert _answers(emu) == Counter()

        llm.delay_s = 0.0
        second = await _serve(config, tmp_path)
        port = await second.started()
        emu.set_callback(f"http://127.0.0.1:{port}/im", TOKEN)
        await emu.wait_messages(len(USERS), from_=ROBOT, limit_s=30)
        await asyncio.sleep(0.5)  # time for a doubled answer to show, were there one
        second.proc.send_signal(signal.SIGTERM)
        assert await second.finish() == 0
    assert _answers(emu) == Counter(dict.fromkeys(USERS, 1))
    for user in USERS:
        (answer,) = emu.messages(from_=ROBOT, to=user)
        assert answer.text == f"echo: question from {user}"
    assert second.events("coordination.resumed")[0]["jobs"] == len(USERS)


async def test_sigterm_leaves_unfinished_work_for_the_next_start(tmp_path: Path) -> None:
    """4 conversations of 10 messages and a 3 s model, with a 1 s grace period: most messages
    are still waiting when SIGTERM comes. The process exits 0, says how many it left, and the
    next start answers each of them, once."""
    users = USERS[:4]
    llm = FakeOpenAI(delay_s=3.0)
    async with _world(tmp_path, llm) as (emu, emu_url, llm_url):
        config = _config(tmp_path, emu_url, llm_url, grace_s=1)
        first = await _serve(config, tmp_path)
        port = await first.started()
        emu.set_callback(f"http://127.0.0.1:{port}/im", TOKEN)
        for n in range(10):
            for user in users:
                emu.user_send(user, ROBOT, f"{user} #{n}")
        await _all_acknowledged(emu, 40)
        first.proc.send_signal(signal.SIGTERM)
        assert await first.finish() == 0
        (left,) = first.events("coordination.left_for_restart")
        assert left["jobs"] == 40 - len(emu.messages(from_=ROBOT))

        llm.delay_s = 0.0
        second = await _serve(config, tmp_path)
        port = await second.started()
        emu.set_callback(f"http://127.0.0.1:{port}/im", TOKEN)
        await emu.wait_messages(40, from_=ROBOT, limit_s=30)
        await asyncio.sleep(0.5)
        second.proc.send_signal(signal.SIGTERM)
        assert await second.finish() == 0
    for user in users:  # each message answered once, in the order it was sent
        texts = [m.text for m in emu.messages(from_=ROBOT, to=user)]
        assert texts == [f"echo: {user} #{n}" for n in range(10)]


async def test_a_reminder_set_before_a_sigkill_arrives_once_after_the_restart(
    tmp_path: Path,
) -> None:
    async with _world(tmp_path, FakeOpenAI()) as (emu, emu_url, llm_url):
        config = _config(tmp_path, emu_url, llm_url)
        first = await _serve(config, tmp_path)
        port = await first.started()
        emu.set_callback(f"http://127.0.0.1:{port}/im", TOKEN)
        emu.user_send("user01", ROBOT, "/remind in 3 seconds water the plants")
        await emu.wait_message(from_=ROBOT, to="user01", limit_s=20)  # "I will remind you…"
        first.proc.send_signal(signal.SIGKILL)
        await first.finish()
        await asyncio.sleep(3.5)  # it falls due while nothing runs

        second = await _serve(config, tmp_path)
        port = await second.started()
        emu.set_callback(f"http://127.0.0.1:{port}/im", TOKEN)
        reminder = await emu.wait_message(
            from_=ROBOT, to="user01", where=lambda m: m.text.startswith("Reminder:"), limit_s=20
        )
        await asyncio.sleep(1.5)  # time for a doubled send to show, were there one
        second.proc.send_signal(signal.SIGTERM)
        assert await second.finish() == 0
    assert reminder.text == "Reminder: water the plants"
    assert [m.text for m in emu.messages(from_=ROBOT, to="user01")][1:] == [reminder.text]
