"""Hybrid retrieval over one knowledge base held in memory: cosine similarity of embeddings
(numpy brute force: one matrix-vector product) blended with BM25 keyword scores.

The blend is ``(1 − w)·similarity + w·keywords``. Keywords are BM25 scores divided by the best
one for the query, or by `KEYWORD_FLOOR` when the best is weaker than that: both then lie in
0..1, and a query that matches only a stray common word does not look like a strong match.
Embeddings find paraphrases; keywords find exact names (``api_key_env``, ``70001``) that
embeddings blur. When no word of the query occurs in the base at all, keywords have no
evidence to give and the score is the similarity alone (a pure paraphrase is not penalised). A
passage counts only above `min_score`, so "nothing matches" is an answer too.
`bench/retrieval.py` measures each mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from timbridge.knowledge.keywords import BM25
from timbridge.knowledge.store import StoredChunks

__all__ = ["KEYWORD_WEIGHT", "Hit", "Index", "Mode"]

Mode = Literal["hybrid", "embedding", "keyword"]

#: Share of the keyword score in the hybrid blend (tuned with bench/retrieval.py).
KEYWORD_WEIGHT = 0.35
#: A BM25 score below this is never scaled up to a perfect keyword match.
KEYWORD_FLOOR = 6.0


@dataclass(frozen=True, slots=True)
class Hit:
    source: str
    heading: str
    text: str
    score: float  # what ranked it, in 0..1
    similarity: float
    keywords: float


class Index:
    """One base's chunks, vectors and keyword index, ready to search."""

    def __init__(self, stored: StoredChunks) -> None:
        self.version = stored.version
        self.embedder = stored.embedder
        self._stored = stored
        self._bm25 = BM25([f"{h}\n{t}" for h, t in zip(stored.headings, stored.texts, strict=True)])

    def __len__(self) -> int:
        return len(self._stored.texts)

    def search(
        self,
        query: str,
        vector: npt.NDArray[np.float32] | None,
        *,
        k: int,
        min_score: float,
        mode: Mode = "hybrid",
    ) -> list[Hit]:
        """The best `k` passages scoring at least `min_score` (`vector`: the query embedded)."""
        count = len(self)
        if count == 0 or not query.strip():
            return []
        similarity = (
            np.clip(self._stored.vectors @ vector, 0.0, 1.0)
            if vector is not None and mode != "keyword"
            else np.zeros(count, dtype=np.float32)
        )
        raw = self._bm25.scores(query) if mode != "embedding" else np.zeros(count, np.float32)
        keywords = raw / max(float(raw.max()), KEYWORD_FLOOR)
        if mode == "embedding" or (mode == "hybrid" and not raw.any()):
            score = similarity  # no query word occurs anywhere: keywords have nothing to say
        elif mode == "keyword":
            score = keywords
        else:
            score = (1 - KEYWORD_WEIGHT) * similarity + KEYWORD_WEIGHT * keywords
        top = np.argsort(-score, kind="stable")[:k]
        return [
            Hit(
                source=self._stored.sources[i],
                heading=self._stored.headings[i],
                text=self._stored.texts[i],
                score=float(score[i]),
                similarity=float(similarity[i]),
                keywords=float(keywords[i]),
            )
            for i in top
            if score[i] >= min_score
        ]
