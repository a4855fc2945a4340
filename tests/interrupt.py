"""A callback that simulates a job killed (or preempted) after a given optimiser step."""

from __future__ import annotations

import os
import signal

import lightning as L


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
