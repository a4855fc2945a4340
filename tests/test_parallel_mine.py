"""Data-parallel false-negative filter (``prepare mine --filter-model M --devices N``, 2 CPU processes under
gloo): every process runs the filter's rounds on the merged scores, ``OUT`` is the bytes of one process and
is written once; a killed run resumes without rescoring finished shards; the one-process options and
``--devices`` without a filter model are refused with one error line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TOPICS, make_records, write_jsonl

from reranker.model.pair_scorer import PairScorer
from reranker.preparation.prepare import main

SHARD_SIZE = 5  # 18 queries: round 0 (the positives) in 4 shards, later rounds fewer


@pytest.fixture
def judged(tmp_path) -> tuple[Path, Path]:
    """18 passages and 18 queries, each judged on one passage."""
    texts = [text for sentences in TOPICS.values() for text in sentences]
    ids = {text: f"p{i}" for i, text in enumerate(texts)}
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{"id": ids[t], "text": t} for t in texts])
    queries = [
        {"qid": f"q{i}", "query": r["query"], "pos_ids": [ids[r["pos"][0]]]}
        for i, r in enumerate(make_records())
    ]
    return write_jsonl(tmp_path / "queries.jsonl", queries), corpus


def arguments(judged: tuple[Path, Path], model: str, out: Path, devices: int) -> list[str]:
    # A margin of 0 drops about 2 candidates in 3: several rounds of refills.
    return ["mine", "--queries", str(judged[0]), "--corpus", str(judged[1]), "--out", str(out),
            "--window", "1", "18", "--num-hard-negatives", "4", "--filter-model", model, "--filter-margin", "0",
            "--devices", str(devices), "--accelerator", "cpu", "--shard-size", str(SHARD_SIZE)]  # fmt: skip


@pytest.mark.parametrize("model_fixture", ["wide_bert", "wide_xlmr"])
@pytest.mark.slow
def test_two_processes_write_the_triplets_of_one(model_fixture, request, judged, tmp_path, capsys):
    model = request.getfixturevalue(model_fixture)
    one = tmp_path / "one.jsonl"
    main(arguments(judged, model, one, devices=1))
    summary = capsys.readouterr().out
    assert json.loads(summary)["removed_by_filter"] > 0
    rounds = sorted(p.name for p in Path(f"{one}.shards").iterdir())
    assert rounds[:3] == ["round-0", "round-1", "round-2"]  # the refills really went through the shards
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    two = tmp_path / "two.jsonl"
    command = [sys.executable, "-m", "reranker.prepare", *arguments(judged, model, two, devices=2)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MEMBER: 2/2" in result.stderr  # two processes really ran
    assert result.stdout == summary  # one summary line: rank zero's
    assert two.read_bytes() == one.read_bytes()
    assert sorted(p.name for p in Path(f"{two}.shards").iterdir()) == rounds


@pytest.mark.slow
def test_a_killed_run_resumes_without_rescoring_finished_shards(wide_bert, judged, tmp_path, monkeypatch):
    scored: list[list[tuple[str, str]]] = []
    score = PairScorer.score

    def recording(self, pairs, *args, **kwargs):
        scored.append(list(pairs))
        return score(self, pairs, *args, **kwargs)

    monkeypatch.setattr(PairScorer, "score", recording)
    out = tmp_path / "out.jsonl"
    main(arguments(judged, wide_bert, out, devices=1))
    whole = out.read_bytes()
    lost = Path(f"{out}.shards") / "round-1" / "shard-00001.jsonl"
    shard = lost.read_bytes()
    # Killed in round 1 before its shard 1 was written: no output, every other shard finished.
    out.unlink()
    lost.unlink()
    scored.clear()
    main(arguments(judged, wide_bert, out, devices=1))
    assert len(scored) == 1 and lost.read_bytes() == shard  # only the lost shard was scored again
    assert out.read_bytes() == whole


def test_one_process_options_and_devices_without_a_filter_are_refused(wide_bert, judged, tmp_path):
    out = tmp_path / "out.jsonl"
    with_cache = [*arguments(judged, wide_bert, out, devices=1), "--cache", str(tmp_path / "c")]
    without_filter = [
        a for a in arguments(judged, wide_bert, out, devices=1) if a not in ("--filter-model", wide_bert)
    ]
    for argv, expected in (
        (with_cache, "error: --device and --cache belong to the one-process path"),
        (without_filter, "error: --devices scores the --filter-model's pairs"),
    ):
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        message = str(stopped.value.code)
        assert message.startswith(expected) and "\n" not in message
    assert not out.exists() and not Path(f"{out}.shards").exists()
