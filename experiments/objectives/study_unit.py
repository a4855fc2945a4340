"""One unit of the study: train one arm at one seed, evaluate it end to end, and return its result record.

Training is ``reranker.train.train`` on ``experiment=objectives`` plus the unit's overrides, in this process;
its run folder (checkpoints, ``csv/metrics.csv``, export) lives under the ignored work folder. Evaluation is
``reranker.evaluation.evaluate.run`` on each first stage's lists of the evaluation questions: the reranker
alone and fused with the first stage (the mix of the validation lists, the export's ``fusion.json``). The
record keeps qids, ranks and reciprocal ranks, never a question's or a passage's text.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from study_arms import Unit
from study_data import StudyData
from study_results import MRR

from reranker.evaluation.evaluate import FIRST_STAGE, run
from reranker.model.fusion import read_fusion
from reranker.train import CONF_DIR, train
from reranker.training.nonfinite import NonFiniteLossError

HEALTH_LINES = ("training health:", "warning: training has collapsed")
# The loss has left its starting plateau once it is below this share of its first logged value (for
# group_ce the first value is about ln G, a constant scorer's loss).
PLATEAU_SHARE = 0.9


def compose_config(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


class _Tee(io.TextIOBase):
    """Writes to a stream and keeps a copy, so the run's report lines can be read back."""

    def __init__(self, stream) -> None:
        self.stream, self.copy = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.stream.write(text)
        return self.copy.write(text)

    def flush(self) -> None:
        self.stream.flush()


def read_rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def curve(rows: list[dict], key: str) -> list[tuple[int, float]]:
    """``(optimiser steps done, value)`` of every logged value of ``key``."""
    return [(int(row["step"]) + 1, float(row[key])) for row in rows if row.get(key)]


def curve_summary(rows: list[dict], group_size: int) -> dict:
    """First and last training loss, the step the loss left its starting plateau (None: never), the same
    for each component of a mix, and the validation curve."""
    losses = curve(rows, "train/loss")
    summary: dict = {"ln_group_size": math.log(group_size), "logged": len(losses)}
    if losses:
        first = losses[0][1]
        left = next((step for step, value in losses if value <= PLATEAU_SHARE * first), None)
        summary.update(first_loss=first, last_loss=losses[-1][1], left_plateau_at_step=left)
    components = sorted({key for row in rows for key in row if key.startswith("train/loss/")})
    summary["components"] = {
        key.removeprefix("train/loss/"): {"first": values[0][1], "last": values[-1][1]}
        for key in components
        if (values := curve(rows, key))
    }
    validations = curve(rows, f"val/{MRR}")
    # train() validates the best checkpoint once more after fit, logged one step after the last and
    # repeating a value already there: not a new point (as experiments/korquad/plot.py reads it).
    if (
        len(validations) >= 2
        and validations[-1][0] == validations[-2][0] + 1
        and validations[-1][1] in [value for _, value in validations[:-1]]
    ):
        validations.pop()
    summary["val_curve"] = validations
    return summary


def train_unit(unit: Unit, overrides: list[str], run_dir: Path) -> dict:
    """Train ``unit`` into ``run_dir``; ``{"config", "metrics", "training"}`` (``training.failed`` when the
    loss went non-finite: then there is nothing to evaluate)."""
    cfg = compose_config([*overrides, f"paths.output_dir={run_dir}"])
    tee = _Tee(sys.stdout)
    start = time.monotonic()
    failed = None
    with contextlib.redirect_stdout(tee):
        try:
            metrics = train(cfg)
        except NonFiniteLossError as err:
            metrics, failed = {}, str(err)
    seconds = time.monotonic() - start
    health = [line for line in tee.copy.getvalue().splitlines() if line.startswith(HEALTH_LINES)]
    metrics_csv = run_dir / "csv" / "metrics.csv"
    rows = read_rows(metrics_csv) if metrics_csv.is_file() else []
    training = {
        "steps": unit.steps,
        "seconds": round(seconds, 1),
        "health": health,
        "collapsed": any(
            line.startswith(("warning: training has collapsed", "training health: collapsed"))
            for line in health
        ),
        **curve_summary(rows, int(cfg.data.group_size)),
    }
    if failed:
        training["failed"] = failed
    config = OmegaConf.to_container(cfg, resolve=True)
    return {"config": config, "metrics": metrics, "training": training}


def _ranking(per_query: dict, row: str) -> dict:
    return {"rank": per_query[row]["rank"], "rr": [round(v, 6) for v in per_query[row][MRR]]}


def evaluate_unit(export: Path, data: StudyData, cache: Path) -> dict:
    """Per first stage's lists: qids, the first stage's, the reranker's and the fused ranks and reciprocal
    ranks, their MRR@10, and how the fusion weight was chosen."""
    fusion = read_fusion(export)
    evaluation = {}
    for name, path in data.lists.items():
        start = time.monotonic()
        results = run(
            str(path),
            [f"reranker={export}"],
            corpus=str(data.corpus),
            batch_size=32,
            cache=str(cache),
            fusion="zscore",
            fusion_weight=fusion.weight if fusion is not None else None,
            # Without a recorded mix, a is tuned on the validation lists (never on these).
            fusion_val=None if fusion is not None else str(data.val),
            samples=1000,
        )
        per_query = results["per_query"]
        evaluation[name] = {
            "queries": results["queries"],
            "forced": results["forced"],
            # a: the export's (chosen on the validation lists while training), else tuned on them here.
            "fusion": results["fusion"]["reranker"],
            MRR: {
                "first_stage": results["table"][FIRST_STAGE][MRR],
                "reranker": results["table"]["reranker"][MRR],
                "fused": results["table"]["reranker fused"][MRR],
            },
            "seconds": round(time.monotonic() - start, 1),
            "qids": per_query["qids"],
            "first_stage": _ranking(per_query, FIRST_STAGE),
            "reranker": _ranking(per_query, "reranker"),
            "fused": _ranking(per_query, "reranker fused"),
        }
    return evaluation


def machine() -> dict:
    """What the timings were measured on (no host name)."""
    return {"cpus": os.cpu_count(), "platform": sys.platform}
