"""Passage embeddings encoded shard by shard, optionally cached on disk and reused while unchanged.

A cache folder holds ``manifest.json`` (what the embeddings were made from) and ``shard-NNNNN.npy``
files of ``shard_size`` passages each, as float16 ``[rows, D]``. The manifest records three things,
each compared on reuse: the model's identity (its folder and, for every config, tokenizer and weight
file, its size and a SHA-256 — of the whole file up to 16 MiB, of 16 evenly spread 64 KiB blocks
beyond), the options that shape an embedding (pooling, prefix, normalisation, max length) and the
corpus (its row count and a SHA-256 of the passage texts in order). When any differs, one line says
which and the cache is encoded again; it is never reused silently. Each shard is written whole (a temp
file renamed), so an encoding that is killed resumes from its finished shards.

Embeddings are kept as float16 with or without a cache, so a cached and an uncached run rank the same.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from reranker.core.atomic import atomic_write, write_atomic

MANIFEST = "manifest.json"
FORMAT = 1
SHARD_SIZE = 50_000  # passages per shard: what a killed encoding can lose, ~38 MB at 384 dimensions


def corpus_identity(passages: Sequence[str]) -> dict:
    """The corpus's row count and a SHA-256 of its texts in order (each length-prefixed: no ambiguity)."""
    digest = hashlib.sha256()
    for text in passages:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return {"rows": len(passages), "sha256": digest.hexdigest()}


def _shard_ranges(rows: int, shard_size: int) -> list[tuple[int, int]]:
    return [(start, min(start + shard_size, rows)) for start in range(0, rows, shard_size)]


class EmbeddingCache:
    """The shards of one corpus's embeddings, in ``folder`` (or in memory when ``folder`` is None).

    Args:
        folder: the cache folder, created when missing; None encodes without caching.
        identity: ``{"model": ..., "options": ..., "corpus": ...}`` (see the module docstring).
        shard_size: passages per shard.
    """

    def __init__(self, folder: str | Path | None, identity: dict, shard_size: int = SHARD_SIZE) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.manifest = {"format": FORMAT, "shard_size": shard_size, **identity}
        self.ranges = _shard_ranges(identity["corpus"]["rows"], shard_size)
        if self.folder is not None:
            self._prepare()

    def _prepare(self) -> None:
        """Keep the folder's shards when its manifest matches; otherwise say why and start afresh."""
        self.folder.mkdir(parents=True, exist_ok=True)
        manifest_path = self.folder / MANIFEST
        reason = None
        if manifest_path.is_file():
            try:
                old = json.loads(manifest_path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                old = {}
            changed = [key for key in self.manifest if old.get(key) != self.manifest[key]]
            if changed:
                reason = f"{', '.join(changed)} changed"
        elif any(self.folder.glob("shard-*.npy")):
            reason = "no manifest"
        if reason:
            print(f"embedding cache {self.folder}: {reason}; encoding the corpus again", file=sys.stderr)
            for stale in self.folder.glob("shard-*.npy"):
                stale.unlink()
        if reason or not manifest_path.is_file():
            text = json.dumps(self.manifest, indent=2, sort_keys=True) + "\n"
            write_atomic(manifest_path, text.encode("utf-8"))

    def shard_path(self, number: int) -> Path:
        return self.folder / f"shard-{number:05d}.npy"

    def _load(self, number: int) -> np.ndarray | None:
        """A finished shard ``[rows, D]`` float16, or None when it is missing or not of the right shape."""
        path = self.shard_path(number)
        if not path.is_file():
            return None
        try:
            shard = np.load(path)
        except (OSError, ValueError):
            return None
        start, end = self.ranges[number]
        right = shard.dtype == np.float16 and shard.ndim == 2 and shard.shape[0] == end - start
        return shard if right else None

    def rows_to_encode(self, worker: int = 0, num_workers: int = 1) -> int:
        """How many passages of this worker's shards have no shard file yet (what :meth:`shards` encodes)."""
        return sum(
            end - start
            for number, (start, end) in enumerate(self.ranges)
            if number % num_workers == worker
            and (self.folder is None or not self.shard_path(number).is_file())
        )

    def shards(
        self,
        passages: Sequence[str],
        embed: Callable[[Sequence[str]], np.ndarray],
        worker: int = 0,
        num_workers: int = 1,
    ) -> Iterator[np.ndarray]:
        """Each shard's embeddings ``[rows, D]`` (float16) in corpus order: read when cached, else encoded.

        With ``num_workers > 1`` only this worker's shards (every ``num_workers``-th, from ``worker``) are
        encoded and yielded: several processes, one per GPU, fill one cache folder.
        """
        done = sum(self.shard_path(n).is_file() for n in range(len(self.ranges))) if self.folder else 0
        if 0 < done < len(self.ranges):
            print(
                f"embedding cache {self.folder}: resuming, {done} of {len(self.ranges)} shards done",
                file=sys.stderr,
            )
        for number, (start, end) in enumerate(self.ranges):
            if number % num_workers != worker:
                continue
            shard = self._load(number) if self.folder is not None else None
            if shard is None:
                shard = embed(passages[start:end]).astype(np.float16)  # [rows, D]
                if self.folder is not None:
                    with atomic_write(self.shard_path(number), "wb") as handle:
                        np.save(handle, shard)
            yield shard
