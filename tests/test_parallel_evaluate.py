"""Data-parallel evaluation (``reranker evaluate --devices N``, 2 CPU processes under gloo): ``results.json``
is the bytes of one process, the report is printed once; a killed run resumes without rescoring its finished
shards; the one-process options and a missing ``--out`` are refused with one error line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import records_with_negatives, write_jsonl

from reranker.evaluation.evaluate import main
from reranker.model.pair_scorer import PairScorer
from reranker.scoring.shards import shard_name

SHARD_SIZE = 5  # 12 queries: shards of 5, 5 and 2; 6 validation queries: shards of 5 and 1


@pytest.fixture
def sets(tmp_path) -> tuple[Path, Path]:
    """An evaluation set of 12 queries with 2 to 4 candidates each, and a fusion validation set of 6."""
    records = records_with_negatives()
    return write_jsonl(tmp_path / "eval.jsonl", records[:12]), write_jsonl(
        tmp_path / "val.jsonl", records[12:]
    )


def arguments(sets: tuple[Path, Path], model: str, out: Path, devices: int) -> list[str]:
    return [str(sets[0]), "--model", f"tiny={model}", "--fusion-val", str(sets[1]), "--samples", "200",
            "--devices", str(devices), "--accelerator", "cpu", "--shard-size", str(SHARD_SIZE), "--out", str(out)]  # fmt: skip


@pytest.mark.parametrize("model_fixture", ["wide_bert", "wide_xlmr"])
@pytest.mark.slow
def test_two_processes_write_the_results_of_one(model_fixture, request, sets, tmp_path, capsys):
    model = request.getfixturevalue(model_fixture)
    alone = main([str(sets[0]), "--model", f"tiny={model}", "--fusion-val", str(sets[1]), "--samples", "200"])
    capsys.readouterr()
    one = tmp_path / "one"
    sharded = main(arguments(sets, model, one, devices=1))
    report = capsys.readouterr().out
    # The shards hold the right pairs' scores: the same table as one process scoring every pair at once.
    for row, values in alone["table"].items():
        assert sharded["table"][row] == pytest.approx(values, abs=1e-6), row
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    two = tmp_path / "two"
    command = [sys.executable, "-m", "reranker.evaluate", *arguments(sets, model, two, devices=2)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MEMBER: 2/2" in result.stderr  # two processes really ran
    assert result.stdout == report  # printed once, by rank zero
    assert (two / "results.json").read_bytes() == (one / "results.json").read_bytes()
    assert (two / "results.md").read_bytes() == (one / "results.md").read_bytes()
    folder = two / "shards" / shard_name("tiny")
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", "shard-00000.jsonl", "shard-00001.jsonl", "shard-00002.jsonl"
    ]  # fmt: skip
    assert len(list((two / "shards" / "fusion-val" / shard_name("tiny")).glob("shard-*.jsonl"))) == 2


@pytest.mark.slow
def test_a_killed_run_resumes_without_rescoring_finished_shards(wide_bert, sets, tmp_path, monkeypatch):
    scored: list[list[tuple[str, str]]] = []
    score = PairScorer.score

    def recording(self, pairs, *args, **kwargs):
        scored.append(list(pairs))
        return score(self, pairs, *args, **kwargs)

    monkeypatch.setattr(PairScorer, "score", recording)
    out = tmp_path / "out"
    main(arguments(sets, wide_bert, out, devices=1))
    assert len(scored) == 3 + 2  # the evaluation set's shards, then the validation set's
    whole = (out / "results.json").read_bytes()
    folder = out / "shards" / shard_name("tiny")
    # Killed after shards 0 and 2 of the evaluation set: no results yet, shard 1 lost.
    (out / "results.json").unlink()
    (folder / "shard-00001.jsonl").unlink()
    scored.clear()
    main(arguments(sets, wide_bert, out, devices=1))
    records = [json.loads(line) for line in sets[0].read_text(encoding="utf-8").splitlines()]
    shard_1 = records[SHARD_SIZE : 2 * SHARD_SIZE]
    assert scored == [list(dict.fromkeys((r["query"], p) for r in shard_1 for p in r["pos"] + r["neg"]))]
    assert (out / "results.json").read_bytes() == whole


def test_one_process_options_and_a_missing_out_are_refused(wide_bert, sets, tmp_path):
    with_cache = [*arguments(sets, wide_bert, tmp_path / "out", devices=1), "--cache", str(tmp_path / "c")]
    without_out = arguments(sets, wide_bert, tmp_path / "out", devices=1)[:-2]
    for argv, expected in (
        (with_cache, "error: --device and --cache belong to the one-process path"),
        (without_out, "error: --devices needs --out"),
    ):
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        message = str(stopped.value.code)
        assert message.startswith(expected) and "\n" not in message
    assert not (tmp_path / "out").exists() and not (tmp_path / "c").exists()
