"""DDP on 2 CPU processes (gloo): each rank trains and validates its own queries (recorded, disjoint and
complete), validation metrics on retrieved candidate lists, the first-stage and fused ones included,
equal those of 1 process on the same data; the export records the fused weight; a NaN loss on one rank
makes every rank skip that step."""

import csv
import json

import hydra
import lightning as L
import pytest
import torch
from conftest import make_records, run_train_cli, write_jsonl
from helpers import compose_config, tiny_run_overrides
from recorders import read_records
from test_val_candidates import candidate_lists

from reranker import Reranker
from reranker.model.fusion import read_fusion
from reranker.training.module import RerankerModule

# It trains in two processes.
pytestmark = pytest.mark.slow

METRICS = ("mrr@10", "hit@1", "hit@3", "hit@5")
FUSED = (*(f"fused_{name}" for name in METRICS), "fused_weight")


def validate_in_one_process(cfg, checkpoint=None) -> dict[str, float]:
    datamodule = hydra.utils.instantiate(cfg.data)
    module = (
        RerankerModule.load_from_checkpoint(checkpoint, map_location="cpu")
        if checkpoint
        else hydra.utils.instantiate(cfg.model)
    )
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    return {k: float(v) for k, v in trainer.validate(module, datamodule=datamodule, verbose=False)[0].items()}


def assert_each_query_on_one_rank(path, num_train: int, num_val: int, batch_size: int) -> None:
    """Training: per epoch, each rank trains an equal share and no query on two ranks (the remainder of
    ``num_train // 2`` shares is left out). Validation: every pass sees each query on exactly one rank."""
    records = [read_records(path, rank) for rank in (0, 1)]
    epochs = {r["epoch"] for rank_records in records for r in rank_records if r["stage"] == "train"}
    assert epochs
    for epoch in epochs:
        trained = [
            [q for r in rank_records if r["stage"] == "train" and r["epoch"] == epoch for q in r["queries"]]
            for rank_records in records
        ]
        assert [len(queries) for queries in trained] == [num_train // 2] * 2
        assert not set(trained[0]) & set(trained[1]) and len(set(trained[0] + trained[1])) == 2 * (
            num_train // 2
        )
    # Validation passes: zero-shot, one per interval during fit, the best checkpoint's; batches per pass:
    val = [[r for r in rank_records if r["stage"] == "val"] for rank_records in records]
    passes = [[], []]
    for rank in (0, 1):
        for r in val[rank]:
            if r["batch_idx"] == 0:
                passes[rank].append([])
            passes[rank][-1] += r["queries"]
    assert len(passes[0]) == len(passes[1]) >= 3
    for on_rank_0, on_rank_1 in zip(*passes, strict=True):
        assert (sorted(on_rank_0), sorted(on_rank_1)) == ([0, 2, 4], [1, 3])  # 3 queries and 2, no padding
    assert max(len(r["queries"]) for r in val[0]) == batch_size


def assert_each_metric_counts_each_query_once(path, num_val: int) -> None:
    """Every validation pass's metric states, summed over the ranks, hold each query once: equal metric
    values alone cannot show it (a histogram with every query counted twice gives the same means)."""
    passes = [read_records(path, rank) for rank in (0, 1)]
    assert len(passes[0]) == len(passes[1]) >= 3
    for on_rank_0, on_rank_1 in zip(*passes, strict=True):
        assert on_rank_0.keys() == on_rank_1.keys() and len(on_rank_0) >= 2 * len(METRICS)
        totals = {name: on_rank_0[name] + on_rank_1[name] for name in on_rank_0}
        assert totals == dict.fromkeys(on_rank_0, num_val), f"queries validated over both ranks: {totals}"


def test_two_process_validation_equals_one_process_and_nan_on_one_rank_is_skipped_by_all(tiny_bert, tmp_path):
    records = make_records()
    # 5 validation queries in batches of 2: rank 0 gets 3 queries, rank 1 gets 2, each a partial last batch.
    train_file = write_jsonl(tmp_path / "train.jsonl", records[::2])
    # Retrieved lists of 9 or 10 candidates with first-stage scores: the fused metrics are validated too.
    queries, corpus = candidate_lists(records[1::4], tmp_path, negatives=(8, 9))
    assert len(records[1::4]) == 5
    output = tmp_path / "ddp"
    overrides = tiny_run_overrides(tiny_bert, str(train_file), queries, output) + [
        f"data.val_corpus={corpus}",
        "data.val_batch_size=2",
        "trainer.max_epochs=1",
        "trainer.val_check_interval=2",
    ]
    overrides = [o for o in overrides if not o.startswith("paths.output_dir")]
    result = run_train_cli(
        *overrides,
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        f"hydra.run.dir={output}",
        # Rank 1 alone sees a NaN loss on its first batch: a rank stepping alone would hang the all-reduce.
        "+callbacks.nan._target_=tests.faults.NaNOnRankAt",
        "+callbacks.nan.rank=1",
        "+callbacks.nan.batch_idx=0",
        "+callbacks.record._target_=tests.recorders.RecordQueries",
        f"+callbacks.record.path={tmp_path / 'batches'}",
        "+callbacks.counts._target_=tests.recorders.RecordValidatedCounts",
        f"+callbacks.counts.path={tmp_path / 'counts'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MEMBER: 2/2" in result.stdout + result.stderr
    assert_each_metric_counts_each_query_once(tmp_path / "counts", num_val=5)
    assert_each_query_on_one_rank(tmp_path / "batches", num_train=9, num_val=5, batch_size=2)
    ddp = json.loads((output / "metrics.json").read_text())
    rows = list(csv.DictReader((output / "csv" / "metrics.csv").open()))
    skipped = [float(row["train/skipped_nonfinite"]) for row in rows if row.get("train/skipped_nonfinite")]
    assert skipped == [1.0] * len(skipped) and len(skipped) >= 2  # counted once, on every step after

    cfg = compose_config(overrides + [f"paths.output_dir={tmp_path / 'single'}"])
    zero_shot = validate_in_one_process(cfg)
    assert {k: ddp[f"zero_shot/{k}"] for k in METRICS + FUSED} == {
        k: zero_shot[f"val/{k}"] for k in METRICS + FUSED
    }

    (best,) = (output / "checkpoints").glob("step*.ckpt")
    state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
    assert all(torch.isfinite(tensor).all() for tensor in state.values())  # no rank applied the NaN step
    trained = validate_in_one_process(cfg, best)
    assert {k: ddp[f"val/{k}"] for k in METRICS + FUSED} == {k: trained[f"val/{k}"] for k in METRICS + FUSED}
    # The export records the weight validation chose for the best checkpoint, and Reranker applies it.
    recorded = read_fusion(output / "export")
    # The logged weight went through Lightning's float32; the recorded one is the grid's own float.
    assert recorded.method == "zscore" and recorded.weight == pytest.approx(ddp["val/fused_weight"], abs=1e-7)
    assert Reranker(output / "export").fusion == recorded
    # Not a trivially equal pair: training changed the scores.
    assert any(ddp[f"val/{k}"] != ddp[f"zero_shot/{k}"] for k in METRICS)
