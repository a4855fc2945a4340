"""Plain-text tables of validation metrics."""

from __future__ import annotations

METRIC_ORDER = ("mrr@10", "hit@1", "hit@3", "hit@5")


def format_comparison(metrics: dict[str, float]) -> str:
    """Table of ``zero_shot/*`` (before training) against ``val/*`` (best checkpoint) metrics."""
    names = [name for name in METRIC_ORDER if f"val/{name}" in metrics]
    rows = [("", *names)]
    if any(f"zero_shot/{name}" in metrics for name in names):
        rows.append(("before training", *(_cell(metrics.get(f"zero_shot/{n}")) for n in names)))
    rows.append(("after training", *(_cell(metrics.get(f"val/{n}")) for n in names)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(["validation", *lines])


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
