"""Is the reranker better than its first stage? Per-query ranks of a validation pass and paired tests.

When the validation candidates carry the first stage's scores, one validation pass ranks the same lists
three ways: by the first stage's scores (higher first; ties count against the positive, as in every
scored row of ``reranker evaluate``), by the reranker, and fused. :class:`PerQueryRanks` keeps each
query's first relevant rank per ranking, gathered from every DDP rank into validation-set order, and
:func:`compare_with_first_stage` turns them into the paired tests ``evaluate`` runs (same per-query
values, same test, same seed), as flat ``paired/<run>_vs_first_stage/<metric>/<field>`` entries.
"""

from __future__ import annotations

import torch

from reranker.evaluation.significance import paired_test
from reranker.evaluation.tables import per_query_values

FIRST_STAGE = "first_stage"
TESTED = ("reranker", "fused")  # each tested against the first stage
FIELDS = ("difference", "ci_low", "ci_high", "p_value")


class PerQueryRanks:
    """First relevant ranks of one validation pass, per ranking (``first_stage``, ``reranker``, ``fused``)."""

    def __init__(self) -> None:
        self.parts: dict[str, list[torch.Tensor]] = {}

    def add(self, name: str, rank: torch.Tensor) -> None:
        """Add a batch: ``[Q]`` ranks, or ``[Q, W]`` (one column per fusion weight) for ``fused``."""
        self.parts.setdefault(name, []).append(rank.detach().cpu())

    def clear(self) -> None:
        self.parts = {}

    def gather(self, fused_column: int | None = None) -> dict[str, list[int]]:
        """Every rank's ranks in validation-set order (a collective under DDP: every rank calls it), with
        ``fused`` cut to ``fused_column``; then cleared.

        The validation sampler gives rank ``r`` of ``W`` the items ``r, r + W, r + 2W, ...`` in order
        (:class:`~reranker.training.sampling.GroupSampler`), so item ``i`` of rank ``r`` is item
        ``r + i * W`` of the set: the order, and so the paired test's resamples, equal one process's.
        """
        local = {}
        for name, parts in sorted(self.parts.items()):
            ranks = torch.cat(parts)
            if ranks.ndim == 2:
                if fused_column is None:
                    continue
                ranks = ranks[:, fused_column]
            local[name] = ranks.tolist()
        self.clear()
        per_rank = [local]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            per_rank = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(per_rank, local)
        names = sorted({name for ranks in per_rank for name in ranks})
        return {name: _interleave([ranks.get(name, []) for ranks in per_rank]) for name in names}


def _interleave(per_rank: list[list[int]]) -> list[int]:
    world_size = len(per_rank)
    merged: list[int | None] = [None] * sum(len(values) for values in per_rank)
    for rank, values in enumerate(per_rank):
        for index, value in enumerate(values):
            merged[rank + index * world_size] = value
    if any(value is None for value in merged):
        raise RuntimeError("validation items are not laid out r, r + W, ... across ranks")
    return merged


def compare_with_first_stage(
    ranks: dict[str, list[int]],
    mrr_k: int,
    hit_ks: tuple[int, ...],
    samples: int = 10000,
    seed: int = 0,
) -> dict[str, float]:
    """Paired tests of the reranker and of the fused ranking against the first stage on MRR@k and the
    first hit@k (``evaluate``'s pair), as ``paired/<run>_vs_first_stage/<metric>/<field>`` and
    ``paired/queries``; empty without first-stage ranks."""
    if FIRST_STAGE not in ranks:
        return {}
    hit_ks = tuple(hit_ks)
    tested_metrics = [f"mrr@{mrr_k}", *(f"hit@{k}" for k in hit_ks[:1])]
    values = {
        name: per_query_values(torch.tensor(rank, dtype=torch.long), mrr_k, hit_ks)
        for name, rank in ranks.items()
    }
    results: dict[str, float] = {"paired/queries": float(len(ranks[FIRST_STAGE]))}
    for run in TESTED:
        if run not in values:
            continue
        for metric in tested_metrics:
            test = paired_test(values[FIRST_STAGE][metric], values[run][metric], samples, seed)
            for field in FIELDS:
                results[f"paired/{run}_vs_{FIRST_STAGE}/{metric}/{field}"] = test[field]
    return results
