"""W&B offline: a run writes a local run folder with the metrics and the resolved config; sweep grouping."""

import json
import struct

import pytest
from helpers import CONF, compose_config, tiny_run_overrides
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from reranker.train import train


def wandb_records(path):
    """The records of an offline ``run-*.wandb`` file: a 7-byte header, then a LevelDB-style log
    (32 KiB blocks; each chunk has a 4-byte checksum, a 2-byte length and a 1-byte type)."""
    from wandb.proto import wandb_internal_pb2

    data, block, position, pending = path.read_bytes(), 32768, 7, b""
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a chunk header is padding
            position += block - position % block
            continue
        length, kind = struct.unpack("<HB", data[position + 4 : position + 7])
        if kind == 0:
            break
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def items(update) -> dict:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in update}


@pytest.mark.slow
def test_offline_run_writes_metrics_and_resolved_config(tiny_bert, triplet_files, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    output = tmp_path / "run"
    overrides = tiny_run_overrides(tiny_bert, *triplet_files, output) + [
        "logger=wandb",
        "trainer.max_epochs=1",
    ]
    metrics = train(compose_config(overrides))

    (run_file,) = (output / "wandb").glob("offline-run-*/run-*.wandb")
    records = list(wandb_records(run_file))
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (run.run_group, list(run.tags)) == ("train", ["train"])
    config = {}
    for record in records:
        if record.WhichOneof("record_type") == "config":
            config.update(items(record.config.update))
    # The resolved Hydra config, not only the module's arguments: interpolations are filled in.
    assert config["data"]["group_size"] == 3 and config["data"]["tokenizer_name_or_path"] == tiny_bert
    assert config["trainer"]["max_epochs"] == 1
    history = [items(r.history.item) for r in records if r.WhichOneof("record_type") == "history"]
    assert any("train/loss" in row and "train/skipped_nonfinite" in row for row in history)
    logged_mrr = [row["val/mrr@10"] for row in history if "val/mrr@10" in row]
    assert logged_mrr[-1] == pytest.approx(metrics["val/mrr@10"])


def test_runs_are_tagged_by_experiment_and_grouped_by_sweep(tmp_path):
    cfg = compose_config(["experiment=demo_ko", "logger=wandb", f"paths.output_dir={tmp_path}"])
    assert list(cfg.logger.wandb.tags) == ["demo_ko"]
    assert cfg.logger.wandb.group == "demo_ko"  # a single run: its own group

    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        full = compose(
            config_name="train",
            overrides=["experiment=demo_ko", "logger=wandb", "hydra.sweep.dir=multiruns/2026-01-02_03-04-05"],
            return_hydra_config=True,
        )
    with open_dict(full):
        full.hydra.mode = RunMode.MULTIRUN
        full.hydra.runtime.output_dir = str(tmp_path)
    HydraConfig.instance().set_config(full)
    try:
        group = OmegaConf.to_container(full.logger, resolve=True)["wandb"]["group"]
    finally:
        HydraConfig.instance().cfg = None
    assert group == "demo_ko/2026-01-02_03-04-05"
