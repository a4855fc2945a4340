"""Position-aware ListMLE: the likelihood of the labels' order, its top positions weighted most."""

from __future__ import annotations

import torch
from torch import nn

from reranker.training.losses.group_ce import check_scores


class PListMLE(nn.Module):
    """``sum_i w_i * (log sum_{k >= i} exp(s_{pi_k}) - s_{pi_i}) / sum_i w_i`` per query, averaged over queries.

    ``pi`` orders the group by label, largest first; passages with equal labels keep their column order
    (the sampler draws negatives in random order, so that is a random tie-break). Each position ``i``
    (from 1) is the choice of ``pi_i`` among the passages not yet placed, weighted ``w_i = 2^(G - i) - 1``:
    getting the top right matters most, and the last position (a choice among one) weighs nothing.
    Dividing by ``sum_i w_i`` keeps the loss on one scale whatever the group size.

    References:
        Lan et al., "Position-Aware ListMLE: A Sequential Learning Process for Ranking" (UAI 2014); Xia et al.,
        "Listwise Approach to Learning to Rank: Theory and Algorithm" (ICML 2008) for ListMLE.
    """

    teachers: dict[str, str] = {}  # reads no teacher column

    def forward(self, scores: torch.Tensor, batch: dict) -> torch.Tensor:
        """Mean over the queries of the batch; ``scores`` is ``[B, G]``."""
        labels = batch["labels"]  # [B, G]
        check_scores(scores, labels)
        group_size = scores.shape[1]
        order = labels.argsort(dim=1, descending=True, stable=True)  # [B, G] column at each position
        ordered = scores.float().gather(1, order)  # [B, G]
        # log sum over positions k >= i: a reversed cumulative logsumexp.
        remaining = ordered.flip(1).logcumsumexp(dim=1).flip(1)  # [B, G]
        positions = torch.arange(1, group_size + 1, device=scores.device, dtype=ordered.dtype)
        weights = torch.pow(2.0, group_size - positions) - 1.0  # [G]
        per_query = ((remaining - ordered) * weights).sum(dim=1) / weights.sum()  # [B]
        return per_query.mean()
