"""The playground: emulator, engine and page on one port, answering from timbridge's docs with
the offline model. The checks below know only Tencent's public REST API (and sign with Tencent's
official UserSig package), as an outside check would."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect
from TLSSigAPIv2 import TLSSigAPIv2

from tests.browser import chromium
from timbridge.bot.sentences import REMEMBERED
from timbridge.emulator import DEMO_SDKAPPID, DEMO_SECRET_KEY
from timbridge.llm.providers.offline import NO_MATCH, OFFLINE_NOTE
from timbridge.runtime.playground import (
    DEMO_GROUP,
    DEMO_USER,
    FRIEND_ROBOT,
    PLAYGROUND_ROBOT,
    open_playground,
)
from timbridge.settings import Settings

pytestmark = pytest.mark.usefixtures("clean_env")


class RestCaller:
    """Tencent's REST API as documented: admin UserSig in the URL, JSON in, envelope out."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base.rstrip("/")
        self.sig = TLSSigAPIv2(DEMO_SDKAPPID, DEMO_SECRET_KEY).gen_sig("administrator", 3600)

    async def __call__(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        query = (
            f"sdkappid={DEMO_SDKAPPID}&identifier=administrator&usersig={self.sig}"
            f"&random={random.getrandbits(31)}&contenttype=json"
        )
        async with self.http.post(f"{self.base}/v4/{path}?{query}", json=body) as resp:
            assert resp.status == 200
            answer: dict[str, Any] = await resp.json()
        assert answer["ActionStatus"] == "OK", answer
        return answer

    async def c2c_replies(self, user: str, robot: str = PLAYGROUND_ROBOT) -> list[str]:
        answer = await self(
            "openim/admin_getroammsg",
            {
                "Operator_Account": user,
                "Peer_Account": robot,
                "MaxCnt": 100,
                "MinTime": 0,
                "MaxTime": int(time.time()) + 60,
            },
        )
        return [_text(m) for m in answer["MsgList"] if m["From_Account"] == robot]

    async def group_replies(self) -> list[str]:
        answer = await self(
            "group_open_http_svc/group_msg_get_simple", {"GroupId": DEMO_GROUP, "ReqMsgNumber": 50}
        )
        newest_first = answer["RspMsgList"]
        return [_text(m) for m in reversed(newest_first) if m["From_Account"] == PLAYGROUND_ROBOT]


def _text(message: dict[str, Any]) -> str:
    return "".join(
        e["MsgContent"]["Text"] for e in message["MsgBody"] if e["MsgType"] == "TIMTextElem"
    )


async def _until(probe: Any, count: int, limit_s: float = 20.0) -> list[str]:
    async with asyncio.timeout(limit_s):
        # an outside check sees only the REST API: it polls, as a real client would
        while len(found := await probe()) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    return list(found)


@pytest.fixture
async def playground(docs_store: Path, tmp_path: Path) -> AsyncIterator[str]:
    db = tmp_path / "playground.db"
    shutil.copy(docs_store, db)
    settings = Settings(store={"url": f"sqlite:///{db}"})
    async with open_playground(settings, port=0) as pg:
        yield pg.url


async def test_one_to_one_answer_comes_from_the_docs(playground: str) -> None:
    async with aiohttp.ClientSession() as http:
        rest = RestCaller(http, playground)
        await rest(
            "openim/sendmsg",
            {
                "From_Account": DEMO_USER,
                "To_Account": PLAYGROUND_ROBOT,
                "MsgRandom": 1,
                "MsgBody": [
                    {
                        "MsgType": "TIMTextElem",
                        "MsgContent": {"Text": "How do I configure a model with an API key?"},
                    }
                ],
            },
        )
        [reply] = await _until(lambda: rest.c2c_replies(DEMO_USER), 1)
    assert "api_key_env" in reply  # the passage on model keys, quoted
    assert OFFLINE_NOTE in reply
    assert "Sources: " in reply and "(models.md)" in reply


async def test_the_companion_keeps_what_it_is_told_to_remember_and_sets_reminders(
    playground: str,
) -> None:
    """On the offline model the companion keeps what it is told to remember, lists it, and
    sets a reminder that arrives."""
    async with aiohttp.ClientSession() as http:
        rest = RestCaller(http, playground)

        async def say(text: str, replies: int) -> str:
            body = {"MsgType": "TIMTextElem", "MsgContent": {"Text": text}}
            message = {"From_Account": DEMO_USER, "To_Account": FRIEND_ROBOT, "MsgBody": [body]}
            await rest("openim/sendmsg", {**message, "MsgRandom": replies})
            return (await _until(lambda: rest.c2c_replies(DEMO_USER, FRIEND_ROBOT), replies))[-1]

        told = await say("Remember that my cat is called Mochi.", 1)
        listed = await say("/memory", 2)
        await say("/remind in 1 second feed Mochi", 3)
        reminded = (await _until(lambda: rest.c2c_replies(DEMO_USER, FRIEND_ROBOT), 4))[-1]
    assert told == REMEMBERED.format(fact="my cat is called Mochi")
    assert listed.startswith("1. my cat is called Mochi\n")
    assert reminded == "Reminder: feed Mochi"


async def test_group_answers_mentions_only_and_says_when_nothing_matches(playground: str) -> None:
    def group_message(text: str, *, mention: bool, rand: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "GroupId": DEMO_GROUP,
            "From_Account": DEMO_USER,
            "Random": rand,
            "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": text}}],
        }
        if mention:
            body["GroupAtInfo"] = [{"GroupAt_Account": PLAYGROUND_ROBOT}]
        return body

    async with aiohttp.ClientSession() as http:
        rest = RestCaller(http, playground)
        send = "group_open_http_svc/send_group_msg"
        await rest(send, group_message("what is the callback token for?", mention=False, rand=1))
        await rest(
            send,
            group_message(
                f"@{PLAYGROUND_ROBOT} what is the callback token for?", mention=True, rand=2
            ),
        )
        [first] = await _until(rest.group_replies, 1)
        await rest(
            send, group_message(f"@{PLAYGROUND_ROBOT} recipe for a cake?", mention=True, rand=3)
        )
        replies = await _until(rest.group_replies, 2)
        await asyncio.sleep(0.5)  # time for a wrong answer to the unmentioned message to land
        assert len(await rest.group_replies()) == 2
    assert "Sign" in first and "tencent.md" in first
    assert replies[1] == f"@{DEMO_USER} {NO_MATCH}"  # off-topic: said plainly, nothing quoted
    assert replies[0].startswith(f"@{DEMO_USER} Here is what I found")  # the asker is mentioned


