"""The emulator's web chat page: its JSON API and live events over HTTP, and the page itself in
real headless Chromium."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from playwright.async_api import Page, expect
from pytest_aiohttp import AiohttpServer

from tests.browser import chromium
from timbridge.emulator import Emulator, EmulatorConfig
from timbridge.emulator.guard import TOKEN_HEADER
from timbridge.protocol.elements import StreamChunk, StreamContent, StreamElem, TextElem
from timbridge.protocol.rest import AdminMsgWithdraw, ModifyC2CMsg, SendC2CMsg, SendC2CStreamMsg
from timbridge.protocol.usersig import UserSigSigner
from timbridge.tencent.client import TencentClient
from timbridge.tencent.outbound import typing_notice

APP, KEY = 1400000000, "page-test-key"


@pytest.fixture
async def served(aiohttp_server: AiohttpServer) -> AsyncIterator[tuple[Emulator, str]]:
    emu = Emulator(
        EmulatorConfig(
            sdkappid=APP, secret_key=KEY, robots=("@RBT#helper",), users=("alice", "bob")
        )
    )
    server = await aiohttp_server(emu.create_app(), host="127.0.0.1", port=0)
    yield emu, str(server.make_url("")).rstrip("/")


@pytest.fixture
async def tencent(served: tuple[Emulator, str]) -> AsyncIterator[TencentClient]:
    async with aiohttp.ClientSession() as http:
        yield TencentClient(
            http,
            base_url=served[1],
            sdkappid=APP,
            admin="administrator",
            signer=UserSigSigner(APP, KEY),
        )


async def test_page_api_send_and_history(served: tuple[Emulator, str]) -> None:
    emu, base = served
    async with aiohttp.ClientSession(headers={TOKEN_HEADER: emu.token}) as http:
        async with http.post(
            f"{base}/api/send", json={"from": "alice", "to": "bob", "text": "hi bob"}
        ) as resp:
            assert resp.status == 200
            sent = await resp.json()
        assert sent["text"] == "hi bob" and sent["from"] == "alice"
        async with http.get(f"{base}/api/history", params={"user": "bob", "peer": "alice"}) as r:
            assert [m["text"] for m in await r.json()] == ["hi bob"]
        async with http.get(f"{base}/api/state", params={"user": "alice"}) as r:
            state = await r.json()
        assert {a["id"] for a in state["accounts"]} == {"alice", "bob", "@RBT#helper"}
        assert state["sdkappid"] == APP


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/api/send", b"not json", 400, "bad_json"),
        ("/api/send", b"[]", 400, "bad_json"),
        ("/api/send", b'{"from": "ghost", "to": "bob", "text": "x"}', 400, "unknown_user"),
        ("/api/send", b'{"from": "alice", "to": "bob", "text": "  "}', 400, "empty_text"),
        (
            "/api/send",
            b'{"from": "alice", "group": "@TGS#none", "text": "x"}',
            400,
            "tencent_10010",
        ),
        ("/api/users", b'{"id": "@RBT#sneaky"}', 400, "bad_user"),
        ("/api/users", b'{"id": ""}', 400, "bad_user"),
        ("/api/groups", b'{"owner": "alice", "name": "", "members": []}', 400, "tencent_10004"),
        ("/api/groups", b'{"owner": "alice", "name": "g", "members": "bob"}', 400, "bad_members"),
    ],
)
async def test_page_api_errors(
    served: tuple[Emulator, str], path: str, body: bytes, status: int, error: str
) -> None:
    emu, base = served
    async with (
        aiohttp.ClientSession(headers={TOKEN_HEADER: emu.token}) as http,
        http.post(f"{base}{path}", data=body) as resp,
    ):
        assert resp.status == status
        answer = await resp.json()
    assert answer["error"] == error and answer["detail"]


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [
        ({}, 403, "bad_token"),  # what a cross-site text/plain POST can send
        ({TOKEN_HEADER: "guessed"}, 403, "bad_token"),
        ({TOKEN_HEADER: "@", "Origin": "https://evil.example"}, 403, "cross_site"),
        ({TOKEN_HEADER: "@", "Host": "evil.example"}, 403, "host_not_allowed"),  # rebinding
        ({TOKEN_HEADER: "@"}, 200, None),
    ],
    ids=["no-token", "wrong-token", "other-origin", "rebound-host", "the-page"],
)
async def test_state_changing_calls_need_this_runs_token_a_local_host_and_the_pages_origin(
    served: tuple[Emulator, str], headers: dict[str, str], status: int, error: str | None
) -> None:
    emu, base = served
    sent = {k: emu.token if v == "@" else v for k, v in headers.items()}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base}/emulator/callback",
            data=b'{"url": "http://attacker.example/im"}',
            headers={"Content-Type": "text/plain", **sent},
        ) as resp,
    ):
        answer = await resp.json()
    assert resp.status == status
    if error is not None:
        assert answer["error"] == error and answer["detail"]
        assert emu.webhooks.url is None  # the webhook was not re-pointed


async def test_reads_from_a_rebound_host_are_refused_and_the_page_carries_its_token(
    served: tuple[Emulator, str],
) -> None:
    emu, base = served
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{base}/api/history",
            params={"user": "alice", "peer": "bob"},
            headers={"Host": "evil.example:8080"},
        ) as resp:
            assert resp.status == 403
        async with http.get(f"{base}/") as resp:
            page = await resp.text()
    assert f'<meta name="timbridge-token" content="{emu.token}">' in page
    assert len(emu.token) >= 32


async def test_live_events_follow_one_user(served: tuple[Emulator, str]) -> None:
    emu, base = served
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base}/api/events", params={"user": "bob"}) as resp,
    ):
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert await resp.content.readline() == b": connected\n"
        emu.user_send("alice", "@RBT#helper", "not for bob")
        emu.user_send("alice", "bob", "for bob")
        async with asyncio.timeout(5):
            while True:
                line = await resp.content.readline()
                if line.startswith(b"data: "):
                    break
        event = orjson.loads(line.removeprefix(b"data: "))
    assert event["type"] == "message"
    assert event["message"]["text"] == "for bob"


async def test_static_files_only(served: tuple[Emulator, str]) -> None:
    _, base = served
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/") as resp:
            assert resp.status == 200 and "text/html" in resp.headers["Content-Type"]
        for name in ("app.js", "style.css"):
            async with http.get(f"{base}/static/{name}") as resp:
                assert resp.status == 200
        for bad in ("../world.py", "..%2Fworld.py", "world.py", ".hidden.js"):
            async with http.get(f"{base}/static/{bad}") as resp:
                assert resp.status == 404


async def _open_chat(page: Page, base: str, peer_name: str) -> None:
    await page.goto(base + "/")
    await expect(page.locator("#user-select")).to_have_value("alice")
    await page.locator("#conversations li", has_text=peer_name).first.click()
    await expect(page.locator("#chat-title")).to_have_text(peer_name)


async def test_chromium_send_and_see_rest_reply(
    served: tuple[Emulator, str], tencent: TencentClient
) -> None:
    emu, base = served
    async with chromium() as browser:
        page = await browser.new_page()
        await _open_chat(page, base, "helper")
        await page.locator("#text").fill("Hello from the page")
        await page.locator("#text").press("Enter")
        mine = page.locator(".message.mine .text")
        await expect(mine).to_have_text("Hello from the page")
        stored = await emu.wait_message(from_="alice", to="@RBT#helper")
        assert stored.text == "Hello from the page"

        # typing notice, then a reply posted through Tencent's REST API, appear live
        await tencent.call(typing_notice("@RBT#helper", "alice", msg_random=1))
        await expect(page.locator("#typing")).to_have_text("helper is typing…")
        reply = await tencent.call(
            SendC2CMsg(
                from_account="@RBT#helper",
                to_account="alice",
                msg_random=2,
                msg_body=(TextElem.of("Hi alice!"),),
            )
        )
        theirs = page.locator(".message:not(.mine) .text")
        await expect(theirs).to_have_text("Hi alice!")
        await expect(page.locator("#typing")).to_be_hidden()

        # an edit replaces the text in place
        await tencent.call(
            ModifyC2CMsg(
                from_account="@RBT#helper",
                to_account="alice",
                msg_key=reply.msg_key,
                msg_body=(TextElem.of("Hi alice! (edited)"),),
            )
        )
        await expect(theirs).to_have_text("Hi alice! (edited)")
        await expect(page.locator(".message:not(.mine) .edited")).to_have_text("edited")


async def test_chromium_stream_grows_in_place(
    served: tuple[Emulator, str], tencent: TencentClient
) -> None:
    async with chromium() as browser:
        page = await browser.new_page()
        await _open_chat(page, served[1], "helper")

        def chunk(index: int, text: str, last: bool, stream_id: str | None) -> SendC2CStreamMsg:
            content = StreamContent(
                compatible_text="upgrade",
                stream_msg_id=stream_id,
                chunks=(StreamChunk(index=index, markdown=text, is_last=last),),
            )
            return SendC2CStreamMsg(
                from_account="@RBT#helper",
                to_account="alice",
                msg_random=9,
                msg_body=(StreamElem(msg_content=content),),
            )

        first = await tencent.call(chunk(1, "Streaming ", False, None))
        bubble = page.locator(".message:not(.mine)")
        await expect(bubble).to_have_class("message streaming")
        await expect(bubble.locator(".text")).to_have_text("Streaming ")
        await tencent.call(chunk(2, "works.", True, first.stream_msg_id))
        await expect(bubble.locator(".text")).to_have_text("Streaming works.")
        await expect(bubble).to_have_class("message")
        assert await bubble.count() == 1


async def test_chromium_group_with_robot_mention(served: tuple[Emulator, str]) -> None:
    emu, base = served
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(base + "/")
        await expect(page.locator("#user-select")).to_have_value("alice")
        await expect(page.locator("#chat-title")).to_have_text("helper")  # opened on load
        await page.locator("#group-form summary").click()
        await page.locator("#group-name").fill("Support")
        await page.locator("#group-members input[value='bob']").check()
        await page.locator("#create-group").click()
        await expect(page.locator("#chat-title")).to_contain_text("Support")
        await page.locator("#mentions button.mention").click()
        await page.locator("#text").type("how do I reset my password?")
        await page.locator("#send").click()
        sent = await emu.wait_message(from_="alice", where=lambda m: m.kind == "group")
        assert sent.at_accounts == ("@RBT#helper",)
        assert sent.text == "@@RBT#helper how do I reset my password?"
        await expect(page.locator(".message.mine .text")).to_have_text(sent.text)


async def test_chromium_opens_the_robots_chat_and_renders_its_markdown_safely(
    served: tuple[Emulator, str], tencent: TencentClient
) -> None:
    _, base = served
    answer = (
        "**bold** and `code`\n\n```python\nx = 1\n```\n\n- one\n- two\n\n"
        '<img src=x onerror="window.pwned = 1"><script>window.pwned = 2</script>'
    )
    async with chromium() as browser:
        page = await browser.new_page()
        missing: list[str] = []
        page.on("response", lambda r: missing.append(r.url) if r.status >= 400 else None)
        await page.goto(base + "/")
        await expect(page.locator("#chat-title")).to_have_text("helper")  # open on load
        await tencent.call(
            SendC2CMsg(
                from_account="@RBT#helper",
                to_account="alice",
                msg_random=3,
                msg_body=(TextElem.of(answer),),
            )
        )
        text = page.locator(".message:not(.mine) .text")
        await expect(text.locator("strong")).to_have_text("bold")
        await expect(text.locator("pre code")).to_have_text("x = 1\n")
        await expect(text.locator("li")).to_have_count(2)
        shown = await text.inner_text()
        assert "**" not in shown and "```" not in shown  # no raw markers
        assert '<img src=x onerror="window.pwned = 1">' in shown  # HTML shown as text
        assert await text.locator("img, script").count() == 0
        assert await page.evaluate("window.pwned") is None  # no script ran
        await page.locator("#text").fill("**not markdown** from a person")
        await page.locator("#text").press("Enter")
        await expect(page.locator(".message.mine .text")).to_have_text(
            "**not markdown** from a person"
        )
    assert missing == []  # nothing the page asks for is missing (no 404 on load)


async def test_chromium_recall_takes_back_my_message_and_the_robots_answer_live(
    served: tuple[Emulator, str], tencent: TencentClient
) -> None:
    emu, base = served
    async with chromium() as browser:
        page = await browser.new_page()
        await _open_chat(page, base, "helper")
        await page.locator("#text").fill("a question I regret")
        await page.locator("#text").press("Enter")
        mine = page.locator(".message.mine")
        await expect(mine.locator(".text")).to_have_text("a question I regret")
        reply = await tencent.call(
            SendC2CMsg(
                from_account="@RBT#helper",
                to_account="alice",
                msg_random=3,
                msg_body=(TextElem.of("half an answer"),),
            )
        )
        theirs = page.locator(".message:not(.mine)")
        await expect(theirs.locator(".text")).to_have_text("half an answer")
        await expect(theirs.locator(".recall")).to_be_hidden()  # only my own messages

        await mine.locator(".recall").click()
        await expect(mine.locator(".text")).to_have_text("You recalled a message")
        await expect(mine.locator(".recall")).to_be_hidden()
        stored = await emu.wait_message(from_="alice", to="@RBT#helper")
        assert stored.recalled
        # the robot's answer withdrawn through the REST API disappears live as well
        await tencent.call(
            AdminMsgWithdraw(from_account="@RBT#helper", to_account="alice", msg_key=reply.msg_key)
        )
        await expect(theirs.locator(".text")).to_have_text("helper recalled a message")


async def test_page_api_recall_refuses_what_the_user_may_not_recall(
    served: tuple[Emulator, str],
) -> None:
    emu, base = served
    message = emu.user_send("bob", "alice", "bob's words")
    async with aiohttp.ClientSession(headers={TOKEN_HEADER: emu.token}) as http:
        for body, error in [
            ({"user": "alice", "id": message.id}, "tencent_10004"),  # not hers
            ({"user": "alice", "id": "1"}, "bad_id"),
            ({"user": "alice", "id": 10_000}, "tencent_10004"),
        ]:
            async with http.post(f"{base}/api/recall", json=body) as resp:
                assert resp.status == 400
                assert (await resp.json())["error"] == error
        async with http.post(f"{base}/api/recall", json={"user": "bob", "id": message.id}) as r:
            assert r.status == 200 and (await r.json())["recalled"] is True
    assert message.recalled
