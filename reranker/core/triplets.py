"""Read triplet JSONL files ``{"query": str, "pos": [str, ...], "neg": [str, ...]}`` into a ``datasets.Dataset``.

Every line is checked before anything is cached, so a bad file fails with the file, line and field
named. ``neg`` may be missing (the sampler then fills groups with random corpus passages).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import datasets

from reranker.core.errors import InputError

FEATURES = datasets.Features(
    {
        "query": datasets.Value("string"),
        "pos": datasets.Sequence(datasets.Value("string")),
        "neg": datasets.Sequence(datasets.Value("string")),
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


def parse_line(line: str, where: str) -> dict[str, object]:
    """Check one JSONL line and return ``{"query", "pos", "neg"}``; ``where`` names the file and line for errors."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise InputError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(record, dict):
        raise InputError(
            f"{where}: expected a JSON object with 'query', 'pos' and 'neg', got {type(record).__name__}"
        )
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
    return {"query": query, "pos": pos, "neg": neg}


def iter_records(files: list[Path]) -> Iterator[dict[str, object]]:
    """Yield checked records from each file in order; an empty file is an error."""
    for path in files:
        seen = 0
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                seen += 1
                yield parse_line(line, f"{path}, line {number}")
        if seen == 0:
            raise InputError(f"{path}: file is empty (expected one JSON object per line)")


def _generate(files: list[str], stamps: list[tuple[int, int]]) -> Iterator[dict[str, object]]:
    # `stamps` (size, mtime) only serve the cache fingerprint: an edited file is read again.
    del stamps
    yield from iter_records([Path(f) for f in files])


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
