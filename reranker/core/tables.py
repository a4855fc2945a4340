"""The one renderer of the text tables that train, evaluate and leaderboard print, and metric-name order."""

from __future__ import annotations

import re

_METRIC_NAME = re.compile(r"(mrr|hit)@(\d+)$")


def metric_order(names: list[str]) -> list[str]:
    """Metric names (``mrr@10``, ``val/hit@1``, ...) in table order: MRR first, then hit@k by k, then the
    rest; at each cut-off the reranker's own (``val/mrr@10``) before derived ones (``val/fused_mrr@10``,
    ``val/first_stage_mrr@10``)."""

    def key(name: str) -> tuple[int, int, bool, str]:
        match = _METRIC_NAME.search(name)
        if match is None:
            return (2, 0, True, name)
        derived = name.rsplit("/", 1)[-1] != match.group(0)
        return (0 if match.group(1) == "mrr" else 1, int(match.group(2)), derived, name)

    return sorted(names, key=key)


def render(rows: list[list[str]], markdown: bool = False) -> str:
    """Rows of cells (the first is the header) as aligned plain text or a Markdown table."""
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join([lines[0], "|" + "---|" * len(rows[0]), *lines[1:]])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def format_comparison(metrics: dict[str, float]) -> str:
    """The validation table of a run: the first stage (``val/first_stage_*``), the base model
    (``zero_shot/*``), the best checkpoint (``val/*``) and it fused with the first stage (``val/fused_*``)
    on the same lists, then the paired tests against the first stage (``paired/*``) where recorded."""
    names = metric_order([k[4:] for k in metrics if k.startswith("val/") and _METRIC_NAME.fullmatch(k[4:])])
    if not names:
        return ""
    rows = [["", *names]]
    labelled = [
        ("first stage", "val/first_stage_"),
        ("before training", "zero_shot/"),
        ("after training", "val/"),
        ("fused" + _weight(metrics.get("val/fused_weight")), "val/fused_"),
    ]
    for label, prefix in labelled:
        if prefix == "val/" or any(f"{prefix}{name}" in metrics for name in names):
            rows.append([label, *(_cell(metrics.get(f"{prefix}{n}")) for n in names)])
    text = "validation\n" + render(rows)
    tests = _paired_rows(metrics)
    if tests:
        text += "\npaired tests on the validation lists (bootstrap 95% interval, permutation p-value)\n"
        text += render(tests)
    return text


_PAIRED = re.compile(r"paired/(\w+)_vs_first_stage/(.+)/difference$")
_TESTED_LABELS = {"reranker": "after training", "fused": "fused"}


def _paired_rows(metrics: dict[str, float]) -> list[list[str]]:
    rows = []
    found = [match.groups() for match in map(_PAIRED.fullmatch, metrics) if match is not None]
    order = metric_order(sorted({metric for _, metric in found}))
    # The reranker's tests first, then the fused ranking's, each in table order of the metrics.
    for run, metric in sorted(found, key=lambda pair: (pair[0] != "reranker", order.index(pair[1]))):
        key = f"paired/{run}_vs_first_stage/{metric}/difference"
        stem = key.removesuffix("difference")
        rows.append(
            [
                f"{_TESTED_LABELS.get(run, run)} vs first stage",
                metric,
                f"{metrics[key]:+.4f}",
                f"[{metrics[stem + 'ci_low']:+.4f}, {metrics[stem + 'ci_high']:+.4f}]",
                f"{metrics[stem + 'p_value']:.4f}",
            ]
        )
    return [["b vs a", "metric", "difference", "95% interval", "p-value"], *rows] if rows else []


def below_first_stage(metrics: dict[str, float]) -> str | None:
    """One ``warning:`` line when the best checkpoint ranks the validation lists below their first stage
    by MRR (``val/mrr@k`` under ``val/first_stage_mrr@k``), with what usually helps; else None."""
    names = metric_order([k[4:] for k in metrics if k.startswith("val/") and _METRIC_NAME.fullmatch(k[4:])])
    mrr = next((name for name in names if name.startswith("mrr@")), None)
    reranker, first_stage = metrics.get(f"val/{mrr}"), metrics.get(f"val/first_stage_{mrr}")
    if reranker is None or first_stage is None or reranker >= first_stage:
        return None
    p_value = metrics.get(f"paired/reranker_vs_first_stage/{mrr}/p_value")
    tested = f", p = {p_value:.4f}" if p_value is not None else ""
    fused = metrics.get(f"val/fused_{mrr}")
    fuse = f" (val/fused_{mrr} {fused:.4f})" if fused is not None else ""
    return (
        f"warning: the reranker (val/{mrr} {reranker:.4f}) ranks below its first stage "
        f"(val/first_stage_{mrr} {first_stage:.4f}{tested}) on the validation lists; what usually helps: "
        f"mine negatives from the retriever you deploy, fuse with the first stage{fuse}, check for "
        "unjudged positives among the candidates (docs/training.md: against the first stage)"
    )


def _weight(value: float | None) -> str:
    return "" if value is None else f" (a = {value:.2f})"


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
