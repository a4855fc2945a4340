"""Teacher scores for a triplet file: ``prepare teacher`` adds ``pos_scores`` and ``neg_scores``.

The field names are FlagEmbedding's, so a file prepared here trains FlagEmbedding's distillation and a file
prepared for it trains here. Each score is the teacher's raw logit for ``(query, passage)``, aligned with the
``pos`` and ``neg`` lists (existing scores are replaced). Scores are per text, so the teacher's tokenizer
may differ from the student's. Unique pairs are scored once, in batches of similar length (longest first, so
a batch too large for memory fails at once), and every finished chunk goes to a cache keyed by teacher,
length limit and pair: a killed run resumes there. A retrained teacher in the same folder needs a new cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from reranker.preparation.cache import Cache, cache_key

ScoreFn = Callable[[list[tuple[str, str]]], list[float]]


def pairs_of(records: Sequence[dict]) -> list[tuple[str, str]]:
    """Every ``(query, passage)`` pair of the records, each once, in first-seen order."""
    seen: dict[tuple[str, str], None] = {}
    for record in records:
        for passage in (*record["pos"], *record.get("neg", [])):
            seen[(record["query"], passage)] = None
    return list(seen)


def score_with_cache(
    pairs: Sequence[tuple[str, str]],
    score: ScoreFn,
    teacher: str,
    cache: Cache,
    chunk_size: int = 4096,
    progress: Callable[[int], None] | None = None,
) -> dict[tuple[str, str], float]:
    """Scores of ``pairs``: from the cache where present, else from ``score`` in chunks committed one by one."""
    keys = [cache_key("teacher", teacher, query, passage) for query, passage in pairs]
    cached = cache.get_many(keys)
    pending = sorted(
        (i for i, key in enumerate(keys) if key not in cached), key=lambda i: -sum(map(len, pairs[i]))
    )
    for start in range(0, len(pending), chunk_size):
        chunk = pending[start : start + chunk_size]
        values = score([pairs[i] for i in chunk])
        # repr() of a float reads back as the same float: cached and fresh runs write identical files.
        items = [(keys[i], repr(float(v))) for i, v in zip(chunk, values, strict=True)]
        cache.put_many(items)
        cached.update(items)
        if progress is not None:
            progress(len(chunk))
    return {pair: float(cached[key]) for pair, key in zip(pairs, keys, strict=True)}


def with_scores(records: Sequence[dict], scores: dict[tuple[str, str], float]) -> list[dict]:
    """Records with ``pos_scores``/``neg_scores`` aligned with ``pos``/``neg``."""
    out = []
    for record in records:
        new = dict(record)
        new["pos_scores"] = [scores[(record["query"], p)] for p in record["pos"]]
        new["neg_scores"] = [scores[(record["query"], n)] for n in record.get("neg", [])]
        out.append(new)
    return out