async def test_chromium_asks_the_playground_robot_about_models(playground: str) -> None:
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(playground)
        await expect(page.locator("#user-select")).to_have_value(DEMO_USER)
        await page.locator("#conversations li", has_text="helper").first.click()
        await page.locator("#text").fill("How do I configure a model provider?")
        await page.locator("#text").press("Enter")
        answer = page.locator(".message:not(.mine) .text").first
        await expect(answer).to_contain_text("provider", timeout=20_000)
        await expect(answer).to_contain_text("Offline model")
        await expect(answer).to_contain_text("models.md")


def test_the_playground_command_serves_and_stops_on_sigterm(
    docs_store: Path, tmp_path: Path
) -> None:
    db = tmp_path / "cli.db"
    shutil.copy(docs_store, db)
    env = {**os.environ, "TIMBRIDGE_STORE__URL": f"sqlite:///{db}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "timbridge", "playground", "--port", "0", "--no-browser"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if line.startswith("timbridge playground: http://"):
                break
        url = lines[-1].split(": ", 1)[1].strip()
        banner = "".join(lines)
        assert (
            "robot @RBT#helper answers with the offline model, knowledge: timbridge-docs" in banner
        )
        with urllib.request.urlopen(url, timeout=10) as resp:  # the page
            assert resp.status == 200 and b"<html" in resp.read().lower()
        with urllib.request.urlopen(url + "readyz", timeout=10) as resp:  # REST to itself works
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


async def test_chromium_the_shop_demo_hands_the_chat_to_the_user_playing_the_agent(
    playground: str,
) -> None:
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(playground)
        await expect(page.locator("#user-select")).to_have_value(DEMO_USER)
        await page.locator("#conversations li", has_text="shop").first.click()
        await expect(page.locator("#chat-title")).to_have_text("Shop")
        await page.locator("#text").fill("How long does a refund take?")
        await page.locator("#text").press("Enter")
        theirs = page.locator(".message:not(.mine) .text")
        await expect(theirs.first).to_contain_text("five working days", timeout=20_000)
        await page.locator("#text").fill("/human")
        await page.locator("#text").press("Enter")
        await expect(theirs.nth(1)).to_contain_text("ticket #1", timeout=20_000)

        # the same user, as the shop's agent, answers from the agents' group
        await page.locator("#conversations li", has_text="Shop agents").first.click()
        ticket = page.locator(".message:not(.mine) .text").first
        await expect(ticket).to_contain_text("New ticket #1 from user01", timeout=20_000)
        await expect(ticket).to_contain_text("How long does a refund take?")
        await page.locator("#text").fill("@Shop #1 Hello, I am a person. How can I help?")
        await page.locator("#text").press("Enter")

        await page.locator("#conversations li", has_text="shop").first.click()
        delivered = page.locator(".message:not(.mine) .text", has_text="I am a person")
        await expect(delivered).to_have_text("Hello, I am a person. How can I help?")
