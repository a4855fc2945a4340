"""The command-line options of data-parallel scoring (:mod:`reranker.model.parallel_scoring`), shared by every
command that scores over processes (``prepare teacher``, ``prepare mine``, ``evaluate``). Kept apart from the
scoring itself so that parsing arguments does not import Lightning."""

from __future__ import annotations

import argparse
from pathlib import Path

from reranker.core.errors import InputError
from reranker.model.shards import SHARD_SIZE


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


def check_parallel_options(devices: int | None, device: str | None, cache: str | Path | None) -> None:
    """The one-process options have no meaning with ``--devices``: say so rather than ignore them."""
    if devices is not None and (device is not None or cache is not None):
        raise InputError(
            "--device and --cache belong to the one-process path; with --devices, --accelerator picks the "
            "device and the shard folder written with the output resumes a killed run"
        )
