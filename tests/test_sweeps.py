"""Sweeps: a real two-run multirun on the tiny model goes on past a diverged run and hands the sweeper what
``main()`` returns; sweep and launcher configs compose (the Optuna sweeper and submitit launcher plugins
are installed)."""

import json
import math

import pytest
import yaml
from conftest import run_train_cli
from helpers import CONF
from hydra import compose, initialize_config_dir


def compose_with_hydra(overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=True)


def test_grid_sweeps_lr_group_size_and_base_model():
    cfg = compose_with_hydra(["hparams_search=lr_group_model", "experiment=demo_ko"])
    params = cfg.hydra.sweeper.params
    assert set(params) == {"model.lr", "data.group_size", "model"}
    assert params.model == "minilm_demo,multilingual_e5_small"
    assert cfg.optimized_metric == "val/mrr@10"


def test_optuna_sweeper_maximises_mrr():
    cfg = compose_with_hydra(["hparams_search=optuna_lr_group", "experiment=demo_ko"])
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
    assert cfg.hydra.sweeper.direction == "maximize" and cfg.optimized_metric == "val/mrr@10"
    assert set(cfg.hydra.sweeper.params) == {"model.lr", "data.group_size", "model.warmup_ratio"}


@pytest.mark.parametrize("trainer", ["ddp", "gpu"])
def test_slurm_launcher_asks_one_task_per_device(trainer):
    cfg = compose_with_hydra(["hydra/launcher=slurm", f"trainer={trainer}"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.tasks_per_node == launcher.gpus_per_node == cfg.trainer.devices


@pytest.mark.slow
def test_a_multirun_goes_on_past_a_nan_run_and_returns_the_optimised_metric(
    nan_model, tiny_bert, triplet_files, tmp_path
):
    train_file, val_file = triplet_files
    sweep_dir = tmp_path / "sweep"
    returns = tmp_path / "returns.jsonl"
    result = run_train_cli(
        "-m",
        # The first run diverges (every weight NaN); the sweep must still run the second.
        f"model.model_name_or_path={nan_model},{tiny_bert}",
        f"data.train_files={train_file}",
        f"data.val_files={val_file}",
        "data.group_size=3",
        "data.batch_size=4",
        "data.max_length=64",
        "data.num_workers=0",
        "trainer.max_epochs=1",
        "++model.max_nonfinite_in_a_row=2",
        "callbacks.progress_bar=null",
        f"hydra.sweep.dir={sweep_dir}",
        "+hydra.callbacks.returns._target_=tests.recorders.RecordReturns",
        f"+hydra.callbacks.returns.path={returns}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "error: the training loss was NaN or infinite on 2 steps in a row" in result.stderr
    returned = {line["job"]: line["returned"] for line in map(json.loads, returns.read_text().splitlines())}
    assert set(returned) == {0, 1} and math.isnan(returned[0])  # NaN: a failed trial to Optuna
    assert not (sweep_dir / "0" / "export").exists() and not (sweep_dir / "0" / "metrics.json").exists()
    metrics = json.loads((sweep_dir / "1" / "metrics.json").read_text())
    assert (
        returned[1] == metrics["val/mrr@10"] and (sweep_dir / "1" / "export" / "model.safetensors").is_file()
    )
    # Every run folder, the diverged one's too, holds its resolved config.
    for job, model in enumerate((nan_model, tiny_bert)):
        resolved = yaml.safe_load((sweep_dir / str(job) / ".hydra" / "config.yaml").read_text())
        assert resolved["model"]["model_name_or_path"] == str(model)
