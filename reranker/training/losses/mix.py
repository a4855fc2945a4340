"""A weighted sum of named losses, e.g. group CE on the labels plus distillation from a teacher."""

from __future__ import annotations

import math
from collections.abc import Mapping

import hydra
import torch
from torch import nn

from reranker.core.errors import InputError


class LossMix(nn.Module):
    """``sum_name weights[name] * components[name](scores, batch)``; each component's value is kept for logging.

    Each component is a loss of its own (``conf/loss/<name>.yaml``'s fields, or a built loss) and checks
    its own arguments when built; an error names the component's field (``loss.components.teacher.alpha``).
    After each call ``last_values`` holds every component's unweighted value (detached), which training
    logs as ``train/loss/<name>`` beside ``train/loss``. ``teachers`` gathers the teacher columns the
    components read, by config field, so a missing column stops the run before training.

    Args:
        components: name -> a loss config (``_target_`` and its arguments) or a loss module; at least one.
        weights: name -> the component's weight, a finite number >= 0, one for every component and no
            other name; at least one > 0.

    References:
        Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network" (2015): a weighted sum of
        the loss on the hard labels and the loss on a teacher's soft targets.
    """

    def __init__(self, components: Mapping, weights: Mapping) -> None:
        super().__init__()
        if not isinstance(components, Mapping) or not components:
            raise InputError(f"loss.components must name at least one loss, got {components!r}")
        if not isinstance(weights, Mapping):
            raise InputError(f"loss.weights must map each component to a number, got {weights!r}")
        unknown = [name for name in weights if name not in components]
        if unknown:
            raise InputError(
                f"loss.weights.{unknown[0]} names no component of loss.components ({', '.join(components)})"
            )
        self.weights = {name: _weight(name, weights.get(name)) for name in components}
        if not any(weight > 0 for weight in self.weights.values()):
            raise InputError(
                f"loss.weights must give at least one component a weight > 0, got {self.weights}"
            )
        self.components = nn.ModuleDict({name: _build(name, value) for name, value in components.items()})
        self.teachers = {
            f"loss.components.{name}.{key.removeprefix('loss.')}": teacher
            for name, component in self.components.items()
            for key, teacher in getattr(component, "teachers", {}).items()
        }
        self.last_values: dict[str, torch.Tensor] = {}

    def forward(self, scores: torch.Tensor, batch: dict) -> torch.Tensor:
        """The weighted sum over the components; ``scores`` is ``[B, G]``."""
        values = {name: component(scores, batch) for name, component in self.components.items()}
        self.last_values = {name: value.detach() for name, value in values.items()}
        return sum(self.weights[name] * value for name, value in values.items())


def _weight(name: str, value: object) -> float:
    if value is None:
        raise InputError(f"loss.weights.{name} is missing: give every component of loss.components a weight")
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value >= 0)
    ):
        raise InputError(f"loss.weights.{name} must be a number >= 0, got {value!r}")
    return float(value)


def _build(name: str, value: object) -> nn.Module:
    """A component: a loss module as it is, or a config built here so its errors name its field."""
    if isinstance(value, nn.Module):
        return value
    if not isinstance(value, Mapping) or "_target_" not in value:
        raise InputError(f"loss.components.{name} must be a loss config with a _target_, got {value!r}")
    try:
        return hydra.utils.instantiate(value)
    except Exception as err:
        causes = [err]
        while causes[-1].__cause__ or causes[-1].__context__:
            causes.append(causes[-1].__cause__ or causes[-1].__context__)
        cause = next((c for c in causes if isinstance(c, InputError)), None)
        if cause is None:
            # A field the component's constructor does not take.
            wrong = next((c for c in causes if isinstance(c, TypeError)), None)
            if wrong is None:
                raise
            raise InputError(f"loss.components.{name}: {wrong}") from None
        # Component losses name their fields loss.<field>; inside a mix they are loss.components.<name>.<field>.
        message = str(cause)
        if message.startswith("loss."):
            message = f"loss.components.{name}.{message.removeprefix('loss.')}"
        raise InputError(message) from None
