"""Hard negatives for judged queries over a corpus (what ``prepare mine`` runs).

For each query with at least one relevant passage, the first stage (BM25 by default, any retriever of
:mod:`reranker.preparation.retrievers`) ranks the corpus; negatives are drawn at random (seeded) from the
ranks ``FROM..TO`` that are not judged relevant, then random corpus passages are added (random negatives are
neither filtered nor scored by a cross-encoder: a random passage is rarely relevant).

Unjudged passages that rank high are often relevant too (false negatives). Two filters drop them:

- On the first stage's own similarity (sentence-transformers' ``mine_hard_negatives`` options), against the
  best positive's first-stage score ``pos``: ``absolute_margin`` drops ``neg > pos - margin``;
  ``relative_margin`` drops ``neg > pos - relative_margin * |pos|`` (``pos * (1 - relative_margin)`` for the
  usual ``pos >= 0``: BM25 is never negative, cosine rarely is for a relevant text; with ``|pos|`` a negative
  score still puts the threshold below the positive); ``max_score`` drops ``neg > max_score``. A margin of 0
  drops every candidate the first stage scores above the positive. A positive the first stage scores 0 (BM25
  with no shared term) drops every candidate with a score, so such a query may keep no hard negative.
- With a cross-encoder ``score`` function, on top: each remaining candidate is scored with its query and
  dropped when its score comes within ``margin`` of the best positive's: ``candidate > positive - margin``,
  on the raw logits or on their sigmoid (``scale``). The margin is an absolute difference, so it means the
  same thing whatever the sign of the logits. Dropped candidates are replaced by the next ones drawn from
  the window, up to ``max_scored`` candidates a query: where the teacher scores the positive below most of
  the window, the query keeps fewer hard negatives instead of the whole window being scored.

Each triplet carries the first stage's score of each passage (``pos_first_stage``/``neg_first_stage``), so
validation on mined data also reports the reranker fused with the first stage. Each query is encoded once
(embedded, or tokenised for BM25): its search and the scores of its positives and negatives all come from that
encoding, and each stage reports its progress on stderr. A window whose TO is past the corpus is an error.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

from reranker.core.errors import InputError
from reranker.core.sampling import fill_distinct
from reranker.preparation.retrievers import RetrieverSpec, open_retriever
from reranker.preparation.retrievers.base import blocks, encode_queries
from reranker.preparation.retrievers.base import score as score_passages

ScoreFn = Callable[[list[tuple[str, str]]], list[float]]
SCALES = ("logit", "sigmoid")


def scaled(score: float, scale: str) -> float:
    """A raw cross-encoder logit on the filter's scale."""
    return 1.0 / (1.0 + math.exp(-score)) if scale == "sigmoid" else score


def is_false_negative(positive: float, candidate: float, margin: float) -> bool:
    """Whether a candidate scores within ``margin`` of the positive (or above it): then it is dropped."""
    return candidate > positive - margin


def first_stage_drops(
    positive: float,
    candidate: float,
    absolute_margin: float | None = None,
    relative_margin: float | None = None,
    max_score: float | None = None,
) -> bool:
    """Whether the first-stage margins or ceiling drop a candidate (see the module's docstring)."""
    if absolute_margin is not None and candidate > positive - absolute_margin:
        return True
    if relative_margin is not None and candidate > positive - relative_margin * abs(positive):
        return True
    return max_score is not None and candidate > max_score


