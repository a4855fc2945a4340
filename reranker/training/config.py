"""OmegaConf resolvers used by the configs."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from reranker.model.loading import packaged_model_path


def register_resolvers() -> None:
    """``${packaged_model:all-MiniLM-L6-v2}`` → the folder of a model shipped in a PyPI package;
    ``${sample_data:ko_train.jsonl}`` → a file of the package's Korean sample data;
    ``${sweep_group:${task_name}}`` → one name shared by the runs of a ``-m`` sweep, else the task name."""
    if not OmegaConf.has_resolver("packaged_model"):
        OmegaConf.register_new_resolver("packaged_model", packaged_model_path)
    if not OmegaConf.has_resolver("sample_data"):
        OmegaConf.register_new_resolver("sample_data", sample_data_path)
    if not OmegaConf.has_resolver("sweep_group"):
        OmegaConf.register_new_resolver("sweep_group", sweep_group)


def conf_dir() -> Path:
    """The Hydra config folder: ``reranker/conf`` in an installed package (the wheel maps the checkout's
    top-level ``conf/`` there), else ``conf/`` beside the package in a source checkout."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "conf"
    return installed if installed.is_dir() else package.parent / "conf"


def sample_data_path(name: str) -> str:
    """A file shipped in ``reranker/sample_data``."""
    return str(files("reranker.sample_data") / name)


def sweep_group(task_name: str) -> str:
    """``TASK/SWEEP_FOLDER`` for a run of a Hydra multirun, ``TASK`` for a single run (or outside Hydra)."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return f"{task_name}/{Path(HydraConfig.get().sweep.dir).name}"
    return task_name


# Command-line options that point Hydra at more config folders: with them, other choices may exist.
_SEARCH_PATH_OPTIONS = ("--config-dir", "-cd", "--config-path", "-cp", "hydra.searchpath")


def unknown_config_choice(overrides: list[str], conf_dir: Path) -> str | None:
    """The problem with the first ``group=name`` override that names no file of ``conf_dir/group/``, or None.

    Hydra reports such a choice over a dozen lines; this names the group and its options in one.
    A base that other files start from (``model/_encoder.yaml``) is no choice. Only plain choices are
    checked (``loss=foo``, ``+loss=foo``); sweeps, ``null`` and package overrides (``group@pkg=...``) are
    left to Hydra, as is everything when another config folder is added.
    """
    if any(arg.split("=", 1)[0] in _SEARCH_PATH_OPTIONS for arg in overrides):
        return None
    for arg in overrides:
        key, sep, value = arg.lstrip("+").partition("=")
        if not sep or not re.fullmatch(r"[\w-]+", value) or value == "null" or "@" in key or "." in key:
            continue
        group = conf_dir / key
        if not group.is_dir():
            continue
        # A file named _NAME is a base that other files of the group start from, not a choice.
        options = sorted(path.stem for path in group.glob("*.yaml") if not path.stem.startswith("_"))
        if value not in options:
            return f"unknown {key} '{value}': choose one of {', '.join(options)} (files of {group})"
    return None
