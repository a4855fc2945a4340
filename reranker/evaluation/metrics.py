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
    if candidate_mask is not None and candidate_mask.shape != scores.shape:
        raise ValueError(f"candidate_mask must be [Q, C] like scores; got {tuple(candidate_mask.shape)}")
    num_queries, num_candidates = scores.shape
    # Per-row counts fit in a byte for up to 255 candidates: a quarter of the memory traffic of int32.
    count_dtype = torch.uint8 if num_candidates < 256 else torch.int32
    scores = scores.float()
    valid = None if candidate_mask is None else candidate_mask.bool()
    relevant = relevance.bool() if valid is None else relevance.bool() & valid  # [Q, C]
    # At 30M cells the cost is memory traffic, so the dense passes are few (a comparison and a count) and
    # the positives, a few per row, are handled as a sparse list.
    rows, columns = relevant.nonzero(as_tuple=True)  # [P]
    positive_scores = scores[rows, columns]  # [P]
    best_positive = scores.new_full((num_queries,), float("-inf"))
    best_positive.scatter_reduce_(0, rows, positive_scores, "amax", include_self=False)  # [Q]
    at_or_above = scores >= best_positive.unsqueeze(1)  # [Q, C]
    if valid is not None:
        at_or_above &= valid
    counted = at_or_above.view(torch.uint8).sum(dim=1, dtype=count_dtype).long()  # [Q]
    # The positives at the best score were counted too; they are not placed before themselves.
    tied_positives = torch.zeros_like(counted).index_add_(
        0, rows, (positive_scores >= best_positive[rows]).long()
    )
    rank = counted - tied_positives + 1  # [Q]
    has_positive = torch.zeros(num_queries, dtype=torch.bool, device=scores.device)
    has_positive[rows] = True
    return rank.masked_fill_(~has_positive, 0)


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
        self,
        scores: torch.Tensor | None = None,
        relevance: torch.Tensor | None = None,
        candidate_mask: torch.Tensor | None = None,
        *,
        rank_histogram: torch.Tensor | None = None,
    ) -> None:
        """Add a batch of queries: ``scores``, ``relevance`` and optional ``candidate_mask``, each ``[Q, C]``;
        or, when several metrics share one rank computation (``update_all``), ``rank_histogram``: long
        ``[R]``, the number of queries at each first relevant rank ``r`` (``r = 0``: no relevant candidate)."""
        if rank_histogram is None:
            if scores is None or relevance is None:
                raise ValueError("update needs scores and relevance, or rank_histogram")
            rank_histogram = rank_counts(first_relevant_rank(scores, relevance, candidate_mask), self.k)
        counts = torch.zeros_like(self.rank_counts)
        within = rank_histogram[: self.k + 1]
        counts[: within.numel()] = within
        counts[0] += rank_histogram[self.k + 1 :].sum()  # beyond k counts as a miss
        # Reassigned, not updated in place: states reset under inference mode must stay usable outside it.
        self.rank_counts = self.rank_counts + counts

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


def rank_counts(rank: torch.Tensor, k: int) -> torch.Tensor:
    """``[k + 2]`` histogram of ranks: index r <= k for rank r (0 = none), index k + 1 for every rank beyond k."""
    return torch.bincount(rank.clamp(max=k + 1), minlength=k + 2)


def update_all(
    metrics: dict[str, _RankMetric],
    scores: torch.Tensor,
    relevance: torch.Tensor,
    candidate_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Update every metric of a set from one rank computation and one histogram (the costly parts);
    returns the ``[Q]`` first relevant ranks (for per-query values)."""
    rank = first_relevant_rank(scores, relevance, candidate_mask)  # [Q]
    histogram = rank_counts(rank, max(metric.k for metric in metrics.values()))
    for metric in metrics.values():
        metric.update(rank_histogram=histogram)
    return rank


def ranking_metrics(mrr_k: int = 10, hit_ks: tuple[int, ...] = (1, 3, 5)) -> dict[str, _RankMetric]:
    """The standard set, keyed as they are logged: ``mrr@10``, ``hit@1``, ``hit@3``, ``hit@5``."""
    metrics: dict[str, _RankMetric] = {f"mrr@{mrr_k}": MRR(mrr_k)}
    metrics.update({f"hit@{k}": HitRate(k) for k in hit_ks})
    return metrics
