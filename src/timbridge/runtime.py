"""Running an aiohttp application as a long-lived process: uvloop, signals, a start banner."""

from __future__ import annotations

import asyncio
import signal
import sys

import structlog
import typer
from aiohttp import web

from timbridge.services import Services
from timbridge.settings import Settings
from timbridge.webhook.app import create_app

_log = structlog.get_logger("timbridge.runtime")

__all__ = ["serve_app", "serve_services"]


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


async def _serve_services(settings: Settings, host: str, port: int) -> None:
    async with Services.open(settings) as services:
        runner = web.AppRunner(create_app(services), handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port, reuse_address=True).start()
        await services.start_workers()
        bound = runner.addresses[0][1] if runner.addresses else port
        _log.info(
            "serve.started",
            host=host,
            port=bound,
            path=settings.server.path,
            robots=[r.id for r in settings.robots],
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            _log.info("serve.stopping", queued=services.coordination.depth())
            await runner.shutdown()  # stop accepting webhooks first
            await services.stop_workers()  # then let queued replies finish
            await runner.cleanup()
            _log.info("serve.stopped")


def serve_services(settings: Settings, *, host: str, port: int) -> None:
    """Webhook and workers in one process until SIGINT / SIGTERM, on uvloop."""
    if sys.platform != "win32":
        import uvloop  # noqa: PLC0415 - optional on other platforms

        uvloop.run(_serve_services(settings, host, port))
    else:  # pragma: no cover
        asyncio.run(_serve_services(settings, host, port))
