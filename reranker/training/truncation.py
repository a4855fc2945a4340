"""How much of the data a run's lengths cut: per data file, measured on a sample of its pairs at start-up.

A pair longer than ``max_length`` loses tokens, and a query longer than ``query_max_length`` loses its
end; a run whose pairs are mostly cut learns from text it never sees whole. The statistics come from a
seeded sample of at most ``SAMPLE_PAIRS`` (query, passage) pairs per file (``pos`` and ``neg`` of
randomly drawn records, or randomly drawn pairs of a candidates file's lists), so start-up stays fast on
large files.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np

SAMPLE_PAIRS = 2000


@dataclass(frozen=True)
class TruncationStats:
    """Truncation of one data file's sampled pairs."""

    file: str
    pairs_sampled: int
    pairs_cut: float  # share of pairs longer than max_length
    query_tokens_lost: float  # share of query tokens cut (by query_max_length or by max_length)
    pair_length_p50: float  # tokens of a pair before truncation, special tokens or prompt included
    pair_length_p90: float
    pair_length_p99: float

    def line(self, max_length: int, query_max_length: int | None) -> str:
        query_limit = f"query_max_length {query_max_length}" if query_max_length else "no query_max_length"
        return (
            f"truncation of {self.file} ({self.pairs_sampled} pairs sampled): "
            f"{self.pairs_cut:.1%} of pairs cut at max_length {max_length}, "
            f"{self.query_tokens_lost:.1%} of query tokens lost ({query_limit}); pair length p50 "
            f"{self.pair_length_p50:.0f}, p90 {self.pair_length_p90:.0f}, p99 {self.pair_length_p99:.0f} tokens"
        )

    def metrics(self) -> dict[str, float]:
        """``truncation/<file name>/<statistic>`` for ``metrics.json`` and the model card."""
        prefix = f"truncation/{Path(self.file).name}"
        names = ("pairs_sampled", "pairs_cut", "query_tokens_lost")
        names += ("pair_length_p50", "pair_length_p90", "pair_length_p99")
        return {f"{prefix}/{name}": float(getattr(self, name)) for name in names}


def records_per_file(files: list[Path]) -> list[int]:
    """Records of each JSONL file: its non-blank lines, as the triplet reader counts them."""
    counts = []
    for path in files:
        with path.open("rb") as handle:
            counts.append(sum(1 for line in handle if line.strip()))
    return counts


def sample_pairs(records: datasets.Dataset, rows: range, seed: int) -> tuple[list[str], list[str]]:
    """(queries, passages) of up to ``SAMPLE_PAIRS`` pairs of randomly drawn records among ``rows``."""
    # Every record gives at least one pair, so SAMPLE_PAIRS records are enough.
    drawn = random.Random(seed).sample(rows, min(len(rows), SAMPLE_PAIRS))
    queries: list[str] = []
    passages: list[str] = []
    for start in range(0, len(drawn), 256):
        for record in records.select(drawn[start : start + 256]):
            for passage in [*record["pos"], *(record["neg"] or [])]:
                queries.append(record["query"])
                passages.append(passage)
        if len(queries) >= SAMPLE_PAIRS:
            break
    return queries[:SAMPLE_PAIRS], passages[:SAMPLE_PAIRS]


def measure(file: str, queries: list[str], passages: list[str], encoder) -> TruncationStats:
    """Statistics of the pairs as ``encoder`` (``PairEncoder`` or ``TemplateEncoder``) would cut them.

    A ``PairEncoder`` without ``query_max_length`` cuts the longer text first (longest-first
    truncation); with one, the query is cut to it and then only the passage; a
    prompt template cuts the passage first, then the query.
    """
    tokenizer = encoder.tokenizer
    query_tokens = np.array([len(ids) for ids in tokenizer(queries, add_special_tokens=False)["input_ids"]])
    passage_tokens = np.array(
        [len(ids) for ids in tokenizer(passages, add_special_tokens=False)["input_ids"]]
    )
    budget = encoder.max_length - encoder.extra_tokens  # text tokens a pair may keep
    lengths = encoder.extra_tokens + query_tokens + passage_tokens
    if encoder.query_max_length is not None:
        lost = np.maximum(query_tokens - encoder.query_max_length, 0)
    elif type(encoder).__name__ == "TemplateEncoder":
        lost = np.clip(query_tokens - budget, 0, query_tokens)  # the passage goes first, whole
    else:
        lost = longest_first_query_loss(query_tokens, passage_tokens, budget)
    total_query = max(int(query_tokens.sum()), 1)
    p50, p90, p99 = np.percentile(lengths, [50, 90, 99]) if len(lengths) else (0.0, 0.0, 0.0)
    return TruncationStats(
        file=file,
        pairs_sampled=len(queries),
        pairs_cut=float((lengths > encoder.max_length).mean()) if len(lengths) else 0.0,
        query_tokens_lost=float(lost.sum()) / total_query,
        pair_length_p50=float(p50),
        pair_length_p90=float(p90),
        pair_length_p99=float(p99),
    )


def longest_first_query_loss(query: np.ndarray, passage: np.ndarray, budget: int) -> np.ndarray:
    """Query tokens a fast tokenizer's longest-first truncation removes to fit ``budget`` text tokens: the
    shorter text stays whole when the longer can give up the rest; else each keeps half, the longer
    text the odd token."""
    short = np.minimum(query, passage)
    long_kept = np.where(short > budget, short, np.maximum(short, budget - short))
    halve = short + long_kept > budget
    short_kept = np.where(halve, budget // 2, short)
    long_kept = np.where(halve, budget // 2 + budget % 2, long_kept)
    query_kept = np.where(query > passage, long_kept, short_kept)
    fits = query + passage <= budget
    return np.where(fits, 0, np.maximum(query - query_kept, 0))


def list_truncation_stats(
    file: str, queries: list[str], candidates: list[list[str]], encoder, seed: int
) -> TruncationStats:
    """:class:`TruncationStats` of a candidates file: up to ``SAMPLE_PAIRS`` randomly drawn (query,
    candidate) pairs of its lists."""
    pairs = [(row, column) for row, texts in enumerate(candidates) for column in range(len(texts))]
    drawn = random.Random(seed).sample(pairs, min(len(pairs), SAMPLE_PAIRS))
    passages = [candidates[row][column] for row, column in drawn]
    return measure(file, [queries[row] for row, _ in drawn], passages, encoder)


def truncation_stats(
    records: datasets.Dataset, files: list[Path], encoder, seed: int
) -> list[TruncationStats]:
    """One :class:`TruncationStats` per file of ``records`` (read from ``files`` in order)."""
    counts = records_per_file(files)
    if sum(counts) != len(records):  # cannot tell the files apart: one line for all of them
        files, counts = [Path(", ".join(map(str, files)))], [len(records)]
    stats = []
    start = 0
    for path, count in zip(files, counts, strict=True):
        queries, passages = sample_pairs(records, range(start, start + count), seed)
        stats.append(measure(str(path), queries, passages, encoder))
        start += count
    return stats
