"""Hybrid first stage: dense and BM25 scores mixed per query with the project's fusion (``model/fusion.py``).

For each query the candidates are the union of both sides' top ``max(k, depth)`` lists (``depth`` 100
by default); each candidate gets both sides' scores (a side's ``score`` fills in candidates that only
the other side found), and the two are fused over that candidate set: by default
``weight * z(dense) + (1 - weight) * z(bm25)``, each standardised within the query. The fused score
ranks the candidates; ties keep corpus order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reranker.core.errors import InputError
from reranker.model.fusion import Fusion, fuse
from reranker.preparation.retrievers.base import Hits, Retriever
from reranker.preparation.retrievers.dense import DenseRetriever

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

    def candidates(self, queries: Sequence[str], k: int) -> list[list[int]]:
        """Each query's union of the two sides' top lists, in corpus order."""
        depth = min(max(k, self.depth), self.dense.index.size)  # no clamping message for our own depth
        dense_hits = self.dense.search(queries, depth)
        sparse_hits = self.sparse.search(queries, depth)
        return [sorted(set(d.indices) | set(s.indices)) for d, s in zip(dense_hits, sparse_hits, strict=True)]

    def fused(self, queries: Sequence[str], candidates: Sequence[Sequence[int]]) -> list[list[float]]:
        """The fused score of each query's candidates, normalised over those candidates."""
        dense = self.dense.score(queries, candidates)
        sparse = self.sparse.score(queries, candidates)
        width = max((len(c) for c in candidates), default=0)
        shape = (len(candidates), width)
        dense_scores = torch.zeros(shape, dtype=torch.float64)  # [Q, C]
        sparse_scores = torch.zeros(shape, dtype=torch.float64)  # [Q, C]
        mask = torch.zeros(shape, dtype=torch.bool)  # [Q, C], False past a query's candidates
        for row, (d, s) in enumerate(zip(dense, sparse, strict=True)):
            dense_scores[row, : len(d)] = torch.tensor(d, dtype=torch.float64)
            sparse_scores[row, : len(s)] = torch.tensor(s, dtype=torch.float64)
            mask[row, : len(d)] = True
        fused = fuse(dense_scores, sparse_scores, self.fusion, mask)  # [Q, C]
        return [fused[row, : len(c)].tolist() for row, c in enumerate(candidates)]

    def search(self, queries: Sequence[str], k: int) -> list[Hits]:
        k = self.dense.clamp(k)
        if not queries:
            return []
        candidates = self.candidates(queries, k)
        hits = []
        for indices, scores in zip(candidates, self.fused(queries, candidates), strict=True):
            # The candidates are in corpus order and sorted() is stable: ties keep corpus order.
            order = sorted(range(len(indices)), key=lambda i: -scores[i])[:k]
            hits.append(Hits([indices[i] for i in order], [scores[i] for i in order]))
        return hits

    def score(self, queries: Sequence[str], passages: Sequence[Sequence[int]]) -> list[list[float]]:
        """The fused score of chosen passages, normalised over the query's search candidates and them.

        A passage among the candidates of a ``search`` with ``k <= depth`` gets its ``search`` score;
        adding one from outside shifts the query's normalisation slightly, as if a side had found it.
        """
        if not queries:
            return []
        candidates = self.candidates(queries, self.depth)
        pools = [sorted(set(c) | set(p)) for c, p in zip(candidates, passages, strict=True)]
        fused = self.fused(queries, pools)
        return [
            [dict(zip(pool, scores, strict=True))[i] for i in chosen]
            for pool, scores, chosen in zip(pools, fused, passages, strict=True)
        ]
