"""``prepare squad``: a SQuAD-format QA file → ``train.jsonl`` (and ``val.jsonl``) triplets and
``eval/queries.jsonl`` + ``eval/corpus.jsonl``, split by article title so that no passage or question is on
two sides.

Hard negatives come from the first stage (``--retriever``, BM25 by default) at ranks ``FROM..TO``; random
negatives from the same side; no negative contains an answer text of its question. Validation groups are a
held-out side's first-stage top candidates with the first stage's score of each passage
(``pos_first_stage``/``neg_first_stage``), so validation also reports the reranker fused with it. A
validation question whose gold is not among the first stage's top ``--val-candidates`` is left out rather
than given a gold the first stage never retrieved (it would be a miss for every model alike);
``--force-gold`` keeps it with its gold put in. ``--first-stage-scores`` gives the training triplets those
fields too (every ``pos`` and ``neg`` text scored by the first stage over the training side), so the first
stage can teach the reranker (``loss.teacher: first_stage``). The evaluation side is written without
candidates: ``prepare candidates`` retrieves them. The same inputs and seed give byte-identical outputs.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable
from pathlib import Path

from reranker.core.errors import InputError
from reranker.core.sampling import fill_distinct
from reranker.preparation.records import write_jsonl
from reranker.preparation.retrievers import RetrieverSpec, add_retriever_arguments, open_retriever
from reranker.preparation.squad_reader import Article, Passage, Question, read_squad, split_by_title

HELP = "SQuAD-format QA file -> triplets and an evaluation set"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="SQuAD-format JSON file (e.g. KorQuAD_v1.0_dev.json)")
    parser.add_argument("--out", required=True, help="output folder (keep it out of git)")
    parser.add_argument("--sentences-per-passage", type=int, default=0, help="0: whole paragraphs")
    parser.add_argument("--eval-fraction", type=float, default=0.3, help="share of titles for evaluation")
    parser.add_argument("--val-fraction", type=float, default=0.0, help="share of titles for val.jsonl")
    parser.add_argument("--val-candidates", type=int, default=10, help="candidates per validation query")
    parser.add_argument("--max-val-queries", type=int, default=None)
    parser.add_argument("--force-gold", action="store_true",
                        help="keep validation questions whose gold the first stage missed, the gold put in")  # fmt: skip
    parser.add_argument("--max-eval-queries", type=int, default=None)
    parser.add_argument("--num-random-negatives", type=int, default=3)
    parser.add_argument("--num-hard-negatives", type=int, default=0, help="first-stage negatives per triplet")
    parser.add_argument("--hard-negative-window", type=int, nargs=2, default=(3, 50), metavar=("FROM", "TO"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--first-stage-scores",
        action="store_true",
        help="train.jsonl also carries pos_first_stage/neg_first_stage (needs --num-hard-negatives > 0)",
    )
    add_retriever_arguments(parser)


def _bears_answer(passage: Passage, question: Question) -> bool:
    return passage.id in question.pos_ids or any(answer in passage.text for answer in question.answers)


def _not_negative(taken: set[str], question: Question, by_id: dict[str, Passage]) -> Callable[[str], bool]:
    """Whether a passage id is already taken or bears an answer of ``question``."""
    return lambda passage_id: passage_id in taken or _bears_answer(by_id[passage_id], question)


def _subsample(questions: list[Question], limit: int | None, rng: random.Random) -> list[Question]:
    if limit is None or len(questions) <= limit:
        return questions
    keep = set(rng.sample(range(len(questions)), limit))
    return [q for i, q in enumerate(questions) if i in keep]


def build_triplets(
    articles: list[Article],
    num_random_negatives: int,
    num_hard_negatives: int,
    hard_window: tuple[int, int],
    rng: random.Random,
    max_queries: int | None = None,
    first_stage_scores: bool = False,
    retriever: RetrieverSpec = "bm25",
    retriever_options: dict | None = None,
    gold_within: int | None = None,
) -> list[dict]:
    """Triplets ``{query, pos, neg}``: first-stage negatives from ranks ``hard_window`` (1-based, inclusive)
    first, then random passages of the same side; no negative contains an answer text of the question.
    ``first_stage_scores`` adds ``pos_first_stage``/``neg_first_stage``: the first stage's score of each text.
    ``gold_within`` leaves out a question none of whose gold passages the first stage ranks in its top
    ``gold_within``."""
    passages = [p for article in articles for p in article.passages]
    by_id = {p.id: p for p in passages}
    position = {p.id: n for n, p in enumerate(passages)}
    pool = [p.id for p in passages]
    questions = _subsample([q for article in articles for q in article.questions], max_queries, rng)
    first_stage = None
    if num_hard_negatives or gold_within or first_stage_scores:
        first_stage = open_retriever(retriever, [p.text for p in passages], retriever_options)
        hits = first_stage.search([q.query for q in questions], max(hard_window[1], gold_within or 0))
    triplets = []
    for row, question in enumerate(questions):
        negatives: list[str] = []
        if num_hard_negatives:
            for i in hits[row].indices[hard_window[0] - 1 : hard_window[1]]:
                if len(negatives) == num_hard_negatives:
                    break
                if not _bears_answer(passages[i], question):
                    negatives.append(passages[i].id)
        negatives += fill_distinct(
            rng, pool, [], num_random_negatives, _not_negative(set(negatives), question, by_id)
        )
        triplet = {
            "query": question.query,
            "pos": [by_id[i].text for i in question.pos_ids],
            "neg": [by_id[i].text for i in negatives],
        }
        if first_stage_scores and first_stage is not None:
            ids = [*question.pos_ids, *negatives]
            (scores,) = first_stage.score([question.query], [[position[i] for i in ids]])
            triplet["pos_first_stage"] = scores[: len(question.pos_ids)]
            triplet["neg_first_stage"] = scores[len(question.pos_ids) :]
        # Decided after the negatives are drawn, so the random stream (and every later file) stays the same.
        if gold_within and not set(hits[row].indices[:gold_within]) & {position[p] for p in question.pos_ids}:
            continue
        triplets.append(triplet)
    return triplets


def prepare_squad(
    input: str | Path,
    out: str | Path,
    sentences_per_passage: int = 0,
    eval_fraction: float = 0.3,
    val_fraction: float = 0.0,
    val_candidates: int = 10,
    max_val_queries: int | None = None,
    max_eval_queries: int | None = None,
    num_random_negatives: int = 3,
    num_hard_negatives: int = 0,
    hard_negative_window: tuple[int, int] = (3, 50),
    bm25_tokenizer: str = "bigram",
    seed: int = 42,
    retriever: RetrieverSpec = "bm25",
    retriever_options: dict | None = None,
    force_gold: bool = False,
    first_stage_scores: bool = False,
) -> dict:
    """Write ``train.jsonl`` (and ``val.jsonl``), ``eval/queries.jsonl`` and ``eval/corpus.jsonl`` to ``out``
    from a SQuAD-format file; returns the counts. ``retriever_options`` are :func:`build_retriever`'s;
    ``force_gold`` keeps validation questions whose gold the first stage missed; ``first_stage_scores`` adds
    the first stage's scores to the training triplets."""
    low, high = hard_negative_window
    if not 1 <= low <= high:
        raise InputError(f"hard_negative_window needs 1 <= FROM <= TO, got {low} {high}")
    if first_stage_scores and not num_hard_negatives:
        raise InputError("--first-stage-scores needs a first stage: give --num-hard-negatives > 0")
    options = {"bm25_tokenizer": bm25_tokenizer, **(retriever_options or {})}
    articles = read_squad(input, sentences_per_passage)
    fractions = {"eval": eval_fraction}
    if val_fraction:
        fractions["val"] = val_fraction
    sides = split_by_title(articles, fractions, seed)
    rng = random.Random(seed)
    out = Path(out)
    first_stage = {"retriever": retriever, "retriever_options": options}
    counts = {}
    counts["train"] = write_jsonl(
        out / "train.jsonl",
        build_triplets(
            sides["train"],
            num_random_negatives,
            num_hard_negatives,
            (low, high),
            rng,
            first_stage_scores=first_stage_scores,
            **first_stage,
        ),  # fmt: skip
    )
    if "val" in sides:
        # Validation groups: the first stage's top candidates of a held-out side, so that validation MRR
        # tracks reranking, with their first-stage scores for the fused metrics.
        val = build_triplets(
            sides["val"], 0, val_candidates - 1, (1, 10 * val_candidates), rng, max_val_queries,
            first_stage_scores=True, gold_within=None if force_gold else val_candidates, **first_stage,
        )  # fmt: skip
        asked = sum(len(article.questions) for article in sides["val"])
        counts["val"] = write_jsonl(out / "val.jsonl", val)
        counts["val_missed_by_first_stage"] = min(asked, max_val_queries or asked) - counts["val"]
    questions = _subsample([q for a in sides["eval"] for q in a.questions], max_eval_queries, rng)
    counts["eval_queries"] = write_jsonl(
        out / "eval" / "queries.jsonl",
        ({"qid": q.id, "query": q.query, "pos_ids": q.pos_ids} for q in questions),
    )
    counts["eval_corpus"] = write_jsonl(
        out / "eval" / "corpus.jsonl",
        ({"id": p.id, "title": p.title, "text": p.text} for a in sides["eval"] for p in a.passages),
    )
    counts["articles"] = {side: len(items) for side, items in sorted(sides.items())}
    return counts
