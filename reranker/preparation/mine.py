"""``prepare mine``: hard negatives for judged queries from a first stage, with first-stage margins and an
optional cross-encoder false-negative filter (the rules are in :mod:`reranker.preparation.mining`).

The filter scores through :mod:`reranker.scoring.pairs`: in one process with the score cache (``--cache``,
keyed by the filter model's weights; shared with ``prepare teacher`` and ``evaluate``).

With ``--devices N`` (and ``--num-nodes``) the filter scores over N processes a node: every process runs the
(deterministic) first stage and the filter's rounds, each round's pairs are scored in shards of
``--shard-size`` queries (a run of pairs with the same query) in ``OUT.shards/round-K/`` and read back by
every process, and only global rank zero writes ``OUT``, the same bytes for any N. A killed run replays the
same rounds and resumes from the finished shards."""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from reranker.core.errors import InputError
from reranker.preparation import mining
from reranker.preparation.records import read_judged_queries, write_jsonl
from reranker.preparation.retrievers import RetrieverSpec, add_retriever_arguments
from reranker.scoring.options import add_parallel_arguments, add_scoring_arguments, parallel_options
from reranker.scoring.pairs import PairScoring
from reranker.scoring.shards import SHARD_SIZE

HELP = "hard negatives from a first stage (BM25 by default), optionally filtered by a cross-encoder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--queries", required=True, help="queries JSONL {qid, query, pos_ids} or MS MARCO queries.tsv"
    )
    parser.add_argument("--corpus", required=True, help="corpus JSONL {id, text} or MS MARCO collection.tsv")
    parser.add_argument("--qrels", help="qrels file (needed with a TSV queries file; replaces pos_ids)")
    parser.add_argument("--out", required=True, help="triplet JSONL {qid, query, pos, neg}")
    parser.add_argument("--window", type=int, nargs=2, default=(10, 100), metavar=("FROM", "TO"),
                        help="first-stage ranks (1-based, inclusive) that hard negatives are drawn from")  # fmt: skip
    parser.add_argument("--num-hard-negatives", type=int, default=7)
    parser.add_argument("--num-random-negatives", type=int, default=0)
    parser.add_argument("--max-queries", type=int, default=None, help="the first N judged queries only")
    parser.add_argument("--seed", type=int, default=42)
    margins = parser.add_argument_group("first-stage margins (on the retriever's own scores)")
    margins.add_argument("--absolute-margin", type=float, default=None,
                         help="drop a candidate scoring above (best positive - margin)")  # fmt: skip
    margins.add_argument("--relative-margin", type=float, default=None,
                         help="drop a candidate scoring above best positive * (1 - margin), margin in [0, 1]")  # fmt: skip
    margins.add_argument("--max-score", type=float, default=None, help="drop a candidate scoring above this")
    add_retriever_arguments(parser)
    cross = parser.add_argument_group("cross-encoder filter")
    cross.add_argument(
        "--filter-model", help="cross-encoder that drops likely false negatives (any Reranker path)"
    )
    cross.add_argument("--filter-margin", type=float, default=0.0,
                       help="drop a candidate scoring above (best positive - margin)")  # fmt: skip
    cross.add_argument("--filter-scale", choices=mining.SCALES, default="logit", help="the margin's scale")
    cross.add_argument("--filter-max-candidates", type=int, default=None,
                       help="score at most this many window candidates a query (default: the whole window)")  # fmt: skip
    add_scoring_arguments(cross)
    add_parallel_arguments(cross)


def prepare_mine(
    queries: str | Path,
    corpus: str | Path,
    out: str | Path,
    qrels: str | Path | None = None,
    window: tuple[int, int] = (10, 100),
    num_hard_negatives: int = 7,
    num_random_negatives: int = 0,
    max_queries: int | None = None,
    bm25_tokenizer: str = "bigram",
    seed: int = 42,
    absolute_margin: float | None = None,
    relative_margin: float | None = None,
    max_score: float | None = None,
    filter_model: str | None = None,
    filter_margin: float = 0.0,
    filter_scale: str = "logit",
    filter_max_candidates: int | None = None,
    max_length: int | None = None,
    batch_size: int = 32,
    device: str | None = None,
    dtype: str | None = None,
    cache: str | Path | None = None,
    retriever: RetrieverSpec = "bm25",
    retriever_options: dict | None = None,
    devices: int | None = None,
    num_nodes: int = 1,
    accelerator: str = "auto",
    shard_size: int = SHARD_SIZE,
) -> dict | None:
    """Write mined triplets to ``out``; returns a summary. ``max_length`` None: the length recorded with
    the filter model; ``retriever_options`` are :func:`build_retriever`'s. With ``devices``: the filter
    scores over processes (see the module docstring); every rank but global rank zero returns None and
    writes nothing."""
    parallel = parallel_options(devices, num_nodes, accelerator, shard_size)
    scoring = PairScoring(max_length=max_length, batch_size=batch_size, device=device, dtype=dtype, cache=cache,
                          parallel=parallel, shards=f"{out}.shards", task="mine", chunk_size=8 * batch_size,
                          progress=True)  # fmt: skip
    if parallel is not None and not filter_model:
        raise InputError("--devices scores the --filter-model's pairs over processes; give --filter-model")
    judged, passages, unjudged = read_judged_queries(queries, corpus, qrels)
    if max_queries is not None:
        judged = judged[:max_queries]
    if not judged:
        raise InputError(f"{queries}: no query has a relevant passage")
    window = (window[0], window[1])
    mining.check_options(window, num_hard_negatives, num_random_negatives, filter_margin, filter_scale,
                         absolute_margin, relative_margin, max_score, len(passages))  # fmt: skip
    rounds = itertools.count()

    def score(pairs: list[tuple[str, str]]) -> list[float]:
        # Over processes, the K-th call is round K of the filter: its shards in OUT.shards/round-K; every
        # rank gets the scores, as each needs them to draw the next round.
        return scoring(filter_model, pairs, shards=f"round-{next(rounds)}", every_rank=True)

    triplets, summary = mining.mine(
        judged, passages, window, num_hard_negatives, num_random_negatives, bm25_tokenizer, seed,
        score if filter_model else None, filter_margin, filter_scale, filter_max_candidates,
        absolute_margin=absolute_margin, relative_margin=relative_margin, max_score=max_score,
        retriever=retriever, retriever_options=retriever_options,
    )  # fmt: skip
    if parallel is not None:
        from reranker.scoring.engine import leave_scoring_processes

        if not leave_scoring_processes():
            return None
    write_jsonl(out, triplets)
    return {**summary, "queries_without_judgement": unjudged}
