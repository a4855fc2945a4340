"""Data-parallel teacher scoring (``prepare teacher --devices N``, Lightning's predict loop under DDP on 2 CPU
processes, gloo): the output is the bytes of one process and of scoring each shard of queries alone; a killed
run resumes without rescoring its finished shards; a lost, doubled or foreign shard, or a shard folder of
another configuration, is refused with one error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import records_with_negatives, write_jsonl

from reranker.core.errors import InputError
from reranker.model.pair_scorer import PairScorer
from reranker.preparation.prepare import main as prepare_main
from reranker.preparation.prepare import parse_args
from reranker.preparation.teacher import prepare_teacher
from reranker.scoring.shards import ShardFolder

SHARD_SIZE = 5  # 12 queries: shards of 5, 5 and 2; with 2 processes rank 0 scores shards 0 and 2


@pytest.fixture
def triplets(tmp_path) -> Path:
    """12 queries with 2 to 4 negatives each (groups of different sizes, one passage repeated in a query)."""
    records = records_with_negatives()[:12]
    return write_jsonl(tmp_path / "triplets.jsonl", records)


def teacher(input: Path, model: str, out: Path, **options) -> dict | None:
    return prepare_teacher(input, model, out, accelerator="cpu", shard_size=SHARD_SIZE, **options)


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def expected_lines(input: Path, model: str) -> str:
    """The output as each shard of 5 queries scored alone (its unique pairs in one call) would give it."""
    records = read_records(input)
    reranker = PairScorer(model, device="cpu")
    lines = []
    for start in range(0, len(records), SHARD_SIZE):
        shard = records[start : start + SHARD_SIZE]
        pairs = list(dict.fromkeys((r["query"], p) for r in shard for p in r["pos"] + r["neg"]))
        scores = dict(zip(pairs, reranker.score(pairs, 32), strict=True))
        for r in shard:
            r["pos_scores"] = [scores[(r["query"], p)] for p in r["pos"]]
            r["neg_scores"] = [scores[(r["query"], n)] for n in r["neg"]]
            lines.append(json.dumps(r, ensure_ascii=False) + "\n")
    return "".join(lines)


@pytest.mark.slow
def test_two_processes_write_the_bytes_of_one_process(wide_bert, triplets, tmp_path):
    one = tmp_path / "one.jsonl"
    assert teacher(triplets, wide_bert, one, devices=1) == {
        "triplets": 12, "pairs": 39, "shards": f"{one}.shards"
    }  # fmt: skip
    assert one.read_text(encoding="utf-8") == expected_lines(triplets, wide_bert)
    two = tmp_path / "two.jsonl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "reranker.prepare", "teacher", str(triplets), "--model", wide_bert,
               "--out", str(two), "--devices", "2", "--accelerator", "cpu", "--shard-size", str(SHARD_SIZE)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MEMBER: 2/2" in result.stderr  # two processes really ran
    assert json.loads(result.stdout) == {
        "triplets": 12,
        "pairs": 39,
        "shards": f"{two}.shards",
    }  # rank 0 only
    assert two.read_bytes() == one.read_bytes()
    assert sorted(p.name for p in Path(f"{two}.shards").iterdir()) == [
        "config.json", "shard-00000.jsonl", "shard-00001.jsonl", "shard-00002.jsonl"
    ]  # fmt: skip


@pytest.mark.slow
def test_xlmr_teacher_scores_each_shard_alone(wide_xlmr, triplets, tmp_path):
    out = tmp_path / "out.jsonl"
    teacher(triplets, wide_xlmr, out, devices=1)
    assert out.read_text(encoding="utf-8") == expected_lines(triplets, wide_xlmr)


@pytest.mark.slow
def test_a_killed_run_resumes_without_rescoring_finished_shards(wide_bert, triplets, tmp_path, monkeypatch):
    scored: list[list[tuple[str, str]]] = []
    score = PairScorer.score

    def recording(self, pairs, *args, **kwargs):
        scored.append(list(pairs))
        return score(self, pairs, *args, **kwargs)

    monkeypatch.setattr(PairScorer, "score", recording)
    out = tmp_path / "out.jsonl"
    teacher(triplets, wide_bert, out, devices=1)
    assert len(scored) == 3
    whole = out.read_bytes()
    folder = Path(f"{out}.shards")
    inodes = {p.name: p.stat().st_ino for p in folder.glob("shard-*.jsonl")}
    # Killed while writing shard 1 after shards 0 and 2: no output, shard 1 only in a half-written temp file.
    out.unlink()
    (folder / "shard-00001.jsonl").unlink()
    (folder / ".shard-00001.jsonl.tmp-99").write_text('{"shard": 1, "config": "', encoding="utf-8")
    scored.clear()
    teacher(triplets, wide_bert, out, devices=1)
    shard_1 = read_records(triplets)[SHARD_SIZE : 2 * SHARD_SIZE]
    assert scored == [list(dict.fromkeys((r["query"], p) for r in shard_1 for p in r["pos"] + r["neg"]))]
    assert {p.name: p.stat().st_ino for p in folder.glob("shard-*.jsonl") if p.name != "shard-00001.jsonl"} == {
        name: inode for name, inode in inodes.items() if name != "shard-00001.jsonl"
    }  # fmt: skip
    assert out.read_bytes() == whole
    # Every shard finished: nothing is scored, the output is written again from the shards.
    scored.clear()
    out.unlink()
    teacher(triplets, wide_bert, out, devices=1)
    assert scored == [] and out.read_bytes() == whole


def test_a_shard_folder_of_another_configuration_is_refused(wide_bert, triplets, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    teacher(triplets, wide_bert, out, devices=1)
    whole = out.read_bytes()
    with pytest.raises(SystemExit) as stopped:
        prepare_main(["teacher", str(triplets), "--model", wide_bert, "--out", str(out), "--devices", "1",
                      "--accelerator", "cpu", "--shard-size", str(SHARD_SIZE), "--max-length", "16"])  # fmt: skip
    message = str(stopped.value.code)
    assert message.startswith("error: ") and "\n" not in message
    assert "another configuration (max_length differ)" in message
    assert out.read_bytes() == whole
    fewer = write_jsonl(tmp_path / "fewer.jsonl", read_records(triplets)[:11])
    with pytest.raises(InputError, match=r"another configuration \(pairs differ\)"):
        teacher(fewer, wide_bert, out, devices=1)


def small_folder(folder: Path, config: dict | None = None) -> ShardFolder:
    """A shard folder without a model: 5 groups of 2 pairs, shards of 2 groups."""
    shards = ShardFolder(folder, config or {"task": "test", "shard_size": 2}, [2] * 5)
    shards.open()
    return shards


def test_merge_refuses_lost_doubled_and_foreign_shards(tmp_path):
    shards = small_folder(tmp_path / "shards")
    for index, rows in enumerate(shards.ranges):
        shards.write(index, [[row + 0.1, row + 1 / 3] for row in rows])
    assert shards.merge() == [[row + 0.1, row + 1 / 3] for row in range(5)]  # floats read back exactly
    saved = tmp_path / "saved.jsonl"
    shutil.copy(shards.path(1), saved)

    shards.path(1).unlink()
    with pytest.raises(InputError, match=r"shard 1 \(shard-00001.jsonl\) is missing, 1 of 3 lost"):
        shards.merge()

    shutil.copy(saved, shards.path(1))
    shutil.copy(saved, shards.folder / "shard-00001-copy.jsonl")
    with pytest.raises(InputError, match=r"shard 1 is also in shard-00001-copy.jsonl \(a doubled shard\)"):
        shards.merge()
    (shards.folder / "shard-00001-copy.jsonl").unlink()

    other = ShardFolder(shards.folder, {"task": "test", "shard_size": 2, "max_length": 16}, [2] * 5)
    other.write(2, [[9.0, 9.0]])  # a shard scored by another run's configuration, dropped in the folder
    with pytest.raises(InputError, match=r"shard-00002.jsonl, line 1: .*another configuration.*refused"):
        shards.merge()


def test_the_slurm_script_runs_one_teacher_task_a_gpu():
    script = Path(__file__).resolve().parents[1] / "slurm" / "teacher_multinode.sbatch"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "#SBATCH --requeue" in text and "srun python -m reranker.prepare teacher" in text
    assert '--devices "${SLURM_NTASKS_PER_NODE}" --num-nodes "${SLURM_NNODES}" "$@"' in text
    # The arguments it passes, with the example's, are the command's own.
    arguments = parse_args(["teacher", "--accelerator", "gpu", "--devices", "8", "--num-nodes", "2",
                            "in.jsonl", "--model", "m", "--out", "o.jsonl", "--batch-size", "128"])  # fmt: skip
    assert (arguments.devices, arguments.num_nodes, arguments.accelerator) == (8, 2, "gpu")
