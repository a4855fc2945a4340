"""The best checkpoint by validation MRR is the one validated at the end and exported."""

import csv

import pytest
import torch
from helpers import compose_config, tiny_run_overrides
from transformers import AutoModelForSequenceClassification

from reranker.train import train

# It trains a tiny run.
pytestmark = pytest.mark.slow


def test_the_exported_checkpoint_has_the_highest_validation_mrr_of_the_run(
    tiny_bert, triplet_files, tmp_path
):
    overrides = tiny_run_overrides(tiny_bert, *triplet_files, tmp_path)
    # Validating every 2 steps at a high learning rate: the metric rises and falls within the run.
    metrics = train(compose_config([*overrides, "trainer.val_check_interval=2", "model.lr=1e-2"]))

    logged = list(csv.DictReader((tmp_path / "csv" / "metrics.csv").open()))
    # Validation rows before the first training loss are the base model's (zero-shot), not a checkpoint's.
    first_step = next(i for i, row in enumerate(logged) if row["train/loss"])
    rows = [row for row in logged[first_step:] if row["val/mrr@10"]]
    during_fit, after_fit = rows[:-1], rows[-1]  # the last row is the final validation of the best
    values = [float(row["val/mrr@10"]) for row in during_fit]
    best = max(values)
    assert len(set(values)) > 1 and values[-1] < best  # the best is not simply the last checkpoint

    (best_checkpoint,) = (tmp_path / "checkpoints").glob("step*.ckpt")
    checkpoint = torch.load(best_checkpoint, map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == int(during_fit[values.index(best)]["step"]) + 1
    assert metrics["val/mrr@10"] == float(after_fit["val/mrr@10"]) == best

    exported = AutoModelForSequenceClassification.from_pretrained(tmp_path / "export").state_dict()
    trained = {name.removeprefix("model."): t for name, t in checkpoint["state_dict"].items()}
    assert exported.keys() <= trained.keys()
    assert all(torch.equal(exported[name], trained[name]) for name in exported)
