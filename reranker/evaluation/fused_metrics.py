"""Validation metrics of the reranker fused with the first stage, for every weight a of the grid at once.

One set of :func:`~reranker.evaluation.metrics.ranking_metrics` per weight keeps integer rank counts, so
under DDP the reduced counts, the a chosen from them and the fused metrics at that a equal those of one
process exactly. The a reported is tuned on the same validation queries (the best of the grid by MRR@k):
an optimistic figure for the fused ranking, and the a an export records.
"""

from __future__ import annotations

import torch
from torch import nn

from reranker.evaluation.metrics import ranking_metrics, update_all
from reranker.evaluation.tuning import GRID, choose_weight
from reranker.model.fusion import WEIGHTED, Fusion, fuse


class FusedMetrics(nn.Module):
    """``update`` with reranker and first-stage scores; ``compute`` chooses a and returns its metrics.

    Args:
        mrr_k: cut-off of MRR (the tuning criterion).
        hit_ks: cut-offs of the hit rates.
        method: ``zscore`` or ``minmax`` (see :mod:`reranker.model.fusion`).
        grid: the weights tried.
    """

    def __init__(
        self,
        mrr_k: int = 10,
        hit_ks: tuple[int, ...] = (1, 3, 5),
        method: str = "zscore",
        grid: tuple[float, ...] = GRID,
    ) -> None:
        super().__init__()
        if method not in WEIGHTED:
            raise ValueError(
                f"fused validation needs a weighted method ({', '.join(WEIGHTED)}), got {method!r}"
            )
        self.method = method
        self.grid = grid
        self.mrr_name = f"mrr@{mrr_k}"
        self.by_weight = nn.ModuleList(nn.ModuleDict(ranking_metrics(mrr_k, hit_ks)) for _ in grid)

    def update(
        self,
        reranker: torch.Tensor,
        first_stage: torch.Tensor,
        relevance: torch.Tensor,
        candidate_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Add a batch of queries; every argument is ``[Q, C]``. Returns each query's first relevant rank
        at every weight, ``[Q, W]``, from which the rank at the chosen a is picked for paired tests."""
        ranks = []
        for weight, metrics in zip(self.grid, self.by_weight, strict=True):
            fused = fuse(reranker, first_stage, Fusion(self.method, weight), candidate_mask)  # [Q, C]
            ranks.append(update_all(metrics, fused, relevance, candidate_mask))  # [Q]
        return torch.stack(ranks, dim=1)  # [Q, W]

    def compute(self) -> tuple[float, dict[str, torch.Tensor]]:
        """``(a, {metric name: value at a})`` with a the grid weight of the best MRR@k."""
        values = [{name: metric.compute() for name, metric in metrics.items()} for metrics in self.by_weight]
        best = choose_weight(self.grid, [float(v[self.mrr_name]) for v in values])
        return self.grid[best], values[best]

    def chosen_index(self, weight: float) -> int:
        """Column of ``weight`` in the ``[Q, W]`` ranks :meth:`update` returns."""
        return self.grid.index(weight)

    def reset(self) -> None:
        for metrics in self.by_weight:
            for metric in metrics.values():
                metric.reset()
