"""Listwise distillation: KL divergence from a teacher's distribution over the group, mixed with group CE."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from reranker.core.errors import InputError
from reranker.training.losses.group_ce import GroupCrossEntropy, check_positive, check_scores
from reranker.training.losses.teachers import check_teacher, teacher_column


class DistillKL(nn.Module):
    """``alpha * CE + (1 - alpha) * temperature**2 * KL(teacher || student)`` over each query's group.

    The student's scores are divided by ``temperature``, the teacher's by ``teacher_temperature``, and each
    is turned into a distribution over the group by a softmax; KL is ``sum_j p_teacher_j * (log p_teacher_j -
    log p_student_j)``, averaged over the queries. ``temperature**2`` keeps the KL gradients on the scale of
    the CE gradients whatever the temperature (Hinton et al.). CE is :class:`GroupCrossEntropy` on the
    untempered scores. A teacher on another scale than the student's logits (a retriever's cosine in [-1, 1],
    a z-scored hybrid score) takes a temperature of its own: a cosine teacher at ``teacher_temperature``
    0.02 is its scores times 50.

    Passages without a teacher score (NaN, e.g. random corpus negatives, which have neither a cross-encoder
    teacher's nor a first-stage score) are masked: both softmaxes run over the scored passages of the group
    only, and a query with fewer than two scored passages adds nothing to KL (the KL is averaged over the
    queries that have two or more). The KL over a subset is still an exact comparison of the two models'
    orderings of those passages, so one unscored passage does not cost the whole group its teacher signal;
    CE still sees all of them.

    Args:
        alpha: weight of the group cross-entropy, in [0, 1]; 0 is pure distillation.
        temperature: divides the student's scores before the softmax (and the teacher's, unless
            ``teacher_temperature`` is given); > 0. Above 1 flattens the distributions so that the order of
            the negatives weighs more.
        teacher: the teacher column, ``scores`` (``pos_scores``/``neg_scores``, a teacher cross-encoder's) or
            ``first_stage`` (``pos_first_stage``/``neg_first_stage``, the retriever's own scores).
        teacher_temperature: divides the teacher's scores before their softmax; > 0, or None for
            ``temperature``.

    References:
        Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network" (2015); listwise
        distillation for rerankers as in FlagEmbedding's reranker training (``pos_scores``/``neg_scores``).
    """

    def __init__(
        self,
        alpha: float = 0.5,
        temperature: float = 1.0,
        teacher: str = "scores",
        teacher_temperature: float | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(alpha, int | float) or not 0.0 <= alpha <= 1.0:
            raise InputError(f"loss.alpha must be a number in [0, 1], got {alpha!r}")
        if not isinstance(temperature, int | float) or not (math.isfinite(temperature) and temperature > 0):
            raise InputError(f"loss.temperature must be a number > 0, got {temperature!r}")
        self.alpha = float(alpha)
        self.temperature = float(temperature)
        self.teacher = check_teacher("loss.teacher", teacher)
        self.teacher_temperature = (
            None
            if teacher_temperature is None
            else check_positive("teacher_temperature", teacher_temperature)
        )
        # Config field -> the teacher column it reads; train() checks the data carries each.
        self.teachers = {"loss.teacher": self.teacher}
        self.cross_entropy = GroupCrossEntropy()

    def forward(self, scores: torch.Tensor, batch: dict) -> torch.Tensor:
        """The mixed loss; ``scores`` is ``[B, G]``, the teacher column ``[B, G]`` with NaN where unknown."""
        check_scores(scores, batch["labels"])
        cross_entropy = self.cross_entropy(scores, batch)
        teacher_temperature = self.teacher_temperature or self.temperature
        kl = masked_kl(
            scores.float(), teacher_column(batch, self.teacher), self.temperature, teacher_temperature
        )
        return self.alpha * cross_entropy + (1.0 - self.alpha) * self.temperature**2 * kl


def masked_kl(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float, teacher_temperature: float
) -> torch.Tensor:
    """Mean KL(teacher || student) over the queries with two or more teacher scores; 0 when there are none.
    ``student / temperature`` and ``teacher / teacher_temperature`` are each softmaxed over the scored passages."""
    scored = torch.isfinite(teacher)  # [B, G]
    counted = scored.sum(dim=1) >= 2  # [B]
    # A query with no scored passage would softmax over nothing (NaN); give it every column, then drop it.
    columns = scored | ~scored.any(dim=1, keepdim=True)  # [B, G]
    teacher = torch.where(scored, teacher, torch.zeros_like(teacher))
    student_log_p = F.log_softmax((student / temperature).masked_fill(~columns, -math.inf), dim=1)
    teacher_log_p = F.log_softmax((teacher / teacher_temperature).masked_fill(~columns, -math.inf), dim=1)
    terms = teacher_log_p.exp() * (teacher_log_p - student_log_p)  # [B, G]
    per_query = torch.where(columns, terms, torch.zeros_like(terms)).sum(dim=1)  # [B]
    return (per_query * counted).sum() / counted.sum().clamp(min=1)
