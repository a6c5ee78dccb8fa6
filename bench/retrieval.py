"""Retrieval quality on timbridge's own documentation, measured rather than assumed.

Builds the shipped docs base (`timbridge-docs`) in a temporary SQLite store with the local
embedder, then asks the questions of `bench/data/questions.jsonl` (each names the section that
answers it) and the off-topic questions of `bench/data/unanswerable.txt`. For embeddings alone,
keywords alone and the hybrid blend it prints:

* recall@3: share of questions whose answering section is among the first 3 passages;
* MRR: mean of 1/rank of the answering section (first 10 passages, 0 when absent);
* answered: share of questions with at least one passage over the relevance threshold;
* abstained: share of off-topic questions with none (the offline model then says so);
* query time: mean milliseconds per search (embedding the question included).

    .venv/bin/python bench/retrieval.py [--sweep]

`--sweep` also prints hybrid recall and abstention over keyword weights and thresholds (how
`KEYWORD_WEIGHT` and `knowledge.min_score` were chosen).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from timbridge.knowledge import retrieval
from timbridge.knowledge.embed import LocalEmbedder
from timbridge.knowledge.library import BUILTIN_KB, Library
from timbridge.knowledge.retrieval import Hit, Mode
from timbridge.knowledge.store import KnowledgeStore
from timbridge.settings import KnowledgeSettings

DATA = Path(__file__).with_name("data")


@dataclass(frozen=True)
class Question:
    text: str
    source: str
    heading: str

    def answered_by(self, hit: Hit) -> bool:
        return hit.source == self.source and self.heading.lower() in hit.heading.lower()


def _questions() -> list[Question]:
    lines = (DATA / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [orjson.loads(line) for line in lines if line.strip()]
    return [Question(r["q"], r["source"], r["heading"]) for r in rows]


def _off_topic() -> list[str]:
    lines = (DATA / "unanswerable.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


async def _measure(
    library: Library, questions: list[Question], off_topic: list[str], mode: Mode, threshold: float
) -> dict[str, float]:
    recall = reciprocal = answered = 0.0
    started = time.perf_counter()
    for question in questions:
        ranked = await library.search(BUILTIN_KB, question.text, k=10, min_score=0.0, mode=mode)
        rank = next((i for i, h in enumerate(ranked, 1) if question.answered_by(h)), None)
        recall += rank is not None and rank <= 3
        reciprocal += 1.0 / rank if rank else 0.0
        answered += bool(ranked) and ranked[0].score >= threshold
    elapsed = time.perf_counter() - started
    abstained = 0.0
    for text in off_topic:
        ranked = await library.search(BUILTIN_KB, text, k=1, min_score=threshold, mode=mode)
        abstained += not ranked
    n = len(questions)
    return {
        "recall@3": recall / n,
        "MRR": reciprocal / n,
        "answered": answered / n,
        "abstained": abstained / len(off_topic),
        "ms/query": 1000 * elapsed / n,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", action="store_true", help="also sweep weight and threshold")
    args = parser.parse_args()
    questions, off_topic = _questions(), _off_topic()
    threshold = KnowledgeSettings().min_score
    with tempfile.TemporaryDirectory() as folder:
        store = await KnowledgeStore.open(f"sqlite:///{folder}/bench.db")
        library = Library(store, LocalEmbedder())
        started = time.perf_counter()
        await library.ensure_builtin()
        info = (await library.bases())[0]
        print(
            f"built {BUILTIN_KB}: {info.documents} documents, {info.chunks} passages in "
            f"{time.perf_counter() - started:.1f} s; {len(questions)} questions, "
            f"{len(off_topic)} off-topic; threshold {threshold}, keyword weight "
            f"{retrieval.KEYWORD_WEIGHT}"
        )
        header = ("mode", "recall@3", "MRR", "answered", "abstained", "ms/q")
        print("{:<10} {:>8} {:>6} {:>8} {:>9} {:>6}".format(*header))
        for mode in ("embedding", "keyword", "hybrid"):
            m = await _measure(library, questions, off_topic, mode, threshold)
            print(
                f"{mode:<10} {m['recall@3']:>8.3f} {m['MRR']:>6.3f} {m['answered']:>8.3f} "
                f"{m['abstained']:>9.3f} {m['ms/query']:>6.2f}"
            )
        if args.sweep:
            default = retrieval.KEYWORD_WEIGHT
            print("\nsweep: weight threshold recall@3 MRR answered abstained")
            for weight in (0.2, 0.3, 0.35, 0.4, 0.5):
                retrieval.KEYWORD_WEIGHT = weight
                for cut in np.arange(0.25, 0.51, 0.05):
                    m = await _measure(library, questions, off_topic, "hybrid", float(cut))
                    print(
                        f"       {weight:.2f}   {cut:.2f}     {m['recall@3']:.3f}  "
                        f"{m['MRR']:.3f} {m['answered']:.3f}    {m['abstained']:.3f}"
                    )
            retrieval.KEYWORD_WEIGHT = default
        await library.aclose()


if __name__ == "__main__":
    asyncio.run(main())
