"""AdamW with a linear warm-up and decay over the run's optimiser steps.

The number of steps is counted from the datamodule's batches per epoch and the trainer's limits, as
Lightning's ``estimated_stepping_batches`` counts it, without building the training loader: a loader
built before a checkpoint's loop state is restored would not resume mid-epoch where the run stopped.
"""

from __future__ import annotations

import math

import lightning as L
import torch
from torch import nn
from transformers import get_linear_schedule_with_warmup


def planned_steps(trainer: L.Trainer, batches_per_epoch: int) -> int | float:
    """Optimiser steps of the run: ``batches_per_epoch`` training batches an epoch, cut by
    ``limit_train_batches``, ``accumulate_grad_batches`` to a step, for ``max_epochs``, at most ``max_steps``."""
    if trainer.max_epochs == -1:
        return float("inf") if trainer.max_steps == -1 else trainer.max_steps
    limit = trainer.limit_train_batches
    batches = batches_per_epoch
    if batches and isinstance(limit, int):
        batches = min(batches, limit)
    elif batches and isinstance(limit, float):
        batches = int(batches * limit)
    steps = math.ceil(batches / trainer.accumulate_grad_batches) * max(trainer.max_epochs, 1)
    return min(steps, trainer.max_steps) if trainer.max_steps != -1 else steps


def adamw_with_schedule(
    model: nn.Module,
    trainer: L.Trainer,
    lr: float,
    weight_decay: float,
    warmup_ratio: float,
    fused: bool | None,
) -> dict:
    """Lightning's optimiser configuration: AdamW over the weights that train (no weight decay on biases
    and norms), and a linear schedule stepped every optimiser step."""
    no_decay, decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        is_norm_or_bias = name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name
        (no_decay if is_norm_or_bias or parameter.ndim == 1 else decay).append(parameter)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        fused=fused,
    )
    batches_per_epoch = getattr(trainer.datamodule, "train_batches_per_epoch", None)
    if batches_per_epoch is not None:
        total_steps = planned_steps(trainer, batches_per_epoch())
    else:  # another datamodule: Lightning builds its training loader to count
        total_steps = trainer.estimated_stepping_batches
    total_steps = max(1, int(total_steps))
    warmup_steps = int(warmup_ratio * total_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
