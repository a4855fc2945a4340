"""The scoring contract: everything that decides a score travels with the weights.

A score depends on the model kind (form, prompt, yes/no tokens), ``max_length``, ``query_max_length``,
which side of a text is cut, the normalisation of the logit and the mix with the first stage. Training
records the lengths it tokenised with in the checkpoint (``contract``, beside the kind in the
hyperparameters and ``fusion``); an export writes all of it to ``reranker.json`` and, where another client
has a setting of its own, there too (:meth:`ScoringContract.write_native`):

- the tokenizer's ``model_max_length`` and ``truncation_side`` (``tokenizer_config.json``), which
  sentence-transformers' ``CrossEncoder`` and the ``text-classification`` pipeline (with ``truncation=True``)
  truncate to;
- ``sentence_transformers.activation_fn`` in ``config.json`` (identity: the CrossEncoder returns the logit)
  and ``problem_type: regression`` (the pipeline's ``function_to_apply`` becomes ``none``).

``query_max_length`` has no such setting: those clients cut the longer text of a pair first, and agree with
ours only on queries of at most ``query_max_length`` tokens. FlagEmbedding's ``FlagReranker`` reads no file
but takes ``max_length`` and ``query_max_length`` as arguments (it cuts the query first, then only the
passage, as we do): pass the recorded values.

Older checkpoints and exports, without the record, score as before: ``max_length`` 512 (capped at the
tokenizer's limit), no ``query_max_length``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from transformers import PretrainedConfig, PreTrainedTokenizerBase
from transformers.utils import cached_file

from reranker.core.errors import InputError
from reranker.model.fusion import Fusion, read_fusion
from reranker.model.kinds import ModelKind

CONTRACT_FILE = "reranker.json"
# The checkpoint key of the lengths the run tokenised with.
CONTRACT_KEY = "contract"
FORMAT = 1
# What a model without a record is scored with (the default of every client before the record existed).
DEFAULT_MAX_LENGTH = 512
# The score is the raw logit: no client squashes or normalises it by default.
NORMALIZATION = "none"
IDENTITY = "torch.nn.modules.linear.Identity"


@dataclasses.dataclass(frozen=True)
class ScoringContract:
    """How a model's scores are made.

    Args:
        kind: the model kind (:class:`ModelKind`).
        max_length: tokens per pair, special tokens and prompt included; None when not recorded.
        query_max_length: tokens a query is cut to before the pair is (then only the passage is cut);
            None: the longer text of a pair is cut first (a prompt has its own rule, see
            :class:`~reranker.model.prompts.TemplateEncoder`).
        truncation_side: the end of a text that loses tokens (``right``: its end).
        model_max_length: the most tokens the model takes (its tokenizer's limit before export), which a
            length given in place of the recorded one does not exceed; None when unknown.
        fusion: the mix with the first stage chosen on validation (``method``, ``weight``, ...), or None.
    """

    kind: ModelKind = dataclasses.field(default_factory=ModelKind)
    max_length: int | None = None
    query_max_length: int | None = None
    truncation_side: str = "right"
    model_max_length: int | None = None
    fusion: dict | None = None

    @property
    def recorded(self) -> bool:
        return self.max_length is not None

    @property
    def mix(self) -> Fusion | None:
        """The recorded fusion with the first stage, or None."""
        if not self.fusion:
            return None
        return Fusion(self.fusion["method"], self.fusion.get("weight"), self.fusion.get("rrf_k", 60))

    @property
    def truncation(self) -> str:
        """The truncation rule, in words."""
        if self.kind.template is not None:
            return "the passage first, then the query; the prompt's own tokens never"
        if self.query_max_length is not None:
            return f"the query to {self.query_max_length} tokens, then only the passage"
        return "the longer text of the pair first (longest_first)"

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "kind": self.kind.to_config(),
            "max_length": self.max_length,
            "query_max_length": self.query_max_length,
            "truncation": self.truncation,
            "truncation_side": self.truncation_side,
            "model_max_length": self.model_max_length,
            "normalization": NORMALIZATION,
            "fusion": self.fusion,
        }

    @classmethod
    def from_json(cls, data: dict, source: str, fusion: dict | None = None) -> ScoringContract:
        """The contract of a ``reranker.json`` (older ones hold the kind alone)."""
        lengths = {}
        for name in ("max_length", "query_max_length", "model_max_length"):
            value = data.get(name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise InputError(f"{source}: field {name} must be a positive integer or null, got {value!r}")
            lengths[name] = value
        return cls(
            ModelKind.from_config(data.get("kind")),
            truncation_side=data.get("truncation_side", "right"),
            fusion=data.get("fusion") or fusion,
            **lengths,
        )

    def lengths(
        self, max_length: int | None, query_max_length: int | None, source: str
    ) -> tuple[int, int | None]:
        """``max_length`` and ``query_max_length`` to score with: the recorded ones unless given.

        One line on stderr when a given value overrides the record, or when there is no record.
        """
        if not self.recorded:
            used = max_length or DEFAULT_MAX_LENGTH
            print(
                f"{source} records no scoring lengths (written before they were recorded): "
                f"max_length {used}, query_max_length {query_max_length}",
                file=sys.stderr,
            )
            return used, query_max_length
        overridden = [
            f"{name} {given} (recorded: {recorded})"
            for name, given, recorded in (
                ("max_length", max_length, self.max_length),
                ("query_max_length", query_max_length, self.query_max_length),
            )
            if given is not None and given != recorded
        ]
        if overridden:
            print(f"{source}: scoring with {', '.join(overridden)}", file=sys.stderr)
        return max_length or self.max_length, query_max_length or self.query_max_length

    def write_native(self, config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase) -> None:
        """Write into the model's config and tokenizer the settings other clients read of this contract."""
        self.kind.prepare_export(config, tokenizer)
        if self.max_length is not None:
            tokenizer.model_max_length = self.max_length
        tokenizer.truncation_side = self.truncation_side
        config.sentence_transformers = {
            **(getattr(config, "sentence_transformers", None) or {}),
            "activation_fn": IDENTITY,
        }

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / CONTRACT_FILE
        path.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path


def model_limit(tokenizer: PreTrainedTokenizerBase) -> int | None:
    """The tokenizer's ``model_max_length``; None for tokenizers without one (they store a huge sentinel)."""
    return tokenizer.model_max_length if tokenizer.model_max_length < 1_000_000 else None


def read_contract(name_or_path: str | Path) -> ScoringContract:
    """The contract of a model folder or hub name: its ``reranker.json``; a folder without one is a classifier
    without prompt and without recorded lengths (its ``fusion.json`` still read)."""
    try:
        path = cached_file(str(name_or_path), CONTRACT_FILE, _raise_exceptions_for_missing_entries=False)
    except OSError:
        path = None
    fusion = read_fusion(name_or_path) if Path(name_or_path).is_dir() else None
    fusion = fusion.to_dict() if fusion is not None else None
    if path is None:
        return ScoringContract(fusion=fusion)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not JSON ({err})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object with a kind field")
    return ScoringContract.from_json(data, str(path), fusion)
