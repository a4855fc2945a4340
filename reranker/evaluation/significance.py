"""Is one ranking better than another on the same queries? Paired tests over per-query values.

The difference is ``mean(b) - mean(a)`` over queries. Its 95% interval is the percentile interval of a
paired bootstrap (queries resampled with replacement, the same resample for both runs). The two-sided
p-value comes from a paired sign-flip permutation test: under the null hypothesis that the two runs are
exchangeable, each query's difference is equally likely to have either sign.

References:
    Efron & Tibshirani, An Introduction to the Bootstrap (1993), ch. 13 (percentile intervals).
    Smucker, Allan & Carterette, A Comparison of Statistical Significance Tests for Information
    Retrieval Evaluation (CIKM 2007) (paired randomisation test).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def paired_test(
    a: Sequence[float], b: Sequence[float], samples: int = 10000, seed: int = 0, chunk: int = 1000
) -> dict[str, float]:
    """Compare per-query values ``b`` against ``a`` (same queries, same order).

    Returns:
        ``{"difference", "ci_low", "ci_high", "p_value", "queries", "samples"}``; the p-value is at least
        ``1 / (samples + 1)`` (a permutation test cannot resolve smaller values).
    """
    a_values = np.asarray(a, dtype=np.float64)
    b_values = np.asarray(b, dtype=np.float64)
    if a_values.shape != b_values.shape or a_values.ndim != 1 or a_values.size == 0:
        raise ValueError(f"need two equal-length non-empty lists, got {a_values.shape} and {b_values.shape}")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    differences = b_values - a_values  # [Q]
    observed = float(differences.mean())
    count = differences.size
    rng = np.random.default_rng(seed)
    bootstrap_means, as_extreme = [], 0
    # Resamples are drawn in chunks so memory stays at chunk x Q whatever the sample count.
    for start in range(0, samples, chunk):
        size = min(chunk, samples - start)
        picks = rng.integers(0, count, size=(size, count))  # [S, Q]
        bootstrap_means.append(differences[picks].mean(axis=1))
        signs = rng.choice(np.array([-1.0, 1.0]), size=(size, count))  # [S, Q]
        flipped = np.abs((signs * differences).mean(axis=1))
        # A small tolerance so that float noise never makes the observed value "more extreme" than itself.
        as_extreme += int((flipped >= abs(observed) - 1e-12).sum())
    means = np.concatenate(bootstrap_means)
    low, high = np.percentile(means, [2.5, 97.5])
    return {
        "difference": observed,
        "ci_low": float(low),
        "ci_high": float(high),
        "p_value": (as_extreme + 1) / (samples + 1),
        "queries": count,
        "samples": samples,
    }


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the order given.

    With the m p-values sorted, ``p_(1) <= ... <= p_(m)``, the adjusted ``p_(i)`` is
    ``max_{j <= i} min(1, (m - j + 1) * p_(j))``. Calling a test significant where its adjusted p-value is
    below alpha keeps the chance of any false call among the m tests at most alpha, whatever their
    dependence; a table of several comparisons needs that, or some comparison looks significant by chance.

    References:
        Holm, A Simple Sequentially Rejective Multiple Test Procedure, Scand. J. Statist. 6 (1979) 65-70.
    """
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for position, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - position) * float(p_values[index])))
        adjusted[index] = running
    return adjusted


def sign(value: float, tolerance: float = 1e-12) -> int:
    """-1, 0 or 1; within ``tolerance`` of zero is zero (a mean of floats rarely lands on 0 exactly)."""
    return 0 if abs(value) <= tolerance else 1 if value > 0 else -1


def verdict(difference: float, p_adjusted: float, agreeing: int, seeds: int, alpha: float = 0.05) -> str:
    """``better`` or ``worse`` where the adjusted p-value is below ``alpha`` and every seed's own mean
    difference has the sign of the mean difference; otherwise ``no difference shown``."""
    if p_adjusted < alpha and agreeing == seeds and sign(difference) != 0:
        return "better" if difference > 0 else "worse"
    return "no difference shown"
