"""What a knowledge base is missing: questions it had no passage for, grouped by meaning so
that paraphrases of one question count together (`timbridge kb gaps`).

Grouping is greedy over unit vectors: each question joins the group whose centre it is most
similar to, if that similarity reaches `threshold`, else starts a group. The groups come back
largest first, each named by the question nearest its centre.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["Cluster", "cluster", "sounds_unsure"]

Matrix = npt.NDArray[np.float32]

# Answers in which a model says it does not know (checked on the start of the answer).
_UNSURE = re.compile(
    r"\b(i (do not|don't|dont) know|i'?m not sure|i am not sure|i (could not|couldn't) find"
    r"|(is|was) not (in|covered by) (my|the) (knowledge|documents|passages))\b"
    r"|我不知道|不清楚|没有找到",
    re.IGNORECASE,
)


def sounds_unsure(answer: str) -> bool:
    """Whether `answer` says, near its start, that the model does not know."""
    return bool(_UNSURE.search(answer[:300]))


@dataclass
class Cluster:
    """Questions that ask the same thing; `name` is the one nearest the group's centre."""

    name: str
    questions: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.questions)


def cluster(questions: list[str], vectors: Matrix, *, threshold: float = 0.5) -> list[Cluster]:
    """Group `questions` (one unit row of `vectors` each), largest group first."""
    sums: list[npt.NDArray[np.float64]] = []
    members: list[list[int]] = []
    for index, vector in enumerate(vectors.astype(np.float64)):
        best, best_score = -1, threshold
        for group, total in enumerate(sums):
            score = float(vector @ total) / (float(np.linalg.norm(total)) or 1.0)
            if score >= best_score:
                best, best_score = group, score
        if best < 0:
            sums.append(vector.copy())
            members.append([index])
        else:
            sums[best] += vector
            members[best].append(index)
    found = []
    for total, indexes in zip(sums, members, strict=True):
        centre = total / (float(np.linalg.norm(total)) or 1.0)
        nearest = max(indexes, key=lambda i: float(vectors[i] @ centre))
        found.append(Cluster(questions[nearest], [questions[i] for i in indexes]))
    return sorted(found, key=lambda c: -c.size)
