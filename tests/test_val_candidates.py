"""Validation on a retrieved candidates file (``data.val_files`` + ``data.val_corpus``): the lists are
scored as ``reranker evaluate`` scores them, so training logs the MRR evaluate prints for the same
checkpoint; a query whose gold was not retrieved counts as a miss; a bad file stops before training."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from types import SimpleNamespace

import hydra
import pytest
import torch
from conftest import TOPICS, make_records, run_train_cli, write_jsonl
from helpers import compose_config, tiny_run_overrides
from omegaconf import OmegaConf

from reranker.core.errors import InputError
from reranker.evaluation.evalsets import EvalSet
from reranker.evaluation.evaluate import FIRST_STAGE
from reranker.evaluation.evaluate import main as evaluate_main
from reranker.serving.model_card import render_model_card
from reranker.train import train
from reranker.training.candidate_lists import CandidateLists
from reranker.training.collate import ValidationCollator
from reranker.training.validation import RankingValidation

TEXTS = [text for sentences in TOPICS.values() for text in sentences]
PASSAGE_IDS = {text: f"p{i}" for i, text in enumerate(TEXTS)}


def candidate_lists(
    records: list[dict],
    root: Path,
    negatives: tuple[int, int] = (10, 10),
    positive: str = "random",
    seed: int = 0,
) -> tuple[str, str]:
    """A candidates file and its corpus (``evaluate``'s queries format) for ``records``: each query's
    positive among ``negatives[0]``..``negatives[1]`` other passages (its own ``neg`` first), ordered by a
    distinct made-up first-stage score (``candidate_scores``, highest first); ``positive`` ``first`` or
    ``last`` scores the positive above or below every other candidate."""
    corpus = write_jsonl(root / "corpus.jsonl", [{"id": i, "text": t} for t, i in PASSAGE_IDS.items()])
    queries = []
    for number, record in enumerate(records):
        rng = random.Random(f"{seed}-{number}")
        others = [t for t in TEXTS if t not in record["pos"] and t not in record["neg"]]
        count = rng.randint(*negatives)
        texts = record["pos"] + (record["neg"] + rng.sample(others, count))[:count]
        scores = rng.sample(range(1, 1000), len(texts))
        if positive == "first":
            scores[0] = 1000
        elif positive == "last":
            scores[0] = 0
        ordered = sorted(zip(scores, texts, strict=True), reverse=True)
        queries.append(
            {
                "qid": f"q{number}",
                "query": record["query"],
                "candidate_ids": [PASSAGE_IDS[t] for _, t in ordered],
                "candidate_scores": [float(s) for s, _ in ordered],
                "pos_ids": [PASSAGE_IDS[t] for t in record["pos"]],
            }
        )
    return str(write_jsonl(root / "queries.jsonl", queries)), str(corpus)


@pytest.mark.parametrize("model_fixture", ["tiny_bert", "tiny_xlmr"])
@pytest.mark.slow
def test_training_logs_the_mrr_evaluate_prints_for_the_same_checkpoint(
    model_fixture, request, tmp_path, capsys
):
    model_dir = request.getfixturevalue(model_fixture)
    records = make_records()
    train_file = write_jsonl(tmp_path / "train.jsonl", records[::2])
    # Lists of 3 to 9 candidates: shorter than data.min_val_candidates, which tops up triplets only.
    queries, corpus = candidate_lists(records[1::2], tmp_path, negatives=(2, 8))
    output = tmp_path / "out"
    overrides = tiny_run_overrides(model_dir, str(train_file), queries, output)
    cfg = compose_config([*overrides, f"data.val_corpus={corpus}", "trainer.max_epochs=1"])
    metrics = train(cfg)
    printed = capsys.readouterr().out
    assert "validation on triplets" not in printed

    results = evaluate_main([queries, "--corpus", corpus, "--model", f"trained={output / 'export'}"])
    report = capsys.readouterr().out
    print(
        f"{model_fixture}: train val/mrr@10 {metrics['val/mrr@10']!r}, evaluate {results['table']['trained']['mrr@10']!r}"
    )
    assert metrics["val/mrr@10"] == pytest.approx(results["table"]["trained"]["mrr@10"], abs=1e-6)
    # The headline table's row (the slice tables below it repeat the name).
    row = next(line for line in report.splitlines() if line.split("  ")[0] == "trained")
    assert row.split()[-1] == f"{metrics['val/mrr@10']:.4f}"  # the printed table's MRR@10 column
    # The first stage is evaluate's "without reranker" row: the lists in retrieved order.
    for name in ("mrr@10", "hit@1", "hit@3", "hit@5"):
        assert metrics[f"val/first_stage_{name}"] == pytest.approx(
            results["table"][FIRST_STAGE][name], abs=1e-6
        )
    assert 0 < metrics["val/first_stage_hit@1"] < 1
    # The checkpoint was chosen by the same figure, measured during training on the same lists.
    (best,) = (output / "checkpoints").glob("step*.ckpt")
    states = torch.load(best, map_location="cpu", weights_only=False)["callbacks"].values()
    (score,) = [float(s["best_model_score"]) for s in states if s.get("monitor") == "val/mrr@10"]
    assert score == pytest.approx(metrics["val/mrr@10"], abs=1e-6)
    rows = list(csv.DictReader((output / "csv" / "metrics.csv").open()))
    assert len([row for row in rows if row.get("val/first_stage_mrr@10")]) == 1  # logged once
    card = (output / "export" / "README.md").read_text()
    assert "first stage" in card and "paired tests" in card


def test_the_model_card_names_the_validation_corpus():
    config = OmegaConf.create(
        {"data": {"train_files": "t.jsonl", "val_files": "q.jsonl", "val_corpus": "c.jsonl"}}
    )
    card = render_model_card("me/model", "BAAI/bge-reranker-base", {}, 10, config)
    assert "| validation data | `q.jsonl` |\n| validation corpus | `c.jsonl` |" in card


def test_a_query_without_a_relevant_candidate_counts_as_rank_zero():
    # Three lists; the gold of the second was not retrieved: reciprocal rank 0, in the denominator.
    eval_set = EvalSet(
        qids=["a", "b", "c"],
        queries=["qa", "qb", "qc"],
        candidates=[["x", "y", "z"], ["x", "y"], ["y", "z"]],
        relevant=[[False, True, False], [False, False], [True, False]],
        first_stage=[[3.0, 2.0, 1.0], None, [5.0, 4.0]],
    )
    lists = CandidateLists(eval_set)
    assert len(lists) == 3 and lists.pairs == 7
    batch = ValidationCollator(lambda queries, passages: {})(list(lists))
    validation = RankingValidation(fusion_method="zscore")
    # The reranker puts the gold of "a" first and that of "c" second.
    validation.update(torch.tensor([1.0, 2.0, 0.0, 5.0, 6.0, 0.0, 1.0]), batch)
    values = validation.finish(SimpleNamespace(reduce=lambda value, reduce_op: value), full=True)
    assert float(values["mrr@10"]) == pytest.approx((1 + 0 + 1 / 2) / 3)
    assert float(values["hit@1"]) == pytest.approx(1 / 3)
    assert values["first_stage_mrr@10"] == pytest.approx((1 / 2 + 0 + 1) / 3)
    assert validation.validation_ranks["reranker"] == [1, 0, 2]
    assert validation.validation_ranks["first_stage"] == [2, 0, 1]


def setup_data(tmp_path, val_files: str, val_corpus: str | None, model_dir: str):
    records = make_records()
    train_file = write_jsonl(tmp_path / "train.jsonl", records[::2])
    overrides = tiny_run_overrides(model_dir, str(train_file), val_files, tmp_path / "out")
    if val_corpus is not None:
        overrides.append(f"data.val_corpus={val_corpus}")
    datamodule = hydra.utils.instantiate(compose_config(overrides).data)
    datamodule.setup("fit")
    return datamodule


def test_a_candidates_file_without_its_corpus_or_with_an_unknown_id_is_refused(tiny_bert, tmp_path):
    queries, corpus = candidate_lists(make_records()[1::2], tmp_path)
    with pytest.raises(InputError, match=rf"^{queries}, line 1: field 'candidate_ids': .*data.val_corpus"):
        setup_data(tmp_path, queries, None, tiny_bert)
    lines = Path(queries).read_text().splitlines()
    record = json.loads(lines[2])
    record["candidate_ids"][1] = "p999"
    lines[2] = json.dumps(record)
    Path(queries).write_text("\n".join(lines) + "\n")
    with pytest.raises(
        InputError, match=rf"^{queries}, line 3: field 'candidate_ids': 'p999' is not in the corpus"
    ):
        setup_data(tmp_path, queries, corpus, tiny_bert)
    triplets = write_jsonl(tmp_path / "val.jsonl", make_records()[1::2])
    with pytest.raises(InputError, match=rf"^{triplets}, line 1: field 'candidate_ids' is missing"):
        setup_data(tmp_path, str(triplets), corpus, tiny_bert)


@pytest.mark.slow
def test_the_cli_stops_on_a_candidates_file_without_a_corpus_in_one_line(tiny_bert, tmp_path):
    records = make_records()
    train_file = write_jsonl(tmp_path / "train.jsonl", records[::2])
    queries, _ = candidate_lists(records[1::2], tmp_path)
    result = run_train_cli(
        f"model.model_name_or_path={tiny_bert}",
        f"data.train_files={train_file}",
        f"data.val_files={queries}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {queries}, line 1: field 'candidate_ids': a candidates file needs its corpus; "
                      "set data.val_corpus to the corpus JSONL {id, text} its ids name"]  # fmt: skip
    assert "Traceback" not in result.stderr and "Seed set" not in result.stdout + result.stderr


def test_candidate_lists_are_validated_as_retrieved_and_triplets_are_topped_up(tiny_bert, tmp_path):
    records = make_records()
    queries, corpus = candidate_lists(records[1::2], tmp_path, negatives=(2, 4))
    lists = setup_data(tmp_path, queries, corpus, tiny_bert).val_groups
    written = [json.loads(line) for line in Path(queries).read_text().splitlines()]
    text = {i: t for t, i in PASSAGE_IDS.items()}
    assert [item[1] for item in lists] == [[text[i] for i in r["candidate_ids"]] for r in written]
    assert [item[3] for item in lists] == [r["candidate_scores"] for r in written]
    triplets = write_jsonl(tmp_path / "val.jsonl", records[1::2])
    groups = setup_data(tmp_path, str(triplets), None, tiny_bert).val_groups
    assert {len(item[1]) for item in groups} == {10} and {item[3] for item in groups} == {None}
