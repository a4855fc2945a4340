"""LambdaLoss with the NDCG-Loss2++ weighting: pairwise logistic terms weighted by their effect on NDCG."""

from __future__ import annotations

import math

import torch
from torch import nn

from reranker.core.errors import InputError
from reranker.training.losses.group_ce import check_positive, check_scores
from reranker.training.losses.ranknet import ordered_pairs


class LambdaLoss(nn.Module):
    """``-sum w_ij * log2 sigmoid(sigma * (s_i - s_j))`` over the pairs ``label_i > label_j`` of a group.

    The passages are ranked by the model's scores (ties in column order); ``r_i`` is passage ``i``'s
    rank, from 1. With gains ``G_i = (2^label_i - 1) / maxDCG`` (maxDCG: the DCG of the ideal order) and
    discounts ``D_r = log2(1 + r)``, the NDCG-Loss2++ weight of a pair is

        ``w_ij = |G_i - G_j| * (mu * delta_ij + |1/D_{r_i} - 1/D_{r_j}|)``,
        ``delta_ij = |1/D_{|r_i - r_j|} - 1/D_{|r_i - r_j| + 1}|``,

    NDCG-Loss2 (``delta``, a bound on the NDCG loss) plus the LambdaRank weight, ``mu`` setting the mix.
    The weights are not differentiated: they come from the ranks. Each query's sum is averaged over the
    queries of the batch; a query whose labels are all equal adds 0.

    Args:
        mu: weight of the NDCG-Loss2 term, >= 0 (10 in the paper's experiments).
        sigma: sigma > 0 scales the score differences inside the sigmoid.

    References:
        Wang et al., "The LambdaLoss Framework for Ranking Metric Optimization" (CIKM 2018), NDCG-Loss2++.
    """

    teachers: dict[str, str] = {}  # reads no teacher column

    def __init__(self, mu: float = 10.0, sigma: float = 1.0) -> None:
        super().__init__()
        if isinstance(mu, bool) or not isinstance(mu, int | float) or not (math.isfinite(mu) and mu >= 0):
            raise InputError(f"loss.mu must be a number >= 0, got {mu!r}")
        self.mu = float(mu)
        self.sigma = check_positive("sigma", sigma)

    def forward(self, scores: torch.Tensor, batch: dict) -> torch.Tensor:
        """Mean over the queries of each query's weighted sum; ``scores`` is ``[B, G]``."""
        labels = batch["labels"].float()  # [B, G]
        check_scores(scores, labels)
        scores = scores.float()
        weights = ndcg_loss2pp_weights(scores.detach(), labels, self.mu)  # [B, G, G]
        differences = scores.unsqueeze(2) - scores.unsqueeze(1)  # [B, G, G] s_i - s_j
        log2_sigmoid = nn.functional.logsigmoid(self.sigma * differences) / math.log(2)
        pairs = ordered_pairs(labels)  # [B, G, G]
        terms = torch.where(pairs, -weights * log2_sigmoid, torch.zeros_like(differences))
        return terms.sum(dim=(1, 2)).mean()


def ndcg_loss2pp_weights(scores: torch.Tensor, labels: torch.Tensor, mu: float) -> torch.Tensor:
    """``[B, G, G]`` NDCG-Loss2++ weight of each (i, j) pair, indexed by column, from ranks by ``scores``."""
    group_size = scores.shape[1]
    order = scores.argsort(dim=1, descending=True, stable=True)  # [B, G] column at each rank
    ranks = order.argsort(dim=1) + 1  # [B, G] rank of each column, from 1
    discount = torch.log2(1.0 + torch.arange(1, group_size + 2, device=scores.device, dtype=scores.dtype))
    inverse = 1.0 / discount  # [G + 1] 1/D_r for r = 1 .. G + 1
    gains = torch.pow(2.0, labels) - 1.0  # [B, G]
    ideal = gains.sort(dim=1, descending=True).values  # [B, G]
    max_dcg = (ideal * inverse[:group_size]).sum(dim=1, keepdim=True).clamp(min=1e-10)  # [B, 1]
    gains = gains / max_dcg
    gain_gaps = (gains.unsqueeze(2) - gains.unsqueeze(1)).abs()  # [B, G, G]
    rank_gaps = (ranks.unsqueeze(2) - ranks.unsqueeze(1)).abs()  # [B, G, G], 0 on the diagonal
    # delta at gap 0 (the diagonal, never a pair) indexes a placeholder; it is zeroed below.
    delta = (inverse[(rank_gaps - 1).clamp(min=0)] - inverse[rank_gaps]).abs()
    delta = torch.where(rank_gaps > 0, delta, torch.zeros_like(delta))
    rank_inverse = inverse[ranks - 1]  # [B, G] 1/D_{r_i}
    lambda_rank = (rank_inverse.unsqueeze(2) - rank_inverse.unsqueeze(1)).abs()  # [B, G, G]
    return gain_gaps * (mu * delta + lambda_rank)
