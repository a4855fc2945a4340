"""Entry point: ``reranker train experiment=demo_ko`` (or ``python -m reranker.train ...``).

``train(cfg)`` builds the datamodule, module, trainer, callbacks and loggers from the Hydra config,
validates the base model (zero-shot), fits, validates the best checkpoint, exports it as a Hugging Face
folder and returns the metrics. ``run(cfg)``, the Hydra task, returns the metric a sweep optimises;
``main()`` checks the command line's config choices, then runs it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import zipfile
from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from omegaconf import DictConfig, OmegaConf

from reranker.core.errors import InputError
from reranker.core.tables import below_first_stage, format_comparison
from reranker.evaluation.first_stage import compare_with_first_stage
from reranker.serving.export import export_checkpoint, remove_export_leftovers
from reranker.training.checkpoint_io import AtomicCheckpointIO, remove_partial_checkpoints
from reranker.training.config import conf_dir, register_resolvers, unknown_config_choice
from reranker.training.csv_logger import ResumableCSVLogger
from reranker.training.fsdp import check_precision, is_fsdp
from reranker.training.health import TrainingHealth
from reranker.training.losses.teachers import missing_teacher_message
from reranker.training.nonfinite import NonFiniteLossError
from reranker.training.quiet import quiet_dependency_notices

register_resolvers()
# Absolute, so that Hydra finds the configs whether this module runs as a script (python -m reranker.train)
# or is imported, whatever the working directory, from a checkout or an installed wheel.
CONF_DIR = conf_dir()


def _instantiate_all(group: DictConfig | None) -> list:
    """Instantiate every entry of a callbacks/logger group (each entry has a ``_target_``)."""
    if not group:
        return []
    return [hydra.utils.instantiate(entry) for entry in group.values() if entry and "_target_" in entry]


def _validate(trainer: L.Trainer, module, datamodule, ckpt_path: str | None = None) -> dict[str, float]:
    """``val/*`` metrics; empty when validation is switched off (``limit_val_batches=0``) or has no batches."""
    results = trainer.validate(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
    return {name: float(value) for name, value in results[0].items()} if results else {}


def resolve_ckpt_path(ckpt_path: str | None, output_dir: Path) -> str | None:
    """The checkpoint to resume from: a path, or ``last`` for the newest of ``output_dir``'s
    ``checkpoints/last.ckpt`` and the ``hpc_ckpt_*.ckpt`` written on a Slurm requeue signal.

    ``last`` with no checkpoint yet starts from scratch, so a job and its requeued run share one command.
    A file that is not a whole checkpoint (cut short by a kill while it was written) is never used.
    """
    if not ckpt_path:
        return None
    if ckpt_path == "last":
        candidates = [output_dir / "checkpoints" / "last.ckpt", *output_dir.glob("hpc_ckpt_*.ckpt")]
        existing = [path for path in candidates if path.is_file() and zipfile.is_zipfile(path)]
        return str(max(existing, key=lambda path: path.stat().st_mtime_ns)) if existing else None
    if not Path(ckpt_path).is_file():
        raise InputError(f"ckpt_path {ckpt_path} does not exist (give a checkpoint file, or last)")
    if not zipfile.is_zipfile(ckpt_path):
        raise InputError(f"ckpt_path {ckpt_path} is not a whole checkpoint (cut short, or not a .ckpt)")
    return str(ckpt_path)


def _cluster_plugins() -> list:
    """Under Slurm: on SIGUSR1 (sbatch --signal) save hpc_ckpt_N.ckpt and requeue the job with scontrol."""
    if not SLURMEnvironment.detect():
        return []
    return [SLURMEnvironment(auto_requeue=True, requeue_signal=signal.SIGUSR1)]


def _log_config(loggers: list, cfg: DictConfig) -> None:
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams(resolved)


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit a reranker as configured; returns ``val/*`` metrics before (``zero_shot/*``) and after training."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    quiet_dependency_notices()
    # Seeded silently here and announced once the data, model and trainer are built, so that a bad input
    # stops with its error line alone.
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    output_dir = Path(cfg.paths.output_dir)

    check_precision(cfg.trainer)
    loss = hydra.utils.instantiate(cfg.loss)  # checks its arguments
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("fit")  # read and check the data before anything heavy starts
    carried = {"scores": datamodule.has_teacher_scores, "first_stage": datamodule.has_first_stage_scores}
    for key, teacher in getattr(loss, "teachers", {}).items():
        if not carried[teacher]:
            raise InputError(missing_teacher_message(cfg.data.train_files, key, teacher))
    # The metric set is configured once (metrics.*); every metric key (val/mrr@10, ...) derives from it.
    module = hydra.utils.instantiate(
        cfg.model, loss=loss, mrr_k=cfg.metrics.mrr_k, hit_ks=list(cfg.metrics.hit_ks)
    )
    callbacks = _instantiate_all(cfg.get("callbacks"))
    loggers = _instantiate_all(cfg.get("logger"))
    if not loggers:
        # LearningRateMonitor refuses a trainer without a logger, and there is nowhere to log the rate to.
        callbacks = [callback for callback in callbacks if not isinstance(callback, LearningRateMonitor)]
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        plugins=[AtomicCheckpointIO(), *_cluster_plugins()],
    )
    rank_zero_info(f"Seed set to {cfg.seed}")
    _log_config(loggers, cfg)

    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), output_dir)
    # FSDP wraps a module for good: validating before or after fit takes a module of its own.
    sharded = is_fsdp(cfg.trainer.get("strategy"))

    def module_to_validate():
        return hydra.utils.instantiate(cfg.model, loss=loss) if sharded else module

    # Under Slurm, Lightning resumes from an hpc_ckpt_*.ckpt by itself even when ckpt_path is null.
    requeued = SLURMEnvironment.detect() and any(output_dir.glob("hpc_ckpt_*.ckpt"))
    resuming = ckpt_path is not None or requeued
    # Before fit, the launcher's variables say the rank: one process clears leftovers, before any saves.
    if os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0":
        _remove_leftovers(trainer, cfg)
    if not resuming:
        for logger in loggers:
            if isinstance(logger, ResumableCSVLogger):
                logger.start_fresh()

    metrics: dict[str, float] = {}
    if cfg.get("validate_before_training"):
        metrics.update(_zero_shot(trainer, module_to_validate(), datamodule, output_dir, resuming=resuming))

    # A non-finite loss run raises NonFiniteLossError here: nothing below (best, export, report) runs.
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)

    checkpoint = next((c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)), None)
    # Without a validation during fit (max_steps reached mid-epoch) there is no best: use the last.
    best_path = (checkpoint.best_model_path or checkpoint.last_model_path) if checkpoint is not None else ""
    validated = module_to_validate()
    final = _validate(trainer, validated, datamodule, ckpt_path=best_path or None)
    metrics.update(final)
    if final:
        metrics.update(_against_first_stage(validated, cfg))

    # metrics.json and the model card also state how much of each data file the lengths cut.
    metrics.update({k: v for stats in datamodule.truncation for k, v in stats.metrics().items()})
    if trainer.is_global_zero:
        if cfg.get("export_dir") and best_path:
            export_checkpoint(best_path, cfg.export_dir, metrics=metrics)
            note = f"exported {best_path} to {cfg.export_dir}"
        else:
            note = "no checkpoint to export"
        if not final:
            note += "\nno validation (validation is switched off or the validation set is empty): no metrics"
        health = next((c for c in callbacks if isinstance(c, TrainingHealth)), None)
        if health is not None:
            note += "\n" + health.summary()
        _write_report(output_dir, metrics, cfg, note)
        _upload_export(loggers, cfg)
    _finish_wandb()
    return metrics


def _remove_leftovers(trainer: L.Trainer, cfg: DictConfig) -> None:
    """What a killed run in this folder left half-written: partial checkpoints and export folders."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath:
            remove_partial_checkpoints(callback.dirpath)
    if cfg.get("export_dir"):
        remove_export_leftovers(cfg.export_dir)


def _upload_export(loggers: list, cfg: DictConfig) -> None:
    """With ``upload_export=true``, log the export folder to W&B as a model artifact."""
    export_dir = Path(cfg.export_dir) if cfg.get("export_dir") else None
    if not cfg.get("upload_export") or export_dir is None or not export_dir.is_dir():
        return
    import wandb

    for logger in loggers:
        if isinstance(logger, WandbLogger):
            artifact = wandb.Artifact(f"{cfg.task_name}-export", type="model")
            artifact.add_dir(str(export_dir))
            logger.experiment.log_artifact(artifact)


def _finish_wandb(exit_code: int = 0) -> None:
    # Each run of a sweep needs its own W&B run; an unfinished one would be reused by the next.
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=exit_code)


def _against_first_stage(module, cfg: DictConfig) -> dict[str, float]:
    """``val/first_stage_*`` and the paired tests of the best checkpoint's reranker and fused rankings
    against the first stage on the validation lists; empty when they carry no first-stage scores."""
    validation = module.validation
    if validation.first_stage_values is None or validation.validation_ranks is None:
        return {}
    metrics = {f"val/first_stage_{name}": value for name, value in validation.first_stage_values.items()}
    if module.trainer.is_global_zero:  # the paired tests are rank zero's report; every rank holds the ranks
        ranks = validation.validation_ranks
        metrics.update(compare_with_first_stage(ranks, cfg.metrics.mrr_k, tuple(cfg.metrics.hit_ks)))
    return metrics


def _zero_shot(trainer: L.Trainer, module, datamodule, output_dir: Path, resuming: bool) -> dict[str, float]:
    """``zero_shot/*`` metrics of the base model. A resumed run reads those of its first start: under
    Slurm, Lightning would validate the requeue checkpoint instead of the model it is given."""
    saved = output_dir / "zero_shot.json"
    if resuming and saved.is_file():
        return json.loads(saved.read_text())
    result = _validate(trainer, module, datamodule)
    # The first stage's metrics do not change with training: the report takes them from the module.
    metrics = {
        f"zero_shot/{k.split('/', 1)[1]}": v
        for k, v in result.items()
        if not k.startswith("val/first_stage_")
    }
    if trainer.is_global_zero:
        output_dir.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


@rank_zero_only
def _write_report(output_dir: Path, metrics: dict[str, float], cfg: DictConfig, note: str) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    print(note)
    table = format_comparison(metrics)
    if table:
        print(table)
    warning = below_first_stage(metrics)
    if warning:
        print(warning)


def _input_error(err: BaseException | None) -> InputError | None:
    """The InputError behind an exception (Hydra wraps errors raised while instantiating configs)."""
    while err is not None and not isinstance(err, InputError):
        err = err.__cause__ or err.__context__
    return err


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def run(cfg: DictConfig) -> float | None:
    """The Hydra task: train, and return the metric a sweep optimises."""
    try:
        metrics = train(cfg)
    except NonFiniteLossError as err:
        _finish_wandb(exit_code=1)
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            # One diverged run must not end a sweep; NaN marks the trial failed for Optuna.
            print(f"error: {err}", file=sys.stderr)
            return float("nan")
        raise SystemExit(f"error: {err}") from None
    except Exception as err:
        cause = _input_error(err)
        if cause is None:
            raise
        raise SystemExit(f"error: {cause}") from None
    return metrics.get(cfg.get("optimized_metric")) if cfg.get("optimized_metric") else None


def main() -> None:
    """``python -m reranker.train [overrides]``: an unknown config choice stops in one line, before Hydra."""
    problem = unknown_config_choice(sys.argv[1:], CONF_DIR)
    if problem:
        raise SystemExit(f"error: {problem}")
    run()


if __name__ == "__main__":
    main()
