"""Is the reranker better than its first stage? On a retrieved candidates file validation ranks the lists in
their retrieved order, as ``reranker evaluate``'s "without reranker" row does, logs those metrics once, and
the end of training reports first stage, reranker and fused side by side with evaluate's paired tests, and
warns when the reranker ranks below the first stage. On triplets (mined groups) none of this is reported."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import hydra
import lightning as L
import pytest
import torch
from conftest import make_records, run_train_cli, write_jsonl
from helpers import compose_config, tiny_run_overrides
from test_val_candidates import candidate_lists

from reranker.core.tables import metric_order
from reranker.evaluation.evalsets import load_eval_set
from reranker.evaluation.evaluate import run
from reranker.evaluation.first_stage import compare_with_first_stage
from reranker.evaluation.tables import FIRST_STAGE, evaluate
from reranker.model.fusion import Fusion, fuse, read_fusion
from reranker.train import train
from reranker.training.datamodule import TRIPLET_VALIDATION_NOTE
from reranker.training.module import RerankerModule

METRICS = ("mrr@10", "hit@1", "hit@3", "hit@5")


def scored_records(records: list[dict], seed: int = 0) -> list[dict]:
    """Each triplet with made-up first-stage scores beside ``pos`` and ``neg``."""
    scored = []
    for index, record in enumerate(records):
        scores = random.Random(f"{seed}-{index}").sample(range(1, 1000), 1 + len(record["neg"]))
        scored.append({**record, "pos_first_stage": [float(scores[0])], "neg_first_stage": scores[1:]})
    return scored


def validate_once(cfg) -> tuple[RerankerModule, dict[str, float]]:
    """The base model validated in one process: the module (its kept values) and the logged metrics."""
    datamodule = hydra.utils.instantiate(cfg.data)
    module = hydra.utils.instantiate(cfg.model)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    logged = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    return module, {k: float(v) for k, v in logged.items()}


def lists_config(tiny_bert, tmp_path, queries: str, corpus: str, *extra: str):
    records = make_records()
    train_file = write_jsonl(tmp_path / "train.jsonl", records[::2])
    overrides = tiny_run_overrides(tiny_bert, str(train_file), queries, tmp_path / "out")
    return compose_config([*overrides, f"data.val_corpus={corpus}", *extra])


def rewrite(path: str, change) -> None:
    """Apply ``change(records)`` to a JSONL file in place."""
    records = [json.loads(line) for line in Path(path).read_text().splitlines()]
    change(records)
    write_jsonl(Path(path), records)


@pytest.mark.slow
def test_first_stage_metrics_equal_evaluates_first_stage_row(tiny_bert, tmp_path):
    queries, corpus = candidate_lists(make_records()[1::2], tmp_path, negatives=(11, 11))

    def change(records):
        # Several positives in one list; others ranked first and last (beyond the cut-off of MRR@10).
        records[0]["pos_ids"].append(records[0]["candidate_ids"][-1])
        records[1]["candidate_ids"] = [
            *records[1]["pos_ids"],
            *(i for i in records[1]["candidate_ids"] if i not in records[1]["pos_ids"]),
        ]
        records[2]["candidate_ids"] = [
            *(i for i in records[2]["candidate_ids"] if i not in records[2]["pos_ids"]),
            *records[2]["pos_ids"],
        ]

    rewrite(queries, change)
    module, logged = validate_once(lists_config(tiny_bert, tmp_path, queries, corpus))

    row = run(queries, model=[], corpus=corpus)["table"][FIRST_STAGE]
    assert module.validation.first_stage_values == row  # exactly: the same integer rank counts
    assert {k: logged[f"val/first_stage_{k}"] for k in METRICS} == pytest.approx(row, abs=1e-7)
    assert 0 < row["hit@1"] < row["hit@5"] < 1  # the first stage is neither perfect nor hopeless here
    assert module.validation.validation_ranks["first_stage"][1:3] == [1, 12]


@pytest.mark.slow
def test_the_first_stage_ranks_by_the_retrieved_order_as_evaluate_does_even_where_scores_tie(
    tiny_bert, tmp_path
):
    queries, corpus = candidate_lists(make_records()[1::2], tmp_path)

    def change(records):
        # Query 0: every score ties; query 1: the positive ties with the candidate before it.
        records[0]["candidate_scores"] = [5.0] * len(records[0]["candidate_ids"])
        position = records[1]["candidate_ids"].index(records[1]["pos_ids"][0])
        records[1]["candidate_ids"].insert(0, records[1]["candidate_ids"].pop(position))
        records[1]["candidate_scores"][0] = records[1]["candidate_scores"][1]

    rewrite(queries, change)
    module, _ = validate_once(lists_config(tiny_bert, tmp_path, queries, corpus))
    results = run(queries, model=[], corpus=corpus)
    assert module.validation.first_stage_values == results["table"][FIRST_STAGE]
    assert module.validation.validation_ranks["first_stage"] == results["per_query"][FIRST_STAGE]["rank"]
    assert module.validation.validation_ranks["first_stage"][1] == 1


def reranker_and_fused_scores(cfg, checkpoint, fusion: Fusion, eval_set) -> tuple[list[float], list[float]]:
    """Flat scores (``eval_set.pairs()`` order) of a checkpoint on the validation lists, and fused with the
    first stage at the recorded mix: computed here, outside the module's validation code."""
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("fit")
    module = RerankerModule.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    scores = []
    with torch.no_grad():
        for batch in datamodule.val_dataloader():
            scores += module(batch["features"]).float().tolist()
    reranker, relevance, mask = eval_set.dense(scores)
    first_stage = eval_set.dense(eval_set.first_stage_fusion_scores())[0]
    fused = fuse(reranker, first_stage, fusion, mask)  # [Q, C]
    return scores, fused[mask].tolist()


