"""The options of scoring many pairs, as the commands that score take them (``evaluate``, ``prepare teacher``,
``prepare mine``'s filter): the scoring model's (``--max-length``, ``--batch-size``, ``--device``,
``--dtype``, ``--cache``) and those of scoring over processes (``--devices``, ``--num-nodes``,
``--accelerator``, ``--shard-size``), held by :class:`ParallelOptions`. Kept apart from the scoring itself
so that parsing arguments imports neither torch nor Lightning."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from reranker.core.errors import InputError
from reranker.scoring.shards import SHARD_SIZE


@dataclasses.dataclass(frozen=True)
class ParallelOptions:
    """Scoring over processes on Lightning's predict loop (:mod:`reranker.scoring.engine`).

    Args:
        devices: processes per node, one per device.
        num_nodes: nodes (Slurm: one task per device).
        accelerator: ``cpu``, ``gpu`` or ``auto``.
        shard_size: groups (queries, triplets) per shard: part of the configuration a resumed run checks.
    """

    devices: int = 1
    num_nodes: int = 1
    accelerator: str = "auto"
    shard_size: int = SHARD_SIZE


def parallel_options(
    devices: int | None, num_nodes: int = 1, accelerator: str = "auto", shard_size: int = SHARD_SIZE
) -> ParallelOptions | None:
    """The options of ``--devices`` and its companions; None without ``--devices`` (one process)."""
    if devices is None:
        return None
    return ParallelOptions(devices, num_nodes, accelerator, shard_size)


def add_scoring_arguments(parser: argparse.ArgumentParser) -> None:
    """``--max-length``, ``--batch-size``, ``--device``, ``--dtype`` and ``--cache`` (``prepare teacher``
    and ``prepare mine``'s filter)."""
    parser.add_argument("--max-length", type=int, default=None,
                        help="tokens per (query, passage) pair (default: the length recorded with the model)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None, help="float16 on GPU by default, float32 on CPU")
    parser.add_argument(
        "--cache", help="score cache (SQLite), keyed by the model's weights; shared by commands"
    )


def add_parallel_arguments(parser: argparse.ArgumentParser) -> None:
    """``--devices``, ``--num-nodes``, ``--accelerator`` and ``--shard-size``."""
    parser.add_argument("--devices", type=int, default=None,
                        help="processes per node, one per device, scoring shards of queries written with the "
                             "output (resumable; the same bytes for any number). Default: one process, no shards")  # fmt: skip
    parser.add_argument(
        "--num-nodes", type=int, default=1, help="nodes, with --devices (Slurm: one task per device)"
    )
    parser.add_argument("--accelerator", default="auto", help="with --devices: cpu, gpu or auto")
    parser.add_argument("--shard-size", type=int, default=SHARD_SIZE,
                        help="queries per shard, with --devices (part of the configuration a resumed run checks)")  # fmt: skip


def check_parallel_options(
    parallel: ParallelOptions | None, device: str | None, cache: str | Path | None, shards: str | Path | None
) -> None:
    """The one-process options have no meaning over processes, and shards need a folder: say so rather than
    ignore them or write shards nowhere."""
    if parallel is None:
        return
    if device is not None or cache is not None:
        raise InputError(
            "--device and --cache belong to the one-process path; with --devices, --accelerator picks the "
            "device and the shard folder written with the output resumes a killed run"
        )
    if shards is None:
        raise InputError(
            "--devices needs --out: the shards that let a killed run resume are kept in OUT/shards/"
        )


def scoring_dtype(dtype: str | None, on_gpu: bool) -> str:
    """The precision the weights run in: the one asked for, else float16 on GPU and float32 on CPU."""
    return dtype or ("float16" if on_gpu else "float32")
