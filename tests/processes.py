"""What the tests that run `timbridge` in a subprocess share: a clean environment, the command
itself, and fake servers on loopback for it to talk to."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

__all__ = ["loopback", "own_env", "timbridge"]


def own_env(**variables: str) -> dict[str, str]:
    """This process's environment without any ``TIMBRIDGE_*`` variable (the machine's or a
    developer's must not leak into a test), with `variables` added."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIMBRIDGE_")}
    return env | variables


async def timbridge(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stdout: Any = asyncio.subprocess.PIPE,
    stderr: Any = asyncio.subprocess.PIPE,
) -> asyncio.subprocess.Process:
    """``python -m timbridge *args`` as a child process (`env`: `own_env()` unless given)."""
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "timbridge", *args),
        env=own_env() if env is None else env,
        cwd=cwd,
        stdout=stdout,
        stderr=stderr,
    )


@asynccontextmanager
async def loopback(*apps: web.Application) -> AsyncIterator[list[TestServer]]:
    """Each app served on 127.0.0.1 on a free port, closed on exit."""
    async with AsyncExitStack() as stack:
        servers = []
        for app in apps:
            server = TestServer(app, host="127.0.0.1", port=0)
            await server.start_server()
            stack.push_async_callback(server.close)
            servers.append(server)
        yield servers
