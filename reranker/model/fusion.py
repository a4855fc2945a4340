"""Fuse reranker scores with the first stage's own scores, per query.

A reranker trained on one distribution can rank *worse* than the first stage on queries the first stage
already got right; mixing in the first stage's scores keeps what each is good at. Methods:

- ``zscore``: ``a * z(reranker) + (1 - a) * z(first stage)``, each standardised within the query
  (population standard deviation; a query whose scores are all equal gets 0 for every candidate);
- ``minmax``: the same mix of scores rescaled to [0, 1] within the query (all equal: 0);
- ``rrf``: reciprocal-rank fusion, ``1 / (k + rank_reranker) + 1 / (k + rank_first_stage)`` with 1-based
  ranks (tied scores share the better rank); it needs only the two orders and has no weight.

``a`` is the weight of the reranker: ``a = 0`` ranks exactly as the first stage, ``a = 1`` exactly as the
reranker (both are returned as the raw scores, so no rounding can reorder them). A chosen mix is
recorded as ``fusion.json`` beside exported weights, which :class:`~reranker.model.pair_scorer.PairScorer`
applies by default.

References:
    Cormack, Clarke & Buettcher, Reciprocal Rank Fusion outperforms Condorcet and individual rank
    learning methods (SIGIR 2009).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from reranker.core.errors import InputError

METHODS = ("zscore", "minmax", "rrf")
WEIGHTED = ("zscore", "minmax")
FUSION_FILE = "fusion.json"


@dataclass(frozen=True)
class Fusion:
    """A fusion method and its parameter: ``weight`` (a, of the reranker) for ``zscore``/``minmax``,
    ``rrf_k`` for ``rrf``."""

    method: str = "zscore"
    weight: float | None = 0.5
    rrf_k: int = 60

    def __post_init__(self) -> None:
        check_fusion(self.method, self.weight, self.rrf_k, "fusion")

    def to_dict(self) -> dict:
        return asdict(self)


def check_fusion(method: object, weight: object, rrf_k: object, where: str) -> None:
    """Raise :class:`InputError` naming ``where`` unless the values describe a valid fusion."""
    if method not in METHODS:
        raise InputError(f"{where}: field 'method' must be one of {', '.join(METHODS)}, got {method!r}")
    if method in WEIGHTED:
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0.0 <= weight <= 1.0:
            raise InputError(f"{where}: field 'weight' (a) must be a number in [0, 1], got {weight!r}")
    if isinstance(rrf_k, bool) or not isinstance(rrf_k, int) or rrf_k < 0:
        raise InputError(f"{where}: field 'rrf_k' must be an integer >= 0, got {rrf_k!r}")


def normalise(scores: torch.Tensor, mask: torch.Tensor, method: str) -> torch.Tensor:
    """Per-query ``zscore`` or ``minmax`` of ``scores [Q, C]`` over the valid candidates (``mask [Q, C]``)."""
    scores = scores.double()
    count = mask.sum(dim=1, keepdim=True).clamp(min=1)  # [Q, 1]
    if method == "zscore":
        mean = scores.masked_fill(~mask, 0.0).sum(dim=1, keepdim=True) / count  # [Q, 1]
        centred = (scores - mean).masked_fill(~mask, 0.0)  # [Q, C]
        spread = (centred.pow(2).sum(dim=1, keepdim=True) / count).sqrt()  # [Q, 1]
        low = mean
    elif method == "minmax":
        low = scores.masked_fill(~mask, math.inf).amin(dim=1, keepdim=True)  # [Q, 1]
        spread = scores.masked_fill(~mask, -math.inf).amax(dim=1, keepdim=True) - low  # [Q, 1]
    else:
        raise InputError(f"normalise: method must be zscore or minmax, got {method!r}")
    # A constant query carries no preference: every candidate gets 0 rather than a division by zero.
    safe = torch.where(spread > 0, spread, torch.ones_like(spread))
    return torch.where(spread > 0, (scores - low) / safe, torch.zeros_like(scores)).masked_fill(~mask, 0.0)


def ranks(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """1-based rank of each candidate within its query, tied scores sharing the better rank: ``[Q, C]``."""
    scores = scores.double().masked_fill(~mask, -math.inf)
    ahead = (scores.unsqueeze(1) > scores.unsqueeze(2)) & mask.unsqueeze(1)  # [Q, C, C] j beats i
    return 1 + ahead.sum(dim=2)


def fuse(
    reranker: torch.Tensor,
    first_stage: torch.Tensor,
    fusion: Fusion,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fused scores ``[Q, C]`` (float64; ``-inf`` where ``mask`` is False), higher is better.

    Args:
        reranker: ``[Q, C]`` reranker scores (logits).
        first_stage: ``[Q, C]`` first-stage scores (BM25, dense similarity, ...), higher is better.
        fusion: the method and its weight or ``k``.
        mask: ``[Q, C]`` bool, False for padding in ragged groups.
    """
    if reranker.shape != first_stage.shape or reranker.ndim != 2:
        raise ValueError(
            f"need two [Q, C] tensors, got {tuple(reranker.shape)} and {tuple(first_stage.shape)}"
        )
    mask = torch.ones_like(reranker, dtype=torch.bool) if mask is None else mask.bool()
    if fusion.method == "rrf":
        fused = 1.0 / (fusion.rrf_k + ranks(reranker, mask)) + 1.0 / (fusion.rrf_k + ranks(first_stage, mask))
    elif fusion.weight == 0.0:
        fused = first_stage.double()
    elif fusion.weight == 1.0:
        fused = reranker.double()
    else:
        a = fusion.weight
        fused = a * normalise(reranker, mask, fusion.method) + (1 - a) * normalise(
            first_stage, mask, fusion.method
        )
    return fused.double().masked_fill(~mask, -math.inf)


def fuse_one(reranker: list[float], first_stage: list[float], fusion: Fusion) -> list[float]:
    """:func:`fuse` for one query's candidates."""
    fused = fuse(
        torch.tensor([reranker], dtype=torch.float64),
        torch.tensor([first_stage], dtype=torch.float64),
        fusion,
    )
    return fused[0].tolist()


def write_fusion(folder: str | Path, fusion: Fusion, details: dict | None = None) -> Path:
    """Record the chosen fusion (and how it was chosen) as ``fusion.json`` in ``folder``."""
    path = Path(folder) / FUSION_FILE
    path.write_text(json.dumps({**(details or {}), **fusion.to_dict()}, indent=2, sort_keys=True) + "\n")
    return path


def read_fusion(folder: str | Path) -> Fusion | None:
    """The fusion recorded in ``folder/fusion.json``, or None when there is none."""
    path = Path(folder) / FUSION_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}, line 1: not valid JSON ({err})") from None
    if not isinstance(record, dict):
        raise InputError(f"{path}, line 1: expected a JSON object with 'method' and 'weight'")
    method, weight, rrf_k = record.get("method"), record.get("weight"), record.get("rrf_k", 60)
    check_fusion(method, weight, rrf_k, str(path))
    return Fusion(method, weight, rrf_k)
