"""Ranking metrics over dense score matrices: MRR@k and hit@k (has-right-in-contexts at k).

Each query is one row of a ``[Q, C]`` score matrix. The rank of a query is the rank of its best-scored
relevant candidate, counted pessimistically: every non-relevant candidate whose score is greater than
*or equal to* that positive's score is placed before it. A constant scorer therefore earns no credit
from ties: its positive is last (MRR@k 1/C for C <= k candidates). A query without any relevant candidate (a first-stage retrieval miss) has reciprocal rank 0
and no hit, and it is counted in the denominator.

Scores are raw logits of any sign; nothing treats a score <= 0 as special.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


def first_relevant_rank(
    scores: torch.Tensor, relevance: torch.Tensor, candidate_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """1-based pessimistic rank of each query's best relevant candidate; 0 where a query has none.

    Args:
        scores: ``[Q, C]`` float scores, higher is better.
        relevance: ``[Q, C]`` bool, True for relevant candidates (several per query allowed).
        candidate_mask: ``[Q, C]`` bool, False for padding in ragged groups; padding is ignored.

    Returns:
        ``[Q]`` long tensor of ranks (0 = no relevant candidate).
    """
    if scores.ndim != 2 or scores.shape != relevance.shape:
        raise ValueError(
            f"scores and relevance must both be [Q, C]; got {tuple(scores.shape)} and {tuple(relevance.shape)}"
        )
    valid = torch.ones_like(relevance, dtype=torch.bool) if candidate_mask is None else candidate_mask.bool()
    if valid.shape != scores.shape:
        raise ValueError(f"candidate_mask must be [Q, C] like scores; got {tuple(valid.shape)}")
    relevant = relevance.bool() & valid  # [Q, C]
    scores = scores.float()
    best_positive = scores.masked_fill(~relevant, float("-inf")).amax(dim=1, keepdim=True)  # [Q, 1]
    ahead = valid & ~relevant & (scores >= best_positive)  # [Q, C] non-relevant at or above the best positive
    rank = 1 + ahead.sum(dim=1)  # [Q]
    has_positive = relevant.any(dim=1)  # [Q]
    return torch.where(has_positive, rank, torch.zeros_like(rank))


class _RankMetric(Metric):
    """Mean over queries of a per-query value of the first relevant rank.

    The state is a histogram of ranks (``rank_counts[r]`` queries at rank ``r`` <= k, ``rank_counts[0]``
    the rest) rather than a running float sum: integer counts add up the same in any order, so the
    metric reduced over N processes equals the single-process value exactly, not only to rounding.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, k: int, **kwargs) -> None:
        super().__init__(**kwargs)
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        self.k = k
        self.add_state("rank_counts", default=torch.zeros(k + 1, dtype=torch.long), dist_reduce_fx="sum")

    def _value_at_rank(self, ranks: torch.Tensor) -> torch.Tensor:
        """``[k]`` float64 per-query value for ranks ``1..k`` (ranks beyond k and misses are worth 0)."""
        raise NotImplementedError

    def per_query(self, rank: torch.Tensor) -> torch.Tensor:
        """``[Q]`` float64 value of each query from its first relevant rank (0 = no relevant candidate)."""
        within = (rank >= 1) & (rank <= self.k)
        return torch.where(within, self._value_at_rank(rank.clamp(min=1)), 0.0)

    @property
    def count(self) -> torch.Tensor:
        """Number of queries seen."""
        return self.rank_counts.sum()

    def update(
        self, scores: torch.Tensor, relevance: torch.Tensor, candidate_mask: torch.Tensor | None = None
    ) -> None:
        """Add a batch of queries: ``scores``, ``relevance`` and optional ``candidate_mask``, each ``[Q, C]``."""
        rank = first_relevant_rank(scores, relevance, candidate_mask)  # [Q]
        bucket = torch.where(rank <= self.k, rank, torch.zeros_like(rank))  # [Q] 0 = miss or beyond k
        # Reassigned, not updated in place: states reset under inference mode must stay usable outside it.
        self.rank_counts = self.rank_counts + torch.bincount(bucket, minlength=self.k + 1)

    def compute(self) -> torch.Tensor:
        count = self.rank_counts.sum()
        if count == 0:
            return torch.tensor(0.0, dtype=torch.float64, device=self.rank_counts.device)
        ranks = torch.arange(1, self.k + 1, device=self.rank_counts.device)
        total = (self.rank_counts[1:].double() * self._value_at_rank(ranks)).sum()
        return total / count


class MRR(_RankMetric):
    """Mean reciprocal rank at k: 1/rank if the first relevant candidate is within the top k, else 0.

    Ties are pessimistic and queries with no relevant candidate count as 0 (see the module docstring).
    """

    def _value_at_rank(self, ranks: torch.Tensor) -> torch.Tensor:
        return 1.0 / ranks.double()


class HitRate(_RankMetric):
    """Hit rate at k (has-right-in-contexts): 1 if a relevant candidate is within the top k, else 0.

    Ties are pessimistic and queries with no relevant candidate count as 0 (see the module docstring).
    """

    def _value_at_rank(self, ranks: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(ranks, dtype=torch.float64)


def ranking_metrics(mrr_k: int = 10, hit_ks: tuple[int, ...] = (1, 3, 5)) -> dict[str, _RankMetric]:
    """The standard set, keyed as they are logged: ``mrr@10``, ``hit@1``, ``hit@3``, ``hit@5``."""
    metrics: dict[str, _RankMetric] = {f"mrr@{mrr_k}": MRR(mrr_k)}
    metrics.update({f"hit@{k}": HitRate(k) for k in hit_ks})
    return metrics
