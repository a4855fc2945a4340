"""Listwise group cross-entropy: each query's positive is scored against its negatives."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class GroupCrossEntropy(nn.Module):
    """Cross-entropy over groups of ``group_size`` scores whose first entry is the positive.

    The scores of a batch arrive flat, query after query: ``[q0_pos, q0_neg1, ..., q1_pos, ...]``.
    They are reshaped to ``[B, group_size]`` using the configured group size, never one inferred from
    the batch size, so a last partial batch (fewer queries) works and a malformed one fails loudly.

    Args:
        group_size: candidates per query (one positive and ``group_size - 1`` negatives); at least 2.

    References:
        Nogueira and Cho, "Passage Re-ranking with BERT" (2019); the listwise form used by
        FlagEmbedding's reranker (Xiao et al., "C-Pack", 2023).
    """

    def __init__(self, group_size: int) -> None:
        super().__init__()
        if not isinstance(group_size, int) or group_size < 2:
            raise ValueError(
                f"group_size must be an integer >= 2 (one positive and at least one negative), got {group_size!r}"
            )
        self.group_size = group_size

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        """Mean loss over the queries of the batch; ``scores`` is ``[B * group_size]`` or ``[B, group_size]``."""
        if scores.numel() == 0 or scores.numel() % self.group_size != 0:
            raise ValueError(
                f"got {scores.numel()} scores, which is not a whole number of groups of {self.group_size}"
            )
        logits = scores.reshape(-1, self.group_size).float()  # [B, G]
        target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        return F.cross_entropy(logits, target)
