"""The provider table (`llm.registry`) is the one source of the provider names: settings,
`timbridge init`'s template and the README agree with it."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from timbridge.cli.template import render_config
from timbridge.llm.registry import PROVIDERS
from timbridge.settings import ModelProfile


def test_one_provider_table_feeds_settings_init_and_the_readme() -> None:
    accepted = get_args(ModelProfile.model_fields["provider"].annotation)
    assert accepted == tuple(PROVIDERS)  # settings validate against the same names, in order
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| `models.NAME.provider`") :].split("\n", 1)[0]
    assert [p for p in PROVIDERS if f"`{p}`" not in table] == []
    template = render_config(sdkappid=None, region="china", robot="@RBT#x", provider="gemini")
    assert "GEMINI_API_KEY" in template
    assert ", ".join(PROVIDERS) in template  # the comment lists every provider
