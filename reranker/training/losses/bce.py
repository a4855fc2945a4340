"""Pointwise binary cross-entropy on each (query, passage) pair's label."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from reranker.core.errors import InputError
from reranker.training.losses.group_ce import check_scores


class BinaryCrossEntropy(nn.Module):
    """Binary cross-entropy with logits between each pair's score and its label, averaged over all pairs.

    ``-(w * y * log sigmoid(s) + (1 - y) * log(1 - sigmoid(s)))`` with ``w = pos_weight``. Labels may be
    graded, in [0, 1] (the triplet reader gives 1.0 for positives and 0.0 for negatives). Each pair is
    judged on its own, so the score is a calibrated relevance logit rather than only an order within
    the group.

    Args:
        pos_weight: weight of the positive term; > 0. A group holds one positive for ``G - 1``
            negatives, so ``G - 1`` balances the two classes.

    References:
        Nogueira and Cho, "Passage Re-ranking with BERT" (2019), the pointwise monoBERT objective.
    """

    teachers: dict[str, str] = {}  # reads no teacher column

    def __init__(self, pos_weight: float = 1.0) -> None:
        super().__init__()
        if not isinstance(pos_weight, int | float) or not (math.isfinite(pos_weight) and pos_weight > 0):
            raise InputError(f"loss.pos_weight must be a number > 0, got {pos_weight!r}")
        self.pos_weight = float(pos_weight)

    def forward(self, scores: torch.Tensor, batch: dict) -> torch.Tensor:
        """Mean over the ``B * G`` pairs; ``scores`` and ``batch["labels"]`` are ``[B, G]``."""
        labels = batch["labels"]  # [B, G]
        check_scores(scores, labels)
        pos_weight = scores.new_tensor(self.pos_weight, dtype=torch.float32)
        return F.binary_cross_entropy_with_logits(scores.float(), labels.float(), pos_weight=pos_weight)
