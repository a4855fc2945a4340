"""Listwise group cross-entropy: each query's positive is scored against its negatives."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from reranker.core.errors import InputError


def check_scores(scores: torch.Tensor, labels: torch.Tensor) -> None:
    """Scores and labels must both be ``[B, G]`` with the same shape."""
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ValueError(
            f"scores of shape {tuple(scores.shape)} do not match labels of shape {tuple(labels.shape)} "
            "(both must be [queries, group size])"
        )


def check_positive(name: str, value: object) -> float:
    """``value`` as a float when it is a finite number > 0; else an InputError naming ``loss.<name>``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value > 0)
    ):
        raise InputError(f"loss.{name} must be a number > 0, got {value!r}")
    return float(value)


def positive_column(labels: torch.Tensor) -> torch.Tensor:
    """The column of each query's positive: the one with the largest label (the first on a tie)."""
    return labels.argmax(dim=1)  # [B]


class GroupCrossEntropy(nn.Module):
    """Cross-entropy of each query's positive against the other passages of its group.

    For a group of scores ``s`` whose positive is column ``p`` (the largest label; the sampler puts it
    first): ``-log(exp(s_p / T) / sum_j exp(s_j / T))``, averaged over the queries of the batch. The group
    shape comes from the batch's ``labels`` ``[B, G]``, never from the batch size, so a last partial batch
    works.

    Args:
        temperature: T > 0 divides the scores before the softmax. Below 1 sharpens the distribution, so
            the hardest negatives weigh more (the InfoNCE temperature); 1.0 is the plain cross-entropy.

    References:
        Nogueira and Cho, "Passage Re-ranking with BERT" (2019); the listwise form used by
        FlagEmbedding's reranker (Xiao et al., "C-Pack", 2023); the temperature as in InfoNCE (van den
        Oord et al., "Representation Learning with Contrastive Predictive Coding", 2018).
    """

    teachers: dict[str, str] = {}  # reads no teacher column

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = check_positive("temperature", temperature)

    def forward(self, scores: torch.Tensor, batch: dict) -> torch.Tensor:
        """Mean loss over the queries of the batch; ``scores`` is ``[B, G]``."""
        labels = batch["labels"]  # [B, G]
        check_scores(scores, labels)
        scores = scores.float()
        if self.temperature != 1.0:  # dividing by 1.0 is exact, but the default then runs no extra kernel
            scores = scores / self.temperature
        return F.cross_entropy(scores, positive_column(labels))
