"""Choose the fusion weight a: on a grid, by MRR@k, on validation queries or by k-fold cross-validation.

Cross-validation splits the evaluation queries into ``folds`` random folds; each fold is scored with the a
tuned on the other folds, so no query is ever ranked with a weight chosen on it. Where several weights tie
for the best MRR, the middle one of them is taken (the centre of a plateau moves least between folds).
"""

from __future__ import annotations

import random

import torch

from reranker.core.errors import InputError
from reranker.evaluation.evalsets import EvalSet
from reranker.evaluation.metrics import MRR, first_relevant_rank
from reranker.model.fusion import WEIGHTED, Fusion, fuse

GRID = tuple(step / 20 for step in range(21))  # 0.00, 0.05, ..., 1.00


def choose_weight(grid: tuple[float, ...], values: list[float]) -> int:
    """Index of the best value; among ties, the middle one (the lower middle for an even count)."""
    best = max(values)
    tied = [i for i, value in enumerate(values) if value >= best - 1e-12]
    return tied[(len(tied) - 1) // 2]


def mrr_by_weight(
    reranker: torch.Tensor,
    first_stage: torch.Tensor,
    relevance: torch.Tensor,
    mask: torch.Tensor,
    method: str = "zscore",
    grid: tuple[float, ...] = GRID,
    mrr_k: int = 10,
) -> list[float]:
    """MRR@k of the fused ranking for each weight of ``grid``; inputs are ``[Q, C]``."""
    metric = MRR(mrr_k)
    values = []
    for weight in grid:
        fused = fuse(reranker, first_stage, Fusion(method, weight), mask)  # [Q, C]
        values.append(float(metric.per_query(first_relevant_rank(fused, relevance, mask)).mean()))
    return values


def tune_weight(
    reranker: torch.Tensor,
    first_stage: torch.Tensor,
    relevance: torch.Tensor,
    mask: torch.Tensor,
    method: str = "zscore",
    grid: tuple[float, ...] = GRID,
    mrr_k: int = 10,
) -> tuple[float, float]:
    """``(a, MRR@k at a)``: the grid weight that ranks these queries best."""
    if method not in WEIGHTED:
        raise InputError(f"only {', '.join(WEIGHTED)} have a weight to tune, got {method!r}")
    values = mrr_by_weight(reranker, first_stage, relevance, mask, method, grid, mrr_k)
    best = choose_weight(grid, values)
    return grid[best], values[best]


def assign_folds(num_queries: int, folds: int, seed: int = 0) -> list[int]:
    """Fold of each query: a seeded shuffle dealt round-robin, so fold sizes differ by at most one."""
    if not isinstance(folds, int) or not 2 <= folds <= num_queries:
        raise InputError(f"cross-validation needs 2 <= folds <= queries ({num_queries}), got {folds!r}")
    order = list(range(num_queries))
    random.Random(f"folds-{seed}").shuffle(order)
    fold = [0] * num_queries
    for position, query in enumerate(order):
        fold[query] = position % folds
    return fold


def cross_validate(
    reranker: torch.Tensor,
    first_stage: torch.Tensor,
    relevance: torch.Tensor,
    mask: torch.Tensor,
    method: str = "zscore",
    folds: int = 5,
    grid: tuple[float, ...] = GRID,
    mrr_k: int = 10,
    seed: int = 0,
) -> tuple[torch.Tensor, list[dict]]:
    """Fused scores ``[Q, C]``, each fold's queries mixed with the a tuned on the other folds.

    Returns the scores and, per fold, ``{"fold", "weight", "queries", "tuning_mrr"}`` (``tuning_mrr``: MRR@k
    of the other folds at the chosen a) and ``"rows"`` (the fold's query rows).
    """
    fold_of = assign_folds(reranker.shape[0], folds, seed)
    fused = torch.full(reranker.shape, float("-inf"), dtype=torch.float64)
    report = []
    for fold in range(folds):
        held = torch.tensor([q for q, f in enumerate(fold_of) if f == fold], dtype=torch.long)
        rest = torch.tensor([q for q, f in enumerate(fold_of) if f != fold], dtype=torch.long)
        weight, tuning_mrr = tune_weight(
            reranker[rest], first_stage[rest], relevance[rest], mask[rest], method, grid, mrr_k
        )
        fused[held] = fuse(reranker[held], first_stage[held], Fusion(method, weight), mask[held])
        report.append(
            {
                "fold": fold,
                "weight": weight,
                "queries": len(held),
                "tuning_mrr": tuning_mrr,
                "rows": held.tolist(),
            }
        )
    return fused, report


def fused_run(
    eval_set: EvalSet,
    model_scores: list[float],
    method: str = "zscore",
    weight: float | None = None,
    rrf_k: int = 60,
    folds: int = 5,
    mrr_k: int = 10,
    seed: int = 0,
    validation: EvalSet | None = None,
    validation_scores: list[float] | None = None,
) -> tuple[list[float], dict]:
    """A model's scores fused with the first stage's, in ``eval_set.pairs()`` order, and how a was chosen.

    a is ``weight`` when given, else tuned on ``validation`` (scored by the same model as
    ``validation_scores``) when given, else chosen by ``folds``-fold cross-validation on ``eval_set`` (at
    most one fold per query).
    ``rrf`` has no weight.
    """
    reranker, relevance, mask = eval_set.dense(model_scores)  # [Q, C] each
    first_stage = eval_set.dense(eval_set.first_stage_fusion_scores())[0]  # [Q, C]
    info: dict = {
        "method": method,
        "queries_with_first_stage_scores": eval_set.queries_with_first_stage_scores(),
        "queries": len(eval_set),
    }
    if method == "rrf" or weight is not None:
        fusion = Fusion(method, weight, rrf_k)
        fused = fuse(reranker, first_stage, fusion, mask)
        info.update(fusion.to_dict(), chosen_by="rrf: no weight" if method == "rrf" else "fixed")
    elif validation is not None:
        v_reranker, v_relevance, v_mask = validation.dense(validation_scores)
        v_first_stage = validation.dense(validation.first_stage_fusion_scores())[0]
        weight, validation_mrr = tune_weight(
            v_reranker, v_first_stage, v_relevance, v_mask, method, GRID, mrr_k
        )
        fused = fuse(reranker, first_stage, Fusion(method, weight), mask)
        info.update(
            weight=weight,
            chosen_by="validation",
            validation_queries=len(validation),
            validation_queries_with_first_stage_scores=validation.queries_with_first_stage_scores(),
            **{f"validation_mrr@{mrr_k}": validation_mrr},
        )
    else:
        if len(eval_set) < 2:
            raise InputError(
                "cross-validating the fusion weight needs at least 2 queries; give a validation set or a fixed a"
            )
        folds = min(folds, len(eval_set))  # at most one fold per query
        fused, report = cross_validate(
            reranker, first_stage, relevance, mask, method, folds, GRID, mrr_k, seed
        )
        for fold in report:
            fold["qids"] = [eval_set.qids[row] for row in fold.pop("rows")]
        info.update(chosen_by=f"{folds}-fold cross-validation", folds=report)
    flat = [
        value for row, cands in enumerate(eval_set.candidates) for value in fused[row, : len(cands)].tolist()
    ]
    return flat, info
