"""How a model turns a (query, passage) pair into a score.

A :class:`ModelKind` is ``classifier`` (a sequence-classification head with one output: encoder
cross-encoders, and decoders with a prompt template) or ``yes_no`` (a causal language model asked whether
the passage answers the query; the score is logit("yes") − logit("no") at the last position, as
Qwen3-Reranker scores).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import cached_file

from reranker.core.errors import InputError
from reranker.model.encoders import PairEncoder
from reranker.model.loading import load_cross_encoder, resolve_model_path, set_padding_token
from reranker.model.prompts import PromptTemplate, TemplateEncoder

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
