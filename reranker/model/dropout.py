"""Dropout of a loaded model while it trains: every dropout layer, or the attention probabilities alone.

The values are set on the modules, not in the model's config, so an export keeps the base model's values.
"""

from __future__ import annotations

from torch import nn

from reranker.core.errors import InputError


def set_dropout(model: nn.Module, probability: float) -> None:
    """Set the probability of every ``nn.Dropout`` layer of ``model``."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = probability


def set_attention_dropout(model: nn.Module, probability: float) -> int:
    """Set the dropout on attention probabilities of every attention layer; returns how many were set.

    Encoders (BERT, XLM-R) keep it as an ``nn.Dropout`` named ``dropout`` in their self-attention module,
    decoders (Llama, Qwen, Gemma) as a float ``attention_dropout``; both are handed to the attention
    function at each call, so the value set here is the one used.
    """
    count = 0
    for module in model.modules():
        if not type(module).__name__.endswith("Attention"):
            continue
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = probability
            count += 1
        elif isinstance(getattr(module, "dropout", None), nn.Dropout):
            module.dropout.p = probability
            count += 1
    return count


def check_dropout(dropout: float | None, attention_dropout: float | None) -> None:
    """``model.dropout`` and ``model.attention_dropout`` are each null or in [0, 1)."""
    for name, value in (("dropout", dropout), ("attention_dropout", attention_dropout)):
        if value is not None and not 0.0 <= value < 1.0:
            raise InputError(f"model.{name} must be in [0, 1) or null, got {value}")


def apply_dropout(model: nn.Module, dropout: float | None, attention_dropout: float | None) -> None:
    """Set ``dropout`` on every dropout layer, then ``attention_dropout`` on the attention probabilities;
    None leaves a value as it is. An attention dropout above 0 for a model without one is an error."""
    if dropout is not None:
        set_dropout(model, dropout)
    if attention_dropout is None:
        return
    if not set_attention_dropout(model, attention_dropout) and attention_dropout > 0:
        raise InputError(
            f"model.attention_dropout: {type(model).__name__} has no attention dropout to set (set it to null)"
        )
