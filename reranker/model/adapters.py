"""LoRA adapters through ``peft`` (the optional ``lora`` extra): attach, save alone, load, merge."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from reranker.core.errors import InputError

if TYPE_CHECKING:
    from reranker.model.kinds import ModelKind

ADAPTER_CONFIG = "adapter_config.json"


@dataclasses.dataclass(frozen=True)
class LoraSettings:
    """``model.lora`` in the configs.

    Args:
        r: rank of each low-rank update.
        alpha: scale numerator (the update is multiplied by ``alpha / r``).
        dropout: dropout on the adapter's input.
        target_modules: names of the linear layers that get an adapter (a layer matches when its name
            ends with one of them), e.g. ``[q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]``.
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")

    def __post_init__(self) -> None:
        if not isinstance(self.r, int) or self.r < 1:
            raise InputError(f"model.lora.r must be an integer >= 1, got {self.r!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"model.lora.dropout must be in [0, 1), got {self.dropout!r}")
        if isinstance(self.target_modules, str) or not self.target_modules:
            raise InputError(
                f"model.lora.target_modules must be a non-empty list of names, got {self.target_modules!r}"
            )

    @classmethod
    def from_config(cls, config: Mapping | None) -> LoraSettings | None:
        if config is None:
            return None
        config = dict(config)
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(config) - fields)
        if unknown:
            raise InputError(f"model.lora has unknown fields {unknown}; known: {sorted(fields)}")
        if "target_modules" in config and not isinstance(config["target_modules"], str):
            config["target_modules"] = tuple(config["target_modules"])
        return cls(**config)


def _peft():
    try:
        import peft
    except ModuleNotFoundError:
        raise InputError('model.lora needs peft: pip install "reranker[lora]"') from None
    return peft


def apply_lora(model: nn.Module, settings: LoraSettings, kind: ModelKind) -> nn.Module:
    """Wrap ``model`` with LoRA adapters; the base weights are frozen, the adapters (and the heads the kind
    names, :meth:`ModelKind.lora_heads`) train. An error when no layer matches ``target_modules``."""
    peft = _peft()
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    matched = [name for name in names if name.rsplit(".", 1)[-1] in settings.target_modules]
    if not matched:
        layer_names = sorted({name.rsplit(".", 1)[-1] for name in names})
        raise InputError(
            f"model.lora.target_modules {list(settings.target_modules)} match no linear layer of the model; "
            f"its linear layers are named {layer_names}"[:500]
        )
    config = peft.LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        modules_to_save=kind.lora_heads(model),
    )
    return peft.get_peft_model(model, config)


def is_adapter_folder(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def adapter_base(path: str | Path) -> str:
    """The base model an adapter folder was trained on (``base_model_name_or_path``)."""
    config = json.loads((Path(path) / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    if not base:
        raise InputError(f"{Path(path) / ADAPTER_CONFIG} names no base_model_name_or_path")
    return base


def load_adapter(model: nn.Module, path: str | Path) -> nn.Module:
    """The base ``model`` with the adapter of ``path`` merged into its weights (for inference)."""
    peft = _peft()
    return peft.PeftModel.from_pretrained(model, str(path)).merge_and_unload()


def merged(model: nn.Module) -> nn.Module:
    """A plain model with the adapters folded into the weights; a model without adapters as it is."""
    peft = _peft() if hasattr(model, "peft_config") else None
    if peft is not None and isinstance(model, peft.PeftModel):
        return model.merge_and_unload()
    return model
