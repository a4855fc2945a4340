"""Attention with dropout that keeps no attention matrix for the backward pass (``model.recompute_attention``).

PyTorch's fused CPU attention has no dropout, so with attention dropout a model falls back to the plain
path, which keeps three ``[batch, heads, L, L]`` tensors a layer for the backward pass (the probabilities,
their dropped-out copy and the dropout mask): at 32 pairs of 256 tokens, 225 MB a layer. This attention
keeps the queries, keys and values it already had, the dropout mask as bytes and one log-sum-exp a row, and
computes the probabilities again in the backward pass: one more ``Q Kᵀ`` product and softmax a layer, for
what is the largest share of a training step's memory at long lengths.

The result is the plain path's (the same softmax, dropout with the same keep probability and scaling),
with its own draw of the dropout mask. Without dropout (evaluation, or ``attention_dropout=0``) the call
goes to PyTorch's fused kernel, as the ``sdpa`` implementation does.
"""

from __future__ import annotations

import torch

from reranker.core.errors import InputError
from reranker.model.kinds import EncoderClassifier, ModelKind

NAME = "reranker_recompute"


class RecomputedAttention(torch.autograd.Function):
    """``dropout(softmax(Q Kᵀ · scale + bias)) V`` for ``[B, H, L, D]`` inputs; ``bias`` ``[B or 1, 1 or H, L,
    L]`` additive (0 where attended) or None; saves no ``[L, L]`` float tensor for the backward pass."""

    @staticmethod
    def forward(ctx, query, key, value, bias, dropout: float, scale: float):
        scores = torch.matmul(query, key.transpose(-1, -2)).mul_(scale)  # [B, H, L, L]
        if bias is not None:
            scores.add_(bias)
        log_sum = torch.logsumexp(scores, dim=-1, keepdim=True)  # [B, H, L, 1]
        probabilities = scores.sub_(log_sum).exp_()
        keep = torch.empty_like(probabilities).bernoulli_(1.0 - dropout).bool()  # [B, H, L, L]
        dropped = probabilities.masked_fill_(~keep, 0.0).mul_(1.0 / (1.0 - dropout))
        output = torch.matmul(dropped, value)  # [B, H, L, D]
        ctx.save_for_backward(query, key, value, bias, log_sum, keep)
        ctx.dropout, ctx.scale = dropout, scale
        return output

    @staticmethod
    def backward(ctx, grad_output):
        query, key, value, bias, log_sum, keep = ctx.saved_tensors
        scale, factor = ctx.scale, 1.0 / (1.0 - ctx.dropout)
        scores = torch.matmul(query, key.transpose(-1, -2)).mul_(scale)
        if bias is not None:
            scores.add_(bias)
        probabilities = scores.sub_(log_sum).exp_()  # [B, H, L, L], as in the forward pass
        dropped = probabilities.masked_fill(~keep, 0.0).mul_(factor)
        grad_value = torch.matmul(dropped.transpose(-1, -2), grad_output)  # [B, H, L, D]
        del dropped
        grad_dropped = torch.matmul(grad_output, value.transpose(-1, -2))  # [B, H, L, L]
        grad_probabilities = grad_dropped.masked_fill_(~keep, 0.0).mul_(factor)
        # Softmax: dS = P ⊙ (dP − Σ_j dP_j P_j)
        row = (grad_probabilities * probabilities).sum(dim=-1, keepdim=True)  # [B, H, L, 1]
        grad_scores = grad_probabilities.sub_(row).mul_(probabilities).mul_(scale)
        grad_query = torch.matmul(grad_scores, key)
        grad_key = torch.matmul(grad_scores.transpose(-1, -2), query)
        return grad_query, grad_key, grad_value, None, None, None


def additive_bias(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A boolean mask (True: attended) as an additive bias; a float mask is one already."""
    if mask is None or mask.dtype != torch.bool:
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(
        ~mask, torch.finfo(dtype).min
    )


def recomputed_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """The attention function registered as :data:`NAME`: ``[B, L, H, D]`` output as transformers expects."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if dropout == 0.0 or not torch.is_grad_enabled():
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    bias = additive_bias(attention_mask, query.dtype)
    output = RecomputedAttention.apply(query, key, value, bias, dropout, scale)
    return output.transpose(1, 2).contiguous(), None


def register() -> str:
    """Make :data:`NAME` an attention implementation transformers knows (with the sdpa mask); returns it.
    The interfaces are transformers 5's; imported here so the module loads under transformers 4 too."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(NAME, recomputed_attention_forward)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME


def use_recomputed_attention(model: torch.nn.Module, kind: ModelKind) -> None:
    """Switch an encoder cross-encoder's attention to :data:`NAME`; any other kind is an error."""
    if not isinstance(kind, EncoderClassifier):
        raise InputError(
            f"model.recompute_attention: encoder cross-encoders only; this model is a {type(kind).__name__} "
            "(set it to false)"
        )
    model.set_attn_implementation(register())
