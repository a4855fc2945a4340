"""The objectives study's runs and how they are aggregated (read by report.py; no plotting, no writing).

A training run lives in ``WORK/multirun/{train set}/{arm}-s{seed}/`` (a Hydra multirun job: ``.hydra/``,
``csv/metrics.csv``, ``metrics.json`` once finished, ``FAILED`` when run.sh saw it end without one) or, for
the teacher, ``WORK/teacher/{train set}/``. In an ``evaluate`` output the run is the row
``{train set}/{arm}/s{seed}`` (and ``... fused``). Arms are compared by their mean over seeds with the
spread between seeds, and by a paired test of the seed-averaged per-query reciprocal ranks: the interval
is over queries for these seeds; the seed spread is reported beside it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from reranker.core.errors import InputError
from reranker.evaluation.significance import paired_test

RUN_FOLDER = re.compile(r"^(?P<arm>.+)-s(?P<seed>\d+)$")
TEACHER = "teacher"
FIRST_STAGE = "without reranker"  # evaluate's row of the first-stage order
METRIC = "mrr@10"
VAL_METRIC = f"val/{METRIC}"
BASELINE = "group_ce"


@dataclass
class Run:
    """One training run: where it is, what it trained, and its final metrics (empty until finished)."""

    train_set: str
    arm: str
    seed: int
    folder: Path
    steps: int
    group_size: int
    metrics: dict[str, float] = field(default_factory=dict)
    failed: bool = False

    @property
    def finished(self) -> bool:
        return bool(self.metrics)


def row_name(train_set: str, arm: str, seed: int) -> str:
    """The run's row in ``evaluate``'s table."""
    return f"{train_set}/{arm}/s{seed}"


def _read_run(train_set: str, arm: str | None, folder: Path) -> Run:
    """The run in ``folder``; ``arm`` None reads the seed from its resolved config (the teacher's folder
    is not named by seed)."""
    config = yaml.safe_load((folder / ".hydra" / "config.yaml").read_text())
    metrics_file = folder / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    return Run(
        train_set,
        arm or TEACHER,
        int(config["seed"]),
        folder,
        int(config["trainer"]["max_steps"]),
        int(config["data"]["group_size"]),
        metrics,
        failed=(folder / "FAILED").is_file(),
    )


def read_runs(work: Path) -> list[Run]:
    """Every run folder of the study (teachers included), finished or not."""
    runs = []
    for set_dir in sorted(p for p in (work / "multirun").glob("*") if p.is_dir()):
        for folder in sorted(p for p in set_dir.glob("*") if (p / ".hydra").is_dir()):
            match = RUN_FOLDER.match(folder.name)
            if match is None:
                raise InputError(f"{folder}: a run folder is named ARM-sSEED")
            runs.append(_read_run(set_dir.name, match["arm"], folder))
    for folder in sorted(p for p in (work / "teacher").glob("*") if (p / ".hydra").is_dir()):
        runs.append(_read_run(folder.name, None, folder))
    return runs


def spread(values: list[float]) -> dict:
    """Mean, sample standard deviation between seeds (None under two values) and the values themselves."""
    if not values:
        raise ValueError("no values to summarise")
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
    return {"mean": mean, "sd": sd, "n": len(values), "values": list(values)}


def validation(runs: list[Run], metric: str = VAL_METRIC) -> dict[str, dict[str, dict]]:
    """``{train set: {arm: spread of the best checkpoint's validation metric over seeds}}``."""
    values: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        if run.finished:
            values.setdefault(run.train_set, {}).setdefault(run.arm, []).append(run.metrics[metric])
    return {s: {arm: spread(v) for arm, v in arms.items()} for s, arms in values.items()}


def best_arm(runs: list[Run], candidates: list[str], metric: str = VAL_METRIC) -> tuple[str, dict]:
    """The candidate arm with the highest validation metric averaged over every finished run of it (both
    training sets, every seed: one default has to serve both domains); returns it and each arm's mean.
    Arms with no finished run (all diverged) are left out; none at all is an error."""
    means = {}
    for arm in candidates:
        values = [run.metrics[metric] for run in runs if run.arm == arm and run.finished]
        if values:
            means[arm] = sum(values) / len(values)
    if not means:
        raise InputError(f"no finished run of any of {candidates}: nothing to choose from")
    return max(means, key=lambda arm: means[arm]), means


def eval_rows(results: dict, train_set: str, arm: str) -> list[str]:
    """The seeds' rows of one arm in an ``evaluate`` results.json (the runs alone, not the fused rows)."""
    pattern = re.compile(rf"^{re.escape(train_set)}/{re.escape(arm)}/s\d+$")
    return sorted(name for name in results["table"] if pattern.match(name))


def seed_averaged(results: dict, rows: list[str], metric: str = METRIC) -> list[float]:
    """Per query, the metric averaged over ``rows`` (the seeds of one arm): ``[Q]``."""
    columns = [results["per_query"][row][metric] for row in rows]
    return [sum(values) / len(values) for values in zip(*columns, strict=True)]


def arm_summary(
    results: dict,
    train_set: str,
    arm: str,
    baseline_rows: list[str],
    metric: str = METRIC,
    samples: int = 10000,
) -> dict | None:
    """One arm on one candidate list: its metric and fused metric over seeds, and paired tests of its
    seed-averaged per-query values against the first stage and against ``baseline_rows`` (the baseline
    arm's seeds; no test when empty or when they are this arm's own). None when the arm has no row."""
    rows = eval_rows(results, train_set, arm)
    if not rows:
        return None
    per_query = seed_averaged(results, rows, metric)
    first = results["per_query"][FIRST_STAGE][metric]
    fused = [f"{row} fused" for row in rows if f"{row} fused" in results["table"]]
    summary = {
        "rows": rows,
        metric: spread([results["table"][row][metric] for row in rows]),
        f"fused {metric}": spread([results["table"][row][metric] for row in fused]) if fused else None,
        "vs first stage": paired_test(first, per_query, samples),
        f"vs {BASELINE}": None,
    }
    if baseline_rows and baseline_rows != rows:
        summary[f"vs {BASELINE}"] = paired_test(
            seed_averaged(results, baseline_rows, metric), per_query, samples
        )
    return summary


def step_cost(steps: int, group_size: int, reference_group: int = 8) -> float:
    """A training's cost in steps of the reference group size: a step's time grows with its pairs."""
    return steps * group_size / reference_group


def seconds_per_step(run: Run, reference_group: int = 8) -> float:
    """Wall time of a finished run (resolved config written → metrics.json written: loading, training,
    validations and export) per step of the reference group size."""
    start = (run.folder / ".hydra" / "config.yaml").stat().st_mtime
    end = (run.folder / "metrics.json").stat().st_mtime
    return (end - start) / step_cost(run.steps, run.group_size, reference_group)


def first_finished(runs: list[Run]) -> Run | None:
    """The run that finished first (by its metrics.json), or None."""
    finished = [run for run in runs if run.finished]
    return min(finished, key=lambda run: (run.folder / "metrics.json").stat().st_mtime, default=None)


def planned_cost(
    train_sets: int, seeds: int, arms: int, steps: int, teacher_factor: int, group_sizes: list[int]
) -> float:
    """The study's trainings in reference-group steps: per training set one teacher of ``teacher_factor``
    x ``steps``, and per seed every arm plus the best arm at each other group size."""
    per_seed = arms * steps + sum(step_cost(steps, g) for g in group_sizes)
    return train_sets * (teacher_factor * steps + seeds * per_seed)
