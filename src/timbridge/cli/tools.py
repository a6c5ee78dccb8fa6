"""``timbridge tools list``: what each robot's model may call, with every MCP server connected
(or the reason it cannot be)."""

from __future__ import annotations

import contextlib

import typer

from timbridge.cli.common import ConfigOption, load, run

__all__ = ["tools_app"]

tools_app = typer.Typer(help="The tools robots may call: built-in ones and MCP servers'.")


@tools_app.command("list")
def tools_list(config: ConfigOption = None) -> None:
    """List each robot's tools; an MCP server that cannot be reached is named, with why."""
    from timbridge.runtime.services import open_mcp
    from timbridge.tools.builtin import BUILTIN

    settings = load(config)

    async def go() -> None:
        async with contextlib.AsyncExitStack() as stack:
            servers = await open_mcp(settings, stack)
            for robot in settings.robots:
                typer.echo(f"{robot.id}:" + ("" if robot.tools else " no tools"))
                for name in robot.tools:
                    if name in BUILTIN:
                        typer.echo(f"  {name}  {BUILTIN[name].spec.description}")
                        continue
                    server_name, wanted = name.removeprefix("mcp:").split("/", 1)
                    server = servers[server_name]
                    if not server.connected:
                        typer.echo(f"  {name}  unreachable: {server.error or 'timed out'}")
                        continue
                    tools = server.tools(wanted)
                    if not tools:
                        typer.echo(f"  {name}  the server has no such tool")
                    for tool in tools:
                        who = "  [admins only]" if tool.admin_only else ""
                        typer.echo(f"  {tool.spec.name}  {tool.spec.description}{who}")

    run(go())
