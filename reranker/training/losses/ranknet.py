"""RankNet: pairwise logistic loss over the pairs of a group whose labels differ."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from reranker.training.losses.group_ce import check_positive, check_scores


def ordered_pairs(labels: torch.Tensor) -> torch.Tensor:
    """``[B, G, G]``: True at ``(b, i, j)`` where passage ``i`` of query ``b`` has a larger label than ``j``."""
    return labels.unsqueeze(2) > labels.unsqueeze(1)


class RankNet(nn.Module):
    """``-log sigmoid(sigma * (s_i - s_j))`` for each pair ``(i, j)`` of a group with ``label_i > label_j``.

    Averaged over all such pairs of the batch (a batch without one gives 0); pairs with equal labels, such
    as two negatives, add nothing. With binary labels a group gives ``G - 1`` pairs, the positive against
    each negative; graded labels order the negatives among themselves too.

    Args:
        sigma: sigma > 0 scales the score differences inside the sigmoid.

    References:
        Burges et al., "Learning to Rank using Gradient Descent" (ICML 2005).
    """

    teachers: dict[str, str] = {}  # reads no teacher column

    def __init__(self, sigma: float = 1.0) -> None:
        super().__init__()
        self.sigma = check_positive("sigma", sigma)

    def forward(self, scores: torch.Tensor, batch: dict) -> torch.Tensor:
        """Mean over the ordered pairs of the batch; ``scores`` is ``[B, G]``."""
        labels = batch["labels"]  # [B, G]
        check_scores(scores, labels)
        scores = scores.float()
        differences = scores.unsqueeze(2) - scores.unsqueeze(1)  # [B, G, G] s_i - s_j
        pairs = ordered_pairs(labels)  # [B, G, G]
        # -log sigmoid(x) = softplus(-x), stable for large |x|.
        terms = torch.where(pairs, F.softplus(-self.sigma * differences), torch.zeros_like(differences))
        return terms.sum() / pairs.sum().clamp(min=1)
