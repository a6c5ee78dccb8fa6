"""Running as a long-lived process: uvloop, signals, start banner, graceful shutdown."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Coroutine
from typing import Any

import structlog
import typer
from aiohttp import web

from timbridge.runtime.heap import CollectionPacer, settle_heap
from timbridge.runtime.services import Services
from timbridge.settings import Settings

__all__ = ["listen", "run_on_uvloop", "serve_app", "serve_services", "until_signalled"]

_log = structlog.get_logger("timbridge.runtime.process")


async def listen(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    # A deep backlog: a burst of new connections must queue, not be reset.
    await web.TCPSite(runner, host, port, reuse_address=True, backlog=2048).start()
    bound = runner.addresses[0][1] if runner.addresses else port  # the real port when 0
    return runner, bound


async def until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def run_on_uvloop(main: Coroutine[Any, Any, None]) -> None:
    if sys.platform != "win32":
        import uvloop  # noqa: PLC0415 - optional on other platforms

        uvloop.run(main)
    else:  # pragma: no cover
        asyncio.run(main)


async def _serve(app: web.Application, host: str, port: int, banner: list[str]) -> None:
    runner, bound = await listen(app, host, port)
    for line in banner:
        typer.echo(line.replace("{port}", str(bound)), err=True)
    try:
        await until_signalled()
    finally:
        await runner.cleanup()


def serve_app(app: web.Application, *, host: str, port: int, banner: list[str]) -> None:
    """Serve `app` until SIGINT or SIGTERM, on uvloop where available; clean shutdown."""
    run_on_uvloop(_serve(app, host, port, banner))


async def _serve_services(
    settings: Settings, host: str, port: int | None, *, webhook: bool, workers: bool
) -> None:
    async with Services.open(settings) as services:
        runner = None
        bound = None
        if port is not None:
            runner, bound = await listen(services.webhook_app(webhook=webhook), host, port)
        if workers:
            await services.start_workers()
        settle_heap()
        pacer = CollectionPacer()
        pacer.start()
        _log.info(
            "serve.started" if webhook else "worker.started",
            host=host,
            port=bound,
            path=settings.server.path if webhook else None,
            workers=workers,
            robots=[r.id for r in settings.robots],
        )
        for profile, url, error in await services.unreachable_models():
            _log.warning("model.unreachable", profile=profile, url=url, error=error)
        try:
            await until_signalled()
        finally:
            pacer.stop()
            _log.info("serve.stopping", queued=services.coordination.depth())
            if runner is not None:
                await runner.shutdown()  # stop accepting webhooks first
            await services.stop_workers()  # then let queued replies finish, or hand them back
            if runner is not None:
                await runner.cleanup()
            _log.info("serve.stopped")


def serve_services(
    settings: Settings,
    *,
    host: str,
    port: int | None,
    webhook: bool = True,
    workers: bool = True,
) -> None:
    """Webhook and/or workers until SIGINT / SIGTERM, on uvloop (`port` None: no HTTP)."""
    run_on_uvloop(_serve_services(settings, host, port, webhook=webhook, workers=workers))