def fit(tiny_bert, tmp_path, positive: str) -> tuple[dict[str, float], object, str, str]:
    records = make_records()
    train_file = write_jsonl(tmp_path / "train.jsonl", records[::2])
    queries, corpus = candidate_lists(records[1::2], tmp_path, negatives=(11, 11), positive=positive)
    overrides = tiny_run_overrides(tiny_bert, str(train_file), queries, tmp_path / "out")
    cfg = compose_config(
        overrides + [f"data.val_corpus={corpus}", "export_dir=" + str(tmp_path / "out" / "export")]
    )
    return train(cfg), cfg, queries, corpus


@pytest.mark.slow
def test_a_run_below_its_first_stage_reports_it_with_evaluates_paired_tests(tiny_bert, tmp_path, capsys):
    # The first stage ranks every positive first: no reranker can beat it, this one ends below.
    metrics, cfg, queries, corpus = fit(tiny_bert, tmp_path, positive="first")
    output = tmp_path / "out"
    printed = capsys.readouterr().out

    assert metrics["val/first_stage_mrr@10"] == 1.0 and metrics["val/mrr@10"] < 1.0
    assert json.loads((output / "metrics.json").read_text()) == metrics
    # Logged once: one row of the CSV log holds it (of the zero-shot, 2 fit and the final validations).
    rows = list(csv.DictReader((output / "csv" / "metrics.csv").open()))
    assert [row["val/first_stage_mrr@10"] for row in rows if row.get("val/first_stage_mrr@10")] == ["1.0"]
    assert sum(1 for row in rows if row.get("val/mrr@10")) >= 3

    # The paired tests are evaluate's on the same lists, with scores computed here.
    (best,) = (output / "checkpoints").glob("step*.ckpt")
    eval_set = load_eval_set(queries, corpus)
    fusion = read_fusion(output / "export")
    reranker, fused = reranker_and_fused_scores(cfg, best, fusion, eval_set)
    runs = {FIRST_STAGE: eval_set.first_stage_scores(), "reranker": reranker, "fused": fused}
    expected = evaluate(eval_set, runs, [(FIRST_STAGE, "reranker"), (FIRST_STAGE, "fused")])
    assert expected["table"]["reranker"]["mrr@10"] == pytest.approx(metrics["val/mrr@10"], abs=1e-6)
    for test in expected["tests"]:
        for field in ("difference", "ci_low", "ci_high", "p_value"):
            key = f"paired/{test['b']}_vs_first_stage/{test['metric']}/{field}"
            assert metrics[key] == pytest.approx(test[field], abs=1e-12), key
    assert metrics["paired/reranker_vs_first_stage/mrr@10/difference"] < 0

    table = printed[printed.index("validation\n") :]
    labels = [line.split("  ")[0] for line in table.splitlines()[2:6]]
    assert labels == ["first stage", "before training", "after training", f"fused (a = {fusion.weight:.2f})"]
    assert "after training vs first stage  mrr@10" in table and "fused vs first stage" in table
    warnings = [line for line in printed.splitlines() if line.startswith("warning:")]
    p_value = metrics["paired/reranker_vs_first_stage/mrr@10/p_value"]
    assert len(warnings) == 1
    assert f"(val/mrr@10 {metrics['val/mrr@10']:.4f}) ranks below its first stage" in warnings[0]
    assert f"(val/first_stage_mrr@10 1.0000, p = {p_value:.4f})" in warnings[0]
    card = (output / "export" / "README.md").read_text()
    assert "first stage" in card and "paired tests" in card and warnings[0] in card


