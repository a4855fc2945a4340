"""The score cache is keyed by what decides a score: the weights' identity (their files, the scoring contract
among them) and the dtype. A model retrained into the same folder is scored afresh; the same weights are
read back from the cache without scoring."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import spread_copy, write_jsonl

from reranker.model.contract import ScoringContract
from reranker.model.pair_scorer import PairScorer
from reranker.prepare import main

RECORDS = [
    {
        "query": "서울의 명물",
        "pos": ["서울의 명물은 음식이다."],
        "neg": ["부산에는 역이 있다.", "대구 시장은 일한다."],
    },
    {"query": "부산역", "pos": ["부산에는 역이 있다."], "neg": ["서울의 명물은 음식이다."]},
]
PAIRS = [(r["query"], p) for r in RECORDS for p in r["pos"] + r["neg"]]


def teacher_scores(tmp_path: Path, model: Path, name: str, *options: str) -> list[float]:
    """``prepare teacher`` with the one cache file of the test: the scores of ``PAIRS``, in order."""
    source, out = write_jsonl(tmp_path / "in.jsonl", RECORDS), tmp_path / f"{name}.jsonl"
    cache = tmp_path / "scores.sqlite"
    main(["teacher", str(source), "--model", str(model), "--out", str(out), "--cache", str(cache), *options])
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    return [score for record in records for score in record["pos_scores"] + record["neg_scores"]]


def test_a_model_retrained_into_the_same_folder_is_scored_afresh(tiny_bert, tmp_path, monkeypatch):
    model = tmp_path / "teacher"
    shutil.copytree(tiny_bert, model)
    before = teacher_scores(tmp_path, model, "before")
    # Retrained into the same folder: the same name, new weights.
    shutil.rmtree(model)
    spread_copy(tiny_bert, model)
    after = teacher_scores(tmp_path, model, "after")
    assert after == pytest.approx(PairScorer(str(model), device="cpu").score(PAIRS), abs=1e-6)
    assert after != pytest.approx(before, abs=1e-3)  # the old weights' scores were not read back

    def refuse(*args, **kwargs):
        raise AssertionError("scored a pair the cache holds for these weights")

    monkeypatch.setattr(PairScorer, "score", refuse)
    assert teacher_scores(tmp_path, model, "again") == after


def test_a_new_contract_or_dtype_is_scored_afresh(wide_bert, tmp_path):
    model = tmp_path / "teacher"
    shutil.copytree(wide_bert, model)
    before = teacher_scores(tmp_path, model, "before")
    # The contract recorded with the weights now cuts every pair to 8 tokens.
    ScoringContract(max_length=8).write(model)
    cut = teacher_scores(tmp_path, model, "cut")
    assert cut == pytest.approx(PairScorer(str(model), device="cpu").score(PAIRS), abs=1e-6)
    assert cut != pytest.approx(before, abs=1e-3)
    half = teacher_scores(tmp_path, model, "half", "--dtype", "bfloat16")
    expected = PairScorer(str(model), device="cpu", dtype="bfloat16").score(PAIRS)
    assert half == pytest.approx(expected, abs=1e-6) and half != pytest.approx(cut, abs=1e-4)
