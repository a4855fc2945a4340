"""Every experiment file of conf/experiment/ trains: two steps on the tiny fixture model and data.

Only what a CPU test cannot run is overridden (the device, precision and strategy, the step count, the
validation interval, accumulation and logging interval, the base model's folder); every other setting is
the file's own.
The whole file takes about a minute on two CPU cores.
"""

import csv
import math

import pytest
from helpers import EXPERIMENTS, compose_config, scored_triplet_files

from reranker.train import train

# Each test trains two steps of an experiment.
pytestmark = pytest.mark.slow

CPU = [
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.precision=32-true",
    "trainer.max_epochs=1",
    "trainer.max_steps=2",
    "trainer.val_check_interval=1.0",
    "trainer.accumulate_grad_batches=1",
    "trainer.log_every_n_steps=1",
    "validate_before_training=false",
    "export_dir=null",
    "data.num_workers=0",
    "callbacks.progress_bar=null",
]


def base_model(experiment: str, request) -> str:
    """The tiny fixture of the experiment's model family: a decoder, XLM-R or BERT."""
    cfg = compose_config([f"experiment={experiment}", "data.train_files=x.jsonl"])
    if (cfg.model.get("kind") or {}).get(
        "form"
    ) == "yes_no" or "qwen" in cfg.model.model_name_or_path.lower():
        return request.getfixturevalue("tiny_qwen3")
    if "minilm" in cfg.model.model_name_or_path.lower():
        return request.getfixturevalue("tiny_bert")
    return request.getfixturevalue("tiny_xlmr")


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_trains_two_steps(experiment, request, tmp_path):
    train_file, val_file = scored_triplet_files(tmp_path)  # teacher scores for the distilling experiments
    overrides = [
        f"experiment={experiment}",
        f"model.model_name_or_path={base_model(experiment, request)}",
        f"data.train_files={train_file}",
        f"data.val_files={val_file}",
        f"paths.output_dir={tmp_path / 'run'}",
        *CPU,
    ]
    cfg = compose_config(overrides)
    if "FSDP" in str(cfg.trainer.strategy):  # one process on CPU: no sharding
        cfg = compose_config([*overrides, "~trainer.strategy", "+trainer.strategy=auto"])
    metrics = train(cfg)
    assert 0.0 <= metrics["val/mrr@10"] <= 1.0
    rows = list(csv.DictReader((tmp_path / "run" / "csv" / "metrics.csv").open()))
    losses = [float(row["train/loss"]) for row in rows if row.get("train/loss")]
    assert len(losses) == 2 and all(math.isfinite(value) for value in losses)
