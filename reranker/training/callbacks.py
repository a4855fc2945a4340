"""Callbacks used by the default configuration: checkpoints, and progress shown as a bar or as plain lines."""

from __future__ import annotations

import sys
import time

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, RichProgressBar
from lightning.pytorch.trainer.states import TrainerFn

from reranker.core.errors import InputError
from reranker.core.progress import duration
from reranker.training.nonfinite import in_nonfinite_streak


class FiniteModelCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that refreshes ``last.ckpt`` after every validation and writes nothing while the
    training loss is non-finite.

    Lightning writes ``last.ckpt`` only at validations that also write a top-k checkpoint, so a run
    killed after a validation without improvement would resume from further back than necessary. The
    module skips steps whose loss is NaN or infinite; a validation inside such a streak would otherwise
    save (and, as the first one, rank as best) a checkpoint of a diverging run.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.validated = False  # whether the last validation of this fit ran a batch

    def _should_skip_saving_checkpoint(self, trainer: L.Trainer) -> bool:
        return in_nonfinite_streak(trainer) or super()._should_skip_saving_checkpoint(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.validated = False

    def on_validation_batch_end(self, trainer: L.Trainer, *args, **kwargs) -> None:
        if not trainer.sanity_checking:
            self.validated = True

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning writes last.ckpt at the end only when this call wrote none: a run whose last validation
        # came before its last step kept older weights there, and resuming it trained those steps again.
        self._refresh_last(trainer)
        super().on_train_end(trainer, pl_module)

    def _refresh_last(self, trainer: L.Trainer) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            self._last_global_step_saved = trainer.global_step

    def _save_topk_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict) -> None:
        # Before the first validation of the run (a run stopped mid-epoch, or validation switched off) the
        # monitored metric does not exist yet: nothing to rank, and nothing to warn about. A monitor that is
        # still missing after a validation (a misspelt metric) stays Lightning's error.
        if self.monitor is not None and self.monitor not in monitor_candidates and not self.validated:
            return
        super()._save_topk_checkpoint(trainer, monitor_candidates)


def progress_bar(every_n_steps: int = 50) -> ProgressBar:
    """Lightning's rich bar on a terminal; plain progress lines where output is not one (a log file, a
    Slurm job), where a bar that redraws itself leaves nothing readable."""
    return RichProgressBar() if sys.stdout.isatty() else ProgressLines(every_n_steps)


class ProgressLines(ProgressBar):
    """Training progress as plain lines every ``every_n_steps`` optimiser steps, and one line per validation:

    ``step 100/1320 (epoch 1/4)  loss 1.0123  pairs/s 85.2  elapsed 0:01:10  eta 0:14:21``
    """

    def __init__(self, every_n_steps: int = 50) -> None:
        super().__init__()
        if not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise InputError(
                f"callbacks.progress_bar.every_n_steps must be an integer >= 1, got {every_n_steps!r}"
            )
        self.every_n_steps = every_n_steps
        self._enabled = True
        self._started = 0.0
        self._first_step = 0
        self._pairs = 0
        self._last_printed = -1

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.monotonic()
        self._first_step = trainer.global_step  # a resumed run counts its speed from where it resumed
        self._pairs = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        features = batch.get("features", {}) if isinstance(batch, dict) else {}
        if "input_ids" in features:
            self._pairs += int(features["input_ids"].shape[0])
        step = trainer.global_step
        if not self._enabled or step == self._last_printed or step % self.every_n_steps:
            return
        self._last_printed = step
        print(self._line(trainer, step), flush=True)

    def _line(self, trainer: L.Trainer, step: int) -> str:
        elapsed = time.monotonic() - self._started
        total = trainer.max_steps if trainer.max_steps > 0 else int(trainer.estimated_stepping_batches)
        parts = [f"step {step}/{total}"]
        if trainer.max_epochs is not None and trainer.max_epochs > 0:
            parts[0] += f" (epoch {trainer.current_epoch + 1}/{trainer.max_epochs})"
        loss = trainer.callback_metrics.get("train/loss")
        if loss is not None:
            parts.append(f"loss {float(loss):.4f}")
        parts.append(f"pairs/s {self._pairs / max(elapsed, 1e-9):.1f}")
        parts.append(f"elapsed {duration(elapsed)}")
        done = step - self._first_step
        if done > 0 and total > step:
            parts.append(f"eta {duration(elapsed / done * (total - step))}")
        return "  ".join(parts)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # During fit only: the validations before and after it are reported in train's before/after table.
        if not self._enabled or trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        values = [
            f"{key} {float(value):.4f}"
            for key, value in trainer.callback_metrics.items()
            if key.startswith("val/")
        ]
        if values:
            print(f"validation at step {trainer.global_step}: " + "  ".join(values), flush=True)
