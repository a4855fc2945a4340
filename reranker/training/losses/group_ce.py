"""Listwise group cross-entropy: each query's positive is scored against its negatives."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def check_scores(scores: torch.Tensor, labels: torch.Tensor) -> None:
    """Scores and labels must both be ``[B, G]`` with the same shape."""
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ValueError(
            f"scores of shape {tuple(scores.shape)} do not match labels of shape {tuple(labels.shape)} "
            "(both must be [queries, group size])"
        )


def positive_column(labels: torch.Tensor) -> torch.Tensor:
    """The column of each query's positive: the one with the largest label (the first on a tie)."""
    return labels.argmax(dim=1)  # [B]


class GroupCrossEntropy(nn.Module):
    """Cross-entropy of each query's positive against the other passages of its group.

    For a group of scores ``s`` whose positive is column ``p`` (the largest label; the sampler puts it
    first): ``-log(exp(s_p) / sum_j exp(s_j))``, averaged over the queries of the batch. The group shape
    comes from the batch's ``labels`` ``[B, G]``, never from the batch size, so a last partial batch works.

    References:
        Nogueira and Cho, "Passage Re-ranking with BERT" (2019); the listwise form used by
        FlagEmbedding's reranker (Xiao et al., "C-Pack", 2023).
    """

    needs_teacher = False

    def forward(self, scores: torch.Tensor, batch: dict) -> torch.Tensor:
        """Mean loss over the queries of the batch; ``scores`` is ``[B, G]``."""
        labels = batch["labels"]  # [B, G]
        check_scores(scores, labels)
        return F.cross_entropy(scores.float(), positive_column(labels))
