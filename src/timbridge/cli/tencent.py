"""Commands that talk to Tencent's REST API: ``usersig``, ``robots create|list|delete``,
``send``."""

from __future__ import annotations

import datetime as dt
import random
from typing import Annotated

import typer

from timbridge.cli.common import ConfigOption, config_errors, fail, load, run
from timbridge.errors import UserSigError
from timbridge.protocol.accounts import NOT_A_ROBOT, is_robot

__all__ = ["robots_app", "send", "usersig"]

robots_app = typer.Typer(help="Create, list and delete robot accounts (@RBT#...).")


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
    from timbridge.protocol import usersig as sigs

    settings = load(config)
    with config_errors():
        sdkappid, key = settings.tencent.credentials()
    if verify is None:
        if user is None:
            fail("give a USER to sign for, or --verify SIG --user USER", 2)
        typer.echo(sigs.sign(sdkappid, key, user, expire=expire))
        return
    who = verify_user or user
    if who is None:
        fail("--verify needs --user USER", 2)
    try:
        info = sigs.verify(verify, sdkappid=sdkappid, key=key, identifier=who)
    except UserSigError as exc:
        fail(f"invalid UserSig: {exc}")
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
    from timbridge.runtime.services import open_tencent

    if not is_robot(robot_id):
        fail(NOT_A_ROBOT, 2)
    settings = load(config)

    async def go() -> None:
        async with open_tencent(settings) as client:
            await client.call(CreateRobot(user_id=robot_id, nick=nick, face_url=face_url))

    run(go())
    typer.echo(f"created {robot_id}")


@robots_app.command("list")
def robots_list(config: ConfigOption = None) -> None:
    """List the app's robot accounts, one per line."""
    from timbridge.protocol.rest import GetAllRobots
    from timbridge.runtime.services import open_tencent

    settings = load(config)

    async def go() -> tuple[str, ...]:
        async with open_tencent(settings) as client:
            return (await client.call(GetAllRobots())).robot_account

    for robot in run(go()):
        typer.echo(robot)


@robots_app.command("delete")
def robots_delete(
    robot_id: Annotated[str, typer.Argument(metavar="ID", help="Robot UserID.")],
    config: ConfigOption = None,
) -> None:
    """Delete (invalidate) a robot account."""
    from timbridge.protocol.rest import DeleteRobot
    from timbridge.runtime.services import open_tencent

    settings = load(config)

    async def go() -> None:
        async with open_tencent(settings) as client:
            await client.call(DeleteRobot(robot_account=robot_id))

    run(go())
    typer.echo(f"deleted {robot_id}")


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
    from timbridge.runtime.services import open_tencent

    if (to is None) == (group is None):
        fail("give exactly one of --to USER or --group GROUP", 2)
    settings = load(config)
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

    typer.echo(run(go()))