def check_options(
    window: tuple[int, int],
    num_hard: int,
    num_random: int,
    margin: float,
    scale: str,
    absolute_margin: float | None = None,
    relative_margin: float | None = None,
    max_score: float | None = None,
    corpus_size: int | None = None,
) -> None:
    """Every option checked before anything is read or encoded; ``corpus_size`` where it is known."""
    low, high = window
    if not 1 <= low <= high:
        raise InputError(f"--window needs 1 <= FROM <= TO, got {low} {high}")
    if num_hard < 0 or num_random < 0 or num_hard + num_random == 0:
        raise InputError("--num-hard-negatives and --num-random-negatives must be >= 0, and not both 0")
    if scale not in SCALES:
        raise InputError(f"--filter-scale must be one of {', '.join(SCALES)}, got {scale!r}")
    for flag, value in (("--filter-margin", margin), ("--absolute-margin", absolute_margin),
                        ("--max-score", max_score)):  # fmt: skip
        if value is not None and not math.isfinite(value):
            raise InputError(f"{flag} must be a finite number, got {value}")
    if relative_margin is not None and not 0.0 <= relative_margin <= 1.0:
        raise InputError(f"--relative-margin must be in [0, 1], got {relative_margin}")
    if corpus_size is not None and high > corpus_size:
        raise InputError(
            f"--window TO is {high} but the corpus holds {corpus_size} passages: give TO <= {corpus_size}"
        )


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
    *,
    absolute_margin: float | None = None,
    relative_margin: float | None = None,
    max_score: float | None = None,
    retriever: RetrieverSpec = "bm25",
    retriever_options: dict | None = None,
) -> tuple[list[dict], dict]:
    """Triplets ``{qid, query, pos, neg, pos_first_stage, neg_first_stage}`` (hard negatives first, then
    random ones) and a summary. ``retriever_options`` are :func:`build_retriever`'s.

    Each query is encoded once (:func:`encode_queries`): its search, its positives' and its negatives'
    first-stage scores all come from that encoding.
    """
    ids = list(corpus)
    check_options(window, num_hard, num_random, margin, scale, absolute_margin, relative_margin, max_score,
                  corpus_size=len(ids))  # fmt: skip
    position = {passage_id: i for i, passage_id in enumerate(ids)}
    options = {"bm25_tokenizer": tokenizer, **(retriever_options or {})}
    first_stage = open_retriever(retriever, [corpus[i] for i in ids], options)
    rng = random.Random(seed)
    low, high = window
    encoded = encode_queries(first_stage, [query["query"] for query in queries])
    positive_ids = [[position[p] for p in query["pos_ids"]] for query in queries]
    found = dropped = 0
    pools, positive_scores = [], []
    for start, end in blocks(encoded, "search and first-stage margins"):
        hits = encoded.hits(start, end, high)
        positives_block = encoded.scores(start, end, positive_ids[start:end])
        for query, hit, positives in zip(queries[start:end], hits, positives_block, strict=True):
            ranked = [ids[i] for i in hit.indices]
            found += any(p in ranked for p in query["pos_ids"])
            best = max(positives)
            pool = []
            for passage_id, value in list(zip(ranked, hit.scores, strict=True))[low - 1 :]:
                if passage_id in query["pos_ids"]:
                    continue
                if first_stage_drops(best, value, absolute_margin, relative_margin, max_score):
                    dropped += 1
                else:
                    pool.append(passage_id)
            rng.shuffle(pool)
            pools.append(pool)
        positive_scores += positives_block
    if max_scored is not None:
        pools = [pool[:max_scored] for pool in pools]  # the filter scores at most this many a query
    hard, scored, removed = _draw(queries, corpus, pools, num_hard, score, margin, scale)
    chosen = []
    for query, negatives in zip(queries, hard, strict=True):
        excluded = {*query["pos_ids"], *negatives}
        chosen.append(negatives + fill_distinct(rng, ids, [], num_random, excluded.__contains__))
    negative_scores = score_passages(encoded, [[position[n] for n in negatives] for negatives in chosen],
                                     "first-stage scores of the negatives")  # fmt: skip
    triplets = [
        {
            "qid": query["qid"],
            "query": query["query"],
            "pos": [corpus[p] for p in query["pos_ids"]],
            "neg": [corpus[n] for n in negatives],
            "pos_first_stage": positives,
            "neg_first_stage": values,
        }
        for query, negatives, positives, values in zip(
            queries, chosen, positive_scores, negative_scores, strict=True
        )
    ]
    summary = {
        "retriever": first_stage.name,
        "queries": len(queries),
        "corpus": len(ids),
        f"first_stage_recall@{high}": round(found / max(len(queries), 1), 6),
        "window": [low, high],
        "removed_by_first_stage": dropped,
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
