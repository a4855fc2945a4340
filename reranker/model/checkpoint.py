"""Self-contained training checkpoints: a ``.ckpt`` written by ``reranker train`` carries the model's
Hugging Face config and the tokenizer's files beside its weights, so that it exports and loads for
inference without the base model's folder and from any working directory.

Checkpoints written before they carried these are rebuilt from the base model named in their
hyperparameters (``model_name_or_path``), which must then still be reachable.
"""

from __future__ import annotations

import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoConfig, PreTrainedModel, PreTrainedTokenizerBase

from reranker.core.errors import InputError
from reranker.model.adapters import LoraSettings, apply_lora
from reranker.model.contract import CONTRACT_KEY, ScoringContract
from reranker.model.kinds import ModelKind
from reranker.model.loading import load_tokenizer, set_padding_token

# The checkpoint key of the packed model config and tokenizer files.
PRETRAINED_KEY = "pretrained"
# The module holds the Hugging Face model as ``self.model``: its weights are ``model.*`` in the state dict.
MODEL_PREFIX = "model."


def pack_pretrained(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None) -> dict:
    """The model's config (a plain dict) and the tokenizer's saved files (name → bytes), for a checkpoint."""
    files: dict[str, bytes] = {}
    if tokenizer is not None:
        with tempfile.TemporaryDirectory() as folder:
            tokenizer.save_pretrained(folder)
            files = {path.name: path.read_bytes() for path in Path(folder).iterdir() if path.is_file()}
    return {"config": model.config.to_dict(), "tokenizer_files": files}


@dataclass
class LoadedCheckpoint:
    """The cross-encoder of a checkpoint, its tokenizer's files (empty for older checkpoints, whose
    tokenizer is the base model's) and the checkpoint's ``hyper_parameters`` and ``global_step``."""

    model: PreTrainedModel
    hyper_parameters: dict
    global_step: int | None
    tokenizer_files: dict[str, bytes] = field(default_factory=dict)
    # How the model's scores are made: kind, lengths, fusion (a LoRA model is returned with its adapters).
    contract: ScoringContract = field(default_factory=ScoringContract)
    tokenizer: PreTrainedTokenizerBase | None = None  # the one the model was trained with

    @property
    def kind(self) -> ModelKind:
        return self.contract.kind

    @property
    def fusion(self) -> dict | None:
        return self.contract.fusion

    def write_tokenizer(self, folder: Path) -> None:
        for name, content in self.tokenizer_files.items():
            (folder / name).write_bytes(content)


def _tokenizer(tokenizer_files: dict[str, bytes], base: str) -> PreTrainedTokenizerBase:
    """The tokenizer a checkpoint carries, or for older checkpoints the base model's."""
    if not tokenizer_files:
        return set_padding_token(load_tokenizer(base))
    with tempfile.TemporaryDirectory() as folder:
        for name, content in tokenizer_files.items():
            (Path(folder) / name).write_bytes(content)
        return set_padding_token(load_tokenizer(folder))


def _read_checkpoint(checkpoint_path: Path) -> tuple[dict, dict]:
    """The unpickled checkpoint (tensors memory-mapped, not read) and its hyperparameters."""
    if not checkpoint_path.is_file():
        raise InputError(f"checkpoint {checkpoint_path} does not exist")
    try:
        # Lightning checkpoints hold plain Python values besides tensors (hyperparameters, loop state).
        checkpoint = torch.load(checkpoint_path, map_location="cpu", mmap=True, weights_only=False)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        raise InputError(
            f"checkpoint {checkpoint_path} is not a PyTorch checkpoint: {err}".splitlines()[0]
        ) from None
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict) or "model_name_or_path" not in hparams or "state_dict" not in checkpoint:
        raise InputError(
            f"checkpoint {checkpoint_path} was not written by reranker train: it lacks the "
            "RerankerModule hyperparameters (model_name_or_path, ...)"
        )
    return checkpoint, hparams


def _contract(checkpoint: dict, hparams: dict) -> ScoringContract:
    lengths = checkpoint.get(CONTRACT_KEY) or {}
    return ScoringContract(
        ModelKind.from_config(hparams.get("kind")), fusion=checkpoint.get("fusion"), **lengths
    )


def checkpoint_contract(checkpoint_path: str | Path) -> ScoringContract:
    """The scoring contract a checkpoint records (kind, lengths, fusion), read without building its model."""
    return _contract(*_read_checkpoint(Path(checkpoint_path)))


def load_checkpoint(checkpoint_path: str | Path) -> LoadedCheckpoint:
    """The cross-encoder of a checkpoint written by ``reranker train``, in eval mode.

    Like Lightning's own loading, this unpickles the file: load only checkpoints you trust.
    """
    checkpoint_path = Path(checkpoint_path)
    checkpoint, hparams = _read_checkpoint(checkpoint_path)
    contract = _contract(checkpoint, hparams)
    kind = contract.kind
    lora = LoraSettings.from_config(hparams.get("lora"))
    packed = checkpoint.get(PRETRAINED_KEY)
    tokenizer_files = packed["tokenizer_files"] if packed is not None else {}
    base = hparams["model_name_or_path"]
    tokenizer = _tokenizer(tokenizer_files, base)
    if lora is not None:
        # The checkpoint holds the adapters (and a classifier's head) only: the base model must be reachable.
        model = apply_lora(kind.load_model(base, tokenizer), lora, kind)
    elif packed is not None:
        model = kind.build_model(AutoConfig.for_model(**packed["config"]))
    else:
        model = kind.load_model(base, tokenizer)
    state = {
        name.removeprefix(MODEL_PREFIX): tensor
        for name, tensor in checkpoint["state_dict"].items()
        if name.startswith(MODEL_PREFIX)
    }
    try:
        if lora is None:
            model.load_state_dict(state)
        else:
            trained = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
            missing = sorted(trained - set(state))
            unexpected = model.load_state_dict(state, strict=False).unexpected_keys
            if missing or unexpected:
                raise RuntimeError(
                    f"missing trained weights {missing[:3]}, unexpected weights {unexpected[:3]}"
                )
    except RuntimeError as err:
        raise InputError(
            f"checkpoint {checkpoint_path}: its weights do not fit a cross-encoder on "
            f"{hparams['model_name_or_path']} ({str(err).splitlines()[0]})"
        ) from None
    return LoadedCheckpoint(
        model.eval(), dict(hparams), checkpoint.get("global_step"), tokenizer_files, contract, tokenizer
    )
