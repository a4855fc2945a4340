import csv
import inspect
import json
import math
from pathlib import Path

import hydra
import pytest
import torch
from conftest import make_records, run_train_cli, teacher_score, write_jsonl
from helpers import CONF, EXPERIMENTS, LOSSES, compose_config, scored_triplet_files, tiny_run_overrides
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from reranker.train import train
from reranker.training.config import unknown_config_choice
from reranker.training.module import RerankerModule


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(experiment, tmp_path):
    cfg = compose_config(
        [f"experiment={experiment}", f"paths.output_dir={tmp_path}", "data.train_files=x.jsonl"]
    )
    assert cfg.model._target_ == "reranker.training.module.RerankerModule"
    assert "group_size" not in cfg.model  # stated once, as data.group_size
    distilled = experiment in ("bge_large_ko_distill", "recipe_student_distill")  # trained on teacher scores
    assert (
        cfg.loss._target_ == f"reranker.training.losses.{'DistillKL' if distilled else 'GroupCrossEntropy'}"
    )
    assert cfg.data.tokenizer_name_or_path == cfg.model.model_name_or_path


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_validation_falls_between_optimiser_steps(experiment, tmp_path):
    """val_check_interval counts training batches: a multiple of the accumulation, or validation would run
    (and a checkpoint be written) inside an optimiser step."""
    cfg = compose_config(
        [f"experiment={experiment}", f"paths.output_dir={tmp_path}", "data.train_files=x.jsonl"]
    )
    interval, accumulation = cfg.trainer.val_check_interval, cfg.trainer.accumulate_grad_batches
    assert not isinstance(interval, int) or interval % accumulation == 0, (interval, accumulation)


def test_bge_large_ko_has_the_published_settings(tmp_path):
    cfg = compose_config(
        ["experiment=bge_large_ko", f"paths.output_dir={tmp_path}", "data.train_files=x.jsonl"]
    )
    assert cfg.model.model_name_or_path == "BAAI/bge-reranker-large"
    assert (cfg.model.lr, cfg.model.weight_decay) == (5e-6, 0.01)
    assert (cfg.data.group_size, cfg.data.batch_size, cfg.data.max_length) == (3, 1, 512)
    assert (cfg.trainer.precision, cfg.trainer.max_epochs, cfg.trainer.accumulate_grad_batches) == (
        "16-mixed",
        3,
        32,
    )


def independent_mrr(checkpoint: Path, cfg, k: int = 10) -> float:
    """MRR@k of a checkpoint on the run's validation groups, without the module's metric code."""
    module = RerankerModule.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    tokenizer = AutoTokenizer.from_pretrained(cfg.model.model_name_or_path)
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("fit")
    reciprocal_ranks = []
    for query, candidates, relevant, *_ in datamodule.val_groups:
        features = tokenizer([query] * len(candidates), candidates, padding=True, truncation=True,
                             max_length=cfg.data.max_length, return_tensors="pt")  # fmt: skip
        with torch.no_grad():
            scores = module.model(**features).logits.view(-1).tolist()
        best = max(score for score, is_relevant in zip(scores, relevant, strict=True) if is_relevant)
        rank = 1 + sum(1 for s, r in zip(scores, relevant, strict=True) if not r and s >= best)
        reciprocal_ranks.append(1 / rank if rank <= k else 0.0)
    return sum(reciprocal_ranks) / len(reciprocal_ranks)


# The tiny training of `make check` (tiny_bert); the same on XLM-R runs with the slow tests.
@pytest.mark.parametrize("model_fixture", ["tiny_bert", pytest.param("tiny_xlmr", marks=pytest.mark.slow)])
def test_fit_validates_and_exports_a_loadable_model(model_fixture, request, triplet_files, tmp_path):
    model_dir = request.getfixturevalue(model_fixture)
    train_file, val_file = triplet_files
    cfg = compose_config(tiny_run_overrides(model_dir, train_file, val_file, tmp_path))
    metrics = train(cfg)

    # The trained metric recomputed independently: plain transformers scores of the validation candidates
    # of the best checkpoint, and the rank of the positive counted by hand (ties against it).
    checkpoints = list((tmp_path / "checkpoints").glob("step*.ckpt"))
    assert metrics["val/mrr@10"] == pytest.approx(independent_mrr(checkpoints[0], cfg), abs=1e-6)
    assert json.loads((tmp_path / "metrics.json").read_text()) == pytest.approx(metrics)
    assert len(checkpoints) == 1 and (tmp_path / "checkpoints" / "last.ckpt").exists()

    export = tmp_path / "export"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in export.iterdir()}
    exported = AutoModelForSequenceClassification.from_pretrained(export).eval()
    tokenizer = AutoTokenizer.from_pretrained(export)
    module = RerankerModule.load_from_checkpoint(checkpoints[0], map_location="cpu").eval()
    pairs = [
        ("서울에 대한 질문", "서울은 대한민국의 수도이다"),
        ("김치", "태양은 항성이다"),
        ("부산", "부산은 항구 도시이다"),
    ]
    features = dict(
        tokenizer([q for q, _ in pairs], [p for _, p in pairs], padding=True, return_tensors="pt")
    )
    with torch.no_grad():
        assert torch.allclose(exported(**features).logits.view(-1), module(features), atol=1e-6)
    # The exported weights are the trained ones, not the base model's.
    base = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        assert not torch.allclose(base(**features).logits.view(-1), module(features))


