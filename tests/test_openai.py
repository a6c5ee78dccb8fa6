"""The OpenAI-compatible provider's two clients, timbridge's own ("direct", the default) and the
official SDK's ("sdk"), against one fake server speaking the real wire format: the same request,
the same answers, and the same `LLMError` for every failure the caller can meet."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Literal

import pytest
from aiohttp.test_utils import TestServer

from tests.fakes.openai import Failure, FakeOpenAI
from timbridge.errors import (
    LLMError,
    LLMRateLimited,
    LLMResponseError,
    LLMServerError,
    LLMTimeout,
)
from timbridge.llm.base import ChatMessage, ChatModel, Delta, Image, ModelConfig, Usage
from timbridge.llm.providers.openai import OpenAICompatible
from timbridge.llm.providers.openai_sdk import OpenAISDK

Client = Literal["direct", "sdk"]
CLIENTS: tuple[Client, ...] = ("direct", "sdk")
MESSAGES = [ChatMessage("system", "You are Helper."), ChatMessage("user", "hello there")]


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeOpenAI, str]]:
    llm = FakeOpenAI()
    server = TestServer(llm.app(), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield llm, str(server.make_url("/v1"))
    finally:
        await server.close()


def model(
    client: Client, base_url: str, *, stream: bool = True, timeout_s: float = 5.0
) -> ChatModel:
    provider_class = OpenAISDK if client == "sdk" else OpenAICompatible
    return provider_class(
        ModelConfig(
            model="gpt-test",
            api_key="sk-test",
            base_url=base_url,
            timeout_s=timeout_s,
            stream=stream,
            max_tokens=256,
            provider="openai",
            max_connections=8,
        )
    )


async def answer(chat: ChatModel, messages: list[ChatMessage] = MESSAGES) -> list[Delta]:
    try:
        return [delta async for delta in chat.stream(messages)]
    finally:
        await chat.aclose()


async def failure(chat: ChatModel) -> LLMError:
    with pytest.raises(LLMError) as caught:
        await answer(chat)
    return caught.value


@pytest.mark.parametrize("stream", [True, False])
async def test_both_clients_send_the_same_request_and_read_the_same_answer(
    fake: tuple[FakeOpenAI, str], stream: bool
) -> None:
    llm, url = fake
    results = {c: await answer(model(c, url, stream=stream)) for c in CLIENTS}
    direct, sdk = llm.requests
    assert direct == sdk
    assert direct["messages"] == [
        {"role": "system", "content": "You are Helper."},
        {"role": "user", "content": "hello there"},
    ]
    assert direct["max_tokens"] == 256
    assert bool(direct.get("stream")) is stream
    if stream:
        assert direct["stream_options"] == {"include_usage": True}
    for headers in llm.headers:
        assert headers["authorization"] == "Bearer sk-test"
        assert headers["content-type"] == "application/json"
    for deltas in results.values():
        assert "".join(d.text for d in deltas) == "echo: hello there"
        assert deltas[-1].usage == Usage(input_tokens=5, output_tokens=3)
    assert results["direct"] == results["sdk"]


async def test_images_go_as_content_parts_alike(fake: tuple[FakeOpenAI, str]) -> None:
    llm, url = fake
    llm.reply = lambda messages: "seen"
    picture = ChatMessage("user", "what is it?", images=(Image("image/png", b"\x89PNG"),))
    for client in CLIENTS:
        await answer(model(client, url), [picture])
    assert llm.requests[0] == llm.requests[1]
    assert llm.requests[0]["messages"][0]["content"] == [
        {"type": "text", "text": "what is it?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}},
    ]


@pytest.mark.parametrize("client", CLIENTS)
async def test_429_is_rate_limited_with_the_servers_wait(
    fake: tuple[FakeOpenAI, str], client: Client
) -> None:
    llm, url = fake
    llm.fail(Failure(429, retry_after=1.5))
    error = await failure(model(client, url))
    assert isinstance(error, LLMRateLimited)
    assert error.retry_after == 1.5
    assert (error.provider, error.model) == ("openai", "gpt-test")


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("status", [500, 503, 529])
async def test_5xx_is_a_server_error_with_its_status(
    fake: tuple[FakeOpenAI, str], client: Client, status: int
) -> None:
    llm, url = fake
    llm.fail(Failure(status))
    error = await failure(model(client, url))
    assert isinstance(error, LLMServerError)
    assert error.status == status
    assert str(error) == f"openai:gpt-test: HTTP {status}"


@pytest.mark.parametrize("client", CLIENTS)
async def test_4xx_is_a_response_error_carrying_the_servers_message(
    fake: tuple[FakeOpenAI, str], client: Client
) -> None:
    llm, url = fake
    llm.fail(Failure(400, message="max_tokens is too large: 999999"))
    error = await failure(model(client, url))
    assert type(error) is LLMResponseError
    assert "HTTP 400" in str(error)
    assert "max_tokens is too large: 999999" in str(error)


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_server_slower_than_the_timeout_is_a_timeout(
    fake: tuple[FakeOpenAI, str], client: Client
) -> None:
    llm, url = fake
    llm.fail(Failure(200, delay_s=1.0))
    error = await failure(model(client, url, timeout_s=0.2))
    assert isinstance(error, LLMTimeout)


@pytest.mark.parametrize("client", CLIENTS)
async def test_nobody_listening_is_a_connection_failure(client: Client) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago, now closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = await failure(model(client, f"http://127.0.0.1:{port}/v1"))
    assert isinstance(error, LLMServerError)
    assert error.status == 0
    assert "connection failed" in str(error)


async def test_an_error_event_in_the_stream_is_a_response_error(
    fake: tuple[FakeOpenAI, str],
) -> None:
    llm, url = fake
    llm.fail(Failure(200, in_stream=True, message="upstream overloaded"))
    error = await failure(model("direct", url))
    assert type(error) is LLMResponseError
    assert "upstream overloaded" in str(error)


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_body_that_is_not_json_is_a_response_error(
    fake: tuple[FakeOpenAI, str], client: Client
) -> None:
    llm, url = fake
    llm.fail(Failure(200, raw_body=b"<html>gateway</html>"))
    error = await failure(model(client, url, stream=False))
    assert isinstance(error, LLMResponseError)


@pytest.mark.parametrize("client", CLIENTS)
async def test_an_answer_cut_off_mid_stream_is_a_connection_failure_after_the_text_so_far(
    fake: tuple[FakeOpenAI, str], client: Client
) -> None:
    llm, url = fake
    llm.chunk_size, llm.break_after = 4, 2
    chat = model(client, url)
    seen: list[str] = []
    with pytest.raises(LLMServerError) as caught:
        try:
            async for delta in chat.stream(MESSAGES):
                seen.append(delta.text)  # noqa: PERF401 - keeps what came before the failure
        finally:
            await chat.aclose()
    assert "".join(seen) == "echo: he"  # the two pieces before the server died
    assert caught.value.status == 0


async def test_a_502_page_from_a_proxy_is_a_server_error(fake: tuple[FakeOpenAI, str]) -> None:
    llm, url = fake
    llm.fail(Failure(502, raw_body=b"<html>Bad Gateway</html>"))
    error = await failure(model("direct", url))
    assert isinstance(error, LLMServerError)
    assert error.status == 502


def test_the_default_endpoint_is_openais() -> None:
    chat = OpenAICompatible(ModelConfig(model="m", api_key="k", timeout_s=1))
    assert chat.base_url == "https://api.openai.com/v1/"
    assert chat.name == "openai:m"
