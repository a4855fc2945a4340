"""Checkpoints written whole or not at all: a process killed while saving leaves the previous file in place."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from reranker.core.atomic import atomic_write

# Beside the checkpoints (the same file system, so the rename is atomic), and named so that neither
# ckpt_path=last nor Lightning's search for hpc_ckpt_<N>.ckpt ever takes a partial file for a checkpoint.
PARTIAL_DIR = ".partial"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to ``<folder>/.partial/<name>``, flush it to disk, then rename it into place.

    Lightning's own save stages the file in the system temporary folder and moves it: on a cluster whose
    ``/tmp`` is another file system than the run folder, that move is a copy that a kill (Slurm preemption,
    out-of-memory) can cut short, leaving a truncated ``last.ckpt`` that the requeued job then fails to load;
    a multi-gigabyte checkpoint may not fit a small ``/tmp`` either. Remote paths (``s3://...``) keep
    Lightning's behaviour.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path) or storage_options is not None:
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        partial = path.parent / PARTIAL_DIR / path.name
        partial.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb", temporary=partial, sync=True) as file:
            torch.save(checkpoint, file)


def remove_partial_checkpoints(checkpoint_dir: str | Path) -> None:
    """Remove the files a killed run was writing (``<checkpoint_dir>/.partial``); none is ever resumed from."""
    shutil.rmtree(Path(checkpoint_dir) / PARTIAL_DIR, ignore_errors=True)
