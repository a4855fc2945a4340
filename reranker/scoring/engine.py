"""Score groups of pairs over several processes (``--devices``, ``--num-nodes``) on Lightning's predict loop.

Lightning's predict loop under the DDP strategy is the launcher training already uses (``trainer=ddp``,
Slurm's environment read as is, the ``slurm/`` scripts), so scoring on 8 GPUs or 4 nodes needs no other
tool. Shards (:mod:`reranker.scoring.shards`) are cut by query, ``shard_size`` groups each; process ``r`` of
``W`` scores every ``W``-th unfinished shard from the ``r``-th, and batches within its shard only (pairs
sorted by token count, as :meth:`PairScorer.score` does), so every shard's scores, and the merged
result, are the same bytes whatever ``W`` is. Each process writes its shards whole; rank zero merges.

Commands reach it through :class:`reranker.scoring.pairs.PairScoring` with :class:`ParallelOptions`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.accelerators import CUDAAccelerator
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from reranker.core.errors import InputError
from reranker.model.identity import weights_identity
from reranker.model.pair_scorer import PairScorer
from reranker.scoring.options import ParallelOptions, scoring_dtype
from reranker.scoring.shards import ShardFolder, pairs_identity

Group = Sequence[tuple[str, str]]
MAX_TOKENS = 8192  # PairScorer.score's default: part of the batching, so part of the configuration


class ShardScoring(L.LightningModule):
    """One predict step scores one shard: its groups' unique pairs, batched within the shard."""

    def __init__(self, reranker: PairScorer, groups: Sequence[Group], shards: ShardFolder, batch_size: int):
        super().__init__()
        self.model = reranker.model  # a submodule: the strategy moves it to this process's device
        self.reranker, self.groups, self.shards, self.batch_size = reranker, groups, shards, batch_size

    def predict_dataloader(self) -> DataLoader:
        # Rank zero lists the unfinished shards before any process has written one: every rank takes
        # its share of the same list.
        unfinished = [i for i in range(len(self.shards.ranges)) if i not in self.shards.finished()]
        unfinished = self.trainer.strategy.broadcast(unfinished, src=0)
        mine = unfinished[self.global_rank :: self.trainer.world_size]
        # One shard number a step. A rank left without a shard (fewer unfinished shards than processes:
        # a resumed run, a small round of ``prepare mine``) takes one empty step: Lightning refuses a rank
        # with no batch.
        return DataLoader(mine or [None], batch_size=None)

    def on_predict_start(self) -> None:
        self.reranker.device = self.device

    def predict_step(self, index: int | None) -> tuple[int, list[list[float]]] | None:
        if index is None:
            return None
        rows = self.shards.ranges[index]
        unique = list(dict.fromkeys(pair for row in rows for pair in self.groups[row]))
        scores = dict(
            zip(unique, self.reranker.score(unique, self.batch_size, max_tokens=MAX_TOKENS), strict=True)
        )
        return index, [[scores[pair] for pair in self.groups[row]] for row in rows]


class ShardWriter(Callback):
    """Writes each scored shard whole as soon as it is done; a progress bar of rank zero's shards."""

    def __init__(self, shards: ShardFolder) -> None:
        self.shards = shards
        self.bar = None

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from tqdm.auto import tqdm

        total = int(sum(trainer.num_predict_batches))
        self.bar = tqdm(total=total, unit="shards", file=sys.stderr, disable=not trainer.is_global_zero)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if outputs is None:  # the empty step of a rank without a shard
            return
        index, scores = outputs
        self.shards.write(index, scores)
        self.bar.update(1)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.bar.close()


def score_groups(
    groups: Sequence[Group],
    model: str,
    folder: str | Path,
    task: str,
    parallel: ParallelOptions | None = None,
    max_length: int | None = None,
    batch_size: int = 32,
    dtype: str | None = None,
    seed: int | None = None,
    every_rank: bool = False,
) -> list[list[float]] | None:
    """Each group's scores (raw logits, aligned with its pairs), sharded in ``folder`` and merged.

    Returns the scores on global rank zero, None on every other rank (which must then write nothing), or
    on every rank with ``every_rank`` (each reads the merged shards after the barrier: for a command whose
    ranks need the scores to go on). ``task`` names the command in the folder's configuration, so two
    commands never share shards. ``seed`` seeds torch before the model loads (a base model's new head is
    initialised at random: the same head on every rank) and is recorded in the configuration. ``dtype``
    None: float16 on GPU, float32 on CPU.
    """
    parallel = parallel or ParallelOptions()  # one process
    devices, num_nodes, shard_size = parallel.devices, parallel.num_nodes, parallel.shard_size
    for name, value in (("devices", devices), ("num_nodes", num_nodes), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"{name} must be an integer >= 1, got {value!r}")
    world = devices * num_nodes
    trainer = L.Trainer(
        accelerator=parallel.accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy="ddp" if world > 1 else "auto",
        precision="32-true",  # the weights are cast to ``dtype`` themselves, as a one-process run does
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        use_distributed_sampler=False,  # shards are dealt to ranks by predict_dataloader
        default_root_dir=str(folder),
    )
    on_gpu = isinstance(trainer.accelerator, CUDAAccelerator)
    dtype = scoring_dtype(dtype, on_gpu)
    if seed is not None:
        torch.manual_seed(seed)
    reranker = PairScorer(model, max_length=max_length, device="cpu", dtype=dtype)
    config = {
        "task": task,
        "model": weights_identity(model),
        "pairs": pairs_identity(groups),
        "max_length": reranker.max_length,
        "query_max_length": reranker.query_max_length,
        "batch_size": batch_size,
        "max_tokens": MAX_TOKENS,
        "dtype": dtype,
        "device": "cuda" if on_gpu else "cpu",
        "shard_size": shard_size,
        # Absent for a command without a seed, so the folders it wrote before stay valid.
        **({"seed": seed} if seed is not None else {}),
    }
    shards = ShardFolder(folder, config, [len(group) for group in groups])
    shards.open()
    finished = shards.finished()  # a foreign or doubled shard stops the run before it starts
    if len(finished) < len(shards.ranges):
        trainer.callbacks.append(ShardWriter(shards))
        trainer.predict(ShardScoring(reranker, groups, shards, batch_size), return_predictions=False)
        trainer.strategy.barrier()  # every rank's last shard is written before rank zero merges
    if not (every_rank or trainer.is_global_zero):
        return None
    return shards.merge()


def leave_scoring_processes() -> bool:
    """End this process's part in the scoring processes once a command has scored all it scores; returns
    whether it is global rank zero (True for one process, or where no shard needed scoring).

    What follows runs alone on rank zero: the process group Lightning leaves up is destroyed, else a
    torchmetrics metric would sync over it with ranks that have returned."""
    if not (dist.is_available() and dist.is_initialized()):
        return True
    zero = dist.get_rank() == 0
    dist.destroy_process_group()
    return zero
