"""Non-finite training losses: the step is skipped on every rank alike, counted, and a streak stops the run.

A NaN or infinite loss on one rank poisons the gradients all ranks reduce together, so the decision is
reduced over ranks: every rank drops the optimiser update of the same step, and no rank steps alone
(which would hang the next collective). The guard is a callback that :class:`~reranker.training.module.
RerankerModule` attaches itself, so every trainer that fits the module has it.
"""

from __future__ import annotations

import lightning as L
import torch

CHECKPOINT_KEY = "skipped_nonfinite"


class NonFiniteLossError(RuntimeError):
    """Training produced non-finite losses for too many steps in a row."""


class NonFiniteLossGuard(L.Callback):
    """Logs ``train/loss`` of finite steps and ``train/skipped_nonfinite`` (steps skipped so far) at every
    training batch; drops the optimiser update whose (accumulated) gradient includes a non-finite loss.

    Args:
        max_in_a_row: training stops with :class:`NonFiniteLossError` after this many consecutive batches
            whose loss is NaN or infinite on any rank.
    """

    def __init__(self, max_in_a_row: int = 10) -> None:
        super().__init__()
        self.max_in_a_row = max_in_a_row
        self.skipped = 0
        self.in_a_row = 0
        self.skip_optimizer_step = False
        self.batch_size = 1

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int
    ) -> None:
        labels = batch.get("labels") if isinstance(batch, dict) else None
        self.batch_size = int(labels.shape[0]) if labels is not None else 1  # [B, G]

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        # Every rank runs this for every batch: the reduction is a collective all ranks join.
        flag = (~torch.isfinite(loss.detach())).float()
        if float(trainer.strategy.reduce(flag, reduce_op="sum")) > 0:
            self._count(trainer.global_step)
            # Backward still runs (DDP ranks must all reduce gradients); the update is dropped before it.
            self.skip_optimizer_step = True
        else:
            self.in_a_row = 0
            # Lightning hands the loss over divided by the batches accumulated into one step.
            batch_loss = loss.detach() * trainer.accumulate_grad_batches
            pl_module.log("train/loss", batch_loss, prog_bar=True, batch_size=self.batch_size, sync_dist=True)
        # The same on every rank: the non-finite flag is reduced over ranks.
        pl_module.log("train/skipped_nonfinite", float(self.skipped), batch_size=self.batch_size)

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self.skip_optimizer_step:
            self.skip_optimizer_step = False
            drop_update(optimizer, getattr(trainer.precision_plugin, "scaler", None))

    def _count(self, step: int) -> None:
        self.skipped += 1
        self.in_a_row += 1
        if self.in_a_row >= self.max_in_a_row:
            raise NonFiniteLossError(
                f"the training loss was NaN or infinite on {self.in_a_row} steps in a row "
                f"(step {step}, {self.skipped} skipped in all); stopping. Under fp16 "
                "(precision=16-mixed) this is usually overflow: use trainer.precision=bf16-mixed where the GPU "
                "supports it (or 32-true), or lower model.lr"
            )

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = self.skipped

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self.skipped = checkpoint.get(CHECKPOINT_KEY, 0)


def drop_update(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> None:
    """Make the coming optimiser step change nothing: AdamW leaves a parameter without a gradient
    untouched; under fp16, NaN gradients make the GradScaler skip the step and lower its scale."""
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            if scaler is not None and parameter.grad is not None:
                parameter.grad.fill_(float("nan"))
            else:
                parameter.grad = None


def in_nonfinite_streak(trainer: L.Trainer) -> bool:
    """Whether the last training batch's loss was non-finite (on any rank)."""
    return any(isinstance(c, NonFiniteLossGuard) and c.in_a_row > 0 for c in trainer.callbacks)
