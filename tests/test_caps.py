"""Size caps that hold against a hostile server: every body is counted after decompression (a
small gzip bomb on the wire inflates to megabytes), a model's answer has a ceiling, a stream line
of any length neither kills the job nor the splitter, and a stream that ends without its end
marker is a failed answer, not a complete one."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import ADMIN, FAST_RETRY, SDKAPPID, SECRET_KEY
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI
from tests.stack import running_stack
from tests.test_openai import model
from timbridge.bot.media import MediaFetcher
from timbridge.bot.sentences import APOLOGY, TOO_LONG
from timbridge.bot.split import json_size, split_reply
from timbridge.errors import LLMResponseError, LLMServerError, PayloadError, TencentTransportError
from timbridge.http import http_session
from timbridge.llm.base import ChatMessage, ChatModel, ModelConfig
from timbridge.llm.providers.anthropic import AnthropicMessages
from timbridge.llm.providers.gemini import Gemini
from timbridge.protocol.elements import TextElem
from timbridge.protocol.rest import SendC2CMsg
from timbridge.protocol.usersig import UserSigSigner
from timbridge.settings import MediaSettings
from timbridge.storage.history import CACHE_BYTES, TURN_LOADED_CHARS, Turn
from timbridge.storage.store import Store
from timbridge.tencent.client import TencentClient

pytestmark = pytest.mark.usefixtures("clean_env")

MESSAGES = [ChatMessage("user", "hello")]
BOMB = 20 * 1024 * 1024  # inflated size: over every default cap (8 MB bodies, 5 MB images)


def bomb(payload: bytes) -> web.Response:
    """`payload` gzipped (a few KB on the wire), declared as such."""
    body = gzip.compress(payload, compresslevel=9)
    assert len(body) < 64 * 1024
    return web.Response(body=body, headers={"Content-Encoding": "gzip"})


def completion(content: str) -> bytes:
    return orjson.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
        }
    )


@pytest.fixture
async def hostile() -> AsyncIterator[str]:
    """A server whose every answer is a bomb of one kind or another."""

    async def image(request: web.Request) -> web.Response:
        return bomb(b"\x89PNG" + b"\0" * (1024 * 1024))

    async def chat(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        if not body.get("stream"):
            return bomb(completion("a" * BOMB))
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await stream.prepare(request)
        line = {"choices": [{"index": 0, "delta": {"content": "b" * (10 * 1024 * 1024)}}]}
        await stream.write(b"data: " + orjson.dumps(line) + b"\n\n")
        await stream.write(b"data: [DONE]\n\n")
        await stream.write_eof()
        return stream

    async def tencent(request: web.Request) -> web.Response:
        answer = {"ActionStatus": "OK", "ErrorCode": 0, "Padding": "p" * BOMB}
        return bomb(orjson.dumps(answer))

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("http://127.0.0.1:9/stolen")

    app = web.Application()
    app.router.add_get("/cat.png", image)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v4/openim/sendmsg", tencent)
    app.router.add_post("/moved/v4/openim/sendmsg", moved)
    app.router.add_post("/moved/v1/chat/completions", moved)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_an_image_gzip_bomb_is_refused_at_the_inflated_cap(hostile: str) -> None:
    # 1 MB of image once inflated, a few KB on the wire, against a cap of 4 KB
    settings = MediaSettings(allowed_hosts=("127.0.0.1",), max_bytes=4096)
    async with http_session() as session:
        fetcher = MediaFetcher(session, settings)
        with pytest.raises(PayloadError, match="over 4096 bytes"):
            await fetcher.fetch(f"{hostile}/cat.png")


def _c2c() -> SendC2CMsg:
    return SendC2CMsg(
        from_account="@RBT#helper", to_account="alice", msg_random=1, msg_body=(TextElem.of("hi"),)
    )


def tencent_client(session: aiohttp.ClientSession, base: str) -> TencentClient:
    return TencentClient(
        session,
        base_url=base,
        sdkappid=SDKAPPID,
        admin=ADMIN,
        signer=UserSigSigner(SDKAPPID, SECRET_KEY),
        retry=FAST_RETRY,
        max_response_bytes=64 * 1024,
    )


async def test_a_tencent_answer_bomb_is_refused_at_the_inflated_cap(hostile: str) -> None:
    async with http_session() as session:
        client = tencent_client(session, hostile)
        with pytest.raises(TencentTransportError, match="larger than 65536 bytes") as caught:
            await client.call(_c2c())
        assert caught.value.transient is False


async def test_the_tencent_client_never_follows_a_redirect_with_the_usersig(
    hostile: str,
) -> None:
    async with http_session() as session:
        client = tencent_client(session, f"{hostile}/moved")
        with pytest.raises(TencentTransportError, match="HTTP 307"):
            await client.call(_c2c())


Client = Literal["direct", "sdk"]


def openai_model(client: Client, base_url: str, *, stream: bool) -> ChatModel:
    return model(client, base_url, stream=stream, timeout_s=10)


async def failure_of(chat: ChatModel) -> Exception:
    try:
        async for _ in chat.stream(MESSAGES):
            pass
    except Exception as exc:  # noqa: BLE001 - the test inspects what the caller meets
        return exc
    finally:
        await chat.aclose()
    raise AssertionError("the model call did not fail")


@pytest.mark.parametrize("client", ["direct", "sdk"])
async def test_a_model_answer_bomb_is_a_bad_answer_not_a_retried_hiccup(
    hostile: str, client: Client
) -> None:
    error = await failure_of(openai_model(client, f"{hostile}/v1", stream=False))
    assert isinstance(error, LLMResponseError)
    assert "over 8388608 bytes" in str(error)


@pytest.mark.parametrize("client", ["direct", "sdk"])
async def test_a_model_api_redirect_is_not_followed_with_the_key(
    hostile: str, client: Client
) -> None:
    error = await failure_of(openai_model(client, f"{hostile}/moved/v1", stream=False))
    assert isinstance(error, LLMResponseError)
    assert "307" in str(error)


async def test_a_stream_line_of_10_mb_is_refused_as_a_bad_answer(hostile: str) -> None:
    error = await failure_of(openai_model("direct", f"{hostile}/v1", stream=True))
    assert isinstance(error, LLMResponseError)
    assert "stream line over 1048576 bytes" in str(error)


# -- answers with a ceiling ------------------------------------------------------------------


def test_the_splitter_takes_a_10_mb_line_in_linear_time_and_keeps_every_character() -> None:
    text = "x" * 10_000_000
    parts = split_reply(text)
    assert "".join(parts) == text
    assert max(json_size(p) for p in parts) <= 11 * 1024


async def test_a_10_mb_answer_reaches_the_user_as_a_few_messages_ending_with_a_note(
    tmp_path: Path,
) -> None:
    llm = FakeOpenAI(reply=lambda messages: "word " * 2_000_000, chunk_size=1024)
    async with running_stack(tmp_path, llm=llm) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "tell me everything")
        await stack.emu.wait_message(from_="@RBT#helper", where=ends_with_note)
        sent = stack.emu.messages(from_="@RBT#helper")
        assert 1 < len(sent) <= 4  # 10 MB would have been 900 messages
        assert sent[-1].text.endswith(TOO_LONG.strip())
        said = "".join(m.text for m in sent)
        assert 32_000 - 10 <= len(said) <= 32_000 + len(TOO_LONG)


def ends_with_note(message: Any) -> bool:
    return bool(message.text.endswith(TOO_LONG.strip()))


@pytest.mark.parametrize("mode", ["stream", "edit", "segments"])
async def test_a_10_mb_answer_shown_live_also_stops_at_the_ceiling(
    tmp_path: Path, mode: str
) -> None:
    llm = FakeOpenAI(reply=lambda messages: "word " * 2_000_000, chunk_size=1024)
    robots = [{"id": "@RBT#helper", "nick": "Helper", "persona": "P", "reply_mode": mode}]
    async with running_stack(tmp_path, llm=llm, robots=robots) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "tell me everything")
        await stack.emu.wait_message(from_="@RBT#helper", where=ends_with_note)
        sent = stack.emu.messages(from_="@RBT#helper")
        assert len(sent) <= 4
        assert TOO_LONG.strip() in sent[-1].text


# -- a stream without its end marker ---------------------------------------------------------


async def served(app: web.Application) -> tuple[TestServer, str]:
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    return server, str(server.make_url("")).rstrip("/")


Builder = Callable[[str], ChatModel]

PROVIDERS: dict[str, tuple[Callable[[], Any], Builder]] = {
    "openai-direct": (
        lambda: FakeOpenAI(end_marker=False),
        lambda url: openai_model("direct", url + "/v1", stream=True),
    ),
    "openai-sdk": (
        lambda: FakeOpenAI(end_marker=False),
        lambda url: openai_model("sdk", url + "/v1", stream=True),
    ),
    "anthropic": (
        lambda: FakeAnthropic(end_marker=False),
        lambda url: AnthropicMessages(
            ModelConfig(model="claude", api_key="k", base_url=url, timeout_s=5)
        ),
    ),
    "gemini": (
        lambda: FakeGemini(end_marker=False),
        lambda url: Gemini(
            ModelConfig(model="gemini-x", api_key="k", base_url=url, timeout_s=5, max_connections=4)
        ),
    ),
}


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_a_stream_without_its_end_marker_is_a_failed_answer(provider: str) -> None:
    make_fake, build = PROVIDERS[provider]
    server, url = await served(make_fake().app())
    try:
        error = await failure_of(build(url))
    finally:
        await server.close()
    assert isinstance(error, LLMServerError)  # retried while nothing was shown
    assert "no end marker" in str(error)


async def test_an_unfinished_stream_is_never_delivered_nor_stored_as_complete(
    tmp_path: Path,
) -> None:
    llm = FakeOpenAI(end_marker=False)
    async with running_stack(tmp_path, llm=llm) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "hello")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        assert reply.text == APOLOGY
        assert len(llm.requests) == 2  # the first try and its one retry
        turns = await stack.services.store.history.recent_turns("c2c:@RBT#helper:alice")
        assert [t.role for t in turns] == ["user"]


# -- what is kept per conversation is bounded by bytes -----------------------------------------


async def test_cached_history_is_bounded_by_bytes_not_only_by_turns(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        history = store.history
        big = "y" * 900_000
        for n in range(120):  # 120 messages of 900 KB, each in its own conversation
            await history.add_turns(
                f"c2c:@RBT#helper:user{n}",
                f"id{n}",
                [Turn("user", big, 10), Turn("assistant", f"answer {n}", 2)],
            )
        assert history.cached_bytes <= CACHE_BYTES
        assert history.cached_bytes < 120 * 2 * TURN_LOADED_CHARS  # not 108 MB
        turns = await history.recent_turns("c2c:@RBT#helper:user119")
        assert [len(t.content) for t in turns] == [TURN_LOADED_CHARS, len("answer 119")]
        reloaded = await history.recent_turns("c2c:@RBT#helper:user0")  # evicted or not,
        assert [len(t.content) for t in reloaded] == [TURN_LOADED_CHARS, len("answer 0")]
    finally:
        await store.aclose()
