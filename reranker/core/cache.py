"""The one score and translation cache: a persistent key → text store (SQLite) that lets a killed
translation or scoring run resume, and a later run skip what an earlier one computed (``evaluate --cache``,
``prepare mine``/``teacher``/``translate``).

Keys are SHA-256 digests of the parts that determine a result (backend, model, language pair, text; or the
scoring model's weights identity and options, pair: :func:`reranker.scoring.pairs.score_key`), so a cache file
can be shared by several models and language pairs. Every ``put`` is
committed at once: what a run finished before it was killed is never lost, and never computed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from reranker.core.progress import Progress


def cache_key(*parts: str) -> str:
    """A digest of ``parts`` (separated so that ``("ab", "c")`` and ``("a", "bc")`` differ)."""
    digest = hashlib.sha256()
    for part in parts:
        encoded = part.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.hexdigest()


class Cache:
    """Key → value strings in one SQLite file; ``None`` for the in-memory cache of a run without a file."""

    def __init__(self, path: str | Path | None) -> None:
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(":memory:" if path is None else str(path))
        self.connection.execute(
            "CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        self.connection.commit()

    def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        """The stored values of those ``keys`` that are present."""
        found: dict[str, str] = {}
        for start in range(0, len(keys), 500):  # SQLite limits the number of bound parameters
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self.connection.execute(f"SELECT key, value FROM cache WHERE key IN ({marks})", chunk)
            found.update(rows)
        return found

    def put_many(self, items: Iterable[tuple[str, str]]) -> None:
        """Store ``(key, value)`` items and commit."""
        self.connection.executemany("INSERT OR REPLACE INTO cache (key, value) VALUES (?, ?)", items)
        self.connection.commit()

    def close(self) -> None:
        self.connection.close()


def cached_scores(
    pairs: Sequence[tuple[str, str]],
    score: Callable[[list[tuple[str, str]]], Sequence[float]],
    identity: Sequence[str],
    cache: Cache,
    chunk_size: int = 4096,
    progress: str | None = None,
) -> dict[tuple[str, str], float]:
    """Scores of ``pairs``: from the cache where present, else from ``score`` in chunks committed one by one.

    ``identity`` holds what determines a score besides the pair (the model's weights, ...). Pending pairs go
    longest first, so a batch too large for memory fails at once. ``progress``: the label of a
    :class:`Progress` over the pending pairs (None: none).
    """
    keys = [cache_key(*identity, query, passage) for query, passage in pairs]
    cached = cache.get_many(keys)
    pending = sorted(
        (i for i, key in enumerate(keys) if key not in cached), key=lambda i: -sum(map(len, pairs[i]))
    )
    with Progress(len(pending), progress, "pairs") if progress else contextlib.nullcontext() as bar:
        for start in range(0, len(pending), chunk_size):
            chunk = pending[start : start + chunk_size]
            values = score([pairs[i] for i in chunk])
            # repr() of a float reads back as the same float: cached and fresh runs write identical files.
            items = [(keys[i], repr(float(v))) for i, v in zip(chunk, values, strict=True)]
            cache.put_many(items)
            cached.update(items)
            if bar is not None:
                bar.update(len(chunk))
    return {pair: float(cached[key]) for pair, key in zip(pairs, keys, strict=True)}
