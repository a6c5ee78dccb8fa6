"""``timbridge tickets list|show``: the conversations robots handed to people, for operators."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from timbridge.cli.common import ConfigOption, fail, load, run

__all__ = ["tickets_app"]

tickets_app = typer.Typer(help="Conversations handed to human agents ([robots.handoff]).")


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(at)) if at else "-"


@tickets_app.command("list")
def tickets_list(
    config: ConfigOption = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only the open tickets.")] = False,
    robot: Annotated[str | None, typer.Option("--robot", help="Only this robot's.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
) -> None:
    """The newest tickets first: number, state, robot, who, opened (UTC), reason."""
    from timbridge.storage import Store

    settings = load(config)

    async def go() -> None:
        store = await Store.open(settings.store.url)
        try:
            found = await store.tickets.listing(
                robot=robot, state="open" if open_only else None, limit=limit
            )
        finally:
            await store.aclose()
        if not found:
            typer.echo("no tickets")
        for t in found:
            where = t.sender if t.kind == "c2c" else f"{t.sender} in {t.peer}"
            typer.echo(
                f"#{t.number}  {t.state:6}  {t.robot}  {where}  {_when(t.opened_at)}  {t.reason}"
            )

    run(go())


@tickets_app.command("show")
def tickets_show(
    number: Annotated[int, typer.Argument(help="The ticket's number.")],
    config: ConfigOption = None,
    turns: Annotated[int, typer.Option("--turns", min=0, max=64)] = 12,
) -> None:
    """One ticket, and the newest turns of its conversation (agents' words included)."""
    from timbridge.storage import Store

    settings = load(config)

    async def go() -> None:
        store = await Store.open(settings.store.url)
        try:
            found = [
                ticket
                for robot in settings.robots
                if (ticket := await store.tickets.get(robot.id, number)) is not None
            ]
            if not found:
                fail(f"no ticket #{number} for the configured robots")
            ticket = found[0]
            recent = await store.history.recent_turns(ticket.conversation, turns)
            rated = await store.ratings.for_ticket(ticket.number)
        finally:
            await store.aclose()
        typer.echo(f"ticket #{ticket.number} ({ticket.state}) for {ticket.robot}")
        where = "one-to-one" if ticket.kind == "c2c" else f"group {ticket.peer}"
        typer.echo(f"  customer: {ticket.sender} ({where})")
        typer.echo(f"  reason:   {ticket.reason}")
        typer.echo(
            f"  opened:   {_when(ticket.opened_at)} UTC; last message {_when(ticket.active_at)}"
        )
        if ticket.state == "closed":
            typer.echo(f"  closed:   {_when(ticket.closed_at)} by {ticket.closed_by}")
        for rating in rated:
            comment = f" {rating.comment}" if rating.comment else ""
            typer.echo(f"  rating:   {rating.score}/5 by {rating.sender}{comment}")
        for turn in recent:
            if turn.role in ("user", "assistant"):
                who = "customer" if turn.role == "user" else "robot"
                typer.echo(f"  {who}: {turn.content}")

    run(go())
