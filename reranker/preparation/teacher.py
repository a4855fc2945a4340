"""``prepare teacher``: add a teacher cross-encoder's ``pos_scores`` and ``neg_scores`` to triplets.

The field names are FlagEmbedding's, so a file prepared here trains FlagEmbedding's distillation and a file
prepared for it trains here. Each score is the teacher's raw logit for ``(query, passage)``, aligned with the
``pos`` and ``neg`` lists (existing scores are replaced). Scores are per text, so the teacher's tokenizer
may differ from the student's. Pairs go through the score cache (:mod:`reranker.preparation.scoring`;
default ``OUT.scores.sqlite``), so a killed run resumes where it stopped.

With ``--devices N`` (and ``--num-nodes``) the triplets are scored over N processes per node on Lightning's
predict loop (:mod:`reranker.model.parallel_scoring`), in shards of ``--shard-size`` triplets written to
``OUT.shards/``: a killed run resumes from its finished shards, and ``OUT`` is byte-identical for any number
of processes (``--devices 1`` included).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from reranker.model.parallel_options import add_parallel_arguments, check_parallel_options
from reranker.model.shards import SHARD_SIZE
from reranker.preparation.records import read_triplet_records, write_jsonl
from reranker.preparation.scoring import add_scoring_arguments, cached_scorer, pairs_of

HELP = "add pos_scores/neg_scores from a teacher cross-encoder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="triplet JSONL")
    parser.add_argument("--model", required=True, help="teacher: a Hugging Face folder, hub name or .ckpt")
    parser.add_argument("--out", required=True, help="triplet JSONL with pos_scores and neg_scores")
    add_scoring_arguments(parser)
    add_parallel_arguments(parser)


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
    devices: int | None = None,
    num_nodes: int = 1,
    accelerator: str = "auto",
    shard_size: int = SHARD_SIZE,
) -> dict | None:
    """Write ``input``'s triplets with the teacher's scores to ``out``; returns the counts.
    ``max_length`` None: the length recorded with the teacher. With ``devices``: sharded over processes
    (see the module docstring); every rank but global rank zero returns None and writes nothing."""
    check_parallel_options(devices, device, cache)
    records = read_triplet_records(input)
    if devices is not None:
        parallel = dict(devices=devices, num_nodes=num_nodes, accelerator=accelerator, shard_size=shard_size)
        return _sharded(
            records, model, out, max_length=max_length, batch_size=batch_size, dtype=dtype, **parallel
        )
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


def _sharded(records: list[dict], model: str, out: str | Path, **scoring) -> dict | None:
    """One group a triplet (its positives, then its negatives), scored shard by shard in ``OUT.shards``."""
    from reranker.model.parallel_scoring import score_groups

    groups = [[(r["query"], p) for p in (*r["pos"], *r.get("neg", []))] for r in records]
    scores = score_groups(groups, model, f"{out}.shards", "teacher", **scoring)
    if scores is None:
        return None
    for record, group in zip(records, scores, strict=True):
        record["pos_scores"] = group[: len(record["pos"])]
        record["neg_scores"] = group[len(record["pos"]) :]
    write_jsonl(out, records)
    return {"triplets": len(records), "pairs": len(pairs_of(records)), "shards": f"{out}.shards"}
