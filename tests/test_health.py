import csv
import math

import pytest
import torch
from helpers import compose_config, tiny_run_overrides
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from reranker.core.errors import InputError
from reranker.train import train
from reranker.training.health import TrainingHealth, group_health


def test_group_health_matches_hand_computed_values_with_ties():
    scores = torch.tensor([[3.0, 1.0, 2.0], [1.0, 1.0, 0.0], [0.0, 2.0, -1.0]])
    labels = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    sums = group_health(scores, labels)
    spreads = [math.sqrt(2 / 3), math.sqrt(2 / 9), math.sqrt(14 / 9)]  # population std of each group
    assert float(sums["score_spread"]) == pytest.approx(sum(spreads), abs=1e-5)
    assert float(sums["margin"]) == pytest.approx((3 - 2) + (1 - 1) + (2 - 0))
    # The tied group is not ranked right: its positive is not strictly first.
    assert float(sums["groups_ranked_right"]) == 2.0 and float(sums["groups"]) == 3.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"every_n_steps": 0}, "callbacks.health.every_n_steps must be an integer >= 1, got 0"),
        ({"collapse_batches": 2.5}, "callbacks.health.collapse_batches must be an integer >= 1, got 2.5"),
        ({"loss_tolerance": 0}, "callbacks.health.loss_tolerance must be a number > 0, got 0"),
        ({"spread_tolerance": -1.0}, "callbacks.health.spread_tolerance must be a number > 0, got -1.0"),
    ],
)
def test_health_refuses_bad_settings(kwargs, message):
    with pytest.raises(InputError, match=message):
        TrainingHealth(**kwargs)


def health_run(tiny_bert, triplet_files, tmp_path, *extra: str) -> dict:
    train_file, val_file = triplet_files
    overrides = tiny_run_overrides(tiny_bert, train_file, val_file, tmp_path / "run")
    cfg = compose_config(
        [
            *overrides,
            "trainer.max_epochs=1",  # 7 batches of 2 queries
            "validate_before_training=false",
            "export_dir=null",
            "callbacks.health.every_n_steps=2",
            "callbacks.health.collapse_batches=4",
            *extra,
        ]
    )
    return train(cfg)


@pytest.fixture
def constant_bert(tiny_bert, tmp_path) -> str:
    """The tiny BERT with a zero classifier: every pair scores 0, whatever the text."""
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    torch.nn.init.zeros_(model.classifier.weight)
    torch.nn.init.zeros_(model.classifier.bias)
    path = tmp_path / "constant"
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(path)
    return str(path)


@pytest.mark.slow
def test_a_collapsed_run_warns_within_the_patience_and_reports_it(
    constant_bert, triplet_files, tmp_path, capsys
):
    # A constant scorer that stays one (lr 0): the loss is ln 3 on every batch, the scores equal.
    health_run(constant_bert, triplet_files, tmp_path, "model.lr=0")
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning: training has collapsed")]
    assert len(warnings) == 1 and "(step 4)" in warnings[0] and "lower model.lr" in warnings[0]
    assert "training health: collapsed at step 4" in out


@pytest.fixture
def spread_bert(tiny_bert, tmp_path) -> str:
    """The tiny BERT with a classifier 100 times larger: its scores of a group differ from the start (the
    random tiny model's differ by about 0.005, which is itself a collapse)."""
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    with torch.no_grad():
        model.classifier.weight.mul_(100.0)
    path = tmp_path / "spread"
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(path)
    return str(path)


@pytest.mark.slow
def test_a_healthy_run_logs_health_metrics_and_does_not_warn(spread_bert, triplet_files, tmp_path, capsys):
    health_run(spread_bert, triplet_files, tmp_path)
    out = capsys.readouterr().out
    assert "warning: training has collapsed" not in out
    assert "training health: no collapse seen; last score spread" in out
    rows = list(csv.DictReader((tmp_path / "run" / "csv" / "metrics.csv").open()))
    logged = [row for row in rows if row.get("train/score_spread")]
    # Every second step, and the validation at the end of the epoch (7 batches), each once.
    assert [int(row["step"]) for row in logged] == [2, 4, 6, 7]
    for row in logged:
        assert float(row["train/score_spread"]) > 0
        assert 0.0 <= float(row["train/groups_ranked_right"]) <= 1.0
        assert math.isfinite(float(row["train/margin"]))
