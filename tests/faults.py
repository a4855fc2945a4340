"""Faults to inject: a job interrupted (or preempted) after a step, a NaN loss on one rank, and SIGKILL at
a chosen moment: inside a step, before an update, during validation, while a checkpoint or the export
is written."""

from __future__ import annotations

import os
import signal
from collections import Counter

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


# SIGKILL at a chosen moment of a run (in a child process): the process dies at once, with no exception,
# no cleanup and no flush, as under the out-of-memory killer or a node lost. Set by install_kill().
KILL: dict = {"kind": None, "n": 0, "after_bytes": 0}
COUNTS: Counter = Counter()


def _count(kind: str) -> bool:
    """Count an event; True when it is the one to die at."""
    COUNTS[kind] += 1
    return KILL["kind"] == kind and COUNTS[kind] == KILL["n"]


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillAt(L.Callback):
    """SIGKILL inside a training step (after the forward pass, before backward), before an optimiser
    update, or inside a validation pass (zero-shot, during fit or of the best checkpoint)."""

    def on_before_backward(self, *args) -> None:
        if _count("step"):
            _die()

    def on_before_optimizer_step(self, *args) -> None:
        if _count("update"):
            _die()

    def on_validation_batch_end(self, *args) -> None:
        if _count("validation"):
            _die()


class _KillingFile:
    """A file that dies after ``after_bytes`` written to it, or on close, whichever comes first."""

    def __init__(self, file, after_bytes: int) -> None:
        self._file = file
        self._left = after_bytes

    def write(self, data) -> int:
        data = memoryview(data).cast("B")
        if len(data) >= self._left:
            self._file.write(data[: self._left])
            self._file.flush()
            _die()
        self._left -= len(data)
        return self._file.write(data)

    def close(self) -> None:
        self._file.flush()
        _die()

    def __enter__(self):
        return self

    def __exit__(self, *args) -> None:
        self.close()

    def __getattr__(self, name):
        return getattr(self._file, name)


def install_kill(kind: str | None, n: int = 0, after_bytes: int = 0) -> None:
    """Die at the ``n``-th event of ``kind``: ``step``, ``update``, ``validation`` (with :class:`KillAt`
    among the callbacks), ``checkpoint`` (the n-th file written while Lightning saves a checkpoint, cut
    after ``after_bytes``) or ``export`` (likewise while the best checkpoint is exported). Every event is
    counted in ``COUNTS`` either way."""
    import builtins

    import lightning.pytorch as pl

    import reranker.train

    KILL.update(kind=kind, n=n, after_bytes=after_bytes)
    phase = {"now": None}

    def during(name, function):
        def wrapped(*args, **kwargs):
            phase["now"] = name
            try:
                return function(*args, **kwargs)
            finally:
                phase["now"] = None

        return wrapped

    pl.Trainer.save_checkpoint = during("checkpoint", pl.Trainer.save_checkpoint)
    reranker.train.export_checkpoint = during("export", reranker.train.export_checkpoint)
    real_open = builtins.open

    def open_(file, mode="r", *args, **kwargs):
        opened = real_open(file, mode, *args, **kwargs)
        if phase["now"] and any(flag in mode for flag in "wax") and _count(phase["now"]):
            return _KillingFile(opened, after_bytes)
        return opened

    builtins.open = open_


def run_killable(overrides: list[str], kill: dict, counts_file: str | None = None) -> None:
    """``train`` as configured by ``overrides`` in this (child) process, to die as ``kill`` says; writes the
    events counted to ``counts_file`` if the run ends."""
    import json
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    from reranker.train import train

    install_kill(**kill)
    with initialize_config_dir(config_dir=str(Path(__file__).parents[1] / "conf"), version_base="1.3"):
        cfg = compose(
            config_name="train", overrides=[*overrides, "+callbacks.kill._target_=tests.faults.KillAt"]
        )
    train(cfg)
    if counts_file:
        Path(counts_file).write_text(json.dumps(COUNTS))


def save_checkpoint_killed(path: str, step: int, after_bytes: int) -> None:
    """Save a checkpoint of ``step`` to ``path`` as training does, dying after ``after_bytes`` written."""
    import builtins

    from reranker.training.checkpoint_io import AtomicCheckpointIO

    real_open = builtins.open

    def open_(file, mode="r", *args, **kwargs):
        opened = real_open(file, mode, *args, **kwargs)
        return _KillingFile(opened, after_bytes) if "w" in mode else opened

    builtins.open = open_
    AtomicCheckpointIO().save_checkpoint(checkpoint_at(step), path)


def checkpoint_at(step: int) -> dict:
    """A checkpoint of a few hundred kB (written in many pieces) at ``step``."""
    return {"global_step": step, "state_dict": {"weight": torch.arange(100_000, dtype=torch.float32) + step}}
