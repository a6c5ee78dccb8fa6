"""Commands that set a deployment up: ``init`` writes a configuration, ``check`` tests it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from timbridge.cli.common import ConfigOption, config_errors, fail, load, log_format, log_level

__all__ = ["check", "init"]


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
    from timbridge.cli.template import render_config

    if path.exists() and not force:
        fail(f"{path} exists; use --force to overwrite it", 2)
    with config_errors():
        text = render_config(sdkappid=sdkappid, region=region, robot=robot, provider=provider)
    path.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {path}; next: export the secrets it names, then: timbridge check")


def check(
    model_timeout: Annotated[
        float, typer.Option("--model-timeout", min=1, help="Seconds per model probe.")
    ] = 30.0,
    config: ConfigOption = None,
) -> None:
    """Validate the configuration and test every connection; exit 1 if anything fails."""
    from timbridge.cli.checks import run_checks
    from timbridge.logs import configure_logging

    settings = load(config)
    configure_logging(log_format("console"), log_level("error"))  # the verdicts say it all
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
