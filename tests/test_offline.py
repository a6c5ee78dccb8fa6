"""The offline model's text handling (`llm.providers.offline`)."""

from __future__ import annotations

from timbridge.llm.providers.offline import reflow


def test_the_offline_model_reflows_hard_wrapped_paragraphs_and_keeps_blocks() -> None:
    wrapped = (
        "A paragraph wrapped\nby hand at seventy\ncolumns.\n\n- one item\n  continued\n- two\n\n"
        "```toml\n[a]\nb = 1\n```\n## Heading\nunder it\n| x | y |\n|---|---|"
    )
    assert reflow(wrapped) == (
        "A paragraph wrapped by hand at seventy columns.\n\n- one item continued\n- two\n\n"
        "```toml\n[a]\nb = 1\n```\n## Heading\nunder it\n| x | y |\n|---|---|"
    )
