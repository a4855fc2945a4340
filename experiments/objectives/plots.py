"""The objectives study's figure: MRR@10 per arm with its interval, one panel per evaluated first stage."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from study_results import MRR  # noqa: E402


def plot_mrr(summary: dict, path: Path) -> None:
    """For each domain and first stage: each arm's MRR@10 (the reranker alone, mean over seeds) with the
    95% bootstrap interval over queries of its seed-averaged reciprocal ranks, each seed as a small dot,
    the fused mean as a hollow marker, and the first stage alone as a dashed line."""
    panels = [(domain, name, table) for domain, tables in summary.items() for name, table in tables.items()]
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for axis, (domain, name, table) in zip(axes[0], panels, strict=True):
        arms = list(table["arms"])
        for position, arm in enumerate(arms):
            row = table["arms"][arm]
            low, high = row["interval"]
            axis.errorbar([position], [row["mean"]], yerr=[[row["mean"] - low], [high - row["mean"]]],
                          fmt="o", color="C0", capsize=3, label="alone (mean, 95% interval)" if position == 0 else None)  # fmt: skip
            axis.plot([position] * len(row[MRR]), list(row[MRR].values()), ".", color="C0", alpha=0.4)
            axis.plot([position + 0.15], [row["fused mean"]], "o", markerfacecolor="none", color="C1",
                      label="fused with the first stage" if position == 0 else None)  # fmt: skip
        axis.axhline(table["first stage"], linestyle="--", color="grey", label=f"{name} alone")
        axis.set_xticks(range(len(arms)), arms, rotation=45, ha="right", fontsize=8)
        axis.set_title(f"{domain}, {name} top 10 ({table['queries']} questions)")
        axis.set_ylabel(MRR)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    # A fixed creation date keeps the PNG identical when the figure is.
    figure.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(figure)
