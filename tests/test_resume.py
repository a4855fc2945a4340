"""Exact resume: a run interrupted after step k and resumed trains exactly the batches it had not trained
and ends where an uninterrupted run ends."""

import os

import pytest
import torch
from conftest import make_records, write_jsonl
from helpers import compose_config, tiny_run_overrides
from recorders import read_records

from reranker.train import resolve_ckpt_path, train

# 14 training queries, batch 2: 7 steps an epoch, 14 in all.
INTERRUPT = ["+callbacks.kill._target_=tests.faults.InterruptAt"]


def run(tiny_bert, files, output, *extra, record_to=None):
    """A tiny run that records its batches in ``<record_to or output>.batches.rank0``."""
    record = [
        "+callbacks.record._target_=tests.recorders.RecordQueries",
        f"+callbacks.record.path={record_to or output}.batches",
    ]
    overrides = tiny_run_overrides(tiny_bert, *files, output) + ["model.lr=3e-3", *record, *extra]
    return train(compose_config(overrides))


def trained_batches(output) -> list[tuple[int, list[int]]]:
    """(epoch, queries) of each training batch that the runs in ``output`` trained, in order."""
    return [(r["epoch"], r["queries"]) for r in read_records(f"{output}.batches") if r["stage"] == "train"]


def final_weights(output):
    return torch.load(output / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)[
        "state_dict"
    ]


@pytest.fixture(scope="module")
def resume_setup(tiny_bert, tmp_path_factory):
    """The triplet files and, per validation interval, the final metrics and weights of an uninterrupted
    run (computed once for the cases that share an interval)."""
    folder = tmp_path_factory.mktemp("resume")
    records = make_records()
    files = (
        str(write_jsonl(folder / "train.jsonl", records[::2] + records[1::4])),
        str(write_jsonl(folder / "val.jsonl", records[3::4])),
    )
    baselines = {}

    def uninterrupted(validate: str):
        if validate not in baselines:
            output = folder / f"uninterrupted-{len(baselines)}"
            metrics = run(tiny_bert, files, output, validate)
            baselines[validate] = (metrics, final_weights(output), trained_batches(output))
        return baselines[validate]

    return files, uninterrupted


@pytest.mark.parametrize(
    "val_check_interval, kill_after, resumed_from",
    [
        (2, 5, "last.ckpt of step 4, mid-epoch 0"),
        (2, 9, "last.ckpt of step 6, mid-epoch 0, then across the epoch boundary"),
        (1.0, 9, "last.ckpt of step 7, the end of epoch 0"),
    ],
)
@pytest.mark.slow
def test_killed_and_resumed_run_ends_like_an_uninterrupted_one(
    val_check_interval, kill_after, resumed_from, resume_setup, tiny_bert, tmp_path
):
    triplet_files, uninterrupted = resume_setup
    validate = f"trainer.val_check_interval={val_check_interval}"
    expected_metrics, expected_weights, all_batches = uninterrupted(validate)
    assert len(all_batches) == 14 and len({tuple(q) for _, q in all_batches}) > 7  # batches differ

    killed = tmp_path / "resumed"
    with pytest.raises(Exception, match=f"interrupted after step {kill_after}"):
        run(tiny_bert, triplet_files, killed, validate, *INTERRUPT, f"+callbacks.kill.step={kill_after}")
    assert not (killed / "export").exists() and not (killed / "metrics.json").exists()
    assert trained_batches(killed) == all_batches[:kill_after]
    saved_step = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]

    resumed = tmp_path / "resumed"  # the same folder, its batches recorded apart
    metrics = run(tiny_bert, triplet_files, resumed, validate, "ckpt_path=last", record_to=tmp_path / "call")
    # The resumed call trains exactly the batches after the checkpoint, in the uninterrupted order.
    assert trained_batches(tmp_path / "call") == all_batches[saved_step:], resumed_from
    assert metrics == expected_metrics, resumed_from
    weights = final_weights(resumed)
    assert all(torch.equal(weights[name], expected_weights[name]) for name in expected_weights), resumed_from


def test_ckpt_path_last_picks_the_newest_checkpoint_or_none(tmp_path):
    assert resolve_ckpt_path("last", tmp_path) is None
    (tmp_path / "checkpoints").mkdir()
    last = tmp_path / "checkpoints" / "last.ckpt"
    torch.save({}, last)
    assert resolve_ckpt_path("last", tmp_path) == str(last)
    hpc = tmp_path / "hpc_ckpt_1.ckpt"
    torch.save({}, hpc)
    os.utime(last, (1_000, 1_000))
    assert resolve_ckpt_path("last", tmp_path) == str(hpc)
    assert resolve_ckpt_path(None, tmp_path) is None


def test_ckpt_path_last_never_picks_a_checkpoint_cut_short(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    last = tmp_path / "checkpoints" / "last.ckpt"
    torch.save({"weights": torch.zeros(1000)}, last)
    os.utime(last, (1_000, 1_000))
    hpc = tmp_path / "hpc_ckpt_1.ckpt"
    hpc.write_bytes(last.read_bytes()[:-100])  # newer, but its end is missing
    assert resolve_ckpt_path("last", tmp_path) == str(last)
    last.write_bytes(last.read_bytes()[:-100])
    assert resolve_ckpt_path("last", tmp_path) is None
    from reranker.core.errors import InputError

    with pytest.raises(InputError, match="is not a whole checkpoint"):
        resolve_ckpt_path(str(last), tmp_path)


def test_ckpt_path_that_does_not_exist_is_an_input_error(tmp_path):
    from reranker.core.errors import InputError

    with pytest.raises(InputError, match="ckpt_path /no/such.ckpt does not exist"):
        resolve_ckpt_path("/no/such.ckpt", tmp_path)
