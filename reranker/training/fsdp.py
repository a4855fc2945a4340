"""Sharded training (FSDP): which layers form the shards, and a precision check before anything starts."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch.distributed.fsdp.wrap import CustomPolicy

from reranker.core.errors import InputError


def layers_named(names: list[str]) -> CustomPolicy:
    """An FSDP policy that picks the transformer layers by class name (``Qwen3DecoderLayer``, ...): each
    becomes one FSDP unit (its weights gathered only while it runs) or one activation checkpoint. By name,
    because transformers does not export its layer classes."""
    names = frozenset(names)
    return CustomPolicy(lambda module: type(module).__name__ in names)


def is_fsdp(strategy: object) -> bool:
    target = strategy.get("_target_", "") if isinstance(strategy, DictConfig | dict) else str(strategy)
    return "fsdp" in str(target).lower()


def check_precision(trainer: DictConfig) -> None:
    """Stop before training when the devices cannot run the configured precision (e.g. bf16 before Ampere)."""
    precision = str(trainer.get("precision", "32-true"))
    accelerator = str(trainer.get("accelerator", "auto"))
    if precision.startswith("32") or precision.startswith("64"):
        return
    if accelerator == "cpu":
        if is_fsdp(trainer.get("strategy")):
            raise InputError(
                f"trainer.precision {precision} with FSDP needs CUDA GPUs (its mixed precision runs on CUDA); "
                "use trainer.precision=32-true on CPU"
            )
        return
    if not torch.cuda.is_available():
        raise InputError(
            f"trainer.precision {precision} on accelerator {accelerator}: no CUDA GPU is visible here"
        )
    if precision.startswith("bf16") and not torch.cuda.is_bf16_supported():
        raise InputError(
            f"trainer.precision {precision}: this GPU ({torch.cuda.get_device_name()}) cannot compute in bfloat16 "
            "(Ampere or newer can); use trainer.precision=16-mixed or 32-true"
        )
