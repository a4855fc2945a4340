"""Entry point: ``python -m reranker.train experiment=demo_ko``.

``train(cfg)`` builds the datamodule, module, trainer, callbacks and loggers from the Hydra config,
validates the base model (zero-shot), fits, validates the best checkpoint, exports it as a Hugging Face
folder and returns the metrics. ``main()`` returns the metric a sweep optimises.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import hydra
import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from reranker.config import register_resolvers
from reranker.errors import InputError
from reranker.export import export_checkpoint
from reranker.report import format_comparison

register_resolvers()


def _instantiate_all(group: DictConfig | None) -> list:
    """Instantiate every entry of a callbacks/logger group (each entry has a ``_target_``)."""
    if not group:
        return []
    return [hydra.utils.instantiate(entry) for entry in group.values() if entry and "_target_" in entry]


def _as_floats(metrics: dict) -> dict[str, float]:
    return {name: float(value) for name, value in metrics.items()}


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit a reranker as configured; returns ``val/*`` metrics before (``zero_shot/*``) and after training."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)

    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("fit")  # read and check the data before anything heavy starts
    module = hydra.utils.instantiate(cfg.model)
    callbacks = _instantiate_all(cfg.get("callbacks"))
    loggers = _instantiate_all(cfg.get("logger"))
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    metrics: dict[str, float] = {}
    if cfg.get("validate_before_training"):
        zero_shot = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
        metrics.update({f"zero_shot/{k.split('/', 1)[1]}": v for k, v in _as_floats(zero_shot).items()})

    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))

    checkpoint = next((c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)), None)
    # Without a validation during fit (max_steps reached mid-epoch) there is no best: use the last.
    best_path = (checkpoint.best_model_path or checkpoint.last_model_path) if checkpoint is not None else ""
    final = trainer.validate(module, datamodule=datamodule, ckpt_path=best_path or None, verbose=False)[0]
    metrics.update(_as_floats(final))

    if trainer.is_global_zero:
        if cfg.get("export_dir") and best_path:
            export_checkpoint(best_path, cfg.export_dir, metrics=metrics)
            metrics_note = f"exported {best_path} to {cfg.export_dir}"
        else:
            metrics_note = "no checkpoint to export"
        _write_report(output_dir, metrics, cfg, metrics_note)
    return metrics


@rank_zero_only
def _write_report(output_dir: Path, metrics: dict[str, float], cfg: DictConfig, note: str) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    print(note)
    print(format_comparison(metrics))


def _input_error(err: BaseException | None) -> InputError | None:
    """The InputError behind an exception (Hydra wraps errors raised while instantiating configs)."""
    while err is not None and not isinstance(err, InputError):
        err = err.__cause__ or err.__context__
    return err


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        metrics = train(cfg)
    except Exception as err:
        cause = _input_error(err)
        if cause is None:
            raise
        raise SystemExit(f"error: {cause}") from None
    return metrics.get(cfg.get("optimized_metric")) if cfg.get("optimized_metric") else None


if __name__ == "__main__":
    main()
