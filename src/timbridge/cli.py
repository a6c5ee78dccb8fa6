"""The ``timbridge`` command.

Every command reads its configuration through `load_settings` (``--config FILE``, else
``$TIMBRIDGE_CONFIG``, else ``./timbridge.toml``, plus ``TIMBRIDGE_*`` variables). Exit codes:
0 success, 1 the operation failed (Tencent refused, signature invalid), 2 bad usage or
configuration.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from timbridge.errors import (
    ConfigError,
    TencentAPIError,
    TencentError,
    TimbridgeError,
    UserSigError,
)
from timbridge.settings import Settings, load_settings

__all__ = ["app", "main"]

T = TypeVar("T")
_LOG_LEVEL = ["info"]  # `serve` logs at info unless --log-level says otherwise

app = typer.Typer(
    name="timbridge",
    help="AI-chatbot backend for Tencent Cloud Chat robots.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
robots_app = typer.Typer(help="Create, list and delete robot accounts (@RBT#...).")
app.add_typer(robots_app, name="robots", no_args_is_help=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Configuration file (default: $TIMBRIDGE_CONFIG, else ./timbridge.toml if present).",
        dir_okay=False,
    ),
]


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        _fail(f"configuration: {exc}", 2)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; turn timbridge's errors into one-line messages and exit codes."""
    from timbridge.tencent.codes import describe

    try:
        return asyncio.run(coro)
    except ConfigError as exc:
        _fail(f"configuration: {exc}", 2)
    except TencentAPIError as exc:
        _fail(f"{exc.command} failed: ErrorCode {describe(exc.error_code)}")
    except TencentError as exc:
        _fail(f"{exc} (is tencent.region / tencent.api_base right?)")


