"""Keyword search: a tokeniser that treats Chinese, Japanese and Korean text sensibly, and Okapi
BM25 over it.

Latin-script words are lower-cased, stripped of a few English suffixes ("configuring",
"configured" and "configure" meet as "configur") and filtered of stop words. CJK text has no
spaces, so each run of CJK characters gives its single characters and its overlapping pairs
(Lucene's CJK bigrams):
"配置模型" → 配, 置, 模, 型, 配置, 置模, 模型. No dictionary to load, and a phrase matches itself.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["BM25", "tokenize"]

_TOKEN = re.compile(
    r"[a-z0-9][a-z0-9_]*"
    r"|[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+"
)
_STOP_WORDS = """
a an and are as at be by can do does for from how i if in is it its me my of on or so that the
their then there these this to was what when where which who why will with you your
我 的 了 是 吗 呢 吧 啊 在 和 与 怎么 如何 什么
"""
_STOP = frozenset(_STOP_WORDS.split())
_SUFFIXES = ("ations", "ation", "ings", "ing", "ied", "ies", "ed", "es", "s")


def _stem(word: str) -> str:
    if len(word) <= 4 or word.isdigit() or word.endswith(("ss", "us", "is")):
        return word
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + ("y" if suffix in ("ied", "ies") else "")
            break
    # "configure" meets "configured" and "configuring"
    return word[:-1] if word.endswith("e") and len(word) > 4 else word


def tokenize(text: str) -> list[str]:
    """The search terms of `text`, in order, repeats kept."""
    terms: list[str] = []
    for match in _TOKEN.finditer(text.lower()):
        run = match.group()
        if run[0].isascii():
            if run not in _STOP and (len(run) > 1 or run.isdigit()):
                terms.append(_stem(run))
            continue
        terms.extend(ch for ch in run if ch not in _STOP)
        terms.extend(run[i : i + 2] for i in range(len(run) - 1))
    return terms


class BM25:
    """Okapi BM25 over fixed documents (k1 = 1.2, b = 0.75); `scores` costs one pass over the
    postings of the query's terms, not over every document."""

    def __init__(self, documents: Sequence[str], *, k1: float = 1.2, b: float = 0.75) -> None:
        self._count = len(documents)
        lengths = np.zeros(self._count, dtype=np.float32)
        postings: dict[str, tuple[list[int], list[int]]] = {}
        for index, document in enumerate(documents):
            counts = Counter(tokenize(document))
            lengths[index] = sum(counts.values())
            for term, count in counts.items():
                docs, tfs = postings.setdefault(term, ([], []))
                docs.append(index)
                tfs.append(count)
        average = float(lengths.mean()) if self._count else 1.0
        norm = k1 * (1.0 - b + b * lengths / max(average, 1.0))
        self._postings: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]] = {}
        for term, (docs, tfs) in postings.items():
            ids = np.asarray(docs, dtype=np.int64)
            tf = np.asarray(tfs, dtype=np.float32)
            idf = math.log(1.0 + (self._count - len(docs) + 0.5) / (len(docs) + 0.5))
            weight = idf * tf * (k1 + 1.0) / (tf + norm[ids])
            self._postings[term] = (ids, weight.astype(np.float32))

    def __len__(self) -> int:
        return self._count

    def scores(self, query: str) -> npt.NDArray[np.float32]:
        """One score per document (0 where no query term occurs)."""
        out = np.zeros(self._count, dtype=np.float32)
        for term in set(tokenize(query)):
            found = self._postings.get(term)
            if found is not None:
                out[found[0]] += found[1]
        return out
