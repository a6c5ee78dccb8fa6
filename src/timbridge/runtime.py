"""Running an aiohttp application as a long-lived process: uvloop, signals, a start banner."""

from __future__ import annotations

import asyncio
import signal
import sys

import typer
from aiohttp import web

__all__ = ["serve_app"]


async def _serve(app: web.Application, host: str, port: int, banner: list[str]) -> None:
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port  # the real port when 0
    for line in banner:
        typer.echo(line.replace("{port}", str(bound)), err=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def serve_app(app: web.Application, *, host: str, port: int, banner: list[str]) -> None:
    """Serve `app` until SIGINT or SIGTERM, on uvloop where available; clean shutdown."""
    if sys.platform != "win32":
        import uvloop  # noqa: PLC0415 - optional on other platforms

        uvloop.run(_serve(app, host, port, banner))
    else:  # pragma: no cover
        asyncio.run(_serve(app, host, port, banner))
