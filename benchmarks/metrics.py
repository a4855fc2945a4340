"""Time MRR@10 and hit@1/3/5 over Q queries x C candidates: ``python benchmarks/metrics.py [--queries N]``.

Runs, alternating, the metric set as the trainer updates it (one rank computation shared by the set) and a
plain torch reference (each metric ranking on its own with the masked-max formulation this project used
before), checks that both give the same values, and prints the median and best wall time of each with the
process CPU time (on a shared machine the CPU time is the steadier figure). ``--out`` (default
``benchmarks/results/metrics.json``) records them with the machine; ``benchmarks/tables.py`` makes the README's
table from it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from common import write_result

from reranker.evaluation.metrics import rank_counts, ranking_metrics, update_all


def reference_rank(scores: torch.Tensor, relevance: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The straightforward dense formulation: masked max of the positives, count the negatives at or above."""
    relevant = relevance & mask  # [Q, C]
    best = scores.masked_fill(~relevant, float("-inf")).amax(dim=1, keepdim=True)  # [Q, 1]
    rank = 1 + (mask & ~relevant & (scores >= best)).sum(dim=1)  # [Q]
    return torch.where(relevant.any(dim=1), rank, torch.zeros_like(rank))


def ours(scores, relevance, mask) -> dict[str, float]:
    metrics = ranking_metrics()
    update_all(metrics, scores, relevance, mask)
    return {name: float(metric.compute()) for name, metric in metrics.items()}


def reference(scores, relevance, mask) -> dict[str, float]:
    metrics = ranking_metrics()
    for metric in metrics.values():
        metric.update(rank_histogram=rank_counts(reference_rank(scores, relevance, mask), metric.k))
    return {name: float(metric.compute()) for name, metric in metrics.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1_000_000)
    parser.add_argument("--candidates", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "metrics.json")
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    shape = (args.queries, args.candidates)
    scores = torch.randn(shape, generator=generator)  # [Q, C]
    relevance = torch.rand(shape, generator=generator) < 1.5 / args.candidates  # [Q, C] 0, 1 or several
    mask = torch.ones(shape, dtype=torch.bool)
    mask[: args.queries // 2, -3:] = False  # ragged groups for half of the queries
    scores[:, 1] = scores[:, 0]  # ties between neighbours
    timings: dict[str, list[tuple[float, float]]] = {"ours": [], "reference": []}
    values = {}
    for _ in range(args.repeats):
        for name, function in (("ours", ours), ("reference", reference)):
            wall, cpu = time.perf_counter(), time.process_time()
            values[name] = function(scores, relevance, mask)
            timings[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    if values["ours"] != values["reference"]:
        raise SystemExit(f"values differ: {values}")
    summary = {
        name: {
            "wall_median": statistics.median(
                wall for wall, _ in runs[1:]
            ),  # the first run warms the allocator
            "wall_best": min(wall for wall, _ in runs[1:]),
            "cpu_median": statistics.median(cpu for _, cpu in runs[1:]),
        }
        for name, runs in timings.items()
    }
    record = {
        "benchmark": "metrics",
        "queries": args.queries,
        "candidates": args.candidates,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "values": values["ours"],
        "timings": summary,
    }
    write_result(args.out, record)
    from tables import metrics_table

    print(metrics_table(str(args.out)))


if __name__ == "__main__":
    main()
