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
from typing import Annotated, Any, Literal, NoReturn, TypeVar

import typer

from timbridge.errors import (
    ConfigError,
    TencentAPIError,
    TencentError,
    TimbridgeError,
    UserSigError,
)
from timbridge.protocol.accounts import NOT_A_ROBOT, is_robot
from timbridge.redact import mask, redact
from timbridge.settings import Settings, load_settings

__all__ = ["app", "main"]

T = TypeVar("T")
_LOG_LEVEL: list[str | None] = [None]  # --log-level, if given: each command has its default
_LOG_FORMAT: list[Literal["json", "console"] | None] = [None]  # --log-format, if given: the same


def _log_level(default: str) -> str:
    """The level given with --log-level, else this command's `default`."""
    return _LOG_LEVEL[0] or default


def _log_format(default: Literal["json", "console"]) -> Literal["json", "console"]:
    """The format given with --log-format, else this command's `default`."""
    return _LOG_FORMAT[0] or default


app = typer.Typer(
    name="timbridge",
    help="AI-chatbot backend for Tencent Cloud Chat robots.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
robots_app = typer.Typer(help="Create, list and delete robot accounts (@RBT#...).")
app.add_typer(robots_app, name="robots", no_args_is_help=True)
kb_app = typer.Typer(help="Knowledge bases: ingest documents, search, list, drop.")
app.add_typer(kb_app, name="kb", no_args_is_help=True)

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
    typer.echo(f"error: {redact(message)}", err=True)
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

    if not is_robot(robot_id):
        _fail(NOT_A_ROBOT, 2)
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


def _check_serving(settings: Settings, *, distributed: bool) -> None:
    try:
        settings.tencent.credentials()
    except ConfigError as exc:
        _fail(f"configuration: {exc}", 2)
    if not settings.robots:
        _fail("configuration: robots: no [[robots]] configured; nothing would answer", 2)
    if distributed and settings.coordination.url.startswith("memory://"):
        _fail(
            "configuration: coordination.url: front-ends and workers in separate processes "
            "share a queue: set redis://host:6379/0",
            2,
        )


def _serve_or_fail(settings: Settings, **options: Any) -> None:
    from timbridge.runtime import serve_services

    try:
        serve_services(settings, **options)
    except ConfigError as exc:
        _fail(f"configuration: {exc}", 2)
    except TimbridgeError as exc:
        _fail(str(exc))
    except OSError as exc:  # the port is taken, or the address is not this machine's
        where = f"{options.get('host')}:{options.get('port')}"
        _fail(f"cannot listen on {where}: {exc.strerror or exc} (another --port?)", 2)


@app.command()
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

    settings = _settings(config)
    configure_logging(_log_format("json"), _log_level("info"))
    _check_serving(settings, distributed=no_workers)
    _serve_or_fail(
        settings,
        host=host or settings.server.host,
        port=settings.server.port if port is None else port,
        workers=not no_workers,
    )


@app.command()
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

    settings = _settings(config)
    configure_logging(_log_format("json"), _log_level("info"))
    _check_serving(settings, distributed=True)
    _serve_or_fail(settings, host=host, port=port, webhook=False)


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
    import os

    from timbridge.emulator import DEMO_SDKAPPID, DEMO_SECRET_KEY, Emulator, EmulatorConfig
    from timbridge.runtime import serve_app

    settings = _settings(config)
    tencent = settings.tencent
    key = tencent.secret_key.get_secret_value() if tencent.secret_key else DEMO_SECRET_KEY
    token = tencent.callback_token.get_secret_value() if tencent.callback_token else None
    robot_ids = tuple(robots or ["@RBT#helper"])
    for robot in robot_ids:
        if not is_robot(robot):
            _fail(f"--robot {robot!r}: {NOT_A_ROBOT}", 2)
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


@app.command()
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
    from timbridge.playground import DEMO_GROUP, DEMO_USER, open_playground
    from timbridge.runtime import run_on_uvloop, until_signalled

    settings = _settings(config)
    configure_logging(_log_format("console"), _log_level("warning"))

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
        run_on_uvloop(go())
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror} (try --port 0)")
    except ConfigError as exc:
        _fail(f"configuration: {exc}", 2)
    except TimbridgeError as exc:
        _fail(str(exc))


@kb_app.command("ingest")
def kb_ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to read.")],
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base name (created if needed).")],
    config: ConfigOption = None,
) -> None:
    """Read Markdown, text, HTML, PDF and FAQ (CSV/JSONL) files into a knowledge base."""
    from rich.progress import Progress

    from timbridge.knowledge.library import expand_paths
    from timbridge.services import open_library

    settings = _settings(config)
    files = list(expand_paths(paths))
    if not files:
        _fail("no files of a known type (.md .txt .html .pdf .csv .jsonl) found", 2)

    async def go() -> None:
        with Progress(transient=True) as progress:
            task = progress.add_task(f"ingesting into {kb}", total=len(files))

            def advance(path: Path, outcome: str, chunks: int) -> None:
                progress.advance(task)
                progress.console.print(f"{outcome:>9} {path} ({chunks} passages)")

            async with open_library(settings) as library:
                report = await library.ingest(kb, files, on_file=advance)
        for path, reason in report.failed:
            typer.echo(f"failed: {path}: {reason}", err=True)
        typer.echo(
            f"{kb}: {len(report.added)} added, {len(report.updated)} updated, "
            f"{len(report.unchanged)} unchanged, {len(report.failed)} failed; "
            f"{report.chunks} passages embedded"
        )
        if report.failed:
            raise typer.Exit(1)

    _run_kb(go())


