"""Commands that run something until stopped: ``serve``, ``worker``, ``emulator``,
``playground``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from timbridge.cli.common import (
    ConfigOption,
    config_errors,
    fail,
    load,
    log_format,
    log_level,
)
from timbridge.errors import TimbridgeError
from timbridge.protocol.accounts import NOT_A_ROBOT, is_robot
from timbridge.redact import mask
from timbridge.settings import Settings

__all__ = ["emulator", "playground", "serve", "worker"]


def _check_serving(settings: Settings, *, distributed: bool) -> None:
    with config_errors():
        settings.tencent.credentials()
    if not settings.robots:
        fail("configuration: robots: no [[robots]] configured; nothing would answer", 2)
    if distributed and settings.coordination.url.startswith("memory://"):
        fail(
            "configuration: coordination.url: front-ends and workers in separate processes "
            "share a queue: set redis://host:6379/0",
            2,
        )


def _serve_or_fail(settings: Settings, **options: Any) -> None:
    from timbridge.runtime.process import serve_services

    try:
        with config_errors():
            serve_services(settings, **options)
    except TimbridgeError as exc:
        fail(str(exc))
    except OSError as exc:  # the port is taken, or the address is not this machine's
        where = f"{options.get('host')}:{options.get('port')}"
        fail(f"cannot listen on {where}: {exc.strerror or exc} (another --port?)", 2)


def serve(
    host: Annotated[str | None, typer.Option("--host", help="Overrides server.host.")] = None,
    port: Annotated[
        int | None, typer.Option("--port", min=0, max=65535, help="Overrides server.port.")
    ] = None,
    no_workers: Annotated[
        bool,
        typer.Option("--no-workers", help="Webhook front-end only; `timbridge worker` answers."),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Run the webhook and the workers in one process (or the webhook only: --no-workers)."""
    from timbridge.logs import configure_logging

    settings = load(config)
    configure_logging(log_format("json"), log_level("info"))
    _check_serving(settings, distributed=no_workers)
    _serve_or_fail(
        settings,
        host=host or settings.server.host,
        port=settings.server.port if port is None else port,
        workers=not no_workers,
    )


def worker(
    host: Annotated[
        str, typer.Option("--host", help="Address for --port (0.0.0.0: every interface).")
    ] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option("--port", min=0, max=65535, help="Serve /healthz, /readyz, /metrics here."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Answer queued messages from Redis (scale-out); any number of workers may run."""
    from timbridge.logs import configure_logging

    settings = load(config)
    configure_logging(log_format("json"), log_level("info"))
    _check_serving(settings, distributed=True)
    _serve_or_fail(settings, host=host, port=port, webhook=False)


def emulator(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port.")] = 9000,
    callback_url: Annotated[
        str | None, typer.Option("--callback-url", help="Where webhooks go, e.g. the bot's /im.")
    ] = None,
    robots: Annotated[
        list[str] | None, typer.Option("--robot", help="Robot to create at start (repeatable).")
    ] = None,
    users: Annotated[
        list[str] | None, typer.Option("--user", help="User to create at start (repeatable).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Run a local Tencent Chat: REST API, webhooks, fault injection and a web chat page."""
    import os

    from timbridge.emulator import DEMO_SDKAPPID, DEMO_SECRET_KEY, Emulator, EmulatorConfig
    from timbridge.runtime.process import serve_app

    settings = load(config)
    tencent = settings.tencent
    key = tencent.secret_key.get_secret_value() if tencent.secret_key else DEMO_SECRET_KEY
    token = tencent.callback_token.get_secret_value() if tencent.callback_token else None
    robot_ids = tuple(robots or ["@RBT#helper"])
    for robot in robot_ids:
        if not is_robot(robot):
            fail(f"--robot {robot!r}: {NOT_A_ROBOT}", 2)
    emu = Emulator(
        EmulatorConfig(
            sdkappid=tencent.sdkappid or DEMO_SDKAPPID,
            secret_key=key,
            admin=tencent.admin,
            callback_url=callback_url,
            callback_token=token,
            robots=robot_ids,
            users=tuple(users or ["user01"]),
            page_hosts=(host,),
            control_token=os.environ.get("TIMBRIDGE_EMULATOR_TOKEN") or None,
        )
    )
    banner = [
        f"Tencent Chat emulator, SDKAppID {emu.config.sdkappid}, admin {tencent.admin}",
        f"  chat page: http://{host}:{{port}}/",
        f'  REST API:  http://{host}:{{port}}/v4/... (tencent.api_base = "http://{host}:{{port}}")',
        f"  webhooks:  {callback_url or 'off (set --callback-url)'}",
        f"  control:   header X-Timbridge-Token: {emu.token} (this run's token)",
    ]
    if tencent.secret_key is None:
        banner.append(f"  secret key: {DEMO_SECRET_KEY} (demo; set TIMBRIDGE_TENCENT__SECRET_KEY)")
    serve_app(emu.create_app(), host=host, port=port, banner=banner)


def playground(
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0: any).")] = 8080,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Do not open the chat page in a browser.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Emulator, bot and web chat page in one process: try timbridge with no account or key."""
    import os
    import sys
    import webbrowser

    from timbridge.emulator import DEMO_SECRET_KEY
    from timbridge.logs import configure_logging
    from timbridge.runtime.playground import DEMO_GROUP, DEMO_USER, open_playground
    from timbridge.runtime.process import run_on_uvloop, until_signalled

    settings = load(config)
    configure_logging(log_format("console"), log_level("warning"))

    async def go() -> None:
        async with open_playground(settings, host=host, port=port) as pg:
            tencent = pg.settings.tencent
            assert tencent.secret_key is not None
            key = tencent.secret_key.get_secret_value()
            shown_key = key if key == DEMO_SECRET_KEY else f"{mask(key)} (configured)"
            for robot in pg.settings.robots:
                profile = pg.settings.models[robot.model]
                answers = "offline model" if profile.provider == "offline" else profile.provider
                kb = f", knowledge: {robot.knowledge}" if robot.knowledge else ""
                typer.echo(f"robot {robot.id} answers with the {answers}{kb}", err=True)
            typer.echo(
                f"timbridge playground: {pg.url}\n"
                f"  you are {DEMO_USER}; group {DEMO_GROUP} has the robots in it\n"
                f"  SDKAppID {tencent.sdkappid}, secret key {shown_key}\n"
                f"  REST {pg.url}v4/...  webhook {pg.url.rstrip('/')}{pg.settings.server.path}\n"
                "  Ctrl-C stops it",
                err=True,
            )
            graphical = sys.platform in ("darwin", "win32") or any(
                os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY")
            )
            if not no_browser and graphical:  # a headless server gets the URL above only
                webbrowser.open(pg.url)
            await until_signalled()

    try:
        with config_errors():
            run_on_uvloop(go())
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror} (try --port 0)")
    except TimbridgeError as exc:
        fail(str(exc))
