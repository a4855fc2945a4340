"""experiments/objectives/study.py: the seed aggregation, the paired-test wiring, the choice on validation and
the time arithmetic of the objectives study."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from reranker.core.errors import InputError

_PATH = Path(__file__).parents[1] / "experiments" / "objectives" / "study.py"
_spec = importlib.util.spec_from_file_location("objectives_study", _PATH)
study = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = study  # dataclasses look their module up
_spec.loader.exec_module(study)


def test_spread_is_the_mean_and_sample_standard_deviation_over_seeds():
    summary = study.spread([0.5, 0.7, 0.9])
    assert summary["mean"] == pytest.approx(0.7)
    assert summary["sd"] == pytest.approx(0.2)  # n - 1 in the denominator: three seeds, not a population
    assert summary["n"] == 3 and summary["values"] == [0.5, 0.7, 0.9]
    assert study.spread([0.4])["sd"] is None


def fake_results() -> dict:
    """An evaluate results.json: 4 queries, the first stage, two seeds of group_ce and of listnet trained on
    korquad, a group_ce_t0.3 row (its name starts with group_ce) and a run trained on msmarco."""
    per_query = {
        study.FIRST_STAGE: [1.0, 0.5, 0.0, 0.0],
        "korquad/group_ce/s1": [1.0, 1.0, 0.0, 0.0],
        "korquad/group_ce/s2": [1.0, 0.5, 0.5, 0.0],
        "korquad/group_ce_t0.3/s1": [0.0, 0.0, 0.0, 0.0],
        "korquad/listnet/s1": [1.0, 1.0, 1.0, 0.5],
        "korquad/listnet/s2": [1.0, 1.0, 0.5, 0.5],
        "msmarco/listnet/s1": [0.0, 0.0, 0.0, 0.0],
    }
    table = {name: {"mrr@10": sum(values) / len(values)} for name, values in per_query.items()}
    table["korquad/listnet/s1 fused"] = {"mrr@10": 0.9}
    table["korquad/listnet/s2 fused"] = {"mrr@10": 0.7}
    return {"table": table, "per_query": {name: {"mrr@10": values} for name, values in per_query.items()}}


def test_eval_rows_are_one_arms_seeds_on_one_training_set():
    results = fake_results()
    assert study.eval_rows(results, "korquad", "group_ce") == ["korquad/group_ce/s1", "korquad/group_ce/s2"]
    assert study.eval_rows(results, "korquad", "listnet") == ["korquad/listnet/s1", "korquad/listnet/s2"]
    assert study.eval_rows(results, "msmarco", "group_ce") == []


def test_arm_summary_averages_seeds_per_query_and_tests_the_arm_minus_the_other():
    results = fake_results()
    baseline = study.eval_rows(results, "korquad", "group_ce")
    summary = study.arm_summary(results, "korquad", "listnet", baseline, samples=200)
    assert summary["mrr@10"]["values"] == [0.875, 0.75]
    assert summary["fused mrr@10"]["mean"] == pytest.approx(0.8)
    # Seed-averaged per query: listnet [1, 1, .75, .5], group_ce [1, .75, .25, 0], first stage [1, .5, 0, 0].
    assert summary["vs group_ce"]["difference"] == pytest.approx(0.8125 - 0.5)
    assert summary["vs group_ce"]["queries"] == 4
    assert summary["vs first stage"]["difference"] == pytest.approx(0.8125 - 0.375)
    own = study.arm_summary(results, "korquad", "group_ce", baseline, samples=200)
    assert own["vs group_ce"] is None and own["fused mrr@10"] is None
    assert own["vs first stage"]["difference"] == pytest.approx(0.5 - 0.375)
    assert study.arm_summary(results, "msmarco", "group_ce", baseline) is None


def write_run(folder: Path, seed: int, metrics: dict | None, steps: int = 128, group_size: int = 8) -> None:
    (folder / ".hydra").mkdir(parents=True)
    config = {"seed": seed, "trainer": {"max_steps": steps}, "data": {"group_size": group_size}}
    (folder / ".hydra" / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))


def test_the_choice_pools_both_training_sets_and_skips_arms_without_a_finished_run(tmp_path):
    # group_ce is better on korquad, listnet on average over both sets; bce never finished.
    for train_set, values in (("korquad", {"group_ce": 0.9, "listnet": 0.8}), ("msmarco", {"group_ce": 0.5, "listnet": 0.7})):  # fmt: skip
        for arm, value in values.items():
            write_run(tmp_path / "multirun" / train_set / f"{arm}-s1", 1, {"val/mrr@10": value})
        write_run(tmp_path / "multirun" / train_set / "bce-s1", 1, None)
    write_run(tmp_path / "teacher" / "korquad", 42, {"val/mrr@10": 0.99}, steps=512)
    runs = study.read_runs(tmp_path)
    assert sorted((r.train_set, r.arm, r.seed, r.finished) for r in runs)[:2] == [
        ("korquad", "bce", 1, False),
        ("korquad", "group_ce", 1, True),
    ]
    assert [r.steps for r in runs if r.arm == study.TEACHER] == [512]
    best, means = study.best_arm(runs, ["group_ce", "listnet", "bce"])
    assert best == "listnet"
    assert means == pytest.approx({"group_ce": 0.7, "listnet": 0.75})
    with pytest.raises(InputError, match="no finished run"):
        study.best_arm(runs, ["bce"])
    assert study.validation(runs)["korquad"]["group_ce"]["mean"] == pytest.approx(0.9)


def test_planned_cost_counts_the_teacher_and_scales_group_sizes_by_their_pairs():
    # Per set: a 4x teacher (512) and per seed 8 arms (1024) + group 4 (64) + group 16 (256).
    assert study.planned_cost(2, 3, 8, 128, 4, [4, 16]) == pytest.approx(2 * (512 + 3 * (1024 + 64 + 256)))
    assert study.step_cost(128, 16) == 256