def _run_kb(coro: Coroutine[Any, Any, None]) -> None:
    from timbridge.errors import PayloadError, StorageError

    try:
        _run(coro)
    except (PayloadError, StorageError) as exc:
        _fail(str(exc))


@kb_app.command("search")
def kb_search(
    question: Annotated[str, typer.Argument(help="What to look for.")],
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base name.")],
    top: Annotated[int, typer.Option("--top", min=1, max=50, help="How many passages.")] = 3,
    config: ConfigOption = None,
) -> None:
    """Print the passages that best answer QUESTION, with scores and sources."""
    from timbridge.services import open_library

    settings = _settings(config)

    async def go() -> None:
        async with open_library(settings) as library:
            hits = await library.search(kb, question, k=top)
        if not hits:
            typer.echo(f"no passage scores over knowledge.min_score ({library.min_score})")
            raise typer.Exit(1)
        for hit in hits:
            typer.echo(f"{hit.score:.3f}  {hit.source} › {hit.heading}")
            typer.echo("       " + hit.text.replace("\n", "\n       ")[:600])

    _run_kb(go())


@kb_app.command("list")
def kb_list(config: ConfigOption = None) -> None:
    """List knowledge bases with their documents and passages."""
    from timbridge.services import open_library

    settings = _settings(config)

    async def go() -> None:
        async with open_library(settings) as library:
            for base in await library.bases():
                typer.echo(
                    f"{base.name}\t{base.documents} documents\t{base.chunks} passages"
                    f"\t{base.embedder}"
                )

    _run_kb(go())


@kb_app.command("drop")
def kb_drop(
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base to delete.")],
    config: ConfigOption = None,
) -> None:
    """Delete a knowledge base and everything in it."""
    from timbridge.services import open_library

    settings = _settings(config)

    async def go() -> None:
        async with open_library(settings) as library:
            if not await library.drop(kb):
                _fail(f"no knowledge base named {kb!r}")
        typer.echo(f"dropped {kb}")

    _run_kb(go())


@app.command()
def init(
    path: Annotated[Path, typer.Option("--path", help="Where to write.")] = Path("timbridge.toml"),
    sdkappid: Annotated[int | None, typer.Option("--sdkappid", help="The app's SDKAppID.")] = None,
    region: Annotated[str, typer.Option("--region", help="The app's data centre.")] = "singapore",
    robot: Annotated[str, typer.Option("--robot", help="The robot's UserID.")] = "@RBT#helper",
    provider: Annotated[
        str, typer.Option("--provider", help="Model provider, e.g. deepseek, openai, offline.")
    ] = "deepseek",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented timbridge.toml for a real Tencent app, then run `timbridge check`."""
    from timbridge.config_template import render_config

    if path.exists() and not force:
        _fail(f"{path} exists; use --force to overwrite it", 2)
    try:
        text = render_config(sdkappid=sdkappid, region=region, robot=robot, provider=provider)
    except ConfigError as exc:
        _fail(f"configuration: {exc}", 2)
    path.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {path}; next: export the secrets it names, then: timbridge check")


@app.command()
def check(
    model_timeout: Annotated[
        float, typer.Option("--model-timeout", min=1, help="Seconds per model probe.")
    ] = 30.0,
    config: ConfigOption = None,
) -> None:
    """Validate the configuration and test every connection; exit 1 if anything fails."""
    from timbridge.checks import run_checks
    from timbridge.logs import configure_logging

    settings = _settings(config)
    configure_logging(_log_format("console"), _log_level("error"))  # the verdicts say it all
    marks = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
    checks = asyncio.run(run_checks(settings, model_timeout_s=model_timeout, config=config))
    for item in checks:
        typer.echo(f"{marks[item.verdict]}  {item.item}: {item.detail}")
        if item.fix:
            typer.echo(f"      fix: {item.fix}")
    failed = sum(c.verdict == "fail" for c in checks)
    typer.echo(f"{len(checks)} checks, {failed} failed")
    if failed:
        raise typer.Exit(1)


@app.callback()
def _root(
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            help="debug, info, warning or error [default: info for serve and worker, "
            "warning otherwise]",
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format",
            help="console (readable) or json [default: json for serve and worker, "
            "console for the others].",
        ),
    ] = None,
) -> None:
    """AI-chatbot backend for Tencent Cloud Chat robots."""
    from timbridge.logs import configure_logging

    if log_format is not None and log_format not in ("console", "json"):
        _fail("--log-format must be console or json", 2)
    if log_level is not None and log_level.lower() not in ("debug", "info", "warning", "error"):
        _fail("--log-level must be debug, info, warning or error", 2)
    _LOG_LEVEL[0] = log_level and log_level.lower()
    _LOG_FORMAT[0] = "json" if log_format == "json" else "console" if log_format else None
    configure_logging(_log_format("console"), _log_level("warning"))


def main() -> None:
    """Console-script entry point."""
    app()
