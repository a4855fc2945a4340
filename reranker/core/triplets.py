"""Read triplet JSONL files ``{"query": str, "pos": [str, ...], "neg": [str, ...]}`` into a ``datasets.Dataset``.

Every line is checked before anything is cached, so a bad file fails with the file, line and field
named. ``neg`` may be missing (the sampler then fills groups with random corpus passages).

A record may carry FlagEmbedding's distillation fields ``pos_scores`` / ``neg_scores``: a teacher's
score for each passage of ``pos`` / ``neg``, in the same order. Either may be missing (read as None:
those passages have no teacher score); when present, it must hold one finite number per passage.

Optional ``pos_first_stage``/``neg_first_stage`` give the first stage's score of each ``pos``/``neg`` text
(validation uses them to report the reranker fused with the first stage; a loss with ``teacher: first_stage``
distils from them).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import datasets

from reranker.core.errors import InputError
from reranker.core.jsonl import read_jsonl, where
from reranker.core.scores import check_scores

FEATURES = datasets.Features(
    {
        "query": datasets.Value("string"),
        "pos": datasets.Sequence(datasets.Value("string")),
        "neg": datasets.Sequence(datasets.Value("string")),
        # None where the record gives no teacher scores for those passages.
        "pos_scores": datasets.Sequence(datasets.Value("float64")),
        "neg_scores": datasets.Sequence(datasets.Value("float64")),
        "pos_first_stage": datasets.Sequence(datasets.Value("float64")),
        "neg_first_stage": datasets.Sequence(datasets.Value("float64")),
    }
)


def expand_paths(paths: str | Path | list[str | Path]) -> list[Path]:
    """One file, several files, or a folder (its ``*.jsonl`` files, sorted) → a list of files."""
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    if not items:
        raise InputError("no data files given")
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(path.glob("*.jsonl"))
            if not found:
                raise InputError(f"{path}: folder holds no *.jsonl files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return files


def _is_string_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _scores(record: dict, field: str, passages: list[str], where: str) -> list[float] | None:
    """The teacher scores of ``record[field]``: None when absent, else one finite number per passage."""
    scores = record.get(field)
    if scores is None:
        return None
    passages_field = field.removesuffix("_scores")
    if not isinstance(scores, list) or not all(
        isinstance(score, int | float) and not isinstance(score, bool) and math.isfinite(score)
        for score in scores
    ):
        raise InputError(f"{where}: field '{field}' must be a list of finite numbers, got {scores!r:.60}")
    if len(scores) != len(passages):
        raise InputError(
            f"{where}: field '{field}' has {len(scores)} scores for {len(passages)} passages in "
            f"'{passages_field}' (one teacher score per passage, in the same order)"
        )
    return [float(score) for score in scores]


def parse_record(record: dict, where: str) -> dict[str, object]:
    """Check one JSONL object and return ``{"query", "pos", "neg", "pos_scores", "neg_scores"}``;
    ``where`` names the file and line for errors."""
    query = record.get("query")
    if not isinstance(query, str) or not query.strip():
        raise InputError(f"{where}: field 'query' must be a non-empty string, got {query!r:.60}")
    pos = record.get("pos")
    if not _is_string_list(pos) or not pos:
        raise InputError(f"{where}: field 'pos' must be a non-empty list of strings, got {pos!r:.60}")
    neg = record.get("neg", [])
    if neg is None:
        neg = []
    if not _is_string_list(neg):
        raise InputError(f"{where}: field 'neg' must be a list of strings, got {neg!r:.60}")
    return {
        "query": query,
        "pos": pos,
        "neg": neg,
        "pos_scores": _scores(record, "pos_scores", pos, where),
        "neg_scores": _scores(record, "neg_scores", neg, where),
        **_first_stage(record, pos, neg, where),
    }


def _first_stage(record: dict, pos: list[str], neg: list[str], where: str) -> dict[str, list[float] | None]:
    """Optional first-stage scores beside ``pos`` and ``neg``: both or neither, one finite number per text."""
    given = [name for name in ("pos_first_stage", "neg_first_stage") if record.get(name) is not None]
    if not given:
        return {"pos_first_stage": None, "neg_first_stage": None}
    if len(given) == 1 and neg:
        missing = ({"pos_first_stage", "neg_first_stage"} - set(given)).pop()
        raise InputError(f"{where}: field '{missing}' is missing while '{given[0]}' is given (give both)")
    return {
        "pos_first_stage": check_scores(record.get("pos_first_stage"), len(pos), where, "pos_first_stage"),
        "neg_first_stage": check_scores(
            record.get("neg_first_stage") or [], len(neg), where, "neg_first_stage"
        ),
    }


def iter_records(files: list[Path]) -> Iterator[dict[str, object]]:
    """Yield checked records from each file in order; an empty file is an error."""
    for path in files:
        for number, record in read_jsonl(path):
            yield parse_record(record, where(path, number))


def _generate(files: list[str], stamps: list[tuple[int, int]]) -> Iterator[dict[str, object]]:
    # `stamps` (size, mtime) only serve the cache fingerprint: an edited file is read again.
    del stamps
    yield from iter_records([Path(f) for f in files])


def has_teacher_scores(records: datasets.Dataset) -> bool:
    """Whether any record of ``records`` gives a teacher score (``pos_scores`` or ``neg_scores``)."""
    return _any_given(records, ["pos_scores", "neg_scores"])


def has_first_stage_scores(records: datasets.Dataset) -> bool:
    """Whether any record of ``records`` gives a first-stage score (``pos_first_stage``/``neg_first_stage``)."""
    return _any_given(records, ["pos_first_stage", "neg_first_stage"])


def _any_given(records: datasets.Dataset, columns: list[str]) -> bool:
    table = records.select_columns(columns).with_format("arrow")[:]
    return any(table.column(name).null_count < table.num_rows for name in columns)


def read_triplets(paths: str | Path | list[str | Path], cache_dir: str | None = None) -> datasets.Dataset:
    """Read and check triplet files into an Arrow-backed ``datasets.Dataset`` (cached by file identity)."""
    files = expand_paths(paths)
    # Check every line first: the datasets cache would otherwise hide errors behind its own messages.
    for _ in iter_records(files):
        pass
    stamps = [(f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return datasets.Dataset.from_generator(
        _generate,
        features=FEATURES,
        gen_kwargs={"files": [str(f.resolve()) for f in files], "stamps": stamps},
        cache_dir=cache_dir,
    )