@pytest.mark.slow
def test_cli_reports_bad_data_in_one_line_and_writes_no_export(tiny_bert, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "pos": ["p"], "neg": ["n"]}\n{"query": "q2", "pos": "p"}\n')
    result = run_train_cli(
        f"model.model_name_or_path={tiny_bert}",
        f"data.train_files={bad}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode != 0
    assert f"error: {bad}, line 2: field 'pos' must be a non-empty list of strings" in result.stderr
    assert "Traceback" not in result.stderr and "Seed set" not in result.stdout + result.stderr
    assert not (tmp_path / "run" / "export").exists() and not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.model_name_or_path=/no/such/model", "model path /no/such/model does not exist"),
        ("data.group_size=1", "data.group_size must be an integer >= 2"),
        ("data.train_files=/no/such/file.jsonl", "/no/such/file.jsonl: no such file or folder"),
        ("model.dropout=1.5", "model.dropout must be in [0, 1) or null, got 1.5"),
    ],
)
@pytest.mark.slow
def test_cli_reports_bad_configuration(override, message, tiny_bert, triplet_files, tmp_path):
    train_file, _ = triplet_files
    result = run_train_cli(
        f"model.model_name_or_path={tiny_bert}",
        f"data.train_files={train_file}",
        override,
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode != 0 and f"error: {message}" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    # Nothing before the error line: the seed is announced only once the inputs are known good.
    assert "Seed set" not in result.stdout + result.stderr


@pytest.mark.slow
def test_fit_stopped_before_any_validation_still_saves_and_exports(tiny_bert, triplet_files, tmp_path):
    train_file, val_file = triplet_files
    overrides = tiny_run_overrides(tiny_bert, train_file, val_file, tmp_path)
    cfg = compose_config([*overrides, "trainer.max_steps=2", "validate_before_training=false"])
    metrics = train(cfg)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert not list((tmp_path / "checkpoints").glob("step*.ckpt"))  # no validation ran: no best
    assert (tmp_path / "export" / "model.safetensors").is_file()
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 2
    # The export holds last.ckpt's weights (trained two steps, not the base model's).
    exported = load_file(tmp_path / "export" / "model.safetensors")
    assert exported and all(
        torch.equal(value, last["state_dict"][f"model.{key}"]) for key, value in exported.items()
    )
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert).state_dict()
    assert any(not torch.equal(value, base[key]) for key, value in exported.items())
    # The returned metrics are last.ckpt's, recomputed without the module's metric code.
    assert metrics["val/mrr@10"] == pytest.approx(
        independent_mrr(tmp_path / "checkpoints" / "last.ckpt", cfg)
    )


@pytest.mark.parametrize("name", LOSSES)
def test_each_loss_config_mirrors_its_constructor(name, tmp_path):
    cfg = compose_config([f"loss={name}", f"paths.output_dir={tmp_path}", "data.train_files=x.jsonl"])
    loss = hydra.utils.instantiate(cfg.loss)
    parameters = inspect.signature(type(loss).__init__).parameters.values()
    accepted = {p.name for p in parameters if p.name != "self" and p.kind == p.POSITIONAL_OR_KEYWORD}
    assert set(cfg.loss) - {"_target_", "_recursive_"} == accepted
    for key in accepted - {"components"}:
        assert getattr(loss, key) == cfg.loss[key]
    # A mix's components are losses built from their own configs (each a file of conf/loss/).
    for name, component in getattr(loss, "components", {}).items():
        assert isinstance(component, hydra.utils.get_class(cfg.loss.components[name]._target_))


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.slow
def test_each_loss_trains_a_few_steps_on_data_with_teacher_scores(name, tiny_bert, tmp_path):
    train_file, val_file = scored_triplet_files(tmp_path)
    overrides = tiny_run_overrides(tiny_bert, train_file, val_file, tmp_path / "run")
    cfg = compose_config(
        [
            *overrides,
            f"loss={name}",
            "trainer.max_steps=3",
            "validate_before_training=false",
            "export_dir=null",
        ]
    )
    metrics = train(cfg)
    # The returned metrics are those of the checkpoint the run chose (its best, else its last).
    checkpoints = tmp_path / "run" / "checkpoints"
    chosen = next(iter(checkpoints.glob("step*.ckpt")), checkpoints / "last.ckpt")
    assert metrics["val/mrr@10"] == pytest.approx(independent_mrr(chosen, cfg), abs=1e-6)
    rows = list(csv.DictReader((tmp_path / "run" / "csv" / "metrics.csv").open()))
    losses = [float(row["train/loss"]) for row in rows if row.get("train/loss")]
    assert len(losses) == 3 and all(math.isfinite(value) for value in losses)


