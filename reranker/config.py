"""OmegaConf resolvers used by the configs."""

from __future__ import annotations

from importlib.resources import files

from omegaconf import OmegaConf

from reranker.modeling import packaged_model_path


def register_resolvers() -> None:
    """``${packaged_model:all-MiniLM-L6-v2}`` → the folder of a model shipped in a PyPI package;
    ``${sample_data:ko_train.jsonl}`` → a file of the package's Korean sample data."""
    if not OmegaConf.has_resolver("packaged_model"):
        OmegaConf.register_new_resolver("packaged_model", packaged_model_path)
    if not OmegaConf.has_resolver("sample_data"):
        OmegaConf.register_new_resolver("sample_data", sample_data_path)


def sample_data_path(name: str) -> str:
    """A file shipped in ``reranker/sample_data``."""
    return str(files("reranker.sample_data") / name)
