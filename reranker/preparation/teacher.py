"""``prepare teacher``: add a teacher cross-encoder's ``pos_scores`` and ``neg_scores`` to triplets.

The field names are FlagEmbedding's, so a file prepared here trains FlagEmbedding's distillation and a file
prepared for it trains here. Each score is the teacher's raw logit for ``(query, passage)``, aligned with the
``pos`` and ``neg`` lists (existing scores are replaced). Scores are per text, so the teacher's tokenizer
may differ from the student's. Pairs are scored through :mod:`reranker.scoring.pairs`, with the score cache
(default ``OUT.scores.sqlite``, keyed by the teacher's weights), so a killed run resumes where it stopped.

With ``--devices N`` (and ``--num-nodes``) the triplets are scored over N processes per node on Lightning's
predict loop (:mod:`reranker.scoring.engine`), one group a triplet, in shards of ``--shard-size`` triplets
written to ``OUT.shards/``: a killed run resumes from its finished shards, and ``OUT`` is byte-identical for
any number of processes (``--devices 1`` included).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from pathlib import Path

from reranker.preparation.records import read_triplet_records, write_jsonl
from reranker.scoring.options import add_parallel_arguments, add_scoring_arguments, parallel_options
from reranker.scoring.pairs import PairScoring
from reranker.scoring.shards import SHARD_SIZE

HELP = "add pos_scores/neg_scores from a teacher cross-encoder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="triplet JSONL")
    parser.add_argument("--model", required=True, help="teacher: a Hugging Face folder, hub name or .ckpt")
    parser.add_argument("--out", required=True, help="triplet JSONL with pos_scores and neg_scores")
    add_scoring_arguments(parser)
    add_parallel_arguments(parser)


def passages_of(record: dict) -> list[str]:
    """A triplet's passages, its positives then its negatives: one group of pairs."""
    return [*record["pos"], *record.get("neg", [])]


def with_scores(records: Sequence[dict], scores: Iterable[float]) -> list[dict]:
    """Records with ``pos_scores``/``neg_scores`` aligned with ``pos``/``neg``, from ``scores`` in
    :func:`passages_of` order, record after record."""
    scores = iter(scores)
    out = []
    for record in records:
        new = dict(record)
        new["pos_scores"] = [next(scores) for _ in record["pos"]]
        new["neg_scores"] = [next(scores) for _ in record.get("neg", [])]
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
    parallel = parallel_options(devices, num_nodes, accelerator, shard_size)
    scoring = PairScoring(max_length=max_length, batch_size=batch_size, device=device, dtype=dtype,
                          cache=cache if parallel is not None else cache or f"{out}.scores.sqlite",
                          parallel=parallel, shards=f"{out}.shards", task="teacher",
                          chunk_size=8 * batch_size, progress=True)  # fmt: skip
    records = read_triplet_records(input)
    pairs = [(record["query"], passage) for record in records for passage in passages_of(record)]
    scores = scoring(model, pairs, group_sizes=[len(passages_of(record)) for record in records])
    if scores is None:
        return None
    write_jsonl(out, with_scores(records, scores))
    summary = {"triplets": len(records), "pairs": len(set(pairs))}
    return summary if parallel is None else {**summary, "shards": f"{out}.shards"}
