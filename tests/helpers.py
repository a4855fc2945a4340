"""What many test files share for training runs: the training config composed from conf/ with overrides,
the overrides of a tiny run, and triplet files carrying teacher scores.

The tiny models and data themselves are ``conftest.py``'s fixtures and builders.
"""

from __future__ import annotations

from pathlib import Path

from conftest import make_records, with_teacher_scores, write_jsonl
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from reranker.training.config import register_resolvers

CONF = str(Path(__file__).resolve().parents[1] / "conf")
EXPERIMENTS = sorted(p.stem for p in (Path(CONF) / "experiment").glob("*.yaml"))
LOSSES = sorted(p.stem for p in (Path(CONF) / "loss").glob("*.yaml"))
register_resolvers()


def compose_config(overrides: list[str]) -> DictConfig:
    """``conf/train.yaml`` with ``overrides``, as ``reranker train`` composes it (no Hydra run folder)."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def tiny_run_overrides(model: str, train: str, val: str, output: Path) -> list[str]:
    """A two-epoch CPU run of ``model`` on the fixture triplets, its files under ``output``."""
    return [
        f"model.model_name_or_path={model}",
        f"data.train_files={train}",
        f"data.val_files={val}",
        f"paths.output_dir={output}",
        "data.group_size=3",
        "data.batch_size=2",  # 12 training queries → 6 steps an epoch, the last one partial
        "data.max_length=64",
        "data.num_workers=0",
        "model.lr=1e-3",
        "trainer.max_epochs=2",
        "trainer.log_every_n_steps=1",
        "callbacks.progress_bar=null",
    ]


def scored_triplet_files(root: Path) -> tuple[str, str]:
    """Train and validation triplet files (disjoint queries) with teacher scores, for distilling losses."""
    records = with_teacher_scores(make_records())
    train = write_jsonl(root / "train_scored.jsonl", records[::2] + records[1::4])
    val = write_jsonl(root / "val_scored.jsonl", records[3::4])
    return str(train), str(val)
