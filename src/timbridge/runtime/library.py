"""Opening the knowledge library from the settings: its store and its embedder. Light on
purpose (no model providers, no HTTP server), so that ``timbridge kb`` starts quickly."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog

from timbridge.errors import ConfigError
from timbridge.knowledge.embed import Embedder, KeywordsOnly, LocalEmbedder, OpenAIEmbedder
from timbridge.knowledge.library import Library
from timbridge.knowledge.minilm import model_dir
from timbridge.knowledge.store import KnowledgeStore
from timbridge.settings import Settings

__all__ = ["build_embedder", "open_library"]

_log = structlog.get_logger("timbridge.knowledge")


def build_embedder(settings: Settings) -> Embedder:
    """The configured embedder; keywords only (logged) when the local model is not installed."""
    config = settings.knowledge
    if config.embedder == "openai":
        key = os.environ.get(config.api_key_env, "")
        if not key:
            raise ConfigError(
                "knowledge.api_key_env",
                f"the environment variable {config.api_key_env} is empty or unset",
            )
        return OpenAIEmbedder(
            model=config.model, base_url=config.base_url, api_key=key, timeout_s=30.0
        )
    try:
        model_dir()
    except ConfigError as exc:
        _log.warning("knowledge.keywords_only", reason=str(exc))
        return KeywordsOnly()
    return LocalEmbedder()


@asynccontextmanager
async def open_library(settings: Settings) -> AsyncIterator[Library]:
    """The knowledge library on the configured store and embedder, closed on exit."""
    embedder = build_embedder(settings)
    try:
        store = await KnowledgeStore.open(settings.store.url)
    except BaseException:
        await embedder.aclose()
        raise
    library = Library(
        store, embedder, top_k=settings.knowledge.top_k, min_score=settings.knowledge.min_score
    )
    try:
        yield library
    finally:
        await library.aclose()
