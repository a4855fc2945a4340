"""Is the reranker better than its first stage? Validation ranks the lists by the first stage's scores as
``reranker evaluate`` does, logs those metrics once, and the end of training reports first stage, reranker
and fused side by side with evaluate's paired tests, and warns when the reranker ranks below the first stage."""

from __future__ import annotations

import csv
import json
import random

import hydra
import lightning as L
import pytest
import torch
from conftest import TOPICS, make_records, run_train_cli, write_jsonl
from helpers import compose_config, tiny_run_overrides

from reranker.core.tables import metric_order
from reranker.evaluation.evalsets import load_eval_set, read_triplet_eval
from reranker.evaluation.evaluate import FIRST_STAGE, evaluate, run
from reranker.evaluation.first_stage import compare_with_first_stage
from reranker.model.fusion import Fusion, fuse, read_fusion
from reranker.train import train
from reranker.training.module import RerankerModule

METRICS = ("mrr@10", "hit@1", "hit@3", "hit@5")
TEXTS = [text for sentences in TOPICS.values() for text in sentences]


def scored_records(records: list[dict], positive: str = "random", seed: int = 0) -> list[dict]:
    """Each record with 10 more negatives (12 candidates: a positive can fall beyond MRR@10) and a
    distinct made-up first-stage score per text; ``positive`` ``first``/``last`` scores it above/below all."""
    scored = []
    for index, record in enumerate(records):
        rng = random.Random(f"{seed}-{index}")
        others = [t for t in TEXTS if t not in record["pos"] and t not in record["neg"]]
        neg = record["neg"] + rng.sample(others, 10)
        scores = rng.sample(range(1, 1000), 1 + len(neg))
        if positive == "first":
            scores = [1000, *scores[1:]]
        elif positive == "last":
            scores = [0, *scores[1:]]
        scored.append(
            {**record, "neg": neg, "pos_first_stage": [float(scores[0])], "neg_first_stage": scores[1:]}
        )
    return scored


def validate_once(cfg) -> tuple[RerankerModule, dict[str, float]]:
    """The base model validated in one process: the module (its kept values) and the logged metrics."""
    datamodule = hydra.utils.instantiate(cfg.data)
    module = hydra.utils.instantiate(cfg.model)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    logged = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    return module, {k: float(v) for k, v in logged.items()}


def as_queries_format(records: list[dict], root) -> tuple[str, str]:
    """The same candidate lists as ``evaluate``'s queries format: candidates in first-stage order (by
    score, highest first) with their ``candidate_scores``, over one corpus."""
    ids = {text: f"p{i}" for i, text in enumerate(TEXTS)}
    corpus = write_jsonl(root / "corpus.jsonl", [{"id": i, "text": t} for t, i in ids.items()])
    queries = []
    for number, record in enumerate(records):
        texts = record["pos"] + record["neg"]
        scores = record["pos_first_stage"] + record["neg_first_stage"]
        ordered = sorted(zip(scores, texts, strict=True), reverse=True)
        queries.append(
            {
                "qid": str(number),
                "query": record["query"],
                "candidate_ids": [ids[t] for _, t in ordered],
                "candidate_scores": [s for s, _ in ordered],
                "pos_ids": [ids[t] for t in record["pos"]],
            }
        )
    return str(write_jsonl(root / "queries.jsonl", queries)), str(corpus)


def test_first_stage_metrics_equal_evaluates_first_stage_row(tiny_bert, tmp_path):
    records = make_records()
    val = scored_records(records[1::2])
    # Several positives in one list; others ranked first and last (beyond the cut-off of MRR@10).
    val[0] = {**val[0], "pos": val[0]["pos"] + val[0]["neg"][:1], "neg": val[0]["neg"][1:]}
    val[0]["pos_first_stage"] = val[0]["pos_first_stage"] + val[0]["neg_first_stage"][:1]
    val[0]["neg_first_stage"] = val[0]["neg_first_stage"][1:]
    val[1]["pos_first_stage"] = [1000.0]  # ranked first
    val[2]["pos_first_stage"] = [0.0]  # ranked last, beyond the cut-off
    val_file = write_jsonl(tmp_path / "val.jsonl", val)
    train_file = write_jsonl(tmp_path / "train.jsonl", records[::2])
    cfg = compose_config(tiny_run_overrides(tiny_bert, str(train_file), str(val_file), tmp_path / "out"))
    module, logged = validate_once(cfg)

    queries, corpus = as_queries_format(val, tmp_path)
    row = run(queries, model=[], corpus=corpus)["table"][FIRST_STAGE]
    assert module.first_stage_values == row  # exactly: the same integer rank counts
    assert {k: logged[f"val/first_stage_{k}"] for k in METRICS} == pytest.approx(row, abs=1e-7)
    assert 0 < row["hit@1"] < row["hit@5"] < 1  # the first stage is neither perfect nor hopeless here


