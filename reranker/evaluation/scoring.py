"""A model's scores for an evaluation set's pairs (what ``reranker evaluate`` ranks by).

One process scores every pair in one call (batched by length across the whole set); with ``--cache``, pairs
the same model scored before are read back from a SQLite score cache and only the others are scored.

With ``--devices N`` (and ``--num-nodes``) the set is scored over processes on Lightning's predict loop
(:mod:`reranker.model.parallel_scoring`), one group a query, in shards of ``--shard-size`` queries written
to ``OUT/shards/<model>/`` (``OUT/shards/fusion-val/<model>/`` for ``--fusion-val``): a killed run resumes
from its finished shards, and the scores are the same bytes for any number of processes. Shards batch
their own pairs only, so their last digits can differ from the one-process path's.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from reranker.core.cache import Cache, cached_scores
from reranker.core.errors import InputError
from reranker.evaluation.evalsets import EvalSet
from reranker.model.parallel_options import check_parallel_options
from reranker.model.shards import SHARD_SIZE

# (evaluation set, model path, shard folder name) → flat scores in ``pairs()`` order; None on a
# data-parallel rank other than global rank zero.
SetScorer = Callable[[EvalSet, str, str], "list[float] | None"]


def score_pairs(
    pairs: list[tuple[str, str]],
    path: str,
    max_length: int | None = None,
    batch_size: int = 32,
    seed: int = 0,
    device: str | None = None,
    cache: str | Path | None = None,
) -> list[float]:
    """Scores of a model; with ``cache`` (a SQLite file, or a folder that gets ``scores.sqlite``), pairs the
    same model scored before are read back and only the others are scored."""
    # A retrained model in the same place has new files: their sizes and times are part of the identity.
    files = (
        sorted(Path(path).glob("*")) if Path(path).is_dir() else [Path(path)] if Path(path).is_file() else []
    )
    stamp = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    identity = ("evaluate", json.dumps([path, stamp, max_length, seed]))
    reranker = None

    def score(chunk: list[tuple[str, str]]) -> list[float]:
        nonlocal reranker
        if reranker is None:  # loaded only when some pair is not in the cache
            from reranker.model.reranker_model import RerankerModel

            print(f"scoring {len(pairs)} pairs with {path}", file=sys.stderr)
            # A base model's new classification head is initialised at random: seed it for repeatable rows.
            torch.manual_seed(seed)
            reranker = RerankerModel(path, max_length=max_length, device=device)
        return reranker.score(chunk, batch_size)

    if cache is None:
        return score(pairs)
    if Path(cache).is_dir():
        cache = Path(cache) / "scores.sqlite"
    store = Cache(cache)
    unique = list(dict.fromkeys(pairs))
    try:
        # One chunk: the pending pairs are batched as a run without a cache would batch them.
        scores = cached_scores(unique, score, identity, store, chunk_size=max(len(unique), 1))
    finally:
        store.close()
    return [scores[pair] for pair in pairs]


def sharded_scores(
    eval_set: EvalSet,
    path: str,
    folder: str | Path,
    max_length: int | None = None,
    batch_size: int = 32,
    seed: int = 0,
    **parallel,
) -> list[float] | None:
    """Scores of a model in ``pairs()`` order, sharded in ``folder`` (one group a query, its candidates in
    order); None on every rank but global rank zero. ``parallel``: :func:`score_groups`'s devices,
    num_nodes, accelerator and shard_size."""
    from reranker.model.parallel_scoring import score_groups

    groups = [
        [(query, c) for c in cands]
        for query, cands in zip(eval_set.queries, eval_set.candidates, strict=True)
    ]
    # float32 as the one-process path (RerankerModel's default) scores, on GPU too.
    scores = score_groups(groups, path, folder, "evaluate", max_length=max_length, batch_size=batch_size,
                          dtype="float32", seed=seed, **parallel)  # fmt: skip
    return None if scores is None else [value for group in scores for value in group]


def shard_name(name: str) -> str:
    """A folder name for a row name (which may be a path or a hub name): readable, and unique by a digest."""
    readable = re.sub(r"[^\w.-]+", "_", name).lstrip(".")[:64]
    return f"{readable}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}"


def set_scorer(
    max_length: int | None = None,
    batch_size: int = 32,
    seed: int = 0,
    device: str | None = None,
    cache: str | Path | None = None,
    devices: int | None = None,
    num_nodes: int = 1,
    accelerator: str = "auto",
    shard_size: int = SHARD_SIZE,
    shards: str | Path | None = None,
) -> SetScorer:
    """The scoring ``reranker evaluate``'s options ask for: one process (cached with ``cache``), or sharded
    in ``shards/<name>`` with ``devices``; the options are checked here, before any model loads."""
    check_parallel_options(devices, device, cache)
    if devices is None:
        return lambda eval_set, path, name: score_pairs(
            eval_set.pairs(), path, max_length, batch_size, seed, device, cache
        )
    if shards is None:
        raise InputError(
            "--devices needs --out: the shards that let a killed run resume are kept in OUT/shards/"
        )
    parallel = dict(devices=devices, num_nodes=num_nodes, accelerator=accelerator, shard_size=shard_size)
    return lambda eval_set, path, name: sharded_scores(
        eval_set, path, Path(shards) / name, max_length, batch_size, seed, **parallel
    )
