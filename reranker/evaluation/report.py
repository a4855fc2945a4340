"""The report of ``reranker evaluate`` as text (plain or Markdown): the end-to-end table beside the first
stage's recall, fusion, paired tests, the reranking ceiling where golds were forced, slices."""

from __future__ import annotations

from reranker.core.tables import render


def row_label(row: str, systems: dict[str, list[str]]) -> str:
    """A row as printed: a system of several runs is marked as their mean."""
    runs = systems.get(row, [row])
    return f"{row} (mean of {len(runs)})" if len(runs) > 1 else row


def format_table(
    table: dict[str, dict[str, float]],
    metrics: list[str],
    markdown: bool = False,
    systems: dict[str, list[str]] | None = None,
) -> str:
    """One row per run (and per system of several runs, their mean), one column per metric."""
    rows = [["", *metrics]] + [
        [row_label(run, systems or {}), *(f"{values[m]:.4f}" for m in metrics)]
        for run, values in table.items()
    ]
    return render(rows, markdown)


def format_tests(tests: list[dict], markdown: bool = False) -> str:
    """One line per paired test: difference, 95% interval, raw and Holm-adjusted p, seeds agreeing, verdict."""
    rows = [["b vs a", "metric", "difference", "95% interval", "p-value", "Holm p", "seeds agreeing", "verdict"]] + [
        [f"{t['b']} vs {t['a']}", t["metric"], f"{t['difference']:+.4f}",
         f"[{t['ci_low']:+.4f}, {t['ci_high']:+.4f}]", f"{t['p_value']:.4f}", f"{t['p_holm']:.4f}",
         f"{t['seeds_agreeing']}/{t['seeds']}", t["verdict"]]
        for t in tests
    ]  # fmt: skip
    return render(rows, markdown)


def format_recall(recall: dict) -> str:
    """The first stage's recall over its lists, the ceiling of every row's hit@k."""
    k = recall["k"]
    lists = f" (lists of {recall['shortest_list']} to {k} candidates)" if recall["shortest_list"] != k else ""
    return (
        f"first-stage recall@{k}: {recall['recall']:.4f}{lists}, {recall['retrieved']} of {recall['queries']} "
        f"queries with a judged positive among their candidates: the ceiling of every row's hit@{k}"
    )


def format_report(results: dict, markdown: bool = False) -> str:
    """Headline table, fusion, tests, the reranking ceiling where golds were forced, slices (plain or Markdown)."""
    metrics, systems = results["metrics"], results.get("systems", {})
    parts = [
        f"{results['queries']} queries, {results['candidates']} candidates",
        "end-to-end: every row ranks the first stage's lists as retrieved; a query whose gold was not "
        "retrieved is a miss (reciprocal rank 0, no hit) for every row\n"
        + format_recall(results["first_stage_recall"]),
        format_table(results["table"], metrics, markdown, systems),
    ]
    if results.get("fusion"):
        parts += ["fusion with the first stage", format_fusion(results["fusion"])]
    if results["tests"]:
        parts += [
            f"paired tests of per-query seed means (end-to-end; bootstrap 95% interval, permutation p-value, "
            f"Holm-adjusted over the {len(results['tests'])} tests); better/worse: Holm p < 0.05 and every "
            "seed agrees",
            format_tests(results["tests"], markdown),
        ]
    if "ceiling" in results:
        ceiling = results["ceiling"]
        parts += [ceiling["title"], format_table(ceiling["table"], metrics, markdown, systems)]
    for kind, buckets in results["slices"].items():
        for bucket, values in buckets.items():
            runs = {run: v for run, v in values.items() if run != "queries"}
            parts += [
                f"{kind}: {bucket} ({values['queries']} queries)",
                format_table(runs, metrics, markdown, systems),
            ]
    return "\n\n".join(parts) + "\n"


def format_fusion(fusion: dict[str, dict]) -> str:
    """One line per fused row: method, a and how it was chosen (each fold's a under cross-validation)."""
    lines = []
    for name, info in fusion.items():
        scored = (
            f"{info['queries_with_first_stage_scores']}/{info['queries']} queries with first-stage scores"
        )
        if info["method"] == "rrf":
            lines.append(f"{fused_name(name)}: rrf, k = {info['rrf_k']}; {scored}")
            continue
        how = info["chosen_by"]
        if "folds" in info:
            weights = ", ".join(f"{f['weight']:.2f} ({f['queries']} queries)" for f in info["folds"])
            how += f", a per fold {weights}"
        elif "validation_queries" in info:
            how += f" ({info['validation_queries']} queries), a = {info['weight']:.2f}"
        else:
            how += f", a = {info['weight']:.2f}"
        lines.append(f"{fused_name(name)}: {info['method']}, {how}; {scored}")
    return "\n".join(f"- {line}" for line in lines)


def fused_name(model: str) -> str:
    return f"{model} fused"
