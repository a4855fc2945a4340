"""What ``reranker evaluate`` reports, computed from scored runs: tables, per-query values, slices and tests.

**End to end.** Every row ranks the first stage's candidate lists as retrieved. A query whose gold the
first stage did not retrieve (no judged positive among its candidates, or a gold forced in by
``prepare candidates --force-gold``) is a miss for every row: reciprocal rank 0, no hit. A forced gold
would otherwise hand every reranker a gain on those queries that no deployed pipeline sees. The share of
queries with a judged positive among their candidates (the first stage's recall over its lists) is the
ceiling of every row's hit@k. A set with forced golds also gets a ``ceiling`` table: the same rows with the
forced golds counted where they were put, a figure of reranking alone.

**Systems.** A system is one or several runs (seeds; :mod:`reranker.evaluation.systems`). Each run has its
row; a system of several runs has a row more, the per-query mean over its runs. A test compares two
systems' per-query seed means (:func:`~reranker.evaluation.significance.paired_test`); a seed agrees
where its own mean difference has the sign of the mean difference (:func:`seed_differences` says which
runs are paired). The p-values of every test in the table are Holm-adjusted together, and the verdict is
``better`` or ``worse`` only where the adjusted p-value is below 0.05 and every seed agrees.
"""

from __future__ import annotations

import torch

from reranker.evaluation.evalsets import EvalSet
from reranker.evaluation.metrics import first_relevant_rank, rank_counts, ranking_metrics
from reranker.evaluation.significance import holm, paired_test, sign, verdict

FIRST_STAGE = "without reranker"
CEILING_TITLE = "reranking ceiling: golds forced into {forced} of {queries} lists (not an end-to-end figure)"


def rank_run(eval_set: EvalSet, flat_scores: list[float]) -> torch.Tensor:
    """Per-query 1-based rank of the best relevant candidate (0: none): ``[Q]``."""
    scores, relevance, mask = eval_set.dense(flat_scores)
    return first_relevant_rank(scores, relevance, mask)


def per_query_values(rank: torch.Tensor, mrr_k: int, hit_ks: tuple[int, ...]) -> dict[str, list[float]]:
    """Per-query value of each metric, from ranks: reciprocal rank within ``mrr_k``, and hit within k."""
    metrics = ranking_metrics(mrr_k, hit_ks)
    return {name: metric.per_query(rank).tolist() for name, metric in metrics.items()}


def metric_values(rank: torch.Tensor, mrr_k: int, hit_ks: tuple[int, ...]) -> dict[str, float]:
    """``ranking_metrics`` over the queries of ``rank`` (``[Q]``), from one rank histogram."""
    metrics = ranking_metrics(mrr_k, hit_ks)
    histogram = rank_counts(rank, max(metric.k for metric in metrics.values()))
    for metric in metrics.values():
        metric.update(rank_histogram=histogram)
    return {name: float(metric.compute()) for name, metric in metrics.items()}


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def seed_mean(columns: list[list[float]]) -> list[float]:
    """Per query, the mean over runs: ``[R][Q]`` → ``[Q]``."""
    return [mean(list(values)) for values in zip(*columns, strict=True)]


def rows_table(
    ranks: dict[str, torch.Tensor],
    systems: dict[str, list[str]],
    queries: list[int],
    mrr_k: int,
    hit_ks: tuple[int, ...],
) -> dict[str, dict[str, float]]:
    """Each run's metrics over the query rows ``queries``, and after a system's runs its mean row."""
    index = torch.tensor(queries, dtype=torch.long)
    table = {}
    for name, runs in systems.items():
        for run in runs:
            table[run] = metric_values(ranks[run][index], mrr_k, hit_ks)
        if len(runs) > 1:
            table[name] = {metric: mean([table[run][metric] for run in runs]) for metric in table[runs[0]]}
    return table


def slices(eval_set: EvalSet, length_edges: tuple[int, ...]) -> dict[str, dict[str, list[int]]]:
    """Query rows by character length bucket and, where the first stage missed some, its retrieved ones."""
    bounds = [0, *length_edges, None]
    by_length: dict[str, list[int]] = {}
    for low, high in zip(bounds[:-1], bounds[1:], strict=True):
        name = f"{low}-{high - 1} chars" if high is not None else f">={low} chars"
        rows = [
            i for i, q in enumerate(eval_set.queries) if len(q) >= low and (high is None or len(q) < high)
        ]
        if rows:
            by_length[name] = rows
    result = {"query length": by_length}
    retrieved = [i for i, found in enumerate(eval_set.retrieved()) if found]
    if 0 < len(retrieved) < len(eval_set):
        result["gold"] = {"retrieved by the first stage": retrieved}
    return result


def seed_differences(
    per_query: dict[str, list[float]],
    a_runs: list[str],
    b_runs: list[str],
    a_mean: list[float],
    b_mean: list[float],
) -> list[float]:
    """Each seed's own mean difference (b - a). With as many runs on both sides, run i of b against run i
    of a (seeds given in the same order; a fused run against its own run); else every run of a side with
    several runs against the other side's seed mean; with one run a side, that pair's difference."""
    if len(a_runs) == len(b_runs):
        return [mean(per_query[b]) - mean(per_query[a]) for a, b in zip(a_runs, b_runs, strict=True)]
    differences = [mean(per_query[run]) - mean(a_mean) for run in b_runs] if len(b_runs) > 1 else []
    if len(a_runs) > 1:
        differences += [mean(b_mean) - mean(per_query[run]) for run in a_runs]
    return differences


