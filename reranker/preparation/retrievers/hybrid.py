"""Hybrid first stage: dense and BM25 scores mixed per query with the project's fusion (``model/fusion.py``).

For each query the candidates are the union of both sides' top ``max(k, depth)`` lists (``depth`` 100
by default); each candidate gets both sides' scores (a side's ``score`` fills in candidates that only
the other side found), and the two are fused over that candidate set: by default
``weight * z(dense) + (1 - weight) * z(bm25)``, each standardised within the query. The fused score
ranks the candidates; ties keep corpus order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from reranker.core.errors import InputError
from reranker.model.fusion import Fusion, fuse
from reranker.preparation.retrievers.base import (
    EncodedQueries,
    Hits,
    Retriever,
    encode_queries,
    score,
    search,
)
from reranker.preparation.retrievers.dense import DenseRetriever
from reranker.preparation.retrievers.index import QUERY_BLOCK

DEPTH = 100


class HybridRetriever:
    """Dense and sparse retrievers over the same passages, fused per query.

    Args:
        dense: the dense side (its weight is ``weight``).
        sparse: the BM25 side (weight ``1 - weight``).
        weight: the dense side's weight in [0, 1] (``zscore``/``minmax``; unused by ``rrf``).
        method: the fusion, ``zscore``, ``minmax`` or ``rrf``.
        depth: how deep each side's list goes at least.
    """

    name = "hybrid"

    def __init__(
        self,
        dense: DenseRetriever,
        sparse: Retriever,
        weight: float = 0.5,
        method: str = "zscore",
        depth: int = DEPTH,
    ) -> None:
        if depth < 1:
            raise InputError(f"hybrid depth must be >= 1, got {depth}")
        self.dense, self.sparse, self.depth = dense, sparse, depth
        self.fusion = Fusion(method, weight)

    def encode(self, queries: Sequence[str]) -> HybridQueries:
        return HybridQueries(self, self.dense.encode(queries), encode_queries(self.sparse, queries))

    def search(self, queries: Sequence[str], k: int) -> list[Hits]:
        self.dense.clamp(k)
        return list(search(self.encode(queries), k))

    def score(self, queries: Sequence[str], passages: Sequence[Sequence[int]]) -> list[list[float]]:
        """The fused score of chosen passages, normalised over the query's search candidates and them.

        A passage among the candidates of a ``search`` with ``k <= depth`` gets its ``search`` score;
        adding one from outside shifts the query's normalisation slightly, as if a side had found it.
        """
        return score(self.encode(queries), passages)


class HybridQueries:
    """Both sides' encodings of the queries, fused per query.

    Each query's candidates at the retriever's own depth (what :meth:`scores` normalises over) are kept
    once a search at that depth or a scoring has found them: mining searches, then scores the positives
    and later the negatives, and finds them once.
    """

    block = QUERY_BLOCK

    def __init__(self, retriever: HybridRetriever, dense: EncodedQueries, sparse: EncodedQueries) -> None:
        self.retriever, self.dense, self.sparse = retriever, dense, sparse
        self.depth_candidates: list[np.ndarray | None] = [None] * len(dense)

    def __len__(self) -> int:
        return len(self.dense)

    def candidates(self, start: int, end: int, k: int) -> list[list[int]]:
        """Each query's union of the two sides' top ``max(k, depth)`` lists, in corpus order."""
        size = self.retriever.dense.index.size
        depth = min(max(k, self.retriever.depth), size)  # no clamping message for our own depth
        dense_hits = self.dense.hits(start, end, depth)
        sparse_hits = self.sparse.hits(start, end, depth)
        found = [
            sorted(set(d.indices) | set(s.indices)) for d, s in zip(dense_hits, sparse_hits, strict=True)
        ]
        if depth == min(self.retriever.depth, size):
            for row, indices in enumerate(found, start=start):
                self.depth_candidates[row] = np.asarray(indices, dtype=np.int32)
        return found

    def fused(self, start: int, end: int, candidates: Sequence[Sequence[int]]) -> list[list[float]]:
        """The fused score of each query's candidates, normalised over those candidates."""
        dense = self.dense.scores(start, end, candidates)
        sparse = self.sparse.scores(start, end, candidates)
        width = max((len(c) for c in candidates), default=0)
        shape = (len(candidates), width)
        dense_scores = torch.zeros(shape, dtype=torch.float64)  # [Q, C]
        sparse_scores = torch.zeros(shape, dtype=torch.float64)  # [Q, C]
        mask = torch.zeros(shape, dtype=torch.bool)  # [Q, C], False past a query's candidates
        for row, (d, s) in enumerate(zip(dense, sparse, strict=True)):
            dense_scores[row, : len(d)] = torch.tensor(d, dtype=torch.float64)
            sparse_scores[row, : len(s)] = torch.tensor(s, dtype=torch.float64)
            mask[row, : len(d)] = True
        fused = fuse(dense_scores, sparse_scores, self.retriever.fusion, mask)  # [Q, C]
        return [fused[row, : len(c)].tolist() for row, c in enumerate(candidates)]

    def hits(self, start: int, end: int, k: int) -> list[Hits]:
        k = self.retriever.dense.clamp(k)
        candidates = self.candidates(start, end, k)
        hits = []
        for indices, scores in zip(candidates, self.fused(start, end, candidates), strict=True):
            # The candidates are in corpus order and sorted() is stable: ties keep corpus order.
            order = sorted(range(len(indices)), key=lambda i: -scores[i])[:k]
            hits.append(Hits([indices[i] for i in order], [scores[i] for i in order]))
        return hits

    def scores(self, start: int, end: int, passages: Sequence[Sequence[int]]) -> list[list[float]]:
        if any(self.depth_candidates[row] is None for row in range(start, end)):
            self.candidates(start, end, self.retriever.depth)
        pools = [
            sorted(set(self.depth_candidates[row].tolist()) | set(chosen))
            for row, chosen in zip(range(start, end), passages, strict=True)
        ]
        fused = self.fused(start, end, pools)
        return [
            [dict(zip(pool, values, strict=True))[i] for i in chosen]
            for pool, values, chosen in zip(pools, fused, passages, strict=True)
        ]
