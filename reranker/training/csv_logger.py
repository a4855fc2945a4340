"""A CSV logger whose ``metrics.csv`` survives resumes: every row of every start, each logged step once."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities import rank_zero_only

from reranker.core.atomic import atomic_write


def _identity(row: dict[str, Any]) -> tuple:
    logged = frozenset(key for key, value in row.items() if value not in ("", None))
    return str(row.get("step")), str(row.get("epoch", "")), logged


class _CheckpointedWriter(ExperimentWriter):
    """Rows reach ``metrics.csv`` only with a checkpoint (or at the end of a run), so the file always
    matches a state a resume starts from: rows logged after the last checkpoint of a killed run are
    logged again by the resumed run, and written once. Each write replaces the file whole."""

    def _check_log_dir_exists(self) -> None:
        """Lightning deletes an earlier ``metrics.csv`` here; a resumed run keeps it."""

    def save(self) -> None:
        """Lightning's periodic flush: rows wait for the next checkpoint instead."""

    def start_fresh(self) -> None:
        Path(self.metrics_file_path).unlink(missing_ok=True)

    def commit(self) -> None:
        """Append the rows logged so far to ``metrics.csv``."""
        if not self.metrics:
            return
        path = Path(self.metrics_file_path)
        rows: list[dict[str, Any]] = []
        if path.is_file():
            with open(path, newline="") as file:
                rows = list(csv.DictReader(file))
        # A row logged again for the same step, epoch and metrics replaces the earlier one: the validation
        # of the best checkpoint after fit, rerun by a run resumed after it was written.
        position = {_identity(row): index for index, row in enumerate(rows)}
        for row in self.metrics:
            index = position.get(_identity(row))
            if index is None:
                rows.append(row)
            else:
                rows[index] = row
        fieldnames = sorted(set().union(*rows))
        with atomic_write(path, newline="") as file:
            writer = csv.DictWriter(file, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)
        self.metrics = []


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSVLogger, except that a resumed run (``ckpt_path``) adds to the earlier rows instead of
    deleting them, so the best of ``metrics.csv`` is the best of the whole run. ``train`` calls
    :meth:`start_fresh` for a run that does not resume."""

    @property
    @rank_zero_experiment
    def experiment(self) -> _CheckpointedWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _CheckpointedWriter(log_dir=self.log_dir)
        return self._experiment

    @rank_zero_only
    def start_fresh(self) -> None:
        self.experiment.start_fresh()

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback) -> None:
        self.experiment.commit()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        # A failed run's last rows are past its last checkpoint: the resumed run logs them again.
        if self._experiment is not None and status != "failed":
            self.experiment.commit()
