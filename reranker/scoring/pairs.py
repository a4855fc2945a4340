"""One model's scores for many (query, passage) pairs: the one way ``evaluate``, ``prepare teacher``,
``prepare mine``'s filter and the benchmarks score.

In one process, pairs go through the score cache (:class:`reranker.core.cache.Cache`: a SQLite file, or
memory for a call without one): each unique pair is scored once, the pending ones longest first in chunks
committed one by one, so a killed run resumes where it stopped and a later run, of any command, skips what
an earlier one scored. A cached score is keyed by :func:`score_key`: the weights' identity (each model
file's size and SHA-256, the scoring contract ``reranker.json`` among them; a checkpoint's own, which holds
its contract) and the options that change a score besides (a ``max_length`` given in place of the recorded
one, the dtype, the seed of a new head), so a model retrained into the same folder is scored afresh.

With :class:`~reranker.scoring.options.ParallelOptions`, the pairs are scored over processes by
:mod:`reranker.scoring.engine` in groups (a query's pairs, a triplet's) cut into shards written to a folder:
a killed run resumes from its finished shards, and the scores are the same bytes for any number of
processes. Shards batch their own pairs only, so their last digits can differ from the one-process path's.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from reranker.core.cache import Cache, cached_scores
from reranker.core.errors import InputError
from reranker.model import pair_scorer
from reranker.model.identity import weights_identity
from reranker.model.onnx_backend import split_onnx_path
from reranker.scoring.options import ParallelOptions, check_parallel_options, scoring_dtype

Pair = tuple[str, str]
KEY_FORMAT = 1  # a cache written under another key format is never read back
CACHE_FILE = "scores.sqlite"  # the file a cache folder gets


def score_key(model: str, max_length: int | None, dtype: str, seed: int | None) -> str:
    """What decides a model's score of a pair besides the pair: the weights' identity (which holds the
    scoring contract) and the options given on top of it."""
    key = {"format": KEY_FORMAT, "weights": weights_identity(model), "max_length": max_length,
           "dtype": dtype, "seed": seed}  # fmt: skip
    return json.dumps(key, sort_keys=True, ensure_ascii=False)


def cut_groups(pairs: Sequence[Pair], group_sizes: Sequence[int] | None) -> list[list[Pair]]:
    """``pairs`` cut into groups of ``group_sizes`` pairs, or by default into runs with the same query."""
    if group_sizes is None:
        return [list(group) for _, group in itertools.groupby(pairs, key=lambda pair: pair[0])]
    if sum(group_sizes) != len(pairs) or any(size < 0 for size in group_sizes):
        raise InputError(
            f"group sizes must be >= 0 and add up to the {len(pairs)} pairs, got {list(group_sizes)[:10]}"
        )
    starts = itertools.accumulate(group_sizes, initial=0)
    return [list(pairs[start : start + size]) for start, size in zip(starts, group_sizes, strict=False)]


class PairScoring:
    """How a command scores many pairs: options checked when built (before any model loads), then called
    with a model and pairs as often as needed; a model is loaded once, and only when a pair is not cached.

    Args:
        max_length: tokens per pair; None: the length recorded with the model.
        batch_size: most pairs per forward pass.
        device: the one process's device (default: CUDA when available).
        dtype: ``float32``, ``float16`` or ``bfloat16``; None: float16 on GPU, float32 on CPU.
        seed: seeds torch before a model loads (a base model's new head is initialised at random); part of
            the cache key and of a shard folder's configuration. None: not seeded.
        cache: the score cache, a SQLite file or a folder that gets ``scores.sqlite``; None: each call's
            scores are kept in memory only.
        parallel: score over processes; then ``device`` and ``cache`` must be None and ``shards`` given.
        shards: the folder of ``parallel``'s shards.
        task: names the command in a shard folder's configuration, so two commands never share shards.
        chunk_size: pending pairs scored and committed to the cache at a time; None: all of them in one
            chunk, batched as a run without a cache batches them.
        progress: progress of the pending pairs on stderr (:class:`reranker.core.progress.Progress`).
    """

    def __init__(
        self,
        *,
        max_length: int | None = None,
        batch_size: int = 32,
        device: str | None = None,
        dtype: str | None = None,
        seed: int | None = None,
        cache: str | Path | None = None,
        parallel: ParallelOptions | None = None,
        shards: str | Path | None = None,
        task: str = "score",
        chunk_size: int | None = None,
        progress: bool = False,
    ) -> None:
        check_parallel_options(parallel, device, cache, shards)
        self.max_length, self.batch_size, self.device, self.dtype = max_length, batch_size, device, dtype
        self.seed, self.cache, self.parallel, self.shards = seed, cache, parallel, shards
        self.task, self.chunk_size, self.progress = task, chunk_size, progress
        self.loaded: tuple[str, pair_scorer.PairScorer] | None = None

    def __call__(
        self,
        model: str | Path,
        pairs: Sequence[Pair],
        group_sizes: Sequence[int] | None = None,
        shards: str | Path | None = None,
        every_rank: bool = False,
    ) -> list[float] | None:
        """Scores (raw logits) of ``pairs`` by ``model`` (a folder, hub name, ``.ckpt`` or an export's
        ``onnx/FILE.onnx``), in the pairs' order.

        Over processes, ``group_sizes`` cut the pairs into groups, the unit of a shard (default: runs of
        pairs with the same query); the shards go to ``shards`` under the folder given when built (or that
        folder itself). Then every rank but global rank zero gets None, unless ``every_rank``: each reads
        the merged shards (for a command whose ranks need the scores to go on).
        """
        pair_scorer.check_pairs(pairs)
        model, pairs = str(model), [(query, passage) for query, passage in pairs]
        if self.parallel is not None:
            return self._sharded(model, pairs, group_sizes, shards, every_rank)
        return self._cached(model, pairs)

    def _cached(self, model: str, pairs: list[Pair]) -> list[float]:
        unique = list(dict.fromkeys(pairs))
        dtype = self._dtype(model)
        if self.cache is None:
            path, identity = None, ("memory",)  # a cache of this call alone: no key outlives it
        else:
            path = Path(self.cache) / CACHE_FILE if Path(self.cache).is_dir() else self.cache
            identity = ("scores", score_key(model, self.max_length, dtype, self.seed))
        store = Cache(path)
        try:
            scores = cached_scores(
                unique,
                lambda chunk: self._scorer(model, dtype).score(chunk, self.batch_size),
                identity,
                store,
                chunk_size=self.chunk_size or max(len(unique), 1),
                progress="score pairs" if self.progress else None,
            )
        finally:
            store.close()
        return [scores[pair] for pair in pairs]

    def _scorer(self, model: str, dtype: str) -> pair_scorer.PairScorer:
        """The loaded model, loaded on first need; the one loaded before is let go first."""
        if self.loaded is None or self.loaded[0] != model:
            self.loaded = None
            print(f"scoring pairs with {model}", file=sys.stderr)
            if self.seed is not None:
                torch.manual_seed(self.seed)
            scorer = pair_scorer.PairScorer(
                model, max_length=self.max_length, device=self.device, dtype=dtype
            )
            self.loaded = (model, scorer)
        return self.loaded[1]

    def _dtype(self, model: str) -> str:
        if split_onnx_path(model) is not None:  # ONNX Runtime on the CPU, in its file's precision
            return scoring_dtype(self.dtype, on_gpu=False)
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        return scoring_dtype(self.dtype, on_gpu=torch.device(device).type == "cuda")

    def _sharded(
        self,
        model: str,
        pairs: Sequence[Pair],
        group_sizes: Sequence[int] | None,
        shards: str | Path | None,
        every_rank: bool,
    ) -> list[float] | None:
        from reranker.scoring.engine import score_groups

        folder = Path(self.shards) / shards if shards is not None else Path(self.shards)
        scores = score_groups(cut_groups(pairs, group_sizes), model, folder, self.task, self.parallel,
                              max_length=self.max_length, batch_size=self.batch_size, dtype=self.dtype,
                              seed=self.seed, every_rank=every_rank)  # fmt: skip
        return None if scores is None else [value for group in scores for value in group]


def score_pairs(
    model: str | Path,
    pairs: Sequence[Pair],
    *,
    group_sizes: Sequence[int] | None = None,
    every_rank: bool = False,
    **options: Any,
) -> list[float] | None:
    """Scores of ``pairs`` by ``model`` in one call: ``options`` are :class:`PairScoring`'s (``cache``,
    ``parallel``, ``shards``, ``max_length``, ...), ``group_sizes`` and ``every_rank`` its call's."""
    return PairScoring(**options)(model, pairs, group_sizes, every_rank=every_rank)
