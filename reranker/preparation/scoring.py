"""Cross-encoder scores for preparation (``prepare mine``'s filter and ``prepare teacher``), through the
score cache: unique pairs are scored once, in batches of similar length (longest first, so a batch too large
for memory fails at once), and every finished chunk is committed to the cache, keyed by model, length limit
and pair; a killed run resumes there. A retrained model in the same folder needs a new cache.

With ``--devices``, ``prepare mine``'s filter scores through :func:`sharded_scorer` instead (``prepare
teacher`` has its own sharding, one group a triplet).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from reranker.core.cache import Cache, cached_scores

ScoreFn = Callable[[list[tuple[str, str]]], list[float]]


def add_scoring_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the scoring cross-encoder, shared by ``mine`` and ``teacher``."""
    parser.add_argument("--max-length", type=int, default=None,
                        help="tokens per (query, passage) pair (default: the length recorded with the model)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None, help="float16 on GPU by default, float32 on CPU")
    parser.add_argument("--cache", help="score cache (SQLite); the same file serves mine and teacher")


def cached_scorer(
    model: str,
    cache: str | Path | None,
    max_length: int | None = None,
    batch_size: int = 32,
    device: str | None = None,
    dtype: str | None = None,
) -> tuple[ScoreFn, Cache]:
    """A cached scoring function for a cross-encoder with a progress bar (pairs/s) on stderr, and its cache
    (a file resumes a killed run; ``None`` keeps this run's scores in memory). Close the cache when done."""
    import torch
    from tqdm.auto import tqdm

    from reranker.model.reranker_model import RerankerModel

    dtype = dtype or ("float16" if torch.cuda.is_available() and device != "cpu" else None)
    reranker = RerankerModel(model, max_length=max_length, device=device, dtype=dtype)
    store = Cache(cache)
    # The length in the key is the one asked for, else the one the model records.
    identity = f"{model} max_length={max_length if max_length is not None else reranker.max_length}"

    def score(pairs: list[tuple[str, str]]) -> list[float]:
        with tqdm(total=len(pairs), unit="pairs", file=sys.stderr, mininterval=1.0) as bar:
            scores = cached_scores(
                list(dict.fromkeys(pairs)),
                lambda chunk: reranker.score(chunk, batch_size),
                ("teacher", identity),
                store,
                chunk_size=8 * batch_size,
                progress=bar.update,
            )
        return [scores[pair] for pair in pairs]

    return score, store


def sharded_scorer(model: str, folder: str | Path, **scoring) -> ScoreFn:
    """A scoring function over processes (:func:`~reranker.model.parallel_scoring.score_groups`, whose
    options ``scoring`` holds): its ``K``-th call scores its pairs in shards in ``folder/round-K``, one group
    a run of pairs with the same query. A killed run replays the same calls (the mining is deterministic)
    and resumes from the shards; every rank gets the scores, as each needs them to draw the next round."""
    from reranker.model.parallel_scoring import score_groups

    calls = itertools.count()

    def score(pairs: list[tuple[str, str]]) -> list[float]:
        groups = [list(group) for _, group in itertools.groupby(pairs, key=lambda pair: pair[0])]
        folder_k = Path(folder) / f"round-{next(calls)}"
        scores = score_groups(groups, model, folder_k, "mine", every_rank=True, **scoring)
        return [value for group in scores for value in group]

    return score


def pairs_of(records: Sequence[dict]) -> list[tuple[str, str]]:
    """Every ``(query, passage)`` pair of triplet records, each once, in first-seen order."""
    seen: dict[tuple[str, str], None] = {}
    for record in records:
        for passage in (*record["pos"], *record.get("neg", [])):
            seen[(record["query"], passage)] = None
    return list(seen)
