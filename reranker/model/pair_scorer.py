"""A trained reranker loaded for scoring: ``PairScorer(path).score(pairs)`` under the model's scoring contract.

How one model turns a list of pairs into scores. Serving's ``Reranker`` is this class with ``rerank``; the
commands that score many pairs (evaluate, ``prepare teacher``, ``prepare mine``'s filter) load it through
:mod:`reranker.scoring`, which adds the score cache and the shards over processes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch

from reranker.core.errors import InputError
from reranker.model.adapters import adapter_base, is_adapter_folder, load_adapter, merged
from reranker.model.batching import token_budget_batches
from reranker.model.checkpoint import load_checkpoint
from reranker.model.contract import model_limit, read_contract
from reranker.model.kinds import ModelKind, Scorer
from reranker.model.loading import load_tokenizer, resolve_model_path, set_padding_token
from reranker.model.onnx_backend import load_onnx, split_onnx_path

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
NORMALIZATIONS = (None, "sigmoid", "softmax")
BACKENDS = ("torch", "onnx")


class PairScorer:
    """A reranker for scoring, from a Hugging Face folder, a hub name or a Lightning checkpoint.

    It scores as the model's scoring contract says (:mod:`reranker.model.contract`: kind, lengths,
    truncation, fusion; ``reranker.json`` in an export, recorded in a ``.ckpt``), which is how validation
    scored it during training.

    Args:
        name_or_path: model folder, hub name, or ``.ckpt`` file written by ``reranker.train`` (its
            model config and tokenizer travel inside it).
        max_length: tokens per pair; longer pairs are truncated. None: the recorded length, or 512 for a
            model without a record. A value that differs from the record overrides it, and one line on
            stderr says so. A given or default value is capped at what the model takes (the recorded
            ``model_max_length``, else the tokenizer's).
        device: ``"cpu"``, ``"cuda"``, ... (default: CUDA when available).
        dtype: ``"float32"`` (default), or ``"float16"`` / ``"bfloat16"`` to run the weights in half
            precision, meant for GPUs. Scores are returned as Python floats either way.
        kind: how the model scores a pair (a ``model.kind`` mapping, see :class:`ModelKind`); by default
            the ``reranker.json`` of an export, else a classifier without prompt. Give it for a decoder
            reranker from elsewhere, e.g. ``Qwen/Qwen3-Reranker-0.6B`` with the prompt of
            ``conf/model/qwen3_reranker_0_6b.yaml``.
        query_max_length: tokens a query is cut to before the pair is (then only the passage is cut).
            None: the recorded value (none for a model without a record); a given value overrides it.
        backend: ``"torch"`` (default) or ``"onnx"``: the ONNX files of an export folder (encoder
            kinds; ``reranker export FOLDER --onnx`` writes them) run through ONNX Runtime, under the same
            contract; ``device`` None is then the CPU. The files are checked against the weights beside
            them (:mod:`reranker.model.onnx_backend`).
        onnx_file: with ``backend="onnx"``, the file of the folder's ``onnx/`` to run: ``"model.onnx"``
            (None, float32) or ``"model_qint8_quantized.onnx"`` (int8 weights, ``--quantize int8``).
            A path to the file itself (``EXPORT/onnx/model_qint8_quantized.onnx``) as ``name_or_path``
            implies ``backend="onnx"`` and that file.

    A folder holding a LoRA adapter alone (``adapter_config.json``) is loaded on its base model and merged.

    ``fusion`` is the mix with the first stage recorded with the model, or None.
    """

    def __init__(
        self,
        name_or_path: str | Path,
        max_length: int | None = None,
        device: str | None = None,
        dtype: str | torch.dtype | None = None,
        kind: dict | ModelKind | None = None,
        query_max_length: int | None = None,
        backend: str = "torch",
        onnx_file: str | None = None,
    ) -> None:
        name_or_path = str(name_or_path)
        onnx_path = split_onnx_path(name_or_path)
        if onnx_path is not None:
            if onnx_file is not None and onnx_file != onnx_path[1]:
                raise InputError(f"{name_or_path} names an ONNX file; onnx_file={onnx_file!r} contradicts it")
            name_or_path, onnx_file = onnx_path
            backend = "onnx"
        _check_backend(backend, onnx_file, dtype, name_or_path)
        for name, value, least in (("max_length", max_length, 2), ("query_max_length", query_max_length, 1)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
                raise InputError(f"{name} must be None or an integer >= {least}, got {value!r}")
        dtype = _dtype(dtype)
        if name_or_path.endswith(".ckpt"):
            loaded = load_checkpoint(name_or_path)
            self.model = merged(loaded.model)
            contract, tokenizer = loaded.contract, loaded.tokenizer
        else:
            contract = read_contract(name_or_path)
            if kind is not None:
                contract = dataclasses.replace(contract, kind=ModelKind.from_config(kind))
            tokenizer = set_padding_token(load_tokenizer(name_or_path))
            if backend == "onnx":
                self.model = load_onnx(name_or_path, contract.kind, onnx_file, device or "cpu")
            elif is_adapter_folder(resolve_model_path(name_or_path)):
                base = contract.kind.load_model(adapter_base(name_or_path), tokenizer)
                self.model = load_adapter(base, name_or_path)
            else:
                self.model = contract.kind.load_model(name_or_path, tokenizer)
        self.contract = contract
        self.kind = contract.kind
        self.fusion = contract.mix
        lengths = contract.lengths(max_length, query_max_length, name_or_path)
        self.max_length, self.query_max_length = lengths
        # A recorded length is the one validation scored with; a given or default one stays within what
        # the model takes.
        limit = contract.model_max_length or model_limit(tokenizer)
        if (max_length is not None or not contract.recorded) and limit is not None:
            self.max_length = min(self.max_length, limit)
        self.encoder = self.kind.encoder(tokenizer, self.max_length, self.query_max_length)
        self.scorer = Scorer(self.kind, tokenizer)
        if backend == "onnx":
            self.device = torch.device("cpu")  # the features' device: ONNX Runtime takes them from numpy
        else:
            self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
            self.model.to(self.device, dtype=dtype).eval()

    @torch.inference_mode()
    def score(
        self,
        pairs: Sequence[tuple[str, str]],
        batch_size: int = 64,
        normalize: str | None = None,
        max_tokens: int = 8192,
    ) -> list[float]:
        """Relevance scores of ``(query, passage)`` pairs, in input order.

        The pairs are tokenised once (as a prompt, for a decoder kind), sorted by token count and cut into
        batches of at most ``batch_size`` pairs and ``max_tokens`` tokens counted with padding, so each
        batch pads little and holds about the same amount of work.

        Args:
            pairs: ``(query, passage)`` pairs of strings.
            batch_size: most pairs per forward pass.
            normalize: ``None`` for the logits; ``"sigmoid"`` for the logits squashed to (0, 1), as
                sentence-transformers' ``CrossEncoder.predict`` and the ``text-classification`` pipeline
                return by default; ``"softmax"`` for a softmax over the pairs of each query (pairs with
                the same query text), as the ``exp_normalize`` of the common transformers recipe.
            max_tokens: most tokens per forward pass, padding included (a batch holds at least one pair).
        """
        check_pairs(pairs)
        if normalize not in NORMALIZATIONS:
            raise InputError(f"normalize must be one of None, 'sigmoid', 'softmax'; got {normalize!r}")
        for name, value in (("batch_size", batch_size), ("max_tokens", max_tokens)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{name} must be an integer >= 1, got {value!r}")
        if not pairs:
            return []
        encoded = self.encoder.encode([query for query, _ in pairs], [passage for _, passage in pairs])
        lengths = [len(ids) for ids in encoded["input_ids"]]
        logits = torch.zeros(len(pairs))  # [N]
        for batch in token_budget_batches(lengths, batch_size, max_tokens):
            features = self.encoder.pad(
                {name: [values[i] for i in batch] for name, values in encoded.items()}
            )
            scores = self.scorer(self.model, {k: v.to(self.device) for k, v in features.items()})
            logits[batch] = scores.float().cpu()
        if normalize == "sigmoid":
            return torch.sigmoid(logits).tolist()
        if normalize == "softmax":
            return _softmax_per_query(logits, [query for query, _ in pairs]).tolist()
        return logits.tolist()


def _check_backend(backend: str, onnx_file: str | None, dtype: object, name_or_path: str) -> None:
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if backend == "torch" and onnx_file is not None:
        raise InputError("onnx_file applies to backend='onnx'")
    if backend == "onnx" and name_or_path.endswith(".ckpt"):
        raise InputError(
            f"backend='onnx' loads an export folder, not a checkpoint: "
            f"reranker export {name_or_path} --out DIR --onnx"
        )
    if backend == "onnx" and dtype not in (None, "float32", torch.float32):
        raise InputError(f"backend='onnx' runs its file's precision; dtype must be None, got {dtype!r}")


def _dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if dtype not in DTYPES:
        raise InputError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    return DTYPES[dtype]


def check_pairs(pairs: Sequence[tuple[str, str]]) -> None:
    """A list of ``(query, passage)`` pairs of strings, or an error naming the first that is not one."""
    if isinstance(pairs, str | bytes) or not isinstance(pairs, Sequence):
        raise InputError(f"pairs must be a list of (query, passage) pairs, got {type(pairs).__name__}")
    for index, pair in enumerate(pairs):
        if (
            isinstance(pair, str | bytes)
            or not isinstance(pair, Sequence)
            or len(pair) != 2
            or not all(isinstance(text, str) for text in pair)
        ):
            raise InputError(
                f"pairs[{index}] must be a (query, passage) pair of two strings, got {pair!r}"[:300]
            )


def _softmax_per_query(logits: torch.Tensor, queries: list[str]) -> torch.Tensor:
    """Softmax of ``logits [N]`` within each group of pairs that share a query."""
    groups: dict[str, list[int]] = {}
    for index, query in enumerate(queries):
        groups.setdefault(query, []).append(index)
    probabilities = torch.empty_like(logits)
    for members in groups.values():
        probabilities[members] = torch.softmax(logits[members], dim=0)
    return probabilities
