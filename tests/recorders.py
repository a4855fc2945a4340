"""Callbacks that record what a run did, for tests to check: the queries of every training and validation
batch (per rank), so that resume and sharding promises are checked on what ran, not only on end states."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import lightning as L
import torch
from hydra.experimental.callback import Callback as HydraCallback

from reranker.evaluation.metrics import _RankMetric


def _pair_key(features: dict[str, torch.Tensor], row: int) -> tuple[int, ...]:
    """The token ids of one tokenised pair without its padding."""
    ids = features["input_ids"][row]
    return tuple(ids[features["attention_mask"][row].bool()].tolist())


class RecordQueries(L.Callback):
    """Append one JSON line per training and validation batch to ``<path>.rank<R>``: the stage, epoch,
    global step, batch index and the record indices of the batch's queries.

    A query is recognised by its first pair (query, first positive), tokenised as the run tokenises it;
    the test data gives every query one positive, which training puts first in its group.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.train_keys: dict[tuple[int, ...], int] = {}
        self.val_keys: dict[tuple[int, ...], int] = {}

    def setup(self, trainer: L.Trainer, pl_module, stage: str) -> None:
        datamodule = trainer.datamodule
        datamodule.setup(stage)
        encode = datamodule.encoder
        records = datamodule.train_groups.records
        features = encode(list(records["query"]), [pos[0] for pos in records["pos"]])
        self.train_keys = {_pair_key(features, i): i for i in range(len(records))}
        items = datamodule.val_groups.items
        features = encode([item[0] for item in items], [item[1][0] for item in items])
        self.val_keys = {_pair_key(features, i): i for i in range(len(items))}
        assert len(self.train_keys) == len(records) and len(self.val_keys) == len(items), "ambiguous pairs"

    def _write(self, trainer: L.Trainer, stage: str, batch_idx: int, queries: list[int]) -> None:
        line = {
            "stage": stage,
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
            "batch_idx": batch_idx,
            "queries": queries,
        }
        with Path(f"{self.path}.rank{trainer.global_rank}").open("a") as file:
            file.write(json.dumps(line) + "\n")

    def on_train_batch_start(self, trainer: L.Trainer, pl_module, batch, batch_idx: int) -> None:
        features = batch["features"]
        group_size = trainer.datamodule.group_size
        rows = range(0, features["input_ids"].shape[0], group_size)
        self._write(trainer, "train", batch_idx, [self.train_keys[_pair_key(features, row)] for row in rows])

    def on_validation_batch_start(self, trainer: L.Trainer, pl_module, batch, batch_idx: int, *args) -> None:
        features = batch["features"]
        rows = (batch["column"] == 0).nonzero().view(-1).tolist()
        self._write(trainer, "val", batch_idx, [self.val_keys[_pair_key(features, row)] for row in rows])


class RecordValidatedCounts(L.Callback):
    """Append, at the end of every validation pass, one JSON line to ``<path>.rank<R>``: the number of
    queries each ranking metric state of the module counted on this rank (before the states are reduced
    over ranks and reset: callbacks run before the module's own ``on_validation_epoch_end``)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        counts = {
            name: int(module.rank_counts.sum())
            for name, module in pl_module.named_modules()
            if isinstance(module, _RankMetric)
        }
        with Path(f"{self.path}.rank{trainer.global_rank}").open("a") as file:
            file.write(json.dumps(counts) + "\n")


def read_records(path: Path, rank: int = 0) -> list[dict]:
    """The lines a :class:`RecordQueries` wrote for ``rank`` (empty when it wrote none)."""
    file = Path(f"{path}.rank{rank}")
    return [json.loads(line) for line in file.read_text().splitlines()] if file.is_file() else []


class RecordWeights(L.Callback):
    """Append ``{"batch_idx", "step", "digest"}`` after every training batch to ``<path>.rank<R>``; the
    digest (of every parameter's bytes) is equal exactly when the weights are."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        digest = hashlib.sha256()
        for parameter in pl_module.parameters():
            digest.update(parameter.detach().cpu().numpy().tobytes())
        line = {"batch_idx": batch_idx, "step": trainer.global_step, "digest": digest.hexdigest()}
        with Path(f"{self.path}.rank{trainer.global_rank}").open("a") as file:
            file.write(json.dumps(line) + "\n")


class RecordGradients(L.Callback):
    """Save the gradients that the first optimiser step applies (accumulated, before clipping) to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module, optimizer) -> None:
        if trainer.global_step == 0:
            gradients = {
                n: p.grad.detach().clone() for n, p in pl_module.named_parameters() if p.grad is not None
            }
            torch.save(gradients, self.path)


class RecordReturns(HydraCallback):
    """A Hydra callback: one JSON line per finished job of a sweep with its number and what ``main()``
    returned (``NaN`` for a diverged run), appended to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_job_end(self, config, job_return, **kwargs) -> None:
        line = {"job": config.hydra.job.num, "returned": job_return.return_value}
        with Path(self.path).open("a") as file:
            file.write(json.dumps(line) + "\n")
