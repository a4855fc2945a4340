"""Hard negatives for judged queries over a corpus: ``prepare mine``.

For each query with at least one relevant passage, BM25 ranks the corpus; negatives are drawn at random
(seeded) from the ranks ``FROM..TO`` that are not judged relevant, then random corpus passages are added.
Unjudged passages that rank high are often relevant too (false negatives). With a cross-encoder ``score``
function, each drawn candidate is scored with its query and dropped when its score comes within ``margin``
of the best positive's: ``candidate > positive - margin``. The margin is an absolute difference, on the
raw logits or on their sigmoid (``scale``), so it means the same thing whatever the sign of the scores; a
margin stated as a fraction of the positive's score would tighten or loosen with the sign of that score, and
for a negative logit it would drop candidates scoring *below* the positive. Dropped candidates are replaced
by the next ones drawn from the window, up to ``max_scored`` candidates a query: where the teacher scores the
positive below most of the window (it disagrees with the judgement), the query keeps fewer hard negatives
instead of the whole window being scored. Random negatives are not scored (a random passage is rarely relevant).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

from reranker.core.errors import InputError
from reranker.preparation.retrievers.bm25 import BM25Index

ScoreFn = Callable[[list[tuple[str, str]]], list[float]]
SCALES = ("logit", "sigmoid")


def scaled(score: float, scale: str) -> float:
    """A raw cross-encoder logit on the filter's scale."""
    return 1.0 / (1.0 + math.exp(-score)) if scale == "sigmoid" else score


def is_false_negative(positive: float, candidate: float, margin: float) -> bool:
    """Whether a candidate scores within ``margin`` of the positive (or above it): then it is dropped."""
    return candidate > positive - margin


def check_options(window: tuple[int, int], num_hard: int, num_random: int, margin: float, scale: str) -> None:
    low, high = window
    if not 1 <= low <= high:
        raise InputError(f"--window needs 1 <= FROM <= TO, got {low} {high}")
    if num_hard < 0 or num_random < 0 or num_hard + num_random == 0:
        raise InputError("--num-hard-negatives and --num-random-negatives must be >= 0, and not both 0")
    if scale not in SCALES:
        raise InputError(f"--filter-scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if not math.isfinite(margin):
        raise InputError(f"--filter-margin must be a finite number, got {margin}")


def mine(
    queries: Sequence[dict],
    corpus: dict[str, str],
    window: tuple[int, int] = (10, 100),
    num_hard: int = 7,
    num_random: int = 0,
    tokenizer: str = "bigram",
    seed: int = 42,
    score: ScoreFn | None = None,
    margin: float = 0.0,
    scale: str = "logit",
    max_scored: int | None = None,
) -> tuple[list[dict], dict]:
    """Triplets ``{qid, query, pos, neg}`` (hard negatives first, then random ones) and a summary."""
    check_options(window, num_hard, num_random, margin, scale)
    ids = list(corpus)
    index = BM25Index([corpus[i] for i in ids], tokenizer)
    rng = random.Random(seed)
    low, high = window
    found, pools = 0, []
    for query in queries:
        ranked = [ids[i] for i in index.search(query["query"], high)]
        found += any(p in ranked for p in query["pos_ids"])
        pool = [i for i in ranked[low - 1 :] if i not in query["pos_ids"]]
        rng.shuffle(pool)
        pools.append(pool)
    if max_scored is not None:
        pools = [pool[:max_scored] for pool in pools]  # the filter scores at most this many a query
    hard, scored, removed = _draw(queries, corpus, pools, num_hard, score, margin, scale)
    triplets = []
    for query, negatives in zip(queries, hard, strict=True):
        negatives = negatives + _random_ids(ids, {*query["pos_ids"], *negatives}, num_random, rng)
        triplets.append(
            {
                "qid": query["qid"],
                "query": query["query"],
                "pos": [corpus[p] for p in query["pos_ids"]],
                "neg": [corpus[n] for n in negatives],
            }
        )
    summary = {
        "queries": len(queries),
        "corpus": len(ids),
        f"first_stage_recall@{high}": round(found / max(len(queries), 1), 6),
        "window": [low, high],
        "candidates_scored": scored,
        "removed_by_filter": removed,
        "hard_negatives": sum(len(h) for h in hard),
        "queries_short_of_hard_negatives": sum(len(h) < num_hard for h in hard),
        "random_negatives": sum(len(t["neg"]) for t in triplets) - sum(len(h) for h in hard),
    }
    return triplets, summary


def _draw(
    queries: Sequence[dict],
    corpus: dict[str, str],
    pools: list[list[str]],
    num_hard: int,
    score: ScoreFn | None,
    margin: float,
    scale: str,
) -> tuple[list[list[str]], int, int]:
    """Hard negatives per query from its shuffled pool: the first ``num_hard`` that pass the filter."""
    if score is None:
        return [pool[:num_hard] for pool in pools], 0, 0
    positive_pairs = [(q["query"], corpus[p]) for q in queries for p in q["pos_ids"]]
    positive_scores = iter(score(positive_pairs))
    best = [max(scaled(next(positive_scores), scale) for _ in q["pos_ids"]) for q in queries]
    kept: list[list[str]] = [[] for _ in queries]
    cursor = [0] * len(queries)
    scored = removed = 0
    # Rounds: score twice what each query still needs, so a lenient filter costs about num_hard pairs a query.
    while True:
        batch = []
        for row, pool in enumerate(pools):
            need = num_hard - len(kept[row])
            take = pool[cursor[row] : cursor[row] + 2 * need] if need > 0 else []
            cursor[row] += len(take)
            batch += [(row, candidate) for candidate in take]
        if not batch:
            return kept, scored, removed
        values = score([(queries[row]["query"], corpus[candidate]) for row, candidate in batch])
        scored += len(batch)
        for (row, candidate), value in zip(batch, values, strict=True):
            if is_false_negative(best[row], scaled(value, scale), margin):
                removed += 1
            elif len(kept[row]) < num_hard:
                kept[row].append(candidate)


def _random_ids(ids: list[str], excluded: set[str], count: int, rng: random.Random) -> list[str]:
    """``count`` distinct random ids not in ``excluded`` (fewer if the corpus runs out)."""
    chosen: list[str] = []
    for _ in range(8 * count + 32):  # rejection sampling is fast while most of the corpus is eligible
        if len(chosen) == count:
            return chosen
        candidate = ids[rng.randrange(len(ids))]
        if candidate not in excluded:
            chosen.append(candidate)
            excluded.add(candidate)
    eligible = [i for i in ids if i not in excluded]
    return chosen + rng.sample(eligible, min(count - len(chosen), len(eligible)))
