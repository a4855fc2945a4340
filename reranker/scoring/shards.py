"""The shard folder of a data-parallel scoring run: scores written shard by shard beside the output.

Work is cut by query: shard ``i`` is ``shard_size`` consecutive groups (a group is one query's pairs and is
never split), the same pairs whatever the number of processes. ``shard-NNNNN.jsonl`` is written whole (a
temp file renamed): a header line ``{"shard": i, "config": DIGEST, "groups": n}``, then one line per group,
its scores as a JSON list (``repr`` floats, which read back as the same floats). ``config.json`` records
what the scores depend on (model identity, the pairs' digest, lengths, batching, dtype, shard size). A
folder or a shard of another configuration is refused, never mixed in; a killed run resumes from its
finished shards; the merge reads every shard once, in shard order, and fails on a lost or doubled one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path

from reranker.core.atomic import write_atomic
from reranker.core.errors import InputError

FORMAT = 1
CONFIG = "config.json"
SHARD_SIZE = 1000  # queries per shard: what a killed run can lose, and the unit one process scores


def pairs_identity(groups: Sequence[Sequence[tuple[str, str]]]) -> dict:
    """Counts and a SHA-256 of the pairs in order, group boundaries included (every text length-prefixed)."""
    digest = hashlib.sha256()
    for group in groups:
        digest.update(len(group).to_bytes(8, "little"))
        for pair in group:
            for text in pair:
                data = text.encode("utf-8")
                digest.update(len(data).to_bytes(8, "little"))
                digest.update(data)
    return {"groups": len(groups), "pairs": sum(map(len, groups)), "sha256": digest.hexdigest()}


def shard_name(name: str) -> str:
    """A folder name for a model's shards from its name (which may be a path or a hub name): readable, and
    unique by a digest."""
    readable = re.sub(r"[^\w.-]+", "_", name).lstrip(".")[:64]
    return f"{readable}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}"


def shard_ranges(num_groups: int, shard_size: int) -> list[range]:
    """The groups of each shard: fixed by ``shard_size`` alone, never by the number of processes."""
    return [range(start, min(start + shard_size, num_groups)) for start in range(0, num_groups, shard_size)]


class ShardFolder:
    """The shards of one scoring run in ``folder``.

    Args:
        folder: created when missing.
        config: what the scores depend on; ``shard_size`` among it.
        group_sizes: the number of pairs of each group, to check each shard's lines against.
    """

    def __init__(self, folder: str | Path, config: dict, group_sizes: Sequence[int]) -> None:
        if not isinstance(config.get("shard_size"), int) or config["shard_size"] < 1:
            raise InputError(f"shard size must be an integer >= 1, got {config.get('shard_size')!r}")
        self.folder = Path(folder)
        self.config = {"format": FORMAT, **config}
        text = json.dumps(self.config, sort_keys=True, ensure_ascii=False)
        self.digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        self.group_sizes = list(group_sizes)
        self.ranges = shard_ranges(len(self.group_sizes), config["shard_size"])

    def path(self, index: int) -> Path:
        return self.folder / f"shard-{index:05d}.jsonl"

    def open(self) -> None:
        """Create the folder and its ``config.json``, or check that the one there is this run's."""
        self.folder.mkdir(parents=True, exist_ok=True)
        where = self.folder / CONFIG
        if where.is_file():
            try:
                old = json.loads(where.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                old = {}
            if old != self.config:
                keys = sorted(set(old) | set(self.config))
                changed = [key for key in keys if old.get(key) != self.config.get(key)]
                raise InputError(
                    f"{where}: the shards here were scored with another configuration ({', '.join(changed)} "
                    "differ); score with the same options, or remove the folder to score again"
                )
            return
        if any(self.folder.glob("shard-*.jsonl")):
            raise InputError(f"{self.folder}: shards without {CONFIG}; remove the folder to score again")
        write_atomic(where, json.dumps(self.config, indent=2, sort_keys=True, ensure_ascii=False) + "\n")

    def finished(self) -> dict[int, Path]:
        """Each finished shard's file; a shard of another configuration, or in two files, is an error."""
        found: dict[int, Path] = {}
        for path in sorted(self.folder.glob("shard-*.jsonl")):
            index = self._header(path)
            if index in found:
                raise InputError(
                    f"{path}: shard {index} is also in {found[index].name} (a doubled shard); remove one"
                )
            found[index] = path
        return found

    def write(self, index: int, scores: Sequence[Sequence[float]]) -> None:
        """Write shard ``index``'s scores, one list per group, whole."""
        header = {"shard": index, "config": self.digest, "groups": len(scores)}
        lines = [json.dumps(header), *(json.dumps([float(s) for s in group]) for group in scores)]
        write_atomic(self.path(index), "\n".join(lines) + "\n")

    def merge(self) -> list[list[float]]:
        """Every group's scores, in shard order; a lost, doubled or foreign shard is an error."""
        found = self.finished()
        lost = [index for index in range(len(self.ranges)) if index not in found]
        if lost:
            raise InputError(
                f"{self.folder}: shard {lost[0]} ({self.path(lost[0]).name}) is missing, {len(lost)} of "
                f"{len(self.ranges)} lost; run the command again to score them"
            )
        merged: list[list[float]] = []
        for index in range(len(self.ranges)):
            merged += self._read(found[index], index)
        return merged

    def _header(self, path: Path) -> int:
        """The shard number in ``path``'s header, after checking that this configuration wrote it."""
        with path.open(encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
        try:
            header = json.loads(first)
        except json.JSONDecodeError:
            header = None
        if not isinstance(header, dict) or not isinstance(header.get("shard"), int):
            raise InputError(f'{path}, line 1: not a shard header {{"shard": N, "config": ...}}')
        if header.get("config") != self.digest:
            raise InputError(
                f"{path}, line 1: field 'config': this shard was scored with another configuration "
                f"({str(header.get('config'))[:12]}, this run's is {self.digest[:12]}); refused, not merged"
            )
        index = header["shard"]
        if not 0 <= index < len(self.ranges):
            raise InputError(f"{path}, line 1: field 'shard': {index} is not in [0, {len(self.ranges)})")
        return index

    def _read(self, path: Path, index: int) -> list[list[float]]:
        rows = self.ranges[index]
        lines = path.read_text(encoding="utf-8").splitlines()[1:]
        if len(lines) != len(rows):
            raise InputError(f"{path}: {len(lines)} groups, shard {index} has {len(rows)}")
        scores = []
        for number, (line, row) in enumerate(zip(lines, rows, strict=True), start=2):
            try:
                values = json.loads(line)
            except json.JSONDecodeError:
                values = None
            if not isinstance(values, list) or len(values) != self.group_sizes[row]:
                raise InputError(f"{path}, line {number}: expected {self.group_sizes[row]} scores")
            scores.append([float(value) for value in values])
        return scores
