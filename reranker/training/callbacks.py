"""Callbacks used by the default configuration."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class FiniteModelCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that refreshes ``last.ckpt`` after every validation and writes nothing while the
    training loss is non-finite.

    Lightning writes ``last.ckpt`` only at validations that also write a top-k checkpoint, so a run
    killed after a validation without improvement would resume from further back than necessary. The
    module skips steps whose loss is NaN or infinite; a validation inside such a streak would otherwise
    save (and, as the first one, rank as best) a checkpoint of a diverging run.
    """

    def _should_skip_saving_checkpoint(self, trainer: L.Trainer) -> bool:
        in_nonfinite_streak = getattr(trainer.lightning_module, "nonfinite_in_a_row", 0) > 0
        return in_nonfinite_streak or super()._should_skip_saving_checkpoint(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def _refresh_last(self, trainer: L.Trainer) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            self._last_global_step_saved = trainer.global_step
