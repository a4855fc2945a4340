"""Training health: how far apart a group's scores are, and a warning when training has collapsed.

A cross-encoder that has collapsed gives every passage of a group about the same score: the group loss
then sits at the value a constant scorer gets (``ln G`` for group cross-entropy) and nothing is learnt.
Seen early, it is cheap to cure; seen in the final metrics, it has cost the whole run.
"""

from __future__ import annotations

import math

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_only

from reranker.core.errors import InputError
from reranker.training.losses.group_ce import positive_column

CURES = (
    "usually cured by a lower model.lr, model.dropout=0, a longer warm-up (model.warmup_ratio) "
    "or a smaller data.group_size"
)


def group_health(scores: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Sums over the groups of a batch (``scores``, ``labels`` ``[B, G]``): score spread (std within a
    group), margin (positive minus best negative) and groups ranked right (positive strictly first)."""
    scores = scores.detach().float()
    positive = positive_column(labels).unsqueeze(1)  # [B, 1]
    positive_scores = scores.gather(1, positive).squeeze(1)  # [B]
    is_negative = labels < labels.gather(1, positive)  # [B, G]
    best_negative = scores.masked_fill(~is_negative, -math.inf).max(dim=1).values  # [B]
    margin = positive_scores - best_negative  # [B]; -inf... +inf where a group has no negative
    has_negative = is_negative.any(dim=1)
    return {
        "score_spread": scores.std(dim=1, unbiased=False).sum(),
        "margin": torch.where(has_negative, margin, torch.zeros_like(margin)).sum(),
        "groups_ranked_right": ((margin > 0) & has_negative).sum().float(),
        "groups": torch.tensor(float(scores.shape[0])),
    }


class TrainingHealth(L.Callback):
    """Logs ``train/score_spread``, ``train/margin`` and ``train/groups_ranked_right`` (each the mean over
    the groups trained on since the last log) every ``every_n_steps`` optimiser steps and at each
    validation, and prints one warning line when training has collapsed.

    Collapse: for ``collapse_batches`` training batches in a row, the loss stays within
    ``loss_tolerance`` of the loss of a constant scorer on that batch (``ln G`` for group cross-entropy)
    and the scores of a group differ by less than ``spread_tolerance`` (their std, averaged over groups).

    Args:
        every_n_steps: optimiser steps between two logs of the health metrics; >= 1.
        collapse_batches: consecutive collapsed training batches before the warning; >= 1.
        loss_tolerance: epsilon around the constant scorer's loss; > 0.
        spread_tolerance: a group's scores with a std below this count as equal; > 0.
    """

    def __init__(
        self,
        every_n_steps: int = 50,
        collapse_batches: int = 50,
        loss_tolerance: float = 0.01,
        spread_tolerance: float = 0.01,
    ) -> None:
        super().__init__()
        for name, value in (("every_n_steps", every_n_steps), ("collapse_batches", collapse_batches)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"callbacks.health.{name} must be an integer >= 1, got {value!r}")
        for name, value in (("loss_tolerance", loss_tolerance), ("spread_tolerance", spread_tolerance)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise InputError(f"callbacks.health.{name} must be a number > 0, got {value!r}")
        self.every_n_steps = every_n_steps
        self.collapse_batches = collapse_batches
        self.loss_tolerance = float(loss_tolerance)
        self.spread_tolerance = float(spread_tolerance)
        self.window: dict[str, torch.Tensor] = {}
        self.collapsed_in_a_row = 0
        self.collapsed_at: int | None = None  # the optimiser step of the warning
        self.last: dict[str, float] = {}
        self._last_logged_step = -1

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        scores = getattr(pl_module, "last_train_scores", None)  # [B, G], set by training_step
        if scores is None or not isinstance(batch, dict) or "labels" not in batch:
            return
        labels = batch["labels"]
        sums = group_health(scores, labels)
        for name, value in sums.items():
            self.window[name] = self.window.get(name, 0.0) + float(value)
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self._watch_collapse(trainer, pl_module, scores, batch, loss, sums)
        step = trainer.global_step
        if step > 0 and step % self.every_n_steps == 0 and step != self._last_logged_step:
            self._last_logged_step = step
            self._log(trainer)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        self._log(trainer)

    def _log(self, trainer: L.Trainer) -> None:
        """Mean of each health metric over the groups of every rank since the last log (every rank calls
        this at the same step; nothing is logged when there were no groups).

        Written to the loggers directly: a value logged through ``LightningModule.log`` at some steps only
        would be written again, stale, at the steps between."""
        names = ("score_spread", "margin", "groups_ranked_right", "groups")
        sums = torch.stack(
            [torch.as_tensor(self.window.get(name, 0.0), dtype=torch.float64) for name in names]
        )
        self.window = {}
        sums = trainer.strategy.reduce(sums.to(trainer.strategy.root_device), reduce_op="sum").cpu()
        if float(sums[-1]) == 0:
            return
        self.last = {
            f"train/{name}": float(value / sums[-1])
            for name, value in zip(names[:-1], sums[:-1], strict=True)
        }
        for name, value in self.last.items():
            trainer.callback_metrics[name] = torch.tensor(value)
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(self.last, step=trainer.global_step)

    def _watch_collapse(self, trainer, pl_module, scores, batch, loss, sums) -> None:
        if loss is None or self.collapsed_at is not None:
            return
        with torch.no_grad():
            constant = float(pl_module.loss(torch.zeros_like(scores), batch))
        spread = float(sums["score_spread"] / sums["groups"])
        near = abs(float(loss) - constant) <= self.loss_tolerance and spread < self.spread_tolerance
        self.collapsed_in_a_row = self.collapsed_in_a_row + 1 if near else 0
        if self.collapsed_in_a_row >= self.collapse_batches:
            self.collapsed_at = trainer.global_step
            self.constant_loss = constant
            _warn(self.warning())

    def warning(self) -> str:
        return (
            f"warning: training has collapsed (step {self.collapsed_at}): for {self.collapse_batches} batches "
            f"the loss stayed within {self.loss_tolerance:g} of a constant scorer's ({self.constant_loss:.4f}; "
            f"ln G for group_ce) and a group's scores differed by less than {self.spread_tolerance:g}; "
            f"{CURES}"
        )

    def summary(self) -> str:
        """The end-of-run report's line."""
        if self.collapsed_at is not None:
            return f"training health: collapsed at step {self.collapsed_at} (loss at a constant scorer's, equal scores); {CURES}"
        if not self.last:
            return "training health: no collapse seen (no health metrics logged)"
        return (
            "training health: no collapse seen; last score spread {score_spread:.4f}, margin {margin:.4f}, "
            "groups ranked right {groups_ranked_right:.4f}".format(
                **{name.split("/")[1]: value for name, value in self.last.items()}
            )
        )


@rank_zero_only
def _warn(line: str) -> None:
    print(line, flush=True)
