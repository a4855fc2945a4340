"""The interface every first stage implements: rank a corpus for each query, score given passages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Hits:
    """One query's best passages: corpus indices, best first, and the retriever's score of each."""

    indices: list[int]
    scores: list[float]


class Retriever(Protocol):
    """A first stage over a fixed list of passages (built with the passages' texts).

    ``search`` ranks the whole corpus for each query (ties keep corpus order) and returns the best ``k``
    (fewer when the corpus is smaller); ``score`` gives the retriever's score of chosen passages, e.g. a
    query's positives, on the same scale as ``search``'s scores (higher is better).
    """

    name: str

    def search(self, queries: Sequence[str], k: int) -> list[Hits]: ...

    def score(self, queries: Sequence[str], passages: Sequence[Sequence[int]]) -> list[list[float]]: ...
