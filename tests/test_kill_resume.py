"""SIGKILL at seeded random moments — inside a step, before an update, during validation, while a
checkpoint is written, while the export is written — then ``ckpt_path=last``: every run ends with the
weights, metrics and export of an uninterrupted run, and nothing cut short is ever picked up.

Each run is a child of a fork server that imported torch, Lightning and transformers once, so a kill and
a resume cost a tiny training run each, not an interpreter start.
"""

import csv
import json
import multiprocessing
import random

import pytest
import torch
from conftest import make_records, write_jsonl
from helpers import tiny_run_overrides
from safetensors.torch import load_file

from reranker.train import resolve_ckpt_path
from reranker.training.checkpoint_io import AtomicCheckpointIO
from tests.faults import checkpoint_at, run_killable, save_checkpoint_killed

# Its tests kill and resume training processes.
pytestmark = pytest.mark.slow

SEED = 14
KINDS = ("step", "update", "validation", "checkpoint", "export")
# 7 kills: one of each kind, and a second while a checkpoint and while the export is written (the
# moments where a partial file could be left behind). About 60 s of CPU in all (a tiny run is ~3 s).
PLAN = (*KINDS, "checkpoint", "export")


@pytest.fixture(scope="module")
def fork():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "lightning", "transformers", "reranker.train", "tests.faults"])

    def run(overrides, kill=None, counts_file=None) -> int:
        process = context.Process(
            target=run_killable, args=(overrides, kill or {"kind": None}, counts_file and str(counts_file))
        )
        process.start()
        process.join(timeout=300)
        if process.exitcode is None:
            process.kill()
            process.join()
            pytest.fail(f"a run overran its 300 s and was killed: {overrides} {kill}")
        return process.exitcode

    return run


def outcome(folder):
    """What a finished run leaves: metrics.json, the final weights (last.ckpt), the exported weights and
    the rows of csv/metrics.csv (each logged step once, across every start of the run)."""
    checkpoint = torch.load(folder / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    with (folder / "csv" / "metrics.csv").open() as file:
        rows = list(csv.DictReader(file))
    return (
        json.loads((folder / "metrics.json").read_text()),
        checkpoint["state_dict"],
        load_file(folder / "export" / "model.safetensors"),
        rows,
    )


def assert_same(ours, expected, label):
    metrics, weights, exported, rows = ours
    assert metrics == expected[0], label
    assert rows == expected[3], label
    for got, want in ((weights, expected[1]), (exported, expected[2])):
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want), label


def leftovers(folder) -> list[str]:
    """Files of a killed run cut short: partial checkpoints and export folders (``.partial``, ``.export-``)."""
    partial = [".partial" for _ in (folder / "checkpoints" / ".partial").glob("*")]
    return partial + [".export-" for _ in folder.glob(".export-*")]


def assert_nothing_cut_short_is_picked_up(folder, label):
    resumed_from = resolve_ckpt_path("last", folder)
    if resumed_from is not None:
        torch.load(resumed_from, map_location="cpu", weights_only=False)  # whole: it loads
    export = folder / "export"
    if export.exists():
        assert load_file(export / "model.safetensors") and (export / "config.json").is_file(), label
        json.loads((export / "config.json").read_text())


def test_runs_killed_at_random_moments_resume_to_the_uninterrupted_end(fork, tiny_bert, tmp_path):
    records = make_records()
    files = (
        str(write_jsonl(tmp_path / "train.jsonl", records[::2] + records[1::4])),
        str(write_jsonl(tmp_path / "val.jsonl", records[3::4])),
    )

    def overrides(folder, *extra):
        # 14 queries in batches of 2: 7 steps an epoch, 2 epochs, validation every 2 steps.
        return tiny_run_overrides(tiny_bert, *files, folder) + [
            "model.lr=3e-3", "trainer.val_check_interval=2", *extra
        ]  # fmt: skip

    baseline = tmp_path / "uninterrupted"
    assert fork(overrides(baseline), counts_file=tmp_path / "counts.json") == 0
    counts = json.loads((tmp_path / "counts.json").read_text())
    expected = outcome(baseline)
    assert {kind: counts[kind] > 0 for kind in KINDS} == dict.fromkeys(KINDS, True), counts

    seen_left_behind = set()
    rng = random.Random(SEED)
    for number, kind in enumerate(PLAN):
        kill = {"kind": kind, "n": rng.randint(1, counts[kind]), "after_bytes": rng.randint(1, 100_000)}
        label = f"kill {number}: {kill}"
        folder = tmp_path / f"killed-{number}"
        assert fork(overrides(folder), kill) == -9, label  # SIGKILL
        assert not (folder / "metrics.json").exists(), label
        assert_nothing_cut_short_is_picked_up(folder, label)
        left_behind = leftovers(folder)
        # What a kill inside the write of last.ckpt leaves (the kills above may land elsewhere in a save).
        partial = folder / "checkpoints" / ".partial" / "last.ckpt"
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(b"PK\x03\x04 cut short")
        assert fork(overrides(folder, "ckpt_path=last")) == 0, label
        assert_same(outcome(folder), expected, label)
        assert leftovers(folder) == [], f"{label}: the resumed run left {leftovers(folder)}"
        seen_left_behind.update(left_behind)
    # The kills while the export was written did leave folders for the resume to clear.
    assert ".export-" in seen_left_behind, seen_left_behind


@pytest.mark.parametrize("after_bytes", [1, 4096, 250_000])
def test_a_kill_while_a_checkpoint_is_written_leaves_the_previous_one_whole(after_bytes, tmp_path):
    path = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(checkpoint_at(3), path)
    process = multiprocessing.get_context("forkserver").Process(
        target=save_checkpoint_killed, args=(str(path), 4, after_bytes)
    )
    process.start()
    process.join(timeout=60)
    if process.exitcode is None:
        process.kill()
        pytest.fail("the save overran its 60 s and was killed")
    assert process.exitcode == -9  # killed while writing step 4
    saved = torch.load(path, map_location="cpu", weights_only=False)
    assert saved["global_step"] == 3 and torch.equal(
        saved["state_dict"]["weight"], checkpoint_at(3)["state_dict"]["weight"]
    )
    assert resolve_ckpt_path("last", tmp_path) == str(path)


def test_a_kill_between_the_micro_batches_of_one_update_resumes_to_the_uninterrupted_end(
    fork, tiny_bert, tmp_path
):
    records = make_records()
    files = (
        str(write_jsonl(tmp_path / "train.jsonl", records[::2] + records[1::4])),
        str(write_jsonl(tmp_path / "val.jsonl", records[3::4])),
    )

    def overrides(folder, *extra):
        # 7 batches an epoch, 2 per update; a validation (and last.ckpt) every 4 batches.
        return tiny_run_overrides(tiny_bert, *files, folder) + [
            "model.lr=3e-3", "trainer.accumulate_grad_batches=2", "trainer.val_check_interval=4", *extra
        ]  # fmt: skip

    baseline = tmp_path / "uninterrupted"
    assert fork(overrides(baseline)) == 0
    expected = outcome(baseline)
    # Updates after batches 2, 4, 6, 7 (the epoch's end), 9, 11, ...: the kill in the 11th backward pass
    # comes with the 10th batch's gradient accumulated and not yet applied.
    folder = tmp_path / "killed"
    assert fork(overrides(folder), {"kind": "step", "n": 11}) == -9
    assert fork(overrides(folder, "ckpt_path=last")) == 0
    assert_same(outcome(folder), expected, "killed between micro-batches")