@pytest.mark.slow
def test_a_run_above_its_first_stage_gives_no_warning(tiny_bert, tmp_path, capsys):
    # The first stage ranks every positive last, beyond MRR@10's cut-off.
    metrics, *_ = fit(tiny_bert, tmp_path, positive="last")
    printed = capsys.readouterr().out
    assert metrics["val/first_stage_mrr@10"] == 0.0 < metrics["val/mrr@10"]
    assert metrics["paired/reranker_vs_first_stage/mrr@10/difference"] > 0
    assert "first stage" in printed and not any(line.startswith("warning:") for line in printed.splitlines())


@pytest.mark.slow
def test_two_processes_report_the_first_stage_and_paired_tests_of_one(tiny_bert, tmp_path):
    records = make_records()
    train_file = write_jsonl(tmp_path / "train.jsonl", records[::2])
    # 9 validation queries in batches of 2: rank 0 gets 5, rank 1 gets 4.
    queries, corpus = candidate_lists(records[1::2], tmp_path, negatives=(2, 11))
    output = tmp_path / "ddp"
    overrides = [
        o
        for o in tiny_run_overrides(tiny_bert, str(train_file), queries, output)
        if not o.startswith("paths.output_dir")
    ] + [f"data.val_corpus={corpus}", "data.val_batch_size=2", "trainer.max_epochs=1"]
    result = run_train_cli(
        *overrides,
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        f"hydra.run.dir={output}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ddp = json.loads((output / "metrics.json").read_text())

    cfg = compose_config(overrides + [f"paths.output_dir={tmp_path / 'single'}"])
    module, _ = validate_once(cfg)
    assert {k: ddp[f"val/first_stage_{k}"] for k in METRICS} == module.validation.first_stage_values
    # The best checkpoint validated in one process gives the same per-query ranks, in the same order.
    (best,) = (output / "checkpoints").glob("step*.ckpt")
    datamodule = hydra.utils.instantiate(cfg.data)
    trained = RerankerModule.load_from_checkpoint(best, map_location="cpu")
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    trainer.validate(trained, datamodule=datamodule, verbose=False)
    single = compare_with_first_stage(trained.validation.validation_ranks, 10, (1, 3, 5))
    assert {k: v for k, v in ddp.items() if k.startswith("paired/")} == single
    assert len(single) == 1 + 2 * 2 * 4


@pytest.mark.slow
def test_triplets_report_no_first_stage_even_when_they_carry_its_scores(tiny_bert, tmp_path, capsys):
    records = make_records()
    train_file = write_jsonl(tmp_path / "train.jsonl", records[::2])
    val_file = write_jsonl(tmp_path / "val.jsonl", scored_records(records[1::2]))
    output = tmp_path / "out"
    overrides = tiny_run_overrides(tiny_bert, str(train_file), str(val_file), output)
    metrics = train(compose_config([*overrides, "trainer.max_epochs=1"]))
    printed = capsys.readouterr().out

    assert printed.count(TRIPLET_VALIDATION_NOTE) == 1
    assert "val/mrr@10" in metrics and "zero_shot/mrr@10" in metrics
    derived = [k for k in metrics if "first_stage" in k or "fused" in k or k.startswith("paired/")]
    assert derived == [] and json.loads((output / "metrics.json").read_text()) == metrics
    rows = list(csv.DictReader((output / "csv" / "metrics.csv").open()))
    assert not any("first_stage" in name or "fused" in name for name in rows[0])
    table = printed[printed.index("validation\n") :]
    assert [line.split("  ")[0] for line in table.splitlines()[2:4]] == ["before training", "after training"]
    assert "first stage" not in table and not any(
        line.startswith("warning:") for line in printed.splitlines()
    )
    card = (output / "export" / "README.md").read_text()
    assert "after training" in card and "first stage" not in card.split("## Evaluation")[1]
    assert not (output / "export" / "fusion.json").exists()


def test_the_reranker_metric_leads_the_first_stage_and_fused_ones():
    # The leaderboard's default metric is the first of this order: the reranker's own, not a derived one.
    names = ["val/first_stage_mrr@10", "val/fused_mrr@10", "val/mrr@10", "val/hit@1", "val/first_stage_hit@1"]
    assert metric_order(names) == [
        "val/mrr@10",
        "val/first_stage_mrr@10",
        "val/fused_mrr@10",
        "val/hit@1",
        "val/first_stage_hit@1",
    ]
