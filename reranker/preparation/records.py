"""Read and write the files the preparation commands exchange.

- our triplet JSONL ``{query, pos, neg[, pos_scores, neg_scores, ...]}`` (other fields are kept as they are);
- MS MARCO's TSV files: ``triples`` (``query<TAB>positive<TAB>negative``), ``queries.tsv`` (``qid<TAB>query``),
  ``collection.tsv`` (``pid<TAB>passage``) and qrels (TREC ``qid 0 pid relevance`` or ``qid<TAB>pid``);
- our queries JSONL ``{qid, query, pos_ids}`` and corpus JSONL ``{id, text}``.

Every reader names the file, the line and the field of a malformed line. Writers write a temporary file and
rename it, so a killed run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from reranker.core.atomic import write_atomic
from reranker.core.errors import InputError
from reranker.core.fields import id_list_field, known_ids, text_field
from reranker.core.jsonl import read_jsonl, where
from reranker.core.triplets import parse_record


def write_jsonl(path: str | Path, records: Iterable[dict]) -> int:
    """Write records one per line (UTF-8, keys in the given order); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(record, ensure_ascii=False) + "\n" for record in records]
    write_atomic(path, "".join(lines))
    return len(lines)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line without its newline)`` of every non-blank line; an empty file is an error."""
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    seen = 0
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    seen += 1
                    yield number, line.rstrip("\n").rstrip("\r")
        except UnicodeDecodeError as err:
            raise InputError(f"{path}, line {number + 1}: not UTF-8 text ({err.reason})") from None
    if not seen:
        raise InputError(f"{path}: file is empty")


def read_triplet_records(path: str | Path) -> list[dict]:
    """Triplet JSONL records, checked like training data, with any extra fields kept."""
    records = []
    for number, record in read_jsonl(path):
        checked = parse_record(record, where(path, number))
        records.append({**record, **{name: checked[name] for name in ("query", "pos", "neg")}})
    return records


def _fields(line: str, count: int, names: tuple[str, ...], where: str) -> list[str]:
    fields = line.split("\t")
    if len(fields) != count:
        raise InputError(
            f"{where}: expected {count} tab-separated fields ({', '.join(names)}), got {len(fields)}"
        )
    for name, value in zip(names, fields, strict=True):
        if not value.strip():
            raise InputError(f"{where}: field '{name}' is empty")
    return fields


def read_triples_tsv(path: str | Path) -> list[dict]:
    """MS MARCO ``triples`` TSV → triplets; lines with the same query and positive share one triplet."""
    path = Path(path)
    grouped: dict[tuple[str, str], list[str]] = {}
    for number, line in _lines(path):
        query, positive, negative = _fields(
            line, 3, ("query", "positive", "negative"), f"{path}, line {number}"
        )
        negatives = grouped.setdefault((query, positive), [])
        if negative not in negatives:
            negatives.append(negative)
    return [{"query": q, "pos": [p], "neg": negs} for (q, p), negs in grouped.items()]


def read_id_texts(path: str | Path, id_field: str, text_name: str) -> dict[str, str]:
    """``id → text`` from a two-column TSV or a JSONL with the named fields; a repeated id is an error."""
    path = Path(path)
    texts: dict[str, str] = {}
    for number, line in _lines(path):
        where = f"{path}, line {number}"
        if path.suffix == ".jsonl":
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(record, dict):
                raise InputError(f"{where}: expected a JSON object")
            key, text = text_field(record, id_field, where), text_field(record, text_name, where)
        else:
            key, text = _fields(line, 2, (id_field, text_name), where)
        if key in texts:
            raise InputError(f"{where}: field '{id_field}': {key!r} appears twice")
        texts[key] = text
    return texts


def read_qrels(path: str | Path) -> list[tuple[int, str, str]]:
    """Relevant ``(line, qid, pid)`` from TREC qrels (``qid iter pid relevance``, relevance > 0) or ``qid pid``."""
    path = Path(path)
    judged = []
    for number, line in _lines(path):
        fields = line.split()
        if len(fields) == 4:
            qid, _, pid, relevance = fields
            try:
                if float(relevance) <= 0:
                    continue
            except ValueError:
                raise InputError(f"{path}, line {number}: field 'relevance' must be a number") from None
        elif len(fields) == 2:
            qid, pid = fields
        else:
            raise InputError(
                f"{path}, line {number}: expected 'qid 0 pid relevance' or 'qid pid', got {len(fields)} fields"
            )
        judged.append((number, qid, pid))
    return judged


def read_judged_queries(
    queries_path: str | Path, corpus_path: str | Path, qrels_path: str | Path | None
) -> tuple[list[dict], dict[str, str], int]:
    """Queries with their relevant passage ids, the corpus, and how many queries had no judgement.

    Queries and corpus are our JSONL (``{qid, query, pos_ids}``, ``{id, text}``) or MS MARCO TSV files; the
    judgements are the queries' ``pos_ids`` or a qrels file. A judged passage id that is not in the corpus is
    an error; qrels lines of queries absent from the queries file are skipped (a subset of queries is fine).
    """
    queries = read_id_texts(queries_path, "qid", "query")
    corpus = read_id_texts(corpus_path, "id", "text")
    positives: dict[str, list[str]] = {}
    if qrels_path is not None:
        for number, qid, pid in read_qrels(qrels_path):
            if pid not in corpus:
                raise InputError(
                    f"{qrels_path}, line {number}: passage id {pid!r} is not in the corpus {corpus_path}"
                )
            if qid in queries and pid not in positives.setdefault(qid, []):
                positives[qid].append(pid)
    elif Path(queries_path).suffix == ".jsonl":
        for number, line in _lines(Path(queries_path)):
            record = json.loads(line)
            pos_ids = id_list_field(record, "pos_ids", where(queries_path, number))
            known_ids(pos_ids, corpus, "pos_ids", where(queries_path, number), corpus_path)
            positives[record["qid"]] = list(dict.fromkeys(pos_ids))
    else:
        raise InputError(f"{queries_path}: a TSV queries file needs a qrels file (--qrels)")
    judged = [
        {"qid": q, "query": text, "pos_ids": positives[q]} for q, text in queries.items() if positives.get(q)
    ]
    return judged, corpus, len(queries) - len(judged)
