"""Prepare training and evaluation data: ``reranker prepare {squad,candidates,translate,mine,teacher} ...``.

``squad``: a SQuAD-format QA file → ``train.jsonl`` (and ``val.jsonl``) triplets and ``eval/queries.jsonl`` +
``eval/corpus.jsonl``, split by article title so that no passage or question is on two sides.
``candidates``: for each evaluation query, the BM25 top-k over the evaluation corpus, in first-stage order,
as queries JSONL ``{qid, query, candidate_ids, candidate_scores, pos_ids, forced}`` (``candidate_scores``: each
candidate's BM25 score, for fusion). A gold passage missing from the top k replaces the last candidate, and
``forced`` records it.
``translate``, ``mine`` and ``teacher`` (``reranker.preparation.commands``): machine-translate triplets, mine
hard negatives with a false-negative filter, add teacher scores for distillation.
The same inputs and seed give byte-identical outputs.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from reranker.core.errors import InputError
from reranker.core.jsonl import read_jsonl, where
from reranker.preparation.commands import COMMANDS
from reranker.preparation.records import write_jsonl
from reranker.preparation.retrievers.bm25 import TOKENIZERS, BM25Index
from reranker.preparation.squad import Article, Passage, Question, read_squad, split_by_title


def _bears_answer(passage: Passage, question: Question) -> bool:
    return passage.id in question.pos_ids or any(answer in passage.text for answer in question.answers)


def _subsample(questions: list[Question], limit: int | None, rng: random.Random) -> list[Question]:
    if limit is None or len(questions) <= limit:
        return questions
    keep = set(rng.sample(range(len(questions)), limit))
    return [q for i, q in enumerate(questions) if i in keep]


def _random_negatives(
    passages: list[Passage], question: Question, taken: list[str], count: int, rng: random.Random
) -> list[str]:
    """``count`` random passage ids that bear no answer and are not in ``taken`` (fewer if none are left)."""
    chosen, excluded = [], set(taken)
    # Rejection sampling is fast while most passages are eligible; a full scan covers the rest.
    for _ in range(8 * count + 32):
        if len(chosen) == count:
            return chosen
        passage = passages[rng.randrange(len(passages))]
        if passage.id not in excluded and not _bears_answer(passage, question):
            chosen.append(passage.id)
            excluded.add(passage.id)
    eligible = [p.id for p in passages if p.id not in excluded and not _bears_answer(p, question)]
    return chosen + rng.sample(eligible, min(count - len(chosen), len(eligible)))


def build_triplets(
    articles: list[Article],
    num_random_negatives: int,
    num_hard_negatives: int,
    hard_window: tuple[int, int],
    tokenizer: str,
    rng: random.Random,
    max_queries: int | None = None,
    first_stage_scores: bool = False,
) -> list[dict]:
    """Triplets ``{query, pos, neg}``: BM25 negatives from ranks ``hard_window`` (1-based, inclusive) first,
    then random passages of the same side; no negative contains an answer text of the question.
    ``first_stage_scores`` adds ``pos_first_stage``/``neg_first_stage``: the BM25 score of each text."""
    passages = [p for article in articles for p in article.passages]
    by_id = {p.id: p for p in passages}
    position = {p.id: n for n, p in enumerate(passages)}
    questions = _subsample([q for article in articles for q in article.questions], max_queries, rng)
    index = BM25Index([p.text for p in passages], tokenizer) if num_hard_negatives else None
    triplets = []
    for question in questions:
        negatives: list[str] = []
        if index is not None:
            low, high = hard_window
            top, scores = index.search_with_scores(question.query, high)
            for i in top[low - 1 :]:
                if len(negatives) == num_hard_negatives:
                    break
                if not _bears_answer(passages[i], question):
                    negatives.append(passages[i].id)
        negatives += _random_negatives(passages, question, negatives, num_random_negatives, rng)
        triplet = {
            "query": question.query,
            "pos": [by_id[i].text for i in question.pos_ids],
            "neg": [by_id[i].text for i in negatives],
        }
        if first_stage_scores and index is not None:
            triplet["pos_first_stage"] = [float(scores[position[i]]) for i in question.pos_ids]
            triplet["neg_first_stage"] = [float(scores[position[i]]) for i in negatives]
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
) -> dict:
    """Write ``train.jsonl`` (and ``val.jsonl``), ``eval/queries.jsonl`` and ``eval/corpus.jsonl`` to ``out``
    from a SQuAD-format file; returns the counts."""
    low, high = hard_negative_window
    if not 1 <= low <= high:
        raise InputError(f"hard_negative_window needs 1 <= FROM <= TO, got {low} {high}")
    _check_bm25_tokenizer(bm25_tokenizer)
    articles = read_squad(input, sentences_per_passage)
    fractions = {"eval": eval_fraction}
    if val_fraction:
        fractions["val"] = val_fraction
    sides = split_by_title(articles, fractions, seed)
    rng = random.Random(seed)
    out = Path(out)
    counts = {}
    counts["train"] = write_jsonl(
        out / "train.jsonl",
        build_triplets(
            sides["train"], num_random_negatives, num_hard_negatives, (low, high), bm25_tokenizer, rng
        ),
    )
    if "val" in sides:
        # Validation groups: the BM25 top candidates of a held-out side, so validation MRR tracks reranking;
        # with their BM25 scores, so that validation also reports the reranker fused with BM25.
        val = build_triplets(
            sides["val"],
            0,
            val_candidates - 1,
            (1, 10 * val_candidates),
            bm25_tokenizer,
            rng,
            max_val_queries,
            first_stage_scores=True,
        )
        counts["val"] = write_jsonl(out / "val.jsonl", val)
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


def _check_bm25_tokenizer(name: str) -> None:
    if name not in TOKENIZERS:
        raise InputError(f"unknown BM25 tokenizer {name!r}; choose one of {', '.join(sorted(TOKENIZERS))}")


def _read_records(path: Path, fields: dict[str, type]) -> list[tuple[int, dict]]:
    """``(line number, object)`` of a JSONL file whose objects must hold ``fields`` of the given types."""
    records = []
    for number, record in read_jsonl(path):
        for name, kind in fields.items():
            if not isinstance(record.get(name), kind):
                raise InputError(f"{where(path, number)}: field '{name}' must be a {kind.__name__}")
        records.append((number, record))
    return records


def prepare_candidates(
    queries: str | Path,
    corpus: str | Path,
    out: str | Path,
    top_k: int = 20,
    bm25_tokenizer: str = "bigram",
) -> dict:
    """Write ``queries`` with the BM25 top-``top_k`` ``candidate_ids`` over ``corpus`` to ``out``; returns a summary."""
    if top_k < 1:
        raise InputError(f"top_k must be >= 1, got {top_k}")
    _check_bm25_tokenizer(bm25_tokenizer)
    queries, corpus = Path(queries), Path(corpus)
    passages = [record for _, record in _read_records(corpus, {"id": str, "text": str})]
    query_records = _read_records(queries, {"qid": str, "query": str, "pos_ids": list})
    ids = [record["id"] for record in passages]
    position = {passage_id: i for i, passage_id in enumerate(ids)}
    if len(position) != len(ids):
        raise InputError(f"{corpus}: duplicate passage ids")
    index = BM25Index([record["text"] for record in passages], bm25_tokenizer)
    records, found, reciprocal = [], 0, 0.0
    for number, query in query_records:
        missing = [p for p in query["pos_ids"] if p not in position]
        if missing or not query["pos_ids"]:
            raise InputError(f"{where(queries, number)}: field 'pos_ids' names no corpus passage {missing}")
        top, scores = index.search_with_scores(query["query"], top_k)
        ranked = [ids[i] for i in top]
        rank = next((r for r, p in enumerate(ranked, start=1) if p in query["pos_ids"]), 0)
        found += rank > 0
        reciprocal += 1.0 / rank if 0 < rank <= 10 else 0.0
        if not rank:
            ranked[-1] = query["pos_ids"][0]
        # The BM25 score of every candidate, a forced-in gold's own (lower) score included, for fusion.
        candidate_scores = [float(scores[position[p]]) for p in ranked]
        records.append(
            {**query, "candidate_ids": ranked, "candidate_scores": candidate_scores, "forced": not rank}
        )
    count = write_jsonl(Path(out), records)
    summary = {
        "tokenizer": bm25_tokenizer,
        "top_k": top_k,
        "queries": count,
        "corpus": len(ids),
        f"recall@{top_k}": round(found / max(count, 1), 6),
        "mrr@10": round(reciprocal / max(count, 1), 6),
        "forced": count - found,
    }
    return summary


BM25_HELP = "how BM25 splits text into terms"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="reranker prepare", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    squad = commands.add_parser("squad", help="SQuAD-format QA file -> triplets and an evaluation set")
    squad.add_argument("input", help="SQuAD-format JSON file (e.g. KorQuAD_v1.0_dev.json)")
    squad.add_argument("--out", required=True, help="output folder (keep it out of git)")
    squad.add_argument("--sentences-per-passage", type=int, default=0, help="0: whole paragraphs")
    squad.add_argument("--eval-fraction", type=float, default=0.3, help="share of titles for evaluation")
    squad.add_argument("--val-fraction", type=float, default=0.0, help="share of titles for val.jsonl")
    squad.add_argument("--val-candidates", type=int, default=10, help="candidates per validation query")
    squad.add_argument("--max-val-queries", type=int, default=None)
    squad.add_argument("--max-eval-queries", type=int, default=None)
    squad.add_argument("--num-random-negatives", type=int, default=3)
    squad.add_argument("--num-hard-negatives", type=int, default=0, help="BM25 negatives per triplet")
    squad.add_argument("--hard-negative-window", type=int, nargs=2, default=(3, 50), metavar=("FROM", "TO"))
    squad.add_argument("--bm25-tokenizer", choices=sorted(TOKENIZERS), default="bigram", help=BM25_HELP)
    squad.add_argument("--seed", type=int, default=42)
    candidates = commands.add_parser("candidates", help="BM25 top-k candidates for evaluation queries")
    candidates.add_argument("--queries", required=True, help="queries JSONL {qid, query, pos_ids}")
    candidates.add_argument("--corpus", required=True, help="corpus JSONL {id, text}")
    candidates.add_argument("--out", required=True, help="queries JSONL with candidate_ids")
    candidates.add_argument("--top-k", type=int, default=20)
    candidates.add_argument("--bm25-tokenizer", choices=sorted(TOKENIZERS), default="bigram", help=BM25_HELP)
    for add, _ in COMMANDS.values():
        add(commands)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    arguments = vars(parse_args(argv))
    command = arguments.pop("command")
    try:
        if command == "squad":
            arguments["hard_negative_window"] = tuple(arguments["hard_negative_window"])
            summary = prepare_squad(**arguments)
        elif command == "candidates":
            summary = prepare_candidates(**arguments)
        else:
            summary = COMMANDS[command][1](argparse.Namespace(**arguments))
    except InputError as err:
        raise SystemExit(f"error: {err}") from None
    print(json.dumps(summary, ensure_ascii=False, sort_keys=True))


if __name__ == "__main__":
    main()