@app.command()
def usersig(
    user: Annotated[str | None, typer.Argument(help="UserID to sign for.")] = None,
    expire: Annotated[
        int, typer.Option("--expire", min=1, help="Validity in seconds (default 180 days).")
    ] = 180 * 86400,
    verify: Annotated[
        str | None, typer.Option("--verify", help="Check this UserSig instead of signing.")
    ] = None,
    verify_user: Annotated[
        str | None, typer.Option("--user", help="With --verify: the UserID it must be for.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Print a UserSig for USER, or check one with --verify SIG --user USER."""
    from timbridge import usersig as sigs

    settings = _settings(config)
    try:
        sdkappid, key = settings.tencent.credentials()
    except ConfigError as exc:
        _fail(f"configuration: {exc}", 2)
    if verify is None:
        if user is None:
            _fail("give a USER to sign for, or --verify SIG --user USER", 2)
        typer.echo(sigs.sign(sdkappid, key, user, expire=expire))
        return
    who = verify_user or user
    if who is None:
        _fail("--verify needs --user USER", 2)
    try:
        info = sigs.verify(verify, sdkappid=sdkappid, key=key, identifier=who)
    except UserSigError as exc:
        _fail(f"invalid UserSig: {exc}")
    issued = dt.datetime.fromtimestamp(info.time, dt.UTC).isoformat()
    expires = dt.datetime.fromtimestamp(info.expires_at, dt.UTC).isoformat()
    typer.echo(f"valid UserSig\nidentifier: {info.identifier}\nsdkappid: {info.sdkappid}")
    typer.echo(f"issued: {issued}\nexpire: {info.expire} s\nexpires: {expires}")


@robots_app.command("create")
def robots_create(
    robot_id: Annotated[str, typer.Argument(metavar="ID", help="Robot UserID, starting @RBT#.")],
    nick: Annotated[str | None, typer.Option("--nick", help="Display name.")] = None,
    face_url: Annotated[str | None, typer.Option("--face-url", help="Avatar URL.")] = None,
    config: ConfigOption = None,
) -> None:
    """Create a robot account (idempotent)."""
    from timbridge.protocol.rest import CreateRobot
    from timbridge.services import open_tencent

    if not robot_id.startswith("@RBT#"):
        _fail("a robot UserID must start with @RBT#", 2)
    settings = _settings(config)

    async def go() -> None:
        async with open_tencent(settings) as client:
            await client.call(CreateRobot(user_id=robot_id, nick=nick, face_url=face_url))

    _run(go())
    typer.echo(f"created {robot_id}")


@robots_app.command("list")
def robots_list(config: ConfigOption = None) -> None:
    """List the app's robot accounts, one per line."""
    from timbridge.protocol.rest import GetAllRobots
    from timbridge.services import open_tencent

    settings = _settings(config)

    async def go() -> tuple[str, ...]:
        async with open_tencent(settings) as client:
            return (await client.call(GetAllRobots())).robot_account

    for robot in _run(go()):
        typer.echo(robot)


@robots_app.command("delete")
def robots_delete(
    robot_id: Annotated[str, typer.Argument(metavar="ID", help="Robot UserID.")],
    config: ConfigOption = None,
) -> None:
    """Delete (invalidate) a robot account."""
    from timbridge.protocol.rest import DeleteRobot
    from timbridge.services import open_tencent

    settings = _settings(config)

    async def go() -> None:
        async with open_tencent(settings) as client:
            await client.call(DeleteRobot(robot_account=robot_id))

    _run(go())
    typer.echo(f"deleted {robot_id}")


@app.command()
def send(
    text: Annotated[str, typer.Argument(help="Message text.")],
    sender: Annotated[str, typer.Option("--from", help="Sending account, e.g. a robot @RBT#...")],
    to: Annotated[str | None, typer.Option("--to", help="Recipient UserID (one-to-one).")] = None,
    group: Annotated[str | None, typer.Option("--group", help="GroupId to send into.")] = None,
    config: ConfigOption = None,
) -> None:
    """Send TEXT as --from to --to USER or --group GROUP; print the MsgKey or MsgSeq."""
    from timbridge.protocol.elements import TextElem
    from timbridge.protocol.rest import SendC2CMsg, SendGroupMsg
    from timbridge.services import open_tencent

    if (to is None) == (group is None):
        _fail("give exactly one of --to USER or --group GROUP", 2)
    settings = _settings(config)
    body = (TextElem.of(text),)
    nonce = random.getrandbits(32)

    async def go() -> str:
        async with open_tencent(settings) as client:
            if to is not None:
                c2c = SendC2CMsg(
                    from_account=sender, to_account=to, msg_random=nonce, msg_body=body
                )
                return f"MsgKey {(await client.call(c2c)).msg_key}"
            assert group is not None
            grp = SendGroupMsg(group_id=group, from_account=sender, random=nonce, msg_body=body)
            return f"MsgSeq {(await client.call(grp)).msg_seq}"

    typer.echo(_run(go()))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option("--host", help="Overrides server.host.")] = None,
    port: Annotated[
        int | None, typer.Option("--port", min=0, max=65535, help="Overrides server.port.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Run the webhook and the workers in one process (the embedded deployment)."""
    from timbridge.logs import configure_logging
    from timbridge.runtime import serve_services

    settings = _settings(config)
    configure_logging("json", _LOG_LEVEL[0])
    try:
        settings.tencent.credentials()
    except ConfigError as exc:
        _fail(f"configuration: {exc}", 2)
    if not settings.robots:
        _fail("configuration: robots: no [[robots]] configured; nothing would answer", 2)
    try:
        serve_services(
            settings, host=host or settings.server.host, port=port or settings.server.port
        )
    except ConfigError as exc:
        _fail(f"configuration: {exc}", 2)
    except TimbridgeError as exc:
        _fail(str(exc))


@app.command()
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
    from timbridge.emulator import DEMO_SDKAPPID, DEMO_SECRET_KEY, Emulator, EmulatorConfig
    from timbridge.runtime import serve_app

    settings = _settings(config)
    tencent = settings.tencent
    key = tencent.secret_key.get_secret_value() if tencent.secret_key else DEMO_SECRET_KEY
    token = tencent.callback_token.get_secret_value() if tencent.callback_token else None
    robot_ids = tuple(robots or ["@RBT#helper"])
    for robot in robot_ids:
        if not robot.startswith("@RBT#"):
            _fail(f"--robot {robot!r}: a robot UserID must start with @RBT#", 2)
    emu = Emulator(
        EmulatorConfig(
            sdkappid=tencent.sdkappid or DEMO_SDKAPPID,
            secret_key=key,
            admin=tencent.admin,
            callback_url=callback_url,
            callback_token=token,
            robots=robot_ids,
            users=tuple(users or ["user01"]),
        )
    )
    banner = [
        f"Tencent Chat emulator, SDKAppID {emu.config.sdkappid}, admin {tencent.admin}",
        f"  chat page: http://{host}:{{port}}/",
        f'  REST API:  http://{host}:{{port}}/v4/... (tencent.api_base = "http://{host}:{{port}}")',
        f"  webhooks:  {callback_url or 'off (set --callback-url)'}",
    ]
    if tencent.secret_key is None:
        banner.append(f"  secret key: {DEMO_SECRET_KEY} (demo; set TIMBRIDGE_TENCENT__SECRET_KEY)")
    serve_app(emu.create_app(), host=host, port=port, banner=banner)


@app.callback()
def _root(
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info, warning or error.")
    ] = "warning",
    log_format: Annotated[
        str, typer.Option("--log-format", help="console (readable) or json.")
    ] = "console",
) -> None:
    """AI-chatbot backend for Tencent Cloud Chat robots."""
    from timbridge.logs import configure_logging

    if log_format not in ("console", "json"):
        _fail("--log-format must be console or json", 2)
    _LOG_LEVEL[0] = log_level if log_level != "warning" else "info"
    configure_logging("json" if log_format == "json" else "console", log_level)


def main() -> None:
    """Console-script entry point."""
    app()
