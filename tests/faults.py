"""Callbacks that inject faults: a job killed (or preempted) after a step, a NaN loss on one rank."""

from __future__ import annotations

import os
import signal

import lightning as L
import torch


class Interrupted(Exception):
    """Raised by :class:`InterruptAt` in place of the job being killed."""


class InterruptAt(L.Callback):
    """After optimiser step ``step``: optionally send ourselves ``SIGUSR1`` (Slurm's warning before the
    time limit; Lightning's handler saves and requeues on receipt), then stop the run as a kill would."""

    def __init__(self, step: int, send_sigusr1: bool = False) -> None:
        self.step = step
        self.send_sigusr1 = send_sigusr1

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if trainer.global_step != self.step:
            return
        if self.send_sigusr1:
            os.kill(os.getpid(), signal.SIGUSR1)  # handled before os.kill returns to Python code
        raise Interrupted(f"interrupted after step {self.step}")


class NaNOnRankAt(L.Callback):
    """Make the loss of batch ``batch_idx`` NaN on rank ``rank`` only (its classifier weights are NaN
    for that one forward pass and restored afterwards)."""

    def __init__(self, rank: int, batch_idx: int) -> None:
        self.rank = rank
        self.batch_idx = batch_idx
        self.saved: torch.Tensor | None = None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_rank == self.rank and batch_idx == self.batch_idx:
            weight = pl_module.model.classifier.weight
            self.saved = weight.detach().clone()
            with torch.no_grad():
                weight.fill_(float("nan"))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.saved is not None:
            with torch.no_grad():
                pl_module.model.classifier.weight.copy_(self.saved)
            self.saved = None
