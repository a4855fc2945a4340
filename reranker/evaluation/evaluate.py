"""Evaluate rerankers on one evaluation set: ``reranker evaluate DATA [--corpus C] --model [NAME=]PATH ...``.

Prints the end-to-end table (:mod:`reranker.evaluation.tables`): one row for the first-stage order
("without reranker") and one per model run, with hit@k and MRR@10 from ``reranker.evaluation.metrics`` (the
code path validation uses). Every row ranks the first stage's lists as retrieved: a query whose gold the
first stage missed is a miss for every row, and the first stage's recall over its lists, printed beside
the table, is the ceiling of every row's hit@k. Several runs of one system (a ``--model`` NAME repeated,
or a glob in its PATH: seeds) get a row each and the system a mean row
(:mod:`reranker.evaluation.systems`). Each system is tested against the first stage (or the
``--compare`` pairs) with a paired test of per-query seed means, Holm-adjusted over the table, with the
seeds that agree and a verdict; the same metrics per slice of queries. A set with golds forced in by
``prepare candidates --force-gold`` also gets a table titled as the reranking ceiling it is. ``--out DIR``
writes ``results.json`` (tables, per-run and per-system per-query values, slices, tests) and
``results.md``.

Each run also gets a fused row (``NAME fused``): its scores mixed with the first stage's
(``reranker.model.fusion``), a tuned on ``--fusion-val`` when given, else by ``--fusion-folds``-fold
cross-validation on the evaluated queries (``reranker.evaluation.tuning``); each system's fused rows
are a system too, tested against the first stage and against the system alone.

``--devices N`` (``--num-nodes``, ``--accelerator``, ``--shard-size``) scores over N processes a node, in
resumable shards under ``OUT/shards/`` (:mod:`reranker.scoring.pairs`); only global rank zero prints
and writes, and ``results.json`` is the same bytes for any N.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from reranker.core.errors import InputError
from reranker.evaluation.evalsets import EvalSet, check_measurable, load_eval_set
from reranker.evaluation.report import format_report, fused_name
from reranker.evaluation.systems import System, read_systems
from reranker.evaluation.tables import FIRST_STAGE, evaluate
from reranker.evaluation.tuning import fused_run
from reranker.model.fusion import METHODS, check_fusion
from reranker.scoring.options import add_parallel_arguments, parallel_options
from reranker.scoring.pairs import PairScoring
from reranker.scoring.shards import SHARD_SIZE, shard_name


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="reranker evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("data", help="queries JSONL (with --corpus), RAG-style CSV, or triplet JSONL")
    parser.add_argument("--corpus", help="corpus JSONL {id, text} for the queries format")
    parser.add_argument("--format", default="auto", choices=["auto", "queries", "csv", "triplets"])
    parser.add_argument("--model", action="append", default=[], metavar="[NAME=]PATH",
                        help="a Hugging Face folder, hub name or .ckpt; repeat for several; a NAME repeated, or "
                             "a glob in PATH, makes one system of several runs (seeds)")  # fmt: skip
    parser.add_argument("--compare", nargs=2, action="append", default=[], metavar=("A", "B"),
                        help="test system or row B against A (default: each system against the first stage)")  # fmt: skip
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
    """Read an evaluation set, score it with each ``model`` run (``[NAME=]PATH``) and return :func:`evaluate`'s
    results, with fused rows unless ``fusion`` is ``none``; the arguments are those of ``reranker evaluate``,
    ``shards`` the folder of ``--devices``' shards (``OUT/shards``). With ``devices``, every rank but global
    rank zero returns None."""
    eval_set = load_eval_set(data, corpus, format)
    check_measurable(eval_set, data)
    systems = read_systems(model, reserved=(FIRST_STAGE,))
    members = {FIRST_STAGE: [FIRST_STAGE], **{system.name: list(system.runs) for system in systems}}
    validation = fusion_validation(systems, fusion, fusion_weight, rrf_k, fusion_val, fusion_val_corpus)
    if fusion != "none":
        members.update({fused_name(s.name): [fused_name(row) for row in s.runs] for s in systems})
    names = list(dict.fromkeys(name for system, rows in members.items() for name in (system, *rows)))
    compare = [tuple(pair) for pair in compare or []]
    unknown = [name for pair in compare for name in pair if name not in names]
    if unknown:
        raise InputError(f"--compare names unknown rows {unknown}; rows are {names}")
    score = PairScoring(
        max_length=max_length,
        batch_size=batch_size,
        seed=seed,
        device=device,
        dtype="float32",
        cache=cache,
        parallel=parallel_options(devices, num_nodes, accelerator, shard_size),
        shards=shards,
        task="evaluate",
    )
    runs, validation_runs = score_runs(score, systems, eval_set, validation)
    if devices is not None and systems:
        from reranker.scoring.engine import leave_scoring_processes

        if not leave_scoring_processes():
            return None  # a data-parallel rank other than global rank zero: rank zero reports
    runs = {FIRST_STAGE: eval_set.first_stage_scores(), **runs}
    compare = compare or [(FIRST_STAGE, system.name) for system in systems]
    fused = {}
    if fusion != "none":
        options = {
            "method": fusion,
            "weight": fusion_weight,
            "rrf_k": rrf_k,
            "folds": fusion_folds,
            "mrr_k": mrr_k,
            "seed": seed,
        }
        fused = fuse_runs(eval_set, runs, validation, validation_runs, options)
        for system in systems:
            compare += [(FIRST_STAGE, fused_name(system.name)), (system.name, fused_name(system.name))]
    results = evaluate(
        eval_set,
        runs,
        compare,
        systems=members,
        mrr_k=mrr_k,
        hit_ks=tuple(hit_ks),
        length_edges=tuple(length_edges),
        samples=samples,
        seed=seed,
    )
    results["paths"] = {row: path for system in systems for row, path in system.runs.items()}
    if fused:
        results["fusion"] = fused
    return results


def score_runs(
    score: PairScoring, systems: list[System], eval_set: EvalSet, validation: EvalSet | None
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Every run's scores of the evaluation set and, when given, of the fusion validation set (``pairs()``
    order; None on a data-parallel rank other than zero). The one place where ``evaluate`` scores."""
    scored: dict[str, dict[str, list[float]]] = {"": {}, "fusion-val/": {}}
    for data, prefix in ((eval_set, ""), (validation, "fusion-val/")):
        if data is None:
            continue
        for system in systems:
            for row, path in system.runs.items():
                sizes = [len(candidates) for candidates in data.candidates]  # one group a query
                scored[prefix][row] = score(path, data.pairs(), sizes, prefix + shard_name(row))
    return scored[""], scored["fusion-val/"]


