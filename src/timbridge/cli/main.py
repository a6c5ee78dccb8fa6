"""The ``timbridge`` command.

Every command reads its configuration through `load_settings` (``--config FILE``, else
``$TIMBRIDGE_CONFIG``, else ``./timbridge.toml``, plus ``TIMBRIDGE_*`` variables). Exit codes:
0 success, 1 the operation failed (Tencent refused, signature invalid), 2 bad usage or
configuration. The commands live by group: `cli.tencent`, `cli.serve`, `cli.kb`, `cli.setup`,
`cli.tools`, `cli.tickets`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from timbridge.cli import kb, serve, setup, tencent, tickets, tools
from timbridge.cli.common import fail, log_format, log_level, set_root_options

__all__ = ["app", "main"]

app = typer.Typer(
    name="timbridge",
    help="AI-chatbot backend for Tencent Cloud Chat robots.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for command in (
    tencent.usersig,
    tencent.send,
    serve.serve,
    serve.worker,
    serve.emulator,
    serve.playground,
    setup.init,
    setup.check,
):
    app.command()(command)
app.add_typer(tencent.robots_app, name="robots", no_args_is_help=True)
app.add_typer(kb.kb_app, name="kb", no_args_is_help=True)
app.add_typer(tools.tools_app, name="tools", no_args_is_help=True)
app.add_typer(tickets.tickets_app, name="tickets", no_args_is_help=True)


@app.callback()
def _root(
    level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            help="debug, info, warning or error [default: info for serve and worker, "
            "warning otherwise]",
        ),
    ] = None,
    fmt: Annotated[
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

    if fmt is not None and fmt not in ("console", "json"):
        fail("--log-format must be console or json", 2)
    if level is not None and level.lower() not in ("debug", "info", "warning", "error"):
        fail("--log-level must be debug, info, warning or error", 2)
    set_root_options(
        level and level.lower(), "json" if fmt == "json" else "console" if fmt else None
    )
    configure_logging(log_format("console"), log_level("warning"))


def main() -> None:
    """Console-script entry point."""
    app()