@pytest.mark.slow
def test_mix_with_the_first_stage_teacher_trains_and_logs_each_component(tiny_bert, tmp_path):
    """Groups of 3 from records with one own negative: the third member is a corpus negative without a
    first-stage score, so the teacher term runs over the two scored members."""
    records = [
        {
            **r,
            "pos_first_stage": [teacher_score(t) for t in r["pos"]],
            "neg_first_stage": [teacher_score(t) for t in r["neg"]],
        }
        for r in make_records()
    ]
    train_file = write_jsonl(tmp_path / "train.jsonl", records[::2] + records[1::4])
    val_file = write_jsonl(tmp_path / "val.jsonl", records[3::4])
    overrides = tiny_run_overrides(tiny_bert, str(train_file), str(val_file), tmp_path / "run")
    cfg = compose_config(
        [
            *overrides,
            "loss=mix",
            "loss.components.teacher.teacher=first_stage",
            "loss.components.teacher.teacher_temperature=10",
            "loss.weights.teacher=0.25",
            "trainer.max_steps=3",
            "validate_before_training=false",
            "export_dir=null",
        ]
    )
    train(cfg)
    rows = [
        row
        for row in csv.DictReader((tmp_path / "run" / "csv" / "metrics.csv").open())
        if row.get("train/loss")
    ]
    assert len(rows) == 3
    for row in rows:
        label, teacher = float(row["train/loss/label"]), float(row["train/loss/teacher"])
        assert teacher > 0 and float(row["train/loss"]) == pytest.approx(label + 0.25 * teacher, abs=1e-5)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["loss=foo"],
            "unknown loss 'foo': choose one of bce, distill_kl, group_ce, lambdaloss, listnet, margin_mse, "
            "mix, plistmle, ranknet",
        ),
        (["loss=distill_kl", "loss.temperature=0"], "loss.temperature must be a number > 0, got 0"),
        (["loss=distill_kl", "loss.alpha=1.5"], "loss.alpha must be a number in [0, 1], got 1.5"),
        (
            ["loss=margin_mse"],
            "{train}: loss.teacher asks for teacher scores ('pos_scores'/'neg_scores' per record), and no "
            "training record carries them",
        ),
        (
            ["loss=mix", "loss.components.teacher.teacher=first_stage"],
            "{train}: loss.components.teacher.teacher asks for first-stage scores "
            "('pos_first_stage'/'neg_first_stage' per record), and no training record carries them",
        ),
        (["loss=mix", "loss.components=null"], "loss.components must name at least one loss, got None"),
        (["loss=mix", "loss.weights.teacher=-1"], "loss.weights.teacher must be a number >= 0, got -1"),
        (
            ["loss=mix", "loss.weights.label=0", "loss.weights.teacher=0"],
            "loss.weights must give at least one component a weight > 0",
        ),
        (
            ["loss=mix", "+loss.weights.extra=1"],
            "loss.weights.extra names no component of loss.components (label, teacher)",
        ),
        (
            ["loss=mix", "loss.components.teacher.alpha=2"],
            "loss.components.teacher.alpha must be a number in [0, 1], got 2",
        ),
    ],
)
@pytest.mark.slow
def test_cli_reports_bad_loss_configuration(overrides, message, tiny_bert, triplet_files, tmp_path):
    train_file, _ = triplet_files
    result = run_train_cli(
        f"model.model_name_or_path={tiny_bert}",
        f"data.train_files={train_file}",
        *overrides,
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 1
    # The error is one line, the last; nothing after it (no traceback, no Hydra report).
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {message.format(train=train_file)}")
    assert "Traceback" not in result.stderr and result.stderr.count("error") == 1
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
def test_cli_reports_teacher_scores_that_do_not_fit_their_passages(tiny_bert, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"query": "q", "pos": ["p"], "neg": ["n"], "pos_scores": [1.0], "neg_scores": [0.5]}\n'
        '{"query": "r", "pos": ["s"], "neg": ["t"], "pos_scores": [1.0, 2.0], "neg_scores": [0.5]}\n'
    )
    result = run_train_cli(
        f"model.model_name_or_path={tiny_bert}",
        f"data.train_files={bad}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 1
    assert f"error: {bad}, line 2: field 'pos_scores' has 2 scores for 1 passages in 'pos'" in result.stderr
    assert "Traceback" not in result.stderr


def test_only_plain_unknown_choices_are_refused_before_hydra():
    conf = Path(CONF)
    assert unknown_config_choice(["+loss=nope"], conf).startswith("unknown loss 'nope': choose one of bce,")
    assert unknown_config_choice(["experiment=nope"], conf).startswith("unknown experiment 'nope'")
    for fine in (["loss=bce"], ["loss=bce,nope"], ["logger=null"], ["model.lr=1"], ["data.train_files=x"]):
        assert unknown_config_choice(fine, conf) is None
    assert unknown_config_choice(["loss=nope", "hydra.searchpath=[file:///x]"], conf) is None
