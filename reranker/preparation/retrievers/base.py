"""The interface every first stage implements: rank a corpus for each query, score given passages.

A retriever's ``encode`` does the query side once (embeddings, token ids) and returns
:class:`EncodedQueries`, which ranks and scores without touching the model again: mining searches, scores the
positives and later the negatives of every query from one encoding. :func:`search` and :func:`score` walk
the encoded queries in blocks and report progress.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from reranker.core.progress import Progress


@dataclass(frozen=True)
class Hits:
    """One query's best passages: corpus indices, best first, and the retriever's score of each."""

    indices: list[int]
    scores: list[float]


class EncodedQueries(Protocol):
    """Queries a retriever has encoded once, ranked and scored without encoding them again.

    ``hits`` ranks the corpus for queries ``start..end-1`` (ties keep corpus order), the best ``k`` of each;
    ``scores`` gives the retriever's score of chosen passages (``passages[i]`` for query ``start + i``), on
    the same scale as the hits' scores. ``block`` is how many queries one call handles well.
    """

    block: int

    def __len__(self) -> int: ...

    def hits(self, start: int, end: int, k: int) -> list[Hits]: ...

    def scores(self, start: int, end: int, passages: Sequence[Sequence[int]]) -> list[list[float]]: ...


class Retriever(Protocol):
    """A first stage over a fixed list of passages (built with the passages' texts).

    ``search`` ranks the whole corpus for each query (ties keep corpus order) and returns the best ``k``
    (fewer when the corpus is smaller); ``score`` gives the retriever's score of chosen passages, e.g. a
    query's positives, on the same scale as ``search``'s scores (higher is better). A retriever may also
    have ``encode(queries) -> EncodedQueries`` (see :func:`encode_queries`).
    """

    name: str

    def search(self, queries: Sequence[str], k: int) -> list[Hits]: ...

    def score(self, queries: Sequence[str], passages: Sequence[Sequence[int]]) -> list[list[float]]: ...


class TextQueries:
    """:class:`EncodedQueries` of a retriever without ``encode``: its ``search`` and ``score`` on the texts."""

    block = 4096

    def __init__(self, retriever: Retriever, queries: Sequence[str]) -> None:
        self.retriever, self.queries = retriever, list(queries)

    def __len__(self) -> int:
        return len(self.queries)

    def hits(self, start: int, end: int, k: int) -> list[Hits]:
        return self.retriever.search(self.queries[start:end], k)

    def scores(self, start: int, end: int, passages: Sequence[Sequence[int]]) -> list[list[float]]:
        return self.retriever.score(self.queries[start:end], passages)


def encode_queries(retriever: Retriever, queries: Sequence[str]) -> EncodedQueries:
    """The retriever's own encoding of ``queries`` when it has one, else its text interface."""
    encode = getattr(retriever, "encode", None)
    return encode(queries) if encode is not None else TextQueries(retriever, queries)


def blocks(encoded: EncodedQueries, label: str) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each block of queries in order, counted in a progress report as it is done."""
    with Progress(len(encoded), label, "queries") as progress:
        for start in range(0, len(encoded), encoded.block):
            end = min(start + encoded.block, len(encoded))
            yield start, end
            progress.update(end - start)


def search(encoded: EncodedQueries, k: int, label: str = "search") -> Iterator[Hits]:
    """Every query's hits, in query order, block by block (with progress)."""
    for start, end in blocks(encoded, label):
        yield from encoded.hits(start, end, k)


def score(
    encoded: EncodedQueries, passages: Sequence[Sequence[int]], label: str = "score"
) -> list[list[float]]:
    """Every query's scores of its chosen passages (``passages[i]`` for query ``i``), block by block."""
    if len(passages) != len(encoded):
        raise ValueError(f"{len(encoded)} queries but {len(passages)} passage lists")
    values: list[list[float]] = []
    for start, end in blocks(encoded, label):
        values += encoded.scores(start, end, passages[start:end])
    return values
