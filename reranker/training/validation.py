"""Validation of a reranker on ranked lists: its MRR@k and hit@k and, on retrieved candidate lists, those of
the first stage and of the reranker fused with it.

Every metric keeps integer rank counts (:mod:`reranker.evaluation.metrics`), so under DDP the values
reduced over ranks equal one process's exactly. A batch (:class:`~reranker.training.collate.
ValidationCollator`) carries ``"first_stage"`` only for retrieved lists (a candidates file): there the
list order is the first stage's ranking (``reranker evaluate``'s "without reranker" row) and the scores
are what fusion mixes with the reranker's. Mined triplet groups are not retrieved lists, and carry none.
"""

from __future__ import annotations

import torch
from torch import nn

from reranker.core.grid import to_grid
from reranker.evaluation.first_stage import PerQueryRanks
from reranker.evaluation.fused_metrics import FusedMetrics
from reranker.evaluation.metrics import ranking_metrics, update_all


class RankingValidation(nn.Module):
    """``update`` with each batch's scores; ``finish`` at the end of a pass returns the values to log.

    Args:
        mrr_k: cut-off of MRR.
        hit_ks: cut-offs of the hit rates.
        fusion_method: ``zscore`` or ``minmax``: on retrieved lists also the reranker fused with the first
            stage by this method, at the weight a best on the validation lists; None: no fused metrics.

    After a full (not sanity-check) pass over retrieved lists it holds ``first_stage_values`` (the first
    stage's metrics, which training does not change: set once), ``validation_ranks`` (each query's rank by
    the first stage, the reranker and the fused mix, in validation-set order, for the paired tests of the
    end-of-training report) and ``fusion`` (the mix chosen, which checkpoints and exports record).
    """

    def __init__(
        self, mrr_k: int = 10, hit_ks: tuple[int, ...] = (1, 3, 5), fusion_method: str | None = None
    ):
        super().__init__()
        self.reranker = nn.ModuleDict(ranking_metrics(mrr_k, hit_ks))
        self.first_stage = nn.ModuleDict(ranking_metrics(mrr_k, hit_ks))
        self.fused = FusedMetrics(mrr_k, hit_ks, fusion_method) if fusion_method else None
        self.per_query = PerQueryRanks()
        self.first_stage_seen = False
        self.first_stage_values: dict[str, float] | None = None
        self.validation_ranks: dict[str, list[int]] | None = None
        self.fusion: dict | None = None

    def update(self, scores: torch.Tensor, batch: dict) -> None:
        """Add a batch: ``scores`` ``[N]``, the reranker's score of each pair of the batch."""
        rows, columns = batch["row"], batch["column"]  # [N] each
        shape = (batch["num_queries"], int(columns.max()) + 1)
        dense = to_grid(rows, columns, scores, shape, float("-inf"))  # [Q, C]
        relevance = to_grid(rows, columns, batch["relevance"].bool(), shape, False)  # [Q, C]
        candidate_mask = to_grid(rows, columns, torch.ones_like(rows, dtype=torch.bool), shape, False)
        # A query without any relevant candidate (a retrieval miss) has rank 0: reciprocal rank 0, no hit.
        rank = update_all(self.reranker, dense, relevance, candidate_mask)  # [Q]
        if "first_stage" not in batch:
            return
        self.first_stage_seen = True
        self.per_query.add("reranker", rank)
        # The list order is the first stage's ranking: the first candidate scores highest.
        order = to_grid(rows, columns, -columns.double(), shape, 0.0)  # [Q, C]
        self.per_query.add("first_stage", update_all(self.first_stage, order, relevance, candidate_mask))
        if self.fused is not None:
            first_stage = to_grid(rows, columns, batch["first_stage"].double(), shape, 0.0)  # [Q, C]
            self.per_query.add("fused", self.fused.update(dense, first_stage, relevance, candidate_mask))

    def finish(self, strategy, full: bool) -> dict[str, torch.Tensor | float]:
        """The values of the pass to log, ``val/``-less (``mrr@10``, ``first_stage_mrr@10``, ...); resets
        the states. Every rank calls it (it joins reductions); ``full`` is False for a sanity check."""
        values: dict[str, torch.Tensor | float] = {}
        for name, metric in self.reranker.items():
            values[name] = metric.compute()
            metric.reset()
        # Reduced over ranks: a rank that drew no retrieved list must still join the metric reductions.
        seen = strategy.reduce(torch.tensor(float(self.first_stage_seen)), reduce_op="sum")
        self.first_stage_seen = False
        if float(seen) == 0:
            self.per_query.clear()
            return values
        first_stage = {name: float(metric.compute()) for name, metric in self.first_stage.items()}
        for metric in self.first_stage.values():
            metric.reset()
        if full and self.first_stage_values is None:  # logged once: training does not change it
            self.first_stage_values = first_stage
            values.update({f"first_stage_{name}": value for name, value in first_stage.items()})
        fused_column = None
        if self.fused is not None:
            weight, fused = self._finish_fused(values)
            values.update({f"fused_{name}": value for name, value in fused.items()})
            values["fused_weight"] = weight
            fused_column = self.fused.chosen_index(weight)
        ranks = self.per_query.gather(fused_column)  # every rank joins the gather
        if full:
            self.validation_ranks = ranks
        return values

    def _finish_fused(self, values: dict) -> tuple[float, dict[str, torch.Tensor]]:
        """The best weight a of this pass and the fused metrics at it; records the mix in ``fusion``."""
        weight, fused = self.fused.compute()
        self.fused.reset()
        mrr_name = self.fused.mrr_name
        self.fusion = {
            "method": self.fused.method,
            "weight": weight,
            "chosen_by": "the best weight on the validation data during training",
            f"val/fused_{mrr_name}": float(fused[mrr_name]),
            f"val/{mrr_name}": float(values[mrr_name]),
        }
        return weight, fused
