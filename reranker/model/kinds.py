"""How a model turns a (query, passage) pair into a score: one small class per kind of model.

``model.kind`` in the configs (``{form, query_template, passage_template, instruction, yes_token,
no_token}``) builds one of:

- :class:`EncoderClassifier`: ``form: classifier`` without a prompt, an encoder cross-encoder; a pair is
  tokenised as the tokenizer joins two texts and scored by one sequence-classification logit.
- :class:`PromptClassifier`: ``form: classifier`` with a prompt, a decoder with a classification head
  (the seq-cls conversions of decoder rerankers); the head pools at the prompt's last token.
- :class:`YesNoDecoder`: ``form: yes_no``, a causal language model asked whether the passage answers the
  query; the score is logit("yes") − logit("no") at the last position, as Qwen3-Reranker scores.

Each class owns what differs between kinds: which auto class to load or build, how a pair is
tokenised, how features are scored, which heads LoRA trains in full, what an export adds for other
clients, and what the model card says. :class:`Scorer` binds a kind to a tokenizer for training's and
:class:`~reranker.model.pair_scorer.PairScorer`'s forward passes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from reranker.core.errors import InputError
from reranker.model.batching import score_features
from reranker.model.encoders import PairEncoder
from reranker.model.loading import load_cross_encoder, resolve_model_path, set_padding_token
from reranker.model.prompts import PromptTemplate, TemplateEncoder, chat_template

FORMS = ("classifier", "yes_no")
# The one output of a classification head is the relevance logit; pipelines show this name beside it.
RELEVANCE_LABEL = "relevant"
# Linear layers trained in full beside a LoRA adapter: the score head a classifier kind adds to a decoder
# (random at first) and the classifier of an encoder cross-encoder.
CLASSIFIER_HEADS = ("score", "classifier")


@dataclasses.dataclass(frozen=True)
class ModelKind:
    """How a model scores a (query, passage) pair; ``model.kind`` in the configs, ``reranker.json`` in exports.

    ``ModelKind(**fields)`` (or :meth:`from_config`) returns the subclass of the fields' kind.

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

    # What the subclasses set.
    auto_class = AutoModelForSequenceClassification
    padding_side = "right"
    pipeline_tag = "text-classification"  # the Hub task of an export's model card
    score_description = "one logit"

    def __new__(cls, *args, **kwargs) -> ModelKind:
        # Unpickling calls __new__ without arguments on the pickled subclass: it stays that class.
        if cls is ModelKind or args or kwargs:
            fields = dict(zip((field.name for field in dataclasses.fields(cls)), args, strict=False))
            fields.update(kwargs)
            form, prompt = fields.get("form", "classifier"), fields.get("query_template") is not None
            if form not in FORMS:
                raise InputError(f"model.kind.form must be one of {', '.join(FORMS)}, got {form!r}")
            cls = YesNoDecoder if form == "yes_no" else PromptClassifier if prompt else EncoderClassifier
        return super().__new__(cls)

    def __post_init__(self) -> None:
        if (self.query_template is None) != (self.passage_template is None):
            raise InputError("model.kind: give both query_template and passage_template, or neither")
        self.template  # noqa: B018  (checks the slots now, before anything loads)

    @classmethod
    def from_config(cls, config: Mapping | ModelKind | None) -> ModelKind:
        if isinstance(config, ModelKind):
            return config
        config = dict(config or {})
        fields = {field.name for field in dataclasses.fields(ModelKind)}
        unknown = sorted(set(config) - fields)
        if unknown:
            raise InputError(f"model.kind has unknown fields {unknown}; known: {sorted(fields)}")
        return ModelKind(**config)

    def to_config(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def template(self) -> PromptTemplate | None:
        if self.query_template is None:
            return None
        return PromptTemplate(self.query_template, self.passage_template, self.instruction)

    def encoder(
        self, tokenizer: PreTrainedTokenizerBase, max_length: int, query_max_length: int | None = None
    ) -> PairEncoder | TemplateEncoder:
        """The tokeniser of pairs for this kind: ``encoder(queries, passages) -> features``.

        ``query_max_length`` applies to pairs without a prompt (:class:`PairEncoder`); a prompt keeps its
        own rule (the passage is cut first, then the query, the template's tokens never), which already
        spares the query.
        """
        return TemplateEncoder(set_padding_token(tokenizer), self.template, max_length)

    def load_model(self, name_or_path: str, tokenizer: PreTrainedTokenizerBase, **kwargs) -> PreTrainedModel:
        """The model of a folder or hub name, checked against the kind."""
        raise NotImplementedError

    def build_model(self, config: PretrainedConfig) -> PreTrainedModel:
        """A model of this kind with random weights, from its Hugging Face config (weights load after)."""
        return self.auto_class.from_config(config)

    def token_ids(self, tokenizer: PreTrainedTokenizerBase) -> tuple[int | None, int | None]:
        """Ids of the tokens whose logits make the score (a yes/no decoder's); None for a head's logit."""
        return None, None

    def score(
        self,
        model: nn.Module,
        features: dict[str, torch.Tensor],
        max_tokens: int | None = None,
        token_ids: tuple[int | None, int | None] = (None, None),
    ) -> torch.Tensor:
        """Relevance logits ``[N]`` of tokenised pairs; ``token_ids`` from :meth:`token_ids`."""
        raise NotImplementedError

    def lora_heads(self, model: nn.Module) -> list[str] | None:
        """Names of the layers a LoRA run trains in full beside the adapters (None: none)."""
        names = {
            name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear)
        }
        return sorted(names & set(CLASSIFIER_HEADS))

    def prepare_export(self, config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase) -> None:
        """Write into the model's config and tokenizer what other clients need to score as this kind."""
        config.id2label = {0: RELEVANCE_LABEL}
        config.label2id = {RELEVANCE_LABEL: 0}
        # transformers' text-classification pipeline returns the raw logit for a regression head (it
        # applies a sigmoid to any other single-output head): the recorded score, unnormalised.
        config.problem_type = "regression"
        if self.template is not None:
            # sentence-transformers' CrossEncoder renders a pair through the tokenizer's chat template.
            set_padding_token(tokenizer).chat_template = chat_template(self.template)
        tokenizer.padding_side = self.padding_side


