"""Evaluation sets: each query with its candidates in first-stage order and which of them are relevant.

Three formats are read into one :class:`EvalSet`:

- **queries + corpus** (``.jsonl`` with ``--corpus``): queries ``{qid, query, candidate_ids, pos_ids}`` (optional
  ``forced``: the gold was put in by ``prepare candidates --force-gold``; optional ``candidate_scores``: the
  first stage's score of each candidate) and a corpus ``{id, text}``. Every id must be a corpus passage; a
  query none of whose ``pos_ids`` is among its ``candidate_ids`` is a first-stage miss, not an error.
- **RAG-style CSV** (``.csv``): one row per question with columns ``question``, ``contexts`` (a JSON list of
  the retrieved texts, in order) and ``gold_context`` (text) or ``gold_index`` (0-based; empty or -1 when the
  first stage missed it); optional ``qid`` and ``scores`` (a JSON list of the first stage's score of each
  context). A gold absent from the contexts counts as a miss, not an error.
- **triplets** (``.jsonl`` alone): ``{query, pos, neg}`` with optional ``pos_first_stage``/``neg_first_stage``
  (first-stage scores beside ``pos``/``neg``); candidates are ``pos + neg`` (a ``neg`` equal to a ``pos`` is
  dropped), so the gold is always present and the "first-stage order" puts it first.

First-stage scores (higher is better) are what fusion mixes with a reranker's; a query without them is fused
with its first-stage order instead (the first candidate scoring highest). A score list whose length differs
from the candidates', or a score that is not a finite number, is an error naming the file and line.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from reranker.core.errors import InputError
from reranker.core.fields import id_list_field, known_ids, text_field
from reranker.core.grid import grid_positions, to_grid
from reranker.core.jsonl import read_jsonl
from reranker.core.scores import check_scores
from reranker.core.triplets import expand_paths, iter_records


@dataclass
class EvalSet:
    """Queries, their candidate texts in first-stage order, relevance flags, forced-gold flags, and the
    first stage's scores of the candidates where the data gives them (``None`` for a query without)."""

    qids: list[str]
    queries: list[str]
    candidates: list[list[str]]
    relevant: list[list[bool]]
    forced: list[bool] | None = None
    first_stage: list[list[float] | None] | None = None

    def __len__(self) -> int:
        return len(self.queries)

    def pairs(self) -> list[tuple[str, str]]:
        """Every ``(query, candidate)`` pair, query by query."""
        return [(q, c) for q, cands in zip(self.queries, self.candidates, strict=True) for c in cands]

    def dense(self, flat_scores: list[float]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Scores (in :meth:`pairs` order) → ``scores``, ``relevance``, ``candidate_mask``, each ``[Q, C]``.

        Every run is scored on the same lists: a gold forced in is relevant for every row, the first stage
        included (it ranks the gold where it was put); :meth:`end_to_end` makes it a miss instead.
        """
        lengths = [len(flags) for flags in self.relevant]
        if sum(lengths) != len(flat_scores):
            raise ValueError(f"expected {sum(lengths)} scores, got {len(flat_scores)}")
        rows, columns = grid_positions(lengths)
        shape = (len(self), max(lengths))
        flags = torch.tensor([flag for row in self.relevant for flag in row], dtype=torch.bool)
        scores = to_grid(rows, columns, torch.tensor(flat_scores, dtype=torch.float64), shape, 0.0)
        relevance = to_grid(rows, columns, flags, shape, False)
        mask = to_grid(rows, columns, torch.ones_like(flags), shape, False)
        return scores, relevance, mask

    def first_stage_scores(self) -> list[float]:
        """Scores that reproduce the candidate order: the first candidate scores highest."""
        return [float(-position) for cands in self.candidates for position in range(len(cands))]

    def first_stage_fusion_scores(self) -> list[float]:
        """The first stage's scores where given, else scores from its order (see :meth:`first_stage_scores`)."""
        given = self.first_stage or [None] * len(self)
        return [
            score
            for cands, scores in zip(self.candidates, given, strict=True)
            for score in (scores if scores is not None else [float(-p) for p in range(len(cands))])
        ]

    def queries_with_first_stage_scores(self) -> int:
        return sum(scores is not None for scores in self.first_stage or [])

    def forced_count(self) -> int:
        """Queries whose gold was forced into the candidates."""
        return sum(self.forced or [])

    def end_to_end(self) -> EvalSet:
        """The set as a deployed pipeline sees it: a gold forced into a list was not retrieved, so that query
        has no relevant candidate (a miss for every row, whatever order a row gives its list)."""
        if not self.forced_count():
            return self
        relevant = [
            [False] * len(flags) if forced else flags
            for flags, forced in zip(self.relevant, self.forced, strict=True)
        ]
        return replace(self, relevant=relevant)

    def retrieved(self) -> list[bool]:
        """Per query, whether a judged positive is among its candidates."""
        return [any(flags) for flags in self.relevant]


def check_measurable(eval_set: EvalSet, path: str | Path) -> None:
    """A set where no query has a judged positive among its (retrieved) candidates measures nothing."""
    if not any(eval_set.end_to_end().retrieved()):
        raise InputError(
            f"{path}: no query has a judged positive among its retrieved candidates "
            f"({len(eval_set)} queries): nothing to measure; check the gold ids and the first stage's lists"
        )


def read_corpus(path: str | Path) -> dict[str, str]:
    """Corpus JSONL ``{id, text}`` → ``{id: text}``; duplicate ids are an error."""
    path = Path(path)
    corpus: dict[str, str] = {}
    for number, record in read_jsonl(path):
        where = f"{path}, line {number}"
        passage_id = text_field(record, "id", where)
        if passage_id in corpus:
            raise InputError(f"{where}: field 'id': duplicate passage id {passage_id!r}")
        corpus[passage_id] = text_field(record, "text", where)
    return corpus


def read_queries(path: str | Path, corpus_path: str | Path) -> EvalSet:
    """Queries JSONL ``{qid, query, candidate_ids, pos_ids[, forced]}`` over a corpus JSONL ``{id, text}``."""
    path, corpus = Path(path), read_corpus(corpus_path)
    qids, queries, candidates, relevant, forced, first_stage = [], [], [], [], [], []
    for number, record in read_jsonl(path):
        where = f"{path}, line {number}"
        qid = text_field(record, "qid", where)
        if qid in qids:
            raise InputError(f"{where}: field 'qid': duplicate query id {qid!r}")
        candidate_ids = id_list_field(record, "candidate_ids", where)
        if not candidate_ids:
            raise InputError(f"{where}: field 'candidate_ids' is empty (a query needs candidates)")
        if len(set(candidate_ids)) != len(candidate_ids):
            raise InputError(f"{where}: field 'candidate_ids' lists a passage twice")
        known_ids(candidate_ids, corpus, "candidate_ids", where, corpus_path)
        pos_ids = id_list_field(record, "pos_ids", where)
        if not pos_ids:
            raise InputError(f"{where}: field 'pos_ids' is empty (a query needs a judged positive)")
        # A gold the first stage did not retrieve is a miss; one that is not a passage at all is a typo.
        known_ids(pos_ids, corpus, "pos_ids", where, corpus_path)
        qids.append(qid)
        queries.append(text_field(record, "query", where))
        candidates.append([corpus[c] for c in candidate_ids])
        relevant.append([c in pos_ids for c in candidate_ids])
        forced.append(bool(record.get("forced", False)))
        scores = record.get("candidate_scores")
        first_stage.append(
            None if scores is None else check_scores(scores, len(candidate_ids), where, "candidate_scores")
        )
    return EvalSet(qids, queries, candidates, relevant, forced, first_stage)


def read_rag_csv(path: str | Path) -> EvalSet:
    """RAG-style CSV: ``question``, ``contexts`` (JSON list) and ``gold_context`` or ``gold_index``."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8", newline="")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    with handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        gold_column = next((c for c in ("gold_context", "gold_index") if c in columns), None)
        if "question" not in columns or "contexts" not in columns or gold_column is None:
            raise InputError(
                f"{path}: expected columns 'question', 'contexts' and 'gold_context' or 'gold_index'; "
                f"found {columns}"
            )
        eval_set = EvalSet([], [], [], [], first_stage=[])
        for number, row in enumerate(reader, start=2):  # row 1 is the header
            where = f"{path}, row {number}"
            question = text_field(row, "question", where)
            try:
                contexts = json.loads(row["contexts"] or "")
            except json.JSONDecodeError:
                contexts = None
            if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
                raise InputError(
                    f"{where}: field 'contexts' must be a JSON list of strings, got {row['contexts']!r:.60}"
                )
            if not contexts:
                raise InputError(f"{where}: field 'contexts' is empty (a question needs candidates)")
            qid = (row.get("qid") or "").strip() or str(number)
            if qid in eval_set.qids:
                raise InputError(f"{where}: field 'qid': duplicate query id {qid!r}")
            relevant = [False] * len(contexts)
            if gold_column == "gold_context":
                relevant = [context == row["gold_context"] for context in contexts]
            elif (row["gold_index"] or "").strip() not in ("", "-1"):
                try:
                    index = int(row["gold_index"])
                except ValueError:
                    index = -2
                if not 0 <= index < len(contexts):
                    raise InputError(
                        f"{where}: field 'gold_index' must be an integer in [0, {len(contexts)}) or -1, "
                        f"got {row['gold_index']!r}"
                    )
                relevant[index] = True
            eval_set.qids.append(qid)
            eval_set.queries.append(question)
            eval_set.candidates.append(contexts)
            eval_set.relevant.append(relevant)
            eval_set.first_stage.append(_csv_scores(row, len(contexts), where))
    if not eval_set.qids:
        raise InputError(f"{path}: no rows")
    return eval_set


def _csv_scores(row: dict, count: int, where: str) -> list[float] | None:
    """The optional ``scores`` cell: a JSON list of first-stage scores, one per context."""
    cell = (row.get("scores") or "").strip()
    if not cell:
        return None
    try:
        scores = json.loads(cell)
    except json.JSONDecodeError:
        raise InputError(
            f"{where}: field 'scores' must be a JSON list of numbers, got {cell!r:.60}"
        ) from None
    return check_scores(scores, count, where, "scores")


def read_triplet_eval(paths: str | Path | list[str | Path]) -> EvalSet:
    """Triplet JSONL ``{query, pos, neg[, pos_first_stage, neg_first_stage]}``: candidates are ``pos + neg``."""
    eval_set = EvalSet([], [], [], [], first_stage=[])
    for number, record in enumerate(iter_records(expand_paths(paths)), start=1):
        texts, scores = candidates_with_scores(record)
        eval_set.qids.append(str(number))
        eval_set.queries.append(record["query"])
        eval_set.candidates.append(texts)
        eval_set.relevant.append([text in record["pos"] for text in texts])
        eval_set.first_stage.append(scores)
    return eval_set


def candidates_with_scores(record: dict) -> tuple[list[str], list[float] | None]:
    """A triplet's ``pos + neg`` without repeats (a ``neg`` equal to a ``pos`` dropped), with the first
    stage's score of each (its first occurrence's) when the record carries them."""
    scores = record.get("pos_first_stage")
    given = scores is not None
    first: dict[str, float | None] = {}
    for side in ("pos", "neg"):
        side_scores = record.get(f"{side}_first_stage") if given else None
        for index, text in enumerate(record[side]):
            if text not in first:
                first[text] = side_scores[index] if side_scores is not None else None
    return list(first), (list(first.values()) if given else None)


def load_eval_set(path: str | Path, corpus: str | Path | None = None, fmt: str = "auto") -> EvalSet:
    """Read an evaluation set; ``fmt`` is ``queries``, ``csv``, ``triplets`` or ``auto`` (by extension and corpus)."""
    if fmt == "auto":
        fmt = "csv" if str(path).endswith(".csv") else "queries" if corpus is not None else "triplets"
    if fmt == "queries":
        if corpus is None:
            raise InputError(f"{path}: the queries format needs a corpus file (--corpus)")
        return read_queries(path, corpus)
    if fmt == "csv":
        return read_rag_csv(path)
    if fmt == "triplets":
        return read_triplet_eval(path)
    raise InputError(f"unknown evaluation format {fmt!r}; choose queries, csv, triplets or auto")
