"""Sweep and launcher configs compose (the Optuna sweeper and submitit launcher plugins are installed)."""

import pytest
from hydra import compose, initialize_config_dir
from test_train import CONF


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