def paired_tests(
    per_query: dict[str, dict[str, list[float]]],
    members: dict[str, list[str]],
    compare: list[tuple[str, str]],
    metrics: list[str],
    samples: int,
    seed: int,
) -> list[dict]:
    """For each pair ``(a, b)`` and metric: the paired test of the per-query seed means, the seeds that
    agree, the Holm-adjusted p-value over every test here, and the verdict."""
    tests = []
    for a, b in compare:
        for metric in metrics:
            columns = {run: per_query[run][metric] for run in (*members[a], *members[b])}
            a_mean = seed_mean([columns[run] for run in members[a]])
            b_mean = seed_mean([columns[run] for run in members[b]])
            result = paired_test(a_mean, b_mean, samples, seed)
            differences = seed_differences(columns, members[a], members[b], a_mean, b_mean)
            agreeing = sum(sign(d) == sign(result["difference"]) for d in differences)
            tests.append(
                {
                    "a": a,
                    "b": b,
                    "metric": metric,
                    **result,
                    "seeds": len(differences),
                    "seeds_agreeing": agreeing,
                }
            )
    for test, adjusted in zip(tests, holm([test["p_value"] for test in tests]), strict=True):
        test["p_holm"] = adjusted
        test["verdict"] = verdict(test["difference"], adjusted, test["seeds_agreeing"], test["seeds"])
    return tests


def first_stage_recall(eval_set: EvalSet) -> dict:
    """The share of queries with a judged positive among their candidates: the ceiling of hit@k."""
    retrieved = eval_set.retrieved()
    lengths = [len(candidates) for candidates in eval_set.candidates]
    return {
        "k": max(lengths),
        "shortest_list": min(lengths),
        "retrieved": sum(retrieved),
        "queries": len(eval_set),
        "recall": sum(retrieved) / len(eval_set),
    }


def evaluate(
    eval_set: EvalSet,
    runs: dict[str, list[float]],
    compare: list[tuple[str, str]],
    *,
    systems: dict[str, list[str]] | None = None,
    mrr_k: int = 10,
    hit_ks: tuple[int, ...] = (1, 3, 5),
    length_edges: tuple[int, ...] = (20, 40),
    samples: int = 10000,
    seed: int = 0,
) -> dict:
    """Tables, per-query values, slices and paired tests of scored runs (flat scores in ``pairs()`` order).

    Args:
        eval_set: the candidate lists; forced golds are misses in every end-to-end figure.
        runs: row name → flat scores.
        compare: ``(a, b)`` pairs of system or row names; each is tested b against a.
        systems: system name → its runs (rows of ``runs``); a run in none is a system of its own.
    """
    given, systems = systems or {}, {}
    for run in runs:  # systems in the order of their first run
        owner = next((name for name, members in given.items() if run in members), run)
        systems.setdefault(owner, given.get(owner, [run]))
    members = {**{run: [run] for run in runs}, **systems}
    hit_ks = tuple(hit_ks)
    metrics = [*(f"hit@{k}" for k in hit_ks), f"mrr@{mrr_k}"]
    headline = eval_set.end_to_end()
    everything = list(range(len(eval_set)))
    ranks = {run: rank_run(headline, scores) for run, scores in runs.items()}
    per_query: dict[str, dict] = {}
    for run, rank in ranks.items():
        per_query[run] = {"rank": rank.tolist(), **per_query_values(rank, mrr_k, hit_ks)}
    for name, names in systems.items():
        if len(names) > 1:
            per_query[name] = {m: seed_mean([per_query[run][m] for run in names]) for m in metrics}
    results = {
        "metrics": metrics,
        "queries": len(eval_set),
        "candidates": sum(len(c) for c in eval_set.candidates),
        "forced": eval_set.forced_count(),
        "first_stage_recall": first_stage_recall(headline),
        "systems": dict(systems),
        "table": rows_table(ranks, systems, everything, mrr_k, hit_ks),
        "tests": paired_tests(
            per_query, members, compare, [f"mrr@{mrr_k}", f"hit@{hit_ks[0]}"], samples, seed
        ),
        "slices": {
            kind: {
                bucket: {"queries": len(rows), **rows_table(ranks, systems, rows, mrr_k, hit_ks)}
                for bucket, rows in buckets.items()
            }
            for kind, buckets in slices(headline, length_edges).items()
        },
        "per_query": {"qids": eval_set.qids, **per_query},
    }
    if eval_set.forced_count():
        forced_ranks = {run: rank_run(eval_set, scores) for run, scores in runs.items()}
        results["ceiling"] = {
            "title": CEILING_TITLE.format(forced=eval_set.forced_count(), queries=len(eval_set)),
            "table": rows_table(forced_ranks, systems, everything, mrr_k, hit_ks),
            "per_query": {run: {"rank": rank.tolist()} for run, rank in forced_ranks.items()},
        }
    return results
