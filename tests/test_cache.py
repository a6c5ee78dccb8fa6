"""Prompt caching: the context keeps a byte-identical prefix from turn to turn, and the cached
tokens each vendor reports (OpenAI's ``prompt_tokens_details.cached_tokens``, Anthropic's
``cache_read_input_tokens``, Gemini's ``cachedContentTokenCount``, on fake servers that keep a
prefix cache as theirs do) reach the usage ledger, the metrics and ``/usage``."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI
from tests.stack import running_stack, vendor_models

pytestmark = pytest.mark.usefixtures("clean_env")

TURNS = 30


async def _converse(tmp_path: Path, **stack: Any) -> tuple[str, float]:
    async with running_stack(tmp_path, **stack) as running:
        emu = running.emu
        for n in range(TURNS):
            mark = emu.mark()
            emu.user_send("alice", "@RBT#helper", f"turn {n}: tell me something about {n}")
            await emu.wait_message(from_="@RBT#helper", to="alice", after=mark)
        mark = emu.mark()
        emu.user_send("alice", "@RBT#helper", "/usage")
        usage = (await emu.wait_message(from_="@RBT#helper", to="alice", after=mark)).text
        counted = sum(
            float(line.rsplit(" ", 1)[1])
            for line in running.services.metrics.render().decode().splitlines()
            if line.startswith("timbridge_model_cached_tokens_total{")
        )
    return usage, counted


def _share(usage: str) -> int:
    found = re.search(r" (\d+) % of what I read came from the model provider's prompt cache", usage)
    assert found is not None, usage
    return int(found.group(1))


async def test_the_prompt_prefix_stays_byte_identical_and_openai_s_cache_shows(
    tmp_path: Path,
) -> None:
    llm = FakeOpenAI(reply=lambda messages: "a short answer", prompt_cache=True)
    usage, counted = await _converse(tmp_path, llm=llm)
    requests = [r["messages"] for r in llm.requests]
    for before, after in itertools.pairwise(requests):
        assert after[: len(before)] == before  # each request extends the one before
    assert _share(usage) > 70 and counted > 0


@pytest.mark.parametrize("vendor", ["anthropic", "gemini"])
async def test_anthropic_and_gemini_cached_tokens_reach_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vendor: str
) -> None:
    monkeypatch.setenv("FAKE_VENDOR_KEY", "vendor-test-key")
    fake: FakeAnthropic | FakeGemini = (
        FakeAnthropic(reply=lambda messages: "a short answer", prompt_cache=True)
        if vendor == "anthropic"
        else FakeGemini(reply=lambda contents: "a short answer", prompt_cache=True)
    )
    async with vendor_models(fake, vendor, key_env="FAKE_VENDOR_KEY") as models:
        usage, counted = await _converse(tmp_path, models=models)
    assert _share(usage) > 70 and counted > 0


async def test_a_store_of_the_previous_version_gains_the_ledger_s_cached_column(
    tmp_path: Path,
) -> None:
    import sqlite3

    from timbridge.storage import Store
    from timbridge.storage.schema import SCHEMA_VERSION

    db = tmp_path / "old.db"
    store = await Store.open(f"sqlite:///{db}")
    await store.aclose()
    with sqlite3.connect(db) as conn:  # as version 4 left it
        conn.execute("ALTER TABLE usage DROP COLUMN cached_tokens")
        conn.execute("DROP TABLE facts")
        conn.execute("DROP TABLE memory_marks")
        conn.execute("UPDATE timbridge_schema SET version = 4")
    store = await Store.open(f"sqlite:///{db}")
    await store.aclose()
    with sqlite3.connect(db) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(usage)")]
        (version,) = conn.execute("SELECT version FROM timbridge_schema").fetchone()
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "cached_tokens" in columns and version == SCHEMA_VERSION
    assert {"facts", "memory_marks"} <= tables  # and what came after version 4
