"""Runs configured away from the defaults: another monitored metric, no logger, validation switched off."""

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch
from conftest import run_train_cli
from helpers import compose_config, tiny_run_overrides
from lightning.pytorch.callbacks import RichProgressBar
from transformers import AutoModel

from reranker.serving.export import main
from reranker.serving.inference import Reranker
from reranker.train import train
from reranker.training.callbacks import ProgressLines, progress_bar

PAIRS = [("서울에 대한 질문", "서울은 대한민국의 수도이다"), ("김치", "태양은 항성이다")]


def short_run(tiny_bert, triplet_files, tmp_path, *extra: str):
    train_file, val_file = triplet_files
    overrides = tiny_run_overrides(tiny_bert, train_file, val_file, tmp_path)
    return train(compose_config([*overrides, "trainer.max_epochs=1", *extra]))


@pytest.mark.slow
def test_mrr_at_5_is_monitored_checkpointed_and_exported(tiny_bert, triplet_files, tmp_path):
    metrics = short_run(tiny_bert, triplet_files, tmp_path, "metrics.mrr_k=5", "metrics.hit_ks=[1,2]")
    assert {key for key in metrics if not key.startswith("truncation/")} == {
        f"{stage}/{name}" for stage in ("zero_shot", "val") for name in ("mrr@5", "hit@1", "hit@2")
    }
    best = list((tmp_path / "checkpoints").glob("step*.ckpt"))
    assert len(best) == 1 and best[0].name.endswith(f"-{metrics['val/mrr@5']:.4f}.ckpt")
    callback = torch.load(best[0], weights_only=False)["callbacks"]
    assert any(state.get("monitor") == "val/mrr@5" for state in callback.values())
    assert (tmp_path / "export" / "model.safetensors").is_file()
    assert "mrr@5" in (tmp_path / "export" / "README.md").read_text()


@pytest.mark.slow
def test_a_run_without_logger_trains_and_exports(tiny_bert, triplet_files, tmp_path):
    # The default callbacks hold a learning-rate monitor, which Lightning refuses without a logger: the run
    # drops it, and trains as the same run with a logger does.
    assert "LearningRateMonitor" in str(compose_config(["paths.output_dir=x"]).callbacks)
    metrics = short_run(tiny_bert, triplet_files, tmp_path / "none", "logger=none")
    logged = short_run(tiny_bert, triplet_files, tmp_path / "csv")
    assert metrics == logged and metrics["val/mrr@10"] != metrics["zero_shot/mrr@10"]
    assert (tmp_path / "none" / "export" / "model.safetensors").is_file()
    assert not (tmp_path / "none" / "csv").exists()


@pytest.mark.slow
def test_validation_switched_off_exports_the_last_checkpoint(tiny_bert, triplet_files, tmp_path, capsys):
    metrics = short_run(tiny_bert, triplet_files, tmp_path, "+trainer.limit_val_batches=0")
    assert not any(key.startswith("val/") for key in metrics)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert Reranker(str(tmp_path / "export")).score([("q", "p")])  # the export loads and scores
    assert "no validation" in capsys.readouterr().out


@pytest.mark.slow
def test_checkpoint_exports_and_serves_without_the_base_model_from_another_folder(
    tiny_bert, triplet_files, tmp_path, monkeypatch
):
    shutil.copytree(tiny_bert, tmp_path / "run" / "base")
    monkeypatch.chdir(tmp_path / "run")
    train_file, val_file = triplet_files
    overrides = tiny_run_overrides("./base", train_file, val_file, tmp_path / "run" / "out")
    train(compose_config([*overrides, "trainer.max_epochs=1", "export_dir=null"]))
    checkpoint = next((tmp_path / "run" / "out" / "checkpoints").glob("step*.ckpt"))
    reference = Reranker(str(checkpoint)).score(PAIRS)

    shutil.rmtree(tmp_path / "run" / "base")  # the relative base model path now leads nowhere
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert Reranker(str(checkpoint)).score(PAIRS) == pytest.approx(reference, abs=1e-6)
    main([str(checkpoint), "--out", "export"])
    assert Reranker("export").score(PAIRS) == pytest.approx(reference, abs=1e-6)
    assert {"tokenizer.json", "config.json"} <= {path.name for path in Path("export").iterdir()}


@pytest.mark.slow
def test_progress_is_plain_lines_when_output_is_not_a_terminal(tiny_bert, triplet_files, tmp_path, capsys):
    train_file, val_file = triplet_files
    overrides = [
        o for o in tiny_run_overrides(tiny_bert, train_file, val_file, tmp_path) if "progress_bar" not in o
    ]
    train(compose_config([*overrides, "trainer.max_epochs=1", "callbacks.progress_bar.every_n_steps=2"]))
    lines = capsys.readouterr().out.splitlines()
    progress = [line for line in lines if line.startswith("step ")]
    assert [line.split("  ")[0] for line in progress] == [
        "step 2/7 (epoch 1/1)",
        "step 4/7 (epoch 1/1)",
        "step 6/7 (epoch 1/1)",
    ]
    assert all(
        re.search(r"  loss \d+\.\d{4}  pairs/s \d+\.\d  elapsed \d:\d\d:\d\d  eta \d:\d\d:\d\d$", line)
        for line in progress
    )
    assert sum(line.startswith("validation at step 7: val/mrr@10 ") for line in lines) == 1
    assert not any("\r" in line or "\x1b[" in line for line in lines)  # no bar redrawn in place


def test_a_terminal_gets_the_rich_bar(monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert isinstance(progress_bar(every_n_steps=5), RichProgressBar)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert isinstance(progress_bar(every_n_steps=5), ProgressLines)


@pytest.mark.slow
def test_a_new_head_is_one_line_of_ours_and_dependency_notices_are_gone(tiny_bert, triplet_files, tmp_path):
    encoder = tmp_path / "encoder"
    AutoModel.from_pretrained(tiny_bert).save_pretrained(encoder)  # no classification head
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(tiny_bert) / name, encoder)
    train_file, val_file = triplet_files
    overrides = tiny_run_overrides(str(encoder), train_file, val_file, tmp_path / "run")
    # A fresh process: the notices are printed by handlers set up on import.
    result = run_train_cli(*overrides, "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("new classification head: classifier.bias, classifier.weight\n") == 1
    for notice in (
        "LOAD REPORT",
        "Loading weights",
        "Tip:",
        "LeafSpec",
        "estimate number of stepping batches",
    ):
        assert notice not in result.stderr + result.stdout, notice
