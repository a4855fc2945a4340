"""A model's scores for an evaluation set's pairs (what ``reranker evaluate`` ranks by).

One process scores every pair in one call (batched by length across the whole set); with ``--cache``, pairs
the same model scored before are read back from a SQLite score cache and only the others are scored.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from reranker.core.cache import Cache, cached_scores


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