def fusion_validation(
    systems: list[System],
    method: str = "zscore",
    weight: float | None = None,
    rrf_k: int = 60,
    validation_path: str | Path | None = None,
    validation_corpus: str | Path | None = None,
) -> EvalSet | None:
    """Check the fusion options before any model is scored; the ``--fusion-val`` set when a is tuned on it."""
    if method == "none" or not systems:
        return None
    if weight is not None or method == "rrf":
        check_fusion(method, weight if method != "rrf" else None, rrf_k, "--fusion-weight/--rrf-k")
    rows = {name for system in systems for name in (system.name, *system.runs)}
    for name in sorted(rows):
        if fused_name(name) in rows:
            raise InputError(f"--model name {fused_name(name)!r} clashes with the fused row of {name!r}")
    if validation_path and weight is None and method != "rrf":
        validation = load_eval_set(validation_path, validation_corpus)
        check_measurable(validation, validation_path)
        return validation
    return None


def fuse_runs(
    eval_set: EvalSet,
    runs: dict[str, list[float]],
    validation: EvalSet | None,
    validation_runs: dict[str, list[float]],
    options: dict,
) -> dict:
    """Add each model run's fused row to ``runs``; returns how each was fused (method, a, folds). a is
    tuned on the end-to-end lists: a forced gold, a miss for every weight, tunes nothing."""
    fused = {}
    tuning_set = eval_set.end_to_end()
    tuning_validation = validation.end_to_end() if validation is not None else None
    for row in [row for row in runs if row != FIRST_STAGE]:
        runs[fused_name(row)], fused[row] = fused_run(
            tuning_set,
            runs[row],
            validation=tuning_validation,
            validation_scores=validation_runs.get(row),
            **options,
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
