"""Margin-MSE distillation: the student's (positive - negative) margins regress onto the teacher's."""

from __future__ import annotations

import torch
from torch import nn

from reranker.training.losses.group_ce import check_scores, positive_column


class MarginMSE(nn.Module):
    """Mean squared error between the student's and the teacher's score margins.

    For each query with positive ``p`` (the largest label) and each negative ``j`` of its group:
    ``((s_p - s_j) - (t_p - t_j))**2``, averaged over the (positive, negative) pairs where the teacher
    scores both passages (NaN in ``teacher_scores`` leaves a pair out; a batch with no such pair gives 0).
    Only the margins are compared, so the teacher's scores may sit on any offset.

    References:
        Hofstätter et al., "Improving Efficient Neural Ranking Models with Cross-Architecture Knowledge
        Distillation" (2020).
    """

    needs_teacher = True

    def forward(self, scores: torch.Tensor, batch: dict) -> torch.Tensor:
        """Mean over scored pairs; ``scores`` is ``[B, G]``, ``batch["teacher_scores"]`` ``[B, G]``."""
        labels = batch["labels"]  # [B, G]
        check_scores(scores, labels)
        teacher = batch["teacher_scores"].float()  # [B, G]
        student = scores.float()
        positive = positive_column(labels).unsqueeze(1)  # [B, 1]
        student_margin = student.gather(1, positive) - student  # [B, G]
        teacher_margin = teacher.gather(1, positive) - teacher  # [B, G] NaN where either is unscored
        is_negative = labels < labels.gather(1, positive)  # [B, G]
        pairs = is_negative & torch.isfinite(teacher_margin)
        squared = (student_margin - torch.where(pairs, teacher_margin, student_margin)) ** 2
        return squared.sum() / pairs.sum().clamp(min=1)
