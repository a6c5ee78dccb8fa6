"""Embedders: text → unit vectors. Local MiniLM by default (shipped weights, no network), or any
OpenAI-compatible ``/embeddings`` endpoint when configured.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import numpy as np
import numpy.typing as npt

from timbridge.errors import LLMError, LLMResponseError
from timbridge.knowledge.minilm import DIMENSION, MiniLM

__all__ = ["KEYWORDS_ONLY", "Embedder", "KeywordsOnly", "LocalEmbedder", "OpenAIEmbedder"]

#: The name of the embedder used when no embedding model is available.
KEYWORDS_ONLY = "keywords-only"

Matrix = npt.NDArray[np.float32]


class Embedder(Protocol):
    @property
    def name(self) -> str:
        """Identifies the vector space: a base built with one embedder is searched with it."""
        ...

    async def embed(self, texts: list[str]) -> Matrix:
        """One unit-length row per text."""
        ...

    async def aclose(self) -> None: ...


class LocalEmbedder:
    """all-MiniLM-L6-v2 in numpy, run in a worker thread so the event loop stays free."""

    name = f"minilm-l6-v2/{DIMENSION}"

    def __init__(self) -> None:
        self._model: MiniLM | None = None
        self._lock = asyncio.Lock()

    async def _loaded(self) -> MiniLM:
        async with self._lock:
            if self._model is None:
                self._model = await asyncio.to_thread(MiniLM)
            return self._model

    async def embed(self, texts: list[str]) -> Matrix:
        model = await self._loaded()
        return await asyncio.to_thread(model.embed, texts)

    async def aclose(self) -> None:
        self._model = None


class KeywordsOnly:
    """No embeddings (the local model is not installed): retrieval runs on keywords alone."""

    name = KEYWORDS_ONLY

    async def embed(self, texts: list[str]) -> Matrix:
        return np.zeros((len(texts), 0), dtype=np.float32)

    async def aclose(self) -> None:
        return None


class OpenAIEmbedder:
    """An OpenAI-compatible embeddings endpoint, through the official SDK."""

    def __init__(self, *, model: str, base_url: str | None, api_key: str, timeout_s: float) -> None:
        import openai  # noqa: PLC0415 - only when remote embeddings are configured

        self._model = model
        self._openai = openai
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=2
        )
        self.name = f"openai:{model}"

    async def embed(self, texts: list[str]) -> Matrix:
        rows: list[list[float]] = []
        try:
            for start in range(0, len(texts), 256):
                reply = await self._client.embeddings.create(
                    model=self._model, input=texts[start : start + 256]
                )
                rows.extend(item.embedding for item in sorted(reply.data, key=lambda d: d.index))
        except self._openai.APIError as exc:
            raise LLMError(f"embeddings endpoint: {exc}") from exc
        if len(rows) != len(texts):
            raise LLMResponseError(
                f"embeddings endpoint returned {len(rows)} vectors for {len(texts)} texts"
            )
        matrix = np.asarray(rows, dtype=np.float32).reshape(len(texts), -1)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        unit: Matrix = (matrix / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit

    async def aclose(self) -> None:
        await self._client.close()
