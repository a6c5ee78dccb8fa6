"""Shared fixtures: every server binds 127.0.0.1 on port 0 (never a fixed port)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from pytest_aiohttp import AiohttpServer

from tests.fakes.tencent import ScriptedTencent
from timbridge.protocol.usersig import UserSigSigner
from timbridge.tencent.client import RetryPolicy, TencentClient

SDKAPPID = 1400000000
SECRET_KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
ADMIN = "administrator"
FAST_RETRY = RetryPolicy(
    attempts=4, timeout_s=10, wait_initial_s=0.001, wait_max_s=0.01, wait_jitter_s=0.001
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[None]:
    """No TIMBRIDGE_* variables and an empty working directory: settings see only the test's."""
    import os

    for name in list(os.environ):
        if name.startswith("TIMBRIDGE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
async def scripted(aiohttp_server: AiohttpServer) -> AsyncIterator[tuple[ScriptedTencent, str]]:
    fake = ScriptedTencent()
    server = await aiohttp_server(fake.app(), host="127.0.0.1", port=0)
    yield fake, str(server.make_url("")).rstrip("/")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def make_client(
    http: aiohttp.ClientSession,
) -> Callable[..., TencentClient]:
    def make(base_url: str, **kwargs: Any) -> TencentClient:
        kwargs.setdefault("retry", FAST_RETRY)
        kwargs.setdefault("signer", UserSigSigner(SDKAPPID, SECRET_KEY))
        return TencentClient(http, base_url=base_url, sdkappid=SDKAPPID, admin=ADMIN, **kwargs)

    return make


@pytest.fixture(scope="session")
def docs_store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A SQLite store holding the shipped docs base, built once per session (copy it per test)."""
    import asyncio

    from timbridge.knowledge.embed import LocalEmbedder
    from timbridge.knowledge.library import Library
    from timbridge.knowledge.store import KnowledgeStore

    path = tmp_path_factory.mktemp("docs") / "docs.db"

    async def build() -> None:
        library = Library(await KnowledgeStore.open(f"sqlite:///{path}"), LocalEmbedder())
        try:
            await library.ensure_builtin()
        finally:
            await library.aclose()

    asyncio.run(build())
    return path


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis server's URL (the machine's, or a throwaway one)."""
    from tests.servers import redis_server

    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own: tests share the server, never keys."""
    import uuid

    return f"tbtest:{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def postgres_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.servers import postgres_server

    with postgres_server(tmp_path_factory.mktemp("pg")) as url:
        yield url


def _in_thread(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, even while a test's loop runs."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture
def postgres_url(postgres_base: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test, dropped afterwards."""
    import uuid

    import asyncpg

    name = f"tb_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(f"{postgres_base}/postgres")
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    _in_thread(admin(f'CREATE DATABASE "{name}"'))
    yield f"{postgres_base}/{name}"
    _in_thread(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def scale(postgres_url: str, redis_url: str, redis_prefix: str) -> dict[str, Any]:
    """Settings of the scale-out deployment: PostgreSQL, Redis, and a quick reminder loop."""
    return {
        "store": {"url": postgres_url},
        "coordination": {"url": redis_url, "prefix": redis_prefix},
        "reminders": {"every_s": 0.05},
    }
