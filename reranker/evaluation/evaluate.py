"""Evaluate rerankers on one evaluation set: ``reranker evaluate DATA [--corpus C] --model M ...``.

Prints the table: one row for the first-stage order ("without reranker") and one per model, with hit@k
(has-right-in-contexts) and MRR@10 from ``reranker.evaluation.metrics`` (the code path validation uses). Every row
ranks the same candidate lists: a gold passage forced into the candidates counts where it was put for the first
stage, like any candidate for a reranker, so a paired test compares like with like; then each
model against the first stage (or the ``--compare`` pairs) with a paired test, and the same metrics per
slice: query length and whether the gold passage was forced into the candidates. ``--out DIR`` writes
``results.json`` (table, per-query ranks and reciprocal ranks, slices, tests) and ``results.md``.

Each model also gets a fused row (``NAME fused``): its scores mixed with the first stage's
(``reranker.model.fusion``), a tuned on ``--fusion-val`` when given, else by ``--fusion-folds``-fold
cross-validation on the evaluated queries (``reranker.evaluation.tuning``), and tested against the first
stage and against the model alone.

``--devices N`` (``--num-nodes``, ``--accelerator``, ``--shard-size``) scores over N processes a node, in
resumable shards under ``OUT/shards/`` (:mod:`reranker.evaluation.scoring`); only global rank zero prints
and writes, and ``results.json`` is the same bytes for any N.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from reranker.core.errors import InputError
from reranker.evaluation.evalsets import EvalSet, load_eval_set
from reranker.evaluation.metrics import first_relevant_rank, ranking_metrics, update_all
from reranker.evaluation.report import format_report, fused_name
from reranker.evaluation.scoring import set_scorer, shard_name
from reranker.evaluation.significance import paired_test
from reranker.evaluation.tuning import fused_run
from reranker.model.fusion import METHODS, check_fusion
from reranker.model.parallel_options import add_parallel_arguments
from reranker.model.shards import SHARD_SIZE

FIRST_STAGE = "without reranker"


def rank_run(eval_set: EvalSet, flat_scores: list[float]) -> torch.Tensor:
    """Per-query 1-based rank of the best relevant candidate (0: none): ``[Q]``."""
    scores, relevance, mask = eval_set.dense(flat_scores)
    return first_relevant_rank(scores, relevance, mask)


def per_query_values(rank: torch.Tensor, mrr_k: int, hit_ks: tuple[int, ...]) -> dict[str, list[float]]:
    """Per-query value of each metric, from ranks: reciprocal rank within ``mrr_k``, and hit within k."""
    metrics = ranking_metrics(mrr_k, hit_ks)
    return {name: metric.per_query(rank).tolist() for name, metric in metrics.items()}


def summarise(
    eval_set: EvalSet,
    flat_scores: list[float],
    rows: list[int],
    mrr_k: int,
    hit_ks: tuple[int, ...],
) -> dict[str, float]:
    """``ranking_metrics`` over the queries ``rows`` of the set."""
    scores, relevance, mask = eval_set.dense(flat_scores)
    index = torch.tensor(rows, dtype=torch.long)
    metrics = ranking_metrics(mrr_k, hit_ks)
    update_all(metrics, scores[index], relevance[index], mask[index])
    return {name: float(metric.compute()) for name, metric in metrics.items()}


def slices(eval_set: EvalSet, length_edges: tuple[int, ...]) -> dict[str, dict[str, list[int]]]:
    """Query rows by character length bucket and, where recorded, by whether the gold was forced in."""
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
    if eval_set.forced is not None:
        result["gold"] = {
            name: rows
            for name, rows in (
                ("retrieved", [i for i, f in enumerate(eval_set.forced) if not f]),
                ("forced in", [i for i, f in enumerate(eval_set.forced) if f]),
            )
            if rows
        }
    return result


def evaluate(
    eval_set: EvalSet,
    runs: dict[str, list[float]],
    compare: list[tuple[str, str]],
    mrr_k: int = 10,
    hit_ks: tuple[int, ...] = (1, 3, 5),
    length_edges: tuple[int, ...] = (20, 40),
    samples: int = 10000,
    seed: int = 0,
) -> dict:
    """Table, per-query values, slices and paired tests for scored runs (flat scores in ``pairs()`` order)."""
    everything = list(range(len(eval_set)))
    names = [*(f"hit@{k}" for k in hit_ks), f"mrr@{mrr_k}"]
    table = {run: summarise(eval_set, scores, everything, mrr_k, hit_ks) for run, scores in runs.items()}
    per_query = {}
    for run, scores in runs.items():
        rank = rank_run(eval_set, scores)
        per_query[run] = {"rank": rank.tolist(), **per_query_values(rank, mrr_k, hit_ks)}
    tests = []
    for a, b in compare:
        for metric in (f"mrr@{mrr_k}", f"hit@{hit_ks[0]}"):
            result = paired_test(per_query[a][metric], per_query[b][metric], samples, seed)
            tests.append({"a": a, "b": b, "metric": metric, **result})
    slice_tables = {
        kind: {
            bucket: {
                "queries": len(rows),
                **{r: summarise(eval_set, s, rows, mrr_k, hit_ks) for r, s in runs.items()},
            }
            for bucket, rows in buckets.items()
        }
        for kind, buckets in slices(eval_set, length_edges).items()
    }
    return {
        "metrics": names,
        "queries": len(eval_set),
        "candidates": sum(len(c) for c in eval_set.candidates),
        "forced": sum(eval_set.forced or []),
        "table": table,
        "tests": tests,
        "slices": slice_tables,
        "per_query": {"qids": eval_set.qids, **per_query},
    }


def parse_model(spec: str) -> tuple[str, str]:
    """``NAME=PATH`` or ``PATH`` (named by the path) → ``(name, path)``."""
    name, separator, path = spec.partition("=")
    return (name, path) if separator and name and path else (spec, spec)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="reranker evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("data", help="queries JSONL (with --corpus), RAG-style CSV, or triplet JSONL")
    parser.add_argument("--corpus", help="corpus JSONL {id, text} for the queries format")
    parser.add_argument("--format", default="auto", choices=["auto", "queries", "csv", "triplets"])
    parser.add_argument("--model", action="append", default=[], metavar="[NAME=]PATH",
                        help="a Hugging Face folder, hub name or .ckpt; repeat for several")  # fmt: skip
    parser.add_argument("--compare", nargs=2, action="append", default=[], metavar=("A", "B"),
                        help="test row B against row A (default: each model against the first stage)")  # fmt: skip
    parser.add_argument(
        "--fusion",
        default="zscore",
        choices=[*METHODS, "none"],
        help="how each model's fused row mixes it with the first stage (none: no fused rows)",
    )
    parser.add_argument(
        "--fusion-weight",
        type=float,
        metavar="A",
        help="a fixed weight a in [0, 1] of the reranker instead of a tuned one",
    )
    parser.add_argument(
        "--fusion-val",
        metavar="DATA",
        help="tune a on this evaluation set (any format) instead of cross-validating",
    )
    parser.add_argument(
        "--fusion-val-corpus", help="corpus of --fusion-val in the queries format (triplets or CSV: none)"
    )
    parser.add_argument("--fusion-folds", type=int, default=5, help="cross-validation folds when a is tuned")
    parser.add_argument("--rrf-k", type=int, default=60, help="k of reciprocal-rank fusion")
    parser.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="tokens per pair (default: the length recorded with each model; 512 for a model without one)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--mrr-k", type=int, default=10)
    parser.add_argument("--hit-ks", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument(
        "--length-edges", type=int, nargs="*", default=[20, 40], help="query length buckets (chars)"
    )
    parser.add_argument("--samples", type=int, default=10000, help="bootstrap and permutation samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--cache", help="score cache (SQLite file, or a folder for scores.sqlite) reused by later runs"
    )
    parser.add_argument(
        "--out", help="folder for results.json and results.md (and OUT/shards with --devices)"
    )
    add_parallel_arguments(parser)
    return parser.parse_args(argv)


def run(
    data: str | Path,
    model: list[str],
    corpus: str | Path | None = None,
    format: str = "auto",
    compare: list[tuple[str, str]] | None = None,
    max_length: int | None = None,
    batch_size: int = 32,
    mrr_k: int = 10,
    hit_ks: tuple[int, ...] = (1, 3, 5),
    length_edges: tuple[int, ...] = (20, 40),
    samples: int = 10000,
    seed: int = 0,
    device: str | None = None,
    cache: str | Path | None = None,
    fusion: str = "zscore",
    fusion_weight: float | None = None,
    fusion_val: str | Path | None = None,
    fusion_val_corpus: str | Path | None = None,
    fusion_folds: int = 5,
    rrf_k: int = 60,
    devices: int | None = None,
    num_nodes: int = 1,
    accelerator: str = "auto",
    shard_size: int = SHARD_SIZE,
    shards: str | Path | None = None,
) -> dict | None:
    """Read an evaluation set, score it with each ``model`` (``[NAME=]PATH``) and return :func:`evaluate`'s
    results, with a fused row per model unless ``fusion`` is ``none``; the arguments are those of
    ``reranker evaluate``, ``shards`` the folder of ``--devices``' shards (``OUT/shards``). With ``devices``,
    every rank but global rank zero returns None."""
    eval_set = load_eval_set(data, corpus, format)
    models = dict(parse_model(spec) for spec in model)
    if len(models) != len(model) or FIRST_STAGE in models:
        raise InputError(f"--model names must be unique and not {FIRST_STAGE!r}: {model}")
    names = [FIRST_STAGE, *models]
    compare = [tuple(pair) for pair in compare or []]
    unknown = [name for pair in compare for name in pair if name not in names]
    if unknown:
        raise InputError(f"--compare names unknown rows {unknown}; rows are {names}")
    score = set_scorer(max_length, batch_size, seed, device, cache, devices, num_nodes, accelerator,
                       shard_size, shards)  # fmt: skip
    validation = fusion_validation(models, fusion, fusion_weight, rrf_k, fusion_val, fusion_val_corpus)
    runs = {FIRST_STAGE: eval_set.first_stage_scores()}
    for name, path in models.items():
        runs[name] = score(eval_set, path, shard_name(name))
    validation_scores = {}
    if validation is not None:
        for name, path in models.items():
            validation_scores[name] = score(validation, path, f"fusion-val/{shard_name(name)}")
    if devices is not None and models:
        from reranker.model.parallel_scoring import leave_scoring_processes

        if not leave_scoring_processes():
            return None  # a data-parallel rank other than global rank zero: rank zero reports
    compare = compare or [(FIRST_STAGE, name) for name in models]
    fused = {}
    if fusion != "none":
        fused = fuse_models(eval_set, runs, models, fusion, fusion_weight, fusion_folds, rrf_k, mrr_k, seed,
                            validation, validation_scores)  # fmt: skip
    for name in fused:
        compare += [(FIRST_STAGE, fused_name(name)), (name, fused_name(name))]
    results = evaluate(eval_set, runs, compare, mrr_k, tuple(hit_ks), tuple(length_edges), samples, seed)
    if fused:
        results["fusion"] = fused
    return results


def fusion_validation(
    models: dict[str, str],
    method: str = "zscore",
    weight: float | None = None,
    rrf_k: int = 60,
    validation_path: str | Path | None = None,
    validation_corpus: str | Path | None = None,
) -> EvalSet | None:
    """Check the fusion options before any model is scored; the ``--fusion-val`` set when a is tuned on it."""
    if method == "none" or not models:
        return None
    if weight is not None or method == "rrf":
        check_fusion(method, weight if method != "rrf" else None, rrf_k, "--fusion-weight/--rrf-k")
    for name in models:
        if fused_name(name) in models:
            raise InputError(f"--model name {fused_name(name)!r} clashes with the fused row of {name!r}")
    if validation_path and weight is None and method != "rrf":
        return load_eval_set(validation_path, validation_corpus)
    return None


def fuse_models(
    eval_set: EvalSet,
    runs: dict[str, list[float]],
    models: dict[str, str],
    method: str = "zscore",
    weight: float | None = None,
    folds: int = 5,
    rrf_k: int = 60,
    mrr_k: int = 10,
    seed: int = 0,
    validation: EvalSet | None = None,
    validation_scores: dict[str, list[float]] | None = None,
) -> dict:
    """Add each model's fused row to ``runs``; returns how each was fused (method, a, folds). a is tuned on
    ``validation`` (scored by each model in ``validation_scores``) when given."""
    fused = {}
    for name in models:
        scores = validation_scores[name] if validation is not None else None
        runs[fused_name(name)], fused[name] = fused_run(
            eval_set, runs[name], method, weight, rrf_k, folds, mrr_k, seed, validation, scores
        )
    return fused


def main(argv: list[str] | None = None) -> dict | None:
    arguments = vars(parse_args(argv))
    out = arguments.pop("out")
    try:
        results = run(**arguments, shards=Path(out) / "shards" if out else None)
    except InputError as err:
        raise SystemExit(f"error: {err}") from None
    if results is None:
        return None  # a data-parallel rank other than global rank zero: it prints and writes nothing
    print(format_report(results))
    if out:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(
            json.dumps(results, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
        )
        (out / "results.md").write_text(format_report(results, markdown=True))
    return results


if __name__ == "__main__":
    main()
