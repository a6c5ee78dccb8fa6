"""What every ``timbridge`` command shares: the ``--config`` option, one-line failures with
exit codes, running a command's coroutine, and the root options (``--log-level``,
``--log-format``) with each command's defaults."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TypeVar

import typer

from timbridge.errors import ConfigError, TencentAPIError, TencentError
from timbridge.redact import redact
from timbridge.settings import Settings, load_settings

__all__ = [
    "ConfigOption",
    "LogFormat",
    "config_errors",
    "fail",
    "load",
    "log_format",
    "log_level",
    "run",
    "set_root_options",
]

T = TypeVar("T")
LogFormat = Literal["json", "console"]
_ROOT: dict[str, Any] = {"level": None, "format": None}  # given on the command line, if at all

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Configuration file (default: $TIMBRIDGE_CONFIG, else ./timbridge.toml if present).",
        dir_okay=False,
    ),
]


def set_root_options(level: str | None, fmt: LogFormat | None) -> None:
    _ROOT["level"], _ROOT["format"] = level, fmt


def log_level(default: str) -> str:
    """The level given with --log-level, else this command's `default`."""
    level: str | None = _ROOT["level"]
    return level or default


def log_format(default: LogFormat) -> LogFormat:
    """The format given with --log-format, else this command's `default`."""
    fmt: LogFormat | None = _ROOT["format"]
    return fmt or default


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {redact(message)}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def config_errors() -> Iterator[None]:
    """A `ConfigError` in the block ends the command: ``error: configuration: …``, exit 2."""
    try:
        yield
    except ConfigError as exc:
        fail(f"configuration: {exc}", 2)


def load(config: Path | None) -> Settings:
    with config_errors():
        return load_settings(config)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; turn timbridge's errors into one-line messages and exit codes."""
    from timbridge.tencent.codes import describe

    try:
        with config_errors():
            return asyncio.run(coro)
    except TencentAPIError as exc:
        fail(f"{exc.command} failed: ErrorCode {describe(exc.error_code)}")
    except TencentError as exc:
        fail(f"{exc} (is tencent.region / tencent.api_base right?)")