class EncoderClassifier(ModelKind):
    """An encoder cross-encoder: ``[CLS] query [SEP] passage [SEP]`` and one classification logit."""

    def encoder(
        self, tokenizer: PreTrainedTokenizerBase, max_length: int, query_max_length: int | None = None
    ) -> PairEncoder:
        return PairEncoder(tokenizer, max_length, query_max_length)

    def load_model(self, name_or_path: str, tokenizer: PreTrainedTokenizerBase, **kwargs) -> PreTrainedModel:
        return load_cross_encoder(name_or_path, **kwargs)

    def score(
        self,
        model: nn.Module,
        features: dict[str, torch.Tensor],
        max_tokens: int | None = None,
        token_ids: tuple[int | None, int | None] = (None, None),
    ) -> torch.Tensor:
        return score_features(model, features, max_tokens)  # [N]


class PromptClassifier(ModelKind):
    """A decoder with a one-output classification head, reading each pair through a prompt (left padded:
    the head pools at the last token that is not padding)."""

    padding_side = "left"

    def load_model(self, name_or_path: str, tokenizer: PreTrainedTokenizerBase, **kwargs) -> PreTrainedModel:
        model = load_cross_encoder(name_or_path, **kwargs)
        if model.config.pad_token_id is None:
            # The head pools at the last token that is not padding; it must know the padding id.
            model.config.pad_token_id = set_padding_token(tokenizer).pad_token_id
        return model

    def score(
        self,
        model: nn.Module,
        features: dict[str, torch.Tensor],
        max_tokens: int | None = None,
        token_ids: tuple[int | None, int | None] = (None, None),
    ) -> torch.Tensor:
        # A decoder keeps no key/value cache: nothing is generated, and activation checkpointing would
        # append to the cache again when it recomputes a layer.
        return model(**features, use_cache=False).logits.view(-1)  # [N]


class YesNoDecoder(ModelKind):
    """A causal language model scored by logit(yes) − logit(no) at the prompt's last position."""

    auto_class = AutoModelForCausalLM
    padding_side = "left"
    # No transformers pipeline scores a pair this way; the Hub lists such rerankers under text-ranking.
    pipeline_tag = "text-ranking"
    score_description = "logit(yes) - logit(no) at the last position"

    def __post_init__(self) -> None:
        if self.query_template is None:
            raise InputError("model.kind.form yes_no needs a prompt: query_template and passage_template")
        super().__post_init__()

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

    def load_model(self, name_or_path: str, tokenizer: PreTrainedTokenizerBase, **kwargs) -> PreTrainedModel:
        self.token_ids(tokenizer)
        try:
            return AutoModelForCausalLM.from_pretrained(resolve_model_path(name_or_path), **kwargs)
        except (OSError, ValueError) as err:
            raise InputError(f"cannot load {name_or_path!r} as a causal LM: {err}".splitlines()[0]) from None

    def score(
        self,
        model: nn.Module,
        features: dict[str, torch.Tensor],
        max_tokens: int | None = None,
        token_ids: tuple[int | None, int | None] = (None, None),
    ) -> torch.Tensor:
        yes_id, no_id = token_ids
        # Left padding: the last position of every row is its prompt's last token. Only its logits are
        # computed, not [N, T, vocabulary]. No key/value cache: nothing is generated.
        logits = model(**features, use_cache=False, logits_to_keep=1).logits[:, -1]  # [N, V]
        if no_id is None:
            return logits[:, yes_id]
        return logits[:, yes_id] - logits[:, no_id]  # [N]

    def lora_heads(self, model: nn.Module) -> list[str] | None:
        return None  # the language-model head answers yes/no as it was pretrained to

    def prepare_export(self, config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase) -> None:
        set_padding_token(tokenizer).chat_template = chat_template(self.template)
        tokenizer.padding_side = self.padding_side


class Scorer:
    """Scores tokenised pairs with a model of a given kind: relevance logits ``[N]``.

    The kind decides how (:meth:`ModelKind.score`). ``max_tokens`` (``model.forward_max_tokens``) runs
    right-padded pairs (encoders) in length-sorted chunks, see :func:`score_features`. Prompts are padded on
    the left and always run in one pass.
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
        self.token_ids = kind.token_ids(tokenizer)  # checks a yes/no kind's tokens now

    def __call__(self, model: nn.Module, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.kind.score(model, features, self.max_tokens, self.token_ids)  # [N]
