"""``prepare candidates``: for each evaluation query, the first stage's top-k over the evaluation corpus.

Writes queries JSONL ``{qid, query, pos_ids, candidate_ids, candidate_scores, forced}`` in first-stage order
(``candidate_scores``: each candidate's first-stage score, for fusion; BM25 by default, ``--retriever``
picks another). A query whose gold the first stage missed keeps its list as retrieved: ``evaluate`` counts
it as a miss for every row, as a deployed pipeline would. ``--force-gold`` instead puts the gold in place of
the last candidate and records it (``forced``), for a study of reranking alone (the reranking ceiling):
any reranker lifts a forced gold, a gain no deployed pipeline sees.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from reranker.core.errors import InputError
from reranker.core.fields import id_list_field, text_field
from reranker.core.jsonl import read_jsonl, where
from reranker.preparation.records import write_jsonl
from reranker.preparation.retrievers import (
    RetrieverSpec,
    add_retriever_arguments,
    clamp_depth,
    open_retriever,
)
from reranker.preparation.retrievers.base import encode_queries, score, search

HELP = "first-stage top-k candidates for evaluation queries"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queries", required=True, help="queries JSONL {qid, query, pos_ids}")
    parser.add_argument("--corpus", required=True, help="corpus JSONL {id, text}")
    parser.add_argument("--out", required=True, help="queries JSONL with candidate_ids")
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--force-gold", action="store_true",
                        help="put a missed gold in place of the last candidate (a reranking-ceiling study, "
                             "not an end-to-end evaluation)")  # fmt: skip
    add_retriever_arguments(parser)


def _read_corpus(path: Path) -> tuple[list[str], list[str]]:
    """Passage ids and texts of a corpus JSONL ``{id, text}``, in file order; a repeated id is an error."""
    ids, texts, seen = [], [], set()
    for number, record in read_jsonl(path):
        passage_id = text_field(record, "id", where(path, number))
        if passage_id in seen:
            raise InputError(f"{where(path, number)}: field 'id': duplicate passage id {passage_id!r}")
        seen.add(passage_id)
        ids.append(passage_id)
        texts.append(text_field(record, "text", where(path, number)))
    return ids, texts


def _read_queries(path: Path, position: dict[str, int], corpus: Path) -> list[dict]:
    """Queries ``{qid, query, pos_ids}`` whose every gold id is a corpus passage."""
    records = []
    for number, record in read_jsonl(path):
        text_field(record, "qid", where(path, number))
        text_field(record, "query", where(path, number))
        pos_ids = id_list_field(record, "pos_ids", where(path, number))
        missing = [p for p in pos_ids if p not in position]
        if missing or not pos_ids:
            raise InputError(f"{where(path, number)}: field 'pos_ids' names no corpus passage {missing}")
        records.append(record)
    return records


def prepare_candidates(
    queries: str | Path,
    corpus: str | Path,
    out: str | Path,
    top_k: int = 20,
    bm25_tokenizer: str = "bigram",
    retriever: RetrieverSpec = "bm25",
    retriever_options: dict | None = None,
    force_gold: bool = False,
) -> dict:
    """Write ``queries`` with the first stage's top-``top_k`` ``candidate_ids`` over ``corpus`` to ``out``;
    returns a summary. ``retriever_options`` are :func:`build_retriever`'s; ``force_gold`` puts a missed
    gold in place of the last candidate."""
    if top_k < 1:
        raise InputError(f"top_k must be >= 1, got {top_k}")
    queries, corpus = Path(queries), Path(corpus)
    ids, texts = _read_corpus(corpus)
    position = {passage_id: i for i, passage_id in enumerate(ids)}
    query_records = _read_queries(queries, position, corpus)
    options = {"bm25_tokenizer": bm25_tokenizer, **(retriever_options or {})}
    first_stage = open_retriever(retriever, texts, options)
    depth = clamp_depth(top_k, len(ids), "--top-k")
    encoded = encode_queries(first_stage, [query["query"] for query in query_records])
    records, found, reciprocal = [], 0, 0.0
    for query, hit in zip(query_records, search(encoded, depth), strict=True):
        ranked = [ids[i] for i in hit.indices]
        rank = next((r for r, p in enumerate(ranked, start=1) if p in query["pos_ids"]), 0)
        found += rank > 0
        reciprocal += 1.0 / rank if 0 < rank <= 10 else 0.0
        forced = force_gold and not rank
        if forced:
            ranked[-1] = query["pos_ids"][0]
        records.append(
            {**query, "candidate_ids": ranked, "candidate_scores": list(hit.scores), "forced": forced}
        )
    if force_gold:
        # A forced-in gold carries its own (lower) first-stage score, for fusion: from the same query encoding.
        golds = [[position[r["candidate_ids"][-1]]] if r["forced"] else [] for r in records]
        for record, values in zip(
            records, score(encoded, golds, "first-stage scores of forced golds"), strict=True
        ):
            if values:
                record["candidate_scores"][-1] = values[0]
    count = write_jsonl(Path(out), records)
    return {
        "retriever": getattr(first_stage, "name", "custom"),
        "tokenizer": options["bm25_tokenizer"],
        "top_k": top_k,
        "queries": count,
        "corpus": len(ids),
        f"recall@{top_k}": round(found / max(count, 1), 6),
        "mrr@10": round(reciprocal / max(count, 1), 6),
        "missed": count - found,
        "forced": count - found if force_gold else 0,
    }
