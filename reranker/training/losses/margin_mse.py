"""Margin-MSE distillation: the student's (positive - negative) margins regress onto the teacher's."""

from __future__ import annotations

import torch
from torch import nn

from reranker.training.losses.group_ce import check_positive, check_scores, positive_column
from reranker.training.losses.teachers import check_teacher, teacher_column


class MarginMSE(nn.Module):
    """Mean squared error between the student's and the (scaled) teacher's score margins.

    For each query with positive ``p`` (the largest label) and each negative ``j`` of its group:
    ``((s_p - s_j) - teacher_scale * (t_p - t_j))**2``, averaged over the (positive, negative) pairs where
    the teacher scores both passages (NaN in the teacher column leaves a pair out, e.g. a random corpus
    negative; a batch with no such pair gives 0). Only the margins are compared, so the teacher's scores may
    sit on any offset; ``teacher_scale`` brings a teacher on another scale (a retriever's cosine, whose
    margins are a few hundredths) to the student's logits.

    Args:
        teacher: the teacher column, ``scores`` (``pos_scores``/``neg_scores``, a teacher cross-encoder's) or
            ``first_stage`` (``pos_first_stage``/``neg_first_stage``, the retriever's own scores).
        teacher_scale: multiplies the teacher's margins; > 0.

    References:
        Hofstätter et al., "Improving Efficient Neural Ranking Models with Cross-Architecture Knowledge
        Distillation" (2020).
    """

    def __init__(self, teacher: str = "scores", teacher_scale: float = 1.0) -> None:
        super().__init__()
        self.teacher = check_teacher("loss.teacher", teacher)
        self.teacher_scale = check_positive("teacher_scale", teacher_scale)
        # Config field -> the teacher column it reads; train() checks the data carries each.
        self.teachers = {"loss.teacher": self.teacher}

    def forward(self, scores: torch.Tensor, batch: dict) -> torch.Tensor:
        """Mean over scored pairs; ``scores`` is ``[B, G]``, the teacher column ``[B, G]``."""
        labels = batch["labels"]  # [B, G]
        check_scores(scores, labels)
        teacher = teacher_column(batch, self.teacher) * self.teacher_scale  # [B, G]
        student = scores.float()
        positive = positive_column(labels).unsqueeze(1)  # [B, 1]
        student_margin = student.gather(1, positive) - student  # [B, G]
        teacher_margin = teacher.gather(1, positive) - teacher  # [B, G] NaN where either is unscored
        is_negative = labels < labels.gather(1, positive)  # [B, G]
        pairs = is_negative & torch.isfinite(teacher_margin)
        squared = (student_margin - torch.where(pairs, teacher_margin, student_margin)) ** 2
        return squared.sum() / pairs.sum().clamp(min=1)
