"""ListNet: softmax cross-entropy between the group's scores and a target distribution over the group."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from reranker.core.errors import InputError
from reranker.training.losses.group_ce import check_positive, check_scores
from reranker.training.losses.teachers import teacher_column

TARGETS = ("labels", "teacher")


class ListNet(nn.Module):
    """``-sum_j softmax(y / T)_j * log softmax(s)_j`` over each query's group, averaged over the queries.

    The target ``y`` is the batch's ``labels`` (graded labels give a graded distribution; binary ones put
    ``e^(1/T) / (e^(1/T) + G - 1)`` on the positive) or, with ``targets: teacher``, the teacher's scores.
    The target is chosen by the config, never guessed from the batch: data with both labels and teacher
    scores uses the one ``targets`` names. With teacher targets, passages without a teacher score (NaN)
    are masked out of both softmaxes, and a query with fewer than two scored passages adds nothing (the
    loss is averaged over the queries that have two or more; 0 when none has).

    Args:
        targets: ``labels`` or ``teacher``, where the target distribution comes from.
        temperature: T > 0 divides the targets (labels or teacher scores) before their softmax; below 1
            sharpens the target, towards the one-hot of group cross-entropy.

    References:
        Cao et al., "Learning to Rank: From Pairwise Approach to Listwise Approach" (ICML 2007), the top-one
        probability form of ListNet.
    """

    def __init__(self, targets: str = "labels", temperature: float = 1.0) -> None:
        super().__init__()
        if targets not in TARGETS:
            raise InputError(f"loss.targets must be one of {', '.join(TARGETS)}, got {targets!r}")
        self.targets = targets
        self.temperature = check_positive("temperature", temperature)
        # Config field -> the teacher column it reads; train() checks the data carries each.
        self.teachers = {"loss.targets": "scores"} if targets == "teacher" else {}

    def forward(self, scores: torch.Tensor, batch: dict) -> torch.Tensor:
        """Mean over queries; ``scores`` is ``[B, G]``, the target ``[B, G]`` (NaN: an unscored passage)."""
        labels = batch["labels"]  # [B, G]
        check_scores(scores, labels)
        target = teacher_column(batch, "scores") if self.targets == "teacher" else labels
        return masked_softmax_cross_entropy(scores.float(), target.float() / self.temperature)


def masked_softmax_cross_entropy(student: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of ``-sum_j softmax(target)_j log softmax(student)_j`` over the queries with two or more
    finite targets, both softmaxes over those passages only; 0 when no query has two."""
    scored = torch.isfinite(target)  # [B, G]
    counted = scored.sum(dim=1) >= 2  # [B]
    # A query with no finite target would softmax over nothing (NaN); give it every column, then drop it.
    columns = scored | ~scored.any(dim=1, keepdim=True)  # [B, G]
    target = torch.where(scored, target, torch.zeros_like(target))
    student_log_p = F.log_softmax(student.masked_fill(~columns, -math.inf), dim=1)  # [B, G]
    target_p = F.softmax(target.masked_fill(~columns, -math.inf), dim=1)  # [B, G]
    terms = torch.where(columns, -target_p * student_log_p, torch.zeros_like(student))  # [B, G]
    return (terms.sum(dim=1) * counted).sum() / counted.sum().clamp(min=1)