def test_tied_first_stage_scores_count_against_the_positive_as_evaluate_counts_them(tiny_bert, tmp_path):
    records = make_records()
    val = scored_records(records[1::2])
    # Query 0: the positive ties with one negative at the top (rank 2); query 1: all 12 scores tie (rank 12).
    val[0]["pos_first_stage"] = [2000.0]
    val[0]["neg_first_stage"] = [2000.0, *val[0]["neg_first_stage"][1:]]
    val[1]["pos_first_stage"] = [5.0]
    val[1]["neg_first_stage"] = [5.0] * len(val[1]["neg"])
    val_file = write_jsonl(tmp_path / "val.jsonl", val)
    train_file = write_jsonl(tmp_path / "train.jsonl", records[::2])
    cfg = compose_config(tiny_run_overrides(tiny_bert, str(train_file), str(val_file), tmp_path / "out"))
    module, _ = validate_once(cfg)

    eval_set = read_triplet_eval(str(val_file))
    by_scores = evaluate(eval_set, {"first stage scores": eval_set.first_stage_fusion_scores()}, [])
    assert module.first_stage_values == by_scores["table"]["first stage scores"]
    assert module.validation_ranks["first_stage"][:2] == [2, 12]
    assert by_scores["per_query"]["first stage scores"]["rank"] == module.validation_ranks["first_stage"]


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


def fit(tiny_bert, tmp_path, positive: str) -> tuple[dict[str, float], object, str]:
    records = make_records()
    train_file = write_jsonl(tmp_path / "train.jsonl", records[::2])
    val_file = write_jsonl(tmp_path / "val.jsonl", scored_records(records[1::2], positive))
    overrides = tiny_run_overrides(tiny_bert, str(train_file), str(val_file), tmp_path / "out")
    cfg = compose_config(overrides + ["export_dir=" + str(tmp_path / "out" / "export")])
    return train(cfg), cfg, str(val_file)


def test_a_run_below_its_first_stage_reports_it_with_evaluates_paired_tests(tiny_bert, tmp_path, capsys):
    # The first stage ranks every positive first: no reranker can beat it, this one ends below.
    metrics, cfg, val_file = fit(tiny_bert, tmp_path, positive="first")
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
    eval_set = load_eval_set(val_file)
    fusion = read_fusion(output / "export")
    reranker, fused = reranker_and_fused_scores(cfg, best, fusion, eval_set)
    runs = {FIRST_STAGE: eval_set.first_stage_fusion_scores(), "reranker": reranker, "fused": fused}
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


def test_a_run_above_its_first_stage_gives_no_warning(tiny_bert, tmp_path, capsys):
    # The first stage ranks every positive last, beyond MRR@10's cut-off.
    metrics, _, _ = fit(tiny_bert, tmp_path, positive="last")
    printed = capsys.readouterr().out
    assert metrics["val/first_stage_mrr@10"] == 0.0 < metrics["val/mrr@10"]
    assert metrics["paired/reranker_vs_first_stage/mrr@10/difference"] > 0
    assert "first stage" in printed and not any(line.startswith("warning:") for line in printed.splitlines())


def test_two_processes_report_the_first_stage_and_paired_tests_of_one(tiny_bert, tmp_path):
    records = make_records()
    train_file = write_jsonl(tmp_path / "train.jsonl", records[::2])
    # 9 validation queries in batches of 2: rank 0 gets 5, rank 1 gets 4.
    val_file = write_jsonl(tmp_path / "val.jsonl", scored_records(records[1::2]))
    output = tmp_path / "ddp"
    overrides = [
        o
        for o in tiny_run_overrides(tiny_bert, str(train_file), str(val_file), output)
        if not o.startswith("paths.output_dir")
    ] + ["data.val_batch_size=2", "trainer.max_epochs=1"]
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
    assert {k: ddp[f"val/first_stage_{k}"] for k in METRICS} == module.first_stage_values
    # The best checkpoint validated in one process gives the same per-query ranks, in the same order.
    (best,) = (output / "checkpoints").glob("step*.ckpt")
    datamodule = hydra.utils.instantiate(cfg.data)
    trained = RerankerModule.load_from_checkpoint(best, map_location="cpu")
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    trainer.validate(trained, datamodule=datamodule, verbose=False)
    single = compare_with_first_stage(trained.validation_ranks, 10, (1, 3, 5))
    assert {k: v for k, v in ddp.items() if k.startswith("paired/")} == single
    assert len(single) == 1 + 2 * 2 * 4


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
