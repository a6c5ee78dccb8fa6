"""Images in: a vision model gets the picture (fetched only from allowed hosts, within size and
time limits); a text-only robot says so; a refused image is explained."""

from __future__ import annotations

import base64
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.openai import FakeOpenAI
from tests.stack import Stack, running_stack
from timbridge.bot.sentences import TEXT_ONLY

pytestmark = pytest.mark.usefixtures("clean_env")

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture
async def images() -> AsyncIterator[str]:
    async def png(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def huge(request: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG" + b"\0" * (2 * 1024 * 1024), content_type="image/png")

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>not an image</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/cat.png", png)
    app.router.add_get("/huge.png", huge)
    app.router.add_get("/page", html)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


def _send_image(stack: Stack, url: str, text: str | None = None) -> None:
    body: list[dict[str, Any]] = [
        {
            "MsgType": "TIMImageElem",
            "MsgContent": {
                "UUID": "img-1",
                "ImageFormat": 1,
                "ImageInfoArray": [
                    {"Type": 1, "Size": 70, "Width": 1, "Height": 1, "URL": url},
                    {"Type": 3, "Size": 70, "Width": 1, "Height": 1, "URL": url + "?thumb"},
                ],
            },
        }
    ]
    if text:
        body.append({"MsgType": "TIMTextElem", "MsgContent": {"Text": text}})
    stack.emu.world.send_c2c(
        from_account="alice",
        to_account="@RBT#helper",
        body=body,
        msg_random=random.getrandbits(32),
        platform="Web",
    )


MEDIA = {"allowed_hosts": ["127.0.0.1"], "max_bytes": 1024 * 1024, "timeout_s": 5}


async def test_a_vision_model_sees_the_image(tmp_path: Path, images: str) -> None:
    llm = FakeOpenAI(reply=lambda messages: "a tiny picture")
    async with running_stack(
        tmp_path, llm=llm, media=MEDIA, model_options={"vision": True}
    ) as stack:
        _send_image(stack, images + "/cat.png", "what is this?")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
    assert reply.text == "a tiny picture"
    content = llm.requests[0]["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "[image] what is this?"}
    assert (
        content[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    )


async def test_anthropic_gets_the_image_as_a_base64_block(
    tmp_path: Path, images: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "k")
    fake = FakeAnthropic(reply=lambda messages: "I see it")
    server = TestServer(fake.app(), host="127.0.0.1", port=0)
    await server.start_server()
    models = {
        "default": {
            "provider": "anthropic",
            "model": "claude-test",
            "vision": True,
            "base_url": str(server.make_url("")).rstrip("/"),
            "api_key_env": "FAKE_ANTHROPIC_KEY",
        }
    }
    try:
        async with running_stack(tmp_path, models=models, media=MEDIA) as stack:
            _send_image(stack, images + "/cat.png")
            reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
    finally:
        await server.close()
    assert reply.text == "I see it"
    block = fake.requests[0]["messages"][-1]["content"][0]
    assert block["type"] == "image" and block["source"]["media_type"] == "image/png"


async def test_a_text_only_robot_says_so_without_calling_the_model(
    tmp_path: Path, images: str
) -> None:
    llm = FakeOpenAI()
    async with running_stack(tmp_path, llm=llm, media=MEDIA) as stack:
        _send_image(stack, images + "/cat.png", "what is this?")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
    assert reply.text == TEXT_ONLY
    assert not llm.requests


@pytest.mark.parametrize(
    ("path", "allowed", "reason"),
    [
        ("/cat.png", ["*.myqcloud.com"], "is not an http(s) URL on a host of media.allowed_hosts"),
        ("/huge.png", ["127.0.0.1"], "over 1048576 bytes"),
        ("/page", ["127.0.0.1"], "not a PNG, JPEG, GIF or WebP image"),
        ("/missing.png", ["127.0.0.1"], "HTTP 404"),
    ],
)
async def test_refused_images_are_explained(
    tmp_path: Path, images: str, path: str, allowed: list[str], reason: str
) -> None:
    llm = FakeOpenAI()
    media = {**MEDIA, "allowed_hosts": allowed}
    async with running_stack(
        tmp_path, llm=llm, media=media, model_options={"vision": True}
    ) as stack:
        _send_image(stack, images + path)
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
    assert reply.text.startswith("I could not open that image (image: ")
    assert reason in reply.text
    assert not llm.requests


@pytest.mark.parametrize("url", ["http://[::1", "http://[::1]:99999/x", "ftp://127.0.0.1/a.png"])
async def test_a_url_that_does_not_parse_is_refused_like_any_other(
    tmp_path: Path, url: str
) -> None:
    llm = FakeOpenAI()
    async with running_stack(
        tmp_path, llm=llm, media=MEDIA, model_options={"vision": True}
    ) as stack:
        _send_image(stack, url)
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
    assert reply.text.startswith("I could not open that image (image: ")
    assert "is not an http(s) URL" in reply.text
    assert not llm.requests
