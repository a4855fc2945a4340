"""Check first-stage scores read from data files (used by every reader that accepts them)."""

from __future__ import annotations

import math
import numbers

from reranker.core.errors import InputError


def check_scores(scores: list, count: int, where: str, field: str) -> list[float]:
    """First-stage scores of one query: ``count`` finite numbers, else an :class:`InputError` at ``where``."""
    if not isinstance(scores, list) or not all(
        isinstance(s, numbers.Real) and not isinstance(s, bool) for s in scores
    ):
        raise InputError(f"{where}: field '{field}' must be a list of numbers, got {scores!r:.60}")
    if len(scores) != count:
        raise InputError(
            f"{where}: field '{field}' has {len(scores)} scores for {count} candidates (one per candidate)"
        )
    bad = next((i for i, s in enumerate(scores) if not math.isfinite(s)), None)
    if bad is not None:
        raise InputError(f"{where}: field '{field}': score {bad} is {scores[bad]}, not a finite number")
    return [float(s) for s in scores]
