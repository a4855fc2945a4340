"""Silence dependency notices a user can do nothing about, so that a run's output (a terminal, a log file,
a Slurm job's output) shows what the run did.

Dropped: Lightning's LitLogger tips, its notes on how it schedules validation and counts steps and on the
non-finite loss guard the module attaches, the ``LeafSpec`` deprecation warning PyTorch raises inside
Lightning, and the ``datasets`` progress bars of the (cached) triplet reading. transformers' loading report is replaced where the model is loaded
(:func:`reranker.model.loading.load_cross_encoder`). Warnings and errors about the run itself stay.
"""

from __future__ import annotations

import logging
import warnings

import datasets

# Beginnings of Lightning info messages that carry nothing for a reranker user.
LIGHTNING_NOTICES = (
    "💡 Tip:",
    "`Trainer(val_check_interval=",
    "Loading `train_dataloader` to estimate number of stepping batches",
    # The module attaches its non-finite loss guard to every trainer it runs on, again at each call.
    "The following callbacks returned in `LightningModule.configure_callbacks` will override existing "
    "callbacks passed to Trainer: NonFiniteLossGuard",
)


class _DropNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).lstrip().startswith(LIGHTNING_NOTICES)


def quiet_dependency_notices() -> None:
    """Install the filters (idempotent)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(existing, _DropNotices) for existing in logger.filters):
            logger.addFilter(_DropNotices())
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    datasets.disable_progress_bars()
