"""``prepare teacher``: add a teacher cross-encoder's ``pos_scores`` and ``neg_scores`` to triplets.

The field names are FlagEmbedding's, so a file prepared here trains FlagEmbedding's distillation and a file
prepared for it trains here. Each score is the teacher's raw logit for ``(query, passage)``, aligned with the
``pos`` and ``neg`` lists (existing scores are replaced). Scores are per text, so the teacher's tokenizer
may differ from the student's. Pairs go through the score cache (:mod:`reranker.preparation.scoring`;
default ``OUT.scores.sqlite``), so a killed run resumes where it stopped.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from reranker.preparation.records import read_triplet_records, write_jsonl
from reranker.preparation.scoring import add_scoring_arguments, cached_scorer, pairs_of

HELP = "add pos_scores/neg_scores from a teacher cross-encoder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="triplet JSONL")
    parser.add_argument("--model", required=True, help="teacher: a Hugging Face folder, hub name or .ckpt")
    parser.add_argument("--out", required=True, help="triplet JSONL with pos_scores and neg_scores")
    add_scoring_arguments(parser)


def with_scores(records: Sequence[dict], scores: dict[tuple[str, str], float]) -> list[dict]:
    """Records with ``pos_scores``/``neg_scores`` aligned with ``pos``/``neg``."""
    out = []
    for record in records:
        new = dict(record)
        new["pos_scores"] = [scores[(record["query"], p)] for p in record["pos"]]
        new["neg_scores"] = [scores[(record["query"], n)] for n in record.get("neg", [])]
        out.append(new)
    return out


def prepare_teacher(
    input: str | Path,
    model: str,
    out: str | Path,
    max_length: int | None = None,
    batch_size: int = 32,
    device: str | None = None,
    dtype: str | None = None,
    cache: str | Path | None = None,
) -> dict:
    """Write ``input``'s triplets with the teacher's scores to ``out``; returns the counts.
    ``max_length`` None: the length recorded with the teacher."""
    records = read_triplet_records(input)
    score, store = cached_scorer(
        model, cache or f"{out}.scores.sqlite", max_length, batch_size, device, dtype
    )
    try:
        pairs = pairs_of(records)
        scores = dict(zip(pairs, score(pairs), strict=True))
    finally:
        store.close()
    write_jsonl(out, with_scores(records, scores))
    return {"triplets": len(records), "pairs": len(pairs)}
