"""Validation on retrieved candidate lists: the queries and corpus files ``reranker evaluate`` reads.

A candidates file holds one query a line, ``{qid, query, candidate_ids, candidate_scores, pos_ids[,
forced]}``, over a corpus ``{id, text}`` (what ``reranker prepare candidates`` writes). It is read with
evaluate's own reader, so validation scores exactly the lists evaluate scores: every candidate as
retrieved, in the retriever's order, nothing added. Checkpoints are then chosen on lists like those the
reranker will rerank when deployed, and the first stage's metrics and the fused ones mean what they say.
"""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from reranker.core.errors import InputError
from reranker.core.jsonl import read_jsonl, where
from reranker.core.triplets import expand_paths
from reranker.evaluation.evalsets import EvalSet, load_eval_set

# (query, candidate texts in list order, relevance of each, first-stage score of each)
ValidationList = tuple[str, list[str], list[bool], list[float] | None]


def is_candidates_file(paths: str | list[str]) -> bool:
    """Whether the first record of the first file is a candidate list (it has ``candidate_ids``)."""
    _, record = next(read_jsonl(expand_paths(paths)[0]))
    return "candidate_ids" in record


def read_candidate_lists(paths: str | list[str], corpus: str | None) -> EvalSet:
    """The candidates file ``paths`` (one file) over the corpus ``corpus``, as ``reranker evaluate`` reads it.

    Raises :class:`InputError` naming the file, line and field when the file is not a candidates file,
    when the corpus is missing, or when a candidate id is not in the corpus.
    """
    files = expand_paths(paths)
    if len(files) != 1:
        raise InputError(
            f"data.val_files: a candidates file is one file, got {len(files)} ({', '.join(map(str, files))})"
        )
    path = files[0]
    number, record = next(read_jsonl(path))
    if "candidate_ids" not in record:
        raise InputError(
            f"{where(path, number)}: field 'candidate_ids' is missing: with data.val_corpus, data.val_files "
            "must be a candidates file {qid, query, candidate_ids, candidate_scores, pos_ids} "
            "(or set data.val_corpus=null for triplets)"
        )
    if corpus is None:
        raise InputError(
            f"{where(path, number)}: field 'candidate_ids': a candidates file needs its corpus; set "
            "data.val_corpus to the corpus JSONL {id, text} its ids name"
        )
    return load_eval_set(path, Path(corpus), "queries")


class CandidateLists(Dataset):
    """Item → ``(query, candidates, relevance, first_stage)``: one retrieved list, as read.

    ``first_stage`` holds the first stage's score of each candidate (``candidate_scores``), or scores
    from the list order for a query without them: what ``reranker evaluate`` fuses a reranker with. A
    query whose gold was not retrieved (no relevant candidate) stays, and counts as a miss.
    """

    def __init__(self, eval_set: EvalSet) -> None:
        scores = iter(eval_set.first_stage_fusion_scores())
        self.items: list[ValidationList] = [
            (query, candidates, relevant, [next(scores) for _ in candidates])
            for query, candidates, relevant in zip(
                eval_set.queries, eval_set.candidates, eval_set.relevant, strict=True
            )
        ]
        self.pairs = sum(len(candidates) for _, candidates, _, _ in self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> ValidationList:
        return self.items[index]
