import json
import os
import shutil
import subprocess
import sys

import pytest
from omegaconf import OmegaConf
from transformers import AutoConfig, AutoTokenizer

from reranker import Reranker
from reranker.model.loading import packaged_model_path
from reranker.serving.export import export_checkpoint, main
from reranker.serving.model_card import describe_base_model, render_model_card

PAIRS = [
    ("서울에 대한 질문", "서울은 대한민국의 수도이다"),
    ("김치", "태양은 항성이다"),
    ("부산", "부산은 항구 도시이다"),
]


@pytest.mark.slow
def test_training_exports_config_and_a_model_card_with_the_run_settings_and_metrics(bert_run):
    config = AutoConfig.from_pretrained(bert_run / "export")
    assert (
        config.num_labels == 1 and config.id2label == {0: "relevant"} and config.label2id == {"relevant": 0}
    )
    card = (bert_run / "export" / "README.md").read_text()
    metrics = json.loads((bert_run / "metrics.json").read_text())
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: text-classification\n")
    for row in (
        f"| training data | `{bert_run.parent / 'train.jsonl'}` |",
        "| peak learning rate (AdamW, linear warm-up and decay) | 0.001 |",
        "| group size (1 positive + negatives) | 3 |",
        "with the loss `GroupCrossEntropy` (temperature 1.0).",
        "| queries per batch | 4 |",
        "| max tokens per pair | 64 |",
        "| max epochs | 1 |",
        "| precision | 32-true |",
    ):
        assert row in card
    evaluation = card.split("## Evaluation", 1)[1]
    assert "before training" in evaluation and "after training" in evaluation
    assert f"{metrics['val/mrr@10']:.4f}" in evaluation and f"{metrics['zero_shot/hit@5']:.4f}" in evaluation


@pytest.mark.slow
def test_cli_exports_a_checkpoint_that_scores_like_the_runs_export(bert_run, tmp_path):
    checkpoint = next((bert_run / "checkpoints").glob("step*.ckpt"))
    out = tmp_path / "cli-export"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "reranker", "export", str(checkpoint), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= {
        p.name for p in out.iterdir()
    }
    # The run's metrics.json is found beside the checkpoint folder.
    assert "## Evaluation" in (out / "README.md").read_text()
    assert Reranker(out).score(PAIRS) == pytest.approx(Reranker(bert_run / "export").score(PAIRS), abs=1e-6)


@pytest.mark.slow
def test_a_checkpoint_outside_a_run_folder_gets_a_card_from_its_hyperparameters(bert_run, tmp_path):
    checkpoint = tmp_path / "model.ckpt"
    shutil.copy(next((bert_run / "checkpoints").glob("step*.ckpt")), checkpoint)
    card = (export_checkpoint(checkpoint, tmp_path / "out") / "README.md").read_text()
    assert "| weight decay | 0.01 |" in card
    assert "training data" not in card and "group size" not in card and "## Evaluation" not in card


def test_cli_errors_are_one_line_and_write_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path / "missing.ckpt"), "--out", str(out)])
    assert info.value.code == f"error: checkpoint {tmp_path / 'missing.ckpt'} does not exist"
    (tmp_path / "bad.ckpt").write_text("not a checkpoint")
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path / "bad.ckpt"), "--out", str(out)])
    assert info.value.code.startswith(
        f"error: checkpoint {tmp_path / 'bad.ckpt'} is not a PyTorch checkpoint"
    )
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["bad.ckpt"]


@pytest.mark.slow
def test_push_to_hub_uploads_the_exported_folder_only_when_asked(bert_run, tmp_path, monkeypatch):
    calls = []

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id))

        def upload_folder(self, repo_id, folder_path, **kwargs):
            calls.append(("upload_folder", repo_id, sorted(p.name for p in folder_path.iterdir())))
            return type("Commit", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/1"})()

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    checkpoint = str(next((bert_run / "checkpoints").glob("step*.ckpt")))
    main([checkpoint, "--out", str(tmp_path / "plain")])
    assert calls == []
    main([checkpoint, "--out", str(tmp_path / "pushed"), "--push-to-hub", "me/ko-reranker"])
    assert calls[0] == ("create_repo", "me/ko-reranker")
    assert calls[1][:2] == ("upload_folder", "me/ko-reranker") and "README.md" in calls[1][2]
    assert 'from_pretrained("me/ko-reranker")' in (tmp_path / "pushed" / "README.md").read_text()


def test_a_packaged_base_model_is_named_not_located():
    assert describe_base_model(packaged_model_path("all-MiniLM-L6-v2")) == "all-MiniLM-L6-v2"
    assert describe_base_model("BAAI/bge-reranker-large") == "BAAI/bge-reranker-large"


@pytest.mark.slow
def test_a_generic_tokenizer_is_saved_under_a_name_transformers_4_knows(bert_run, tiny_bert, tmp_path):
    checkpoint = next((bert_run / "checkpoints").glob("step*.ckpt"))
    out = export_checkpoint(checkpoint, tmp_path / "out", tokenizer_name_or_path=tiny_bert)
    config = json.loads((out / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    pair = ("서울에 대한 질문", "서울은 대한민국의 수도이다")
    assert AutoTokenizer.from_pretrained(out)(*pair) == AutoTokenizer.from_pretrained(tiny_bert)(*pair)


def test_the_model_card_names_the_runs_loss_and_its_arguments():
    config = OmegaConf.create(
        {"loss": {"_target_": "reranker.training.losses.DistillKL", "alpha": 0.5, "temperature": 2.0}}
    )
    card = render_model_card("me/model", "BAAI/bge-reranker-base", {}, 10, config)
    assert "by `reranker` with the loss `DistillKL` (alpha 0.5, temperature 2.0)." in card
