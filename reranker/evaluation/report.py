"""The report of ``reranker evaluate`` as text (plain or Markdown): the table, fusion, paired tests, slices."""

from __future__ import annotations

from reranker.core.tables import render


def format_table(table: dict[str, dict[str, float]], metrics: list[str], markdown: bool = False) -> str:
    """The seed-style table: one row per run, one column per metric."""
    rows = [["", *metrics]] + [[run, *(f"{values[m]:.4f}" for m in metrics)] for run, values in table.items()]
    return render(rows, markdown)


def format_tests(tests: list[dict], markdown: bool = False) -> str:
    """One line per paired test: difference, 95% interval and p-value."""
    rows = [["b vs a", "metric", "difference", "95% interval", "p-value"]] + [
        [f"{t['b']} vs {t['a']}", t["metric"], f"{t['difference']:+.4f}",
         f"[{t['ci_low']:+.4f}, {t['ci_high']:+.4f}]", f"{t['p_value']:.4f}"]
        for t in tests
    ]  # fmt: skip
    return render(rows, markdown)


def format_report(results: dict, markdown: bool = False) -> str:
    """Table, tests and slice tables as one text (plain or Markdown)."""
    metrics = results["metrics"]
    forced = results.get("forced", 0)
    parts = [
        f"{results['queries']} queries, {results['candidates']} candidates"
        + (f"; {forced} golds forced in, ranked where they were put by every row" if forced else ""),
        format_table(results["table"], metrics, markdown),
    ]
    if results.get("fusion"):
        parts += ["fusion with the first stage", format_fusion(results["fusion"])]
    if results["tests"]:
        parts += [
            "paired tests (bootstrap 95% interval, permutation p-value)",
            format_tests(results["tests"], markdown),
        ]
    for kind, buckets in results["slices"].items():
        for bucket, values in buckets.items():
            runs = {run: v for run, v in values.items() if run != "queries"}
            parts += [
                f"{kind}: {bucket} ({values['queries']} queries)",
                format_table(runs, metrics, markdown),
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
