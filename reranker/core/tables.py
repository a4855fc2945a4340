"""The one renderer of the text tables that train, evaluate and leaderboard print, and metric-name order."""

from __future__ import annotations

import re

_METRIC_NAME = re.compile(r"(mrr|hit)@(\d+)$")


def metric_order(names: list[str]) -> list[str]:
    """Metric names (``mrr@10``, ``val/hit@1``, ...) in table order: MRR first, then hit@k by k, then the rest."""

    def key(name: str) -> tuple[int, int, str]:
        match = _METRIC_NAME.search(name)
        if match is None:
            return (2, 0, name)
        return (0 if match.group(1) == "mrr" else 1, int(match.group(2)), name)

    return sorted(names, key=key)


def render(rows: list[list[str]], markdown: bool = False) -> str:
    """Rows of cells (the first is the header) as aligned plain text or a Markdown table."""
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join([lines[0], "|" + "---|" * len(rows[0]), *lines[1:]])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def format_comparison(metrics: dict[str, float]) -> str:
    """Table of ``zero_shot/*`` (before training) against ``val/*`` (best checkpoint) metrics."""
    names = metric_order([key.split("/", 1)[1] for key in metrics if key.startswith("val/")])
    if not names:
        return ""
    rows = [["", *names]]
    if any(f"zero_shot/{name}" in metrics for name in names):
        rows.append(["before training", *(_cell(metrics.get(f"zero_shot/{n}")) for n in names)])
    rows.append(["after training", *(_cell(metrics.get(f"val/{n}")) for n in names)])
    return "validation\n" + render(rows)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
