"""A persistent key → text store (SQLite) that lets a killed translation or scoring run resume.

Keys are SHA-256 digests of the parts that determine a result (backend, model, language pair, text; or model,
length limit, pair), so a cache file can be shared by several models and language pairs. Every ``put`` is
committed at once: what a run finished before it was killed is never lost, and never computed again.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path


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
