"""The recipe end to end on the tiny fixtures: teacher scores from one model train another by distillation."""

from __future__ import annotations

import csv
import json
import math

import pytest
from conftest import make_records, run_train_cli, write_jsonl

from reranker.prepare import main

# It prepares data and trains through the command line.
pytestmark = pytest.mark.slow


def test_teacher_scores_train_a_student_with_another_tokenizer(tmp_path, tiny_bert, tiny_xlmr):
    records = make_records()
    source = write_jsonl(tmp_path / "train.jsonl", records[::2] + records[1::4])
    val = write_jsonl(tmp_path / "val.jsonl", records[3::4])
    scored = tmp_path / "train_teacher.jsonl"
    # Teacher: the WordPiece BERT; student: the Unigram XLM-R. Scores are per text, so they need not match.
    main(["teacher", str(source), "--model", tiny_bert, "--out", str(scored), "--max-length", "64"])
    first = json.loads(scored.read_text().splitlines()[0])
    assert len(first["pos_scores"]) == len(first["pos"]) and len(first["neg_scores"]) == len(first["neg"])
    run_dir = tmp_path / "run"
    result = run_train_cli(
        f"model.model_name_or_path={tiny_xlmr}",
        f"data.train_files={scored}",
        f"data.val_files={val}",
        f"hydra.run.dir={run_dir}",
        "loss=distill_kl",
        "loss.alpha=0.0",  # pure distillation: the loss is the KL to the teacher alone
        "data.group_size=3",
        "data.batch_size=4",
        "data.max_length=64",
        "data.num_workers=0",
        "trainer.max_epochs=1",
        "trainer.log_every_n_steps=1",
        "callbacks.progress_bar=null",
        "export_dir=null",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with (run_dir / "csv" / "metrics.csv").open() as handle:
        losses = [float(row["train/loss"]) for row in csv.DictReader(handle) if row.get("train/loss")]
    # A KL to distinct teacher scores is positive; without them (all NaN) it would be 0.
    assert losses and all(math.isfinite(v) for v in losses) and max(losses) > 1e-6
