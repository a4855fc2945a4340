"""The objectives study's table, plot and README block, from the committed result files only.

    python experiments/objectives/report.py            # results/ -> mrr.png and README.md's generated block

The README's block is a ``scripts/figures.py`` block (``<!-- figures experiments/objectives/report.py:block
-->``): ``python scripts/figures.py --check`` fails where it differs from what :func:`block` makes of the
committed results.

Per domain and evaluated first stage: each arm's MRR@10 per seed and its mean (the reranker alone), the
mean fused with the first stage, and paired tests of the seed-averaged per-query reciprocal ranks against
``group_ce`` and against the first stage alone (the reranker alone and fused): the difference, its 95%
bootstrap interval over queries, the permutation p-value, the Holm-adjusted p over every comparison of that
table, how many seeds agree in sign with the mean difference, and the verdict: "better" or "worse" only
where the Holm-adjusted p is below 0.05 and every seed agrees, else "no difference shown". Each table ends
with its conclusion in words. Partial results are fine: an arm shows how many seeds it has, one without any
says so, and a conclusion drawn before every arm has every seed says it is partial. Result files made from
another data build than most of the domain's are left out and listed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

# Imported by path from scripts/figures.py as well: the sibling modules sit beside this file.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_arms import ARMS, BASELINE, HERE, SEEDS, TEACHER  # noqa: E402
from study_results import MRR, VAL_MRR  # noqa: E402

from reranker.evaluation.significance import holm, paired_test, verdict  # noqa: E402
from reranker.evaluation.tables import seed_mean  # noqa: E402

START = "<!-- figures experiments/objectives/report.py:block -->"
END = "<!-- /figures -->"
ROWS = (*ARMS, TEACHER)
# (column, the per-query values of a result's list entry tested, against what)
COMPARISONS = (
    (f"vs {BASELINE}", "reranker", BASELINE),
    ("vs first stage", "reranker", "first_stage"),
    ("fused vs first stage", "fused", "first_stage"),
)


def load(results: Path) -> dict[str, dict[str, dict[int, dict]]]:
    """``{domain: {arm: {seed: result}}}`` of every result file under ``results``."""
    loaded: dict = {}
    for path in sorted(results.glob("*/*/seed*.json")):
        result = json.loads(path.read_text(encoding="utf-8"))
        loaded.setdefault(result["domain"], {}).setdefault(result["arm"], {})[result["seed"]] = result
    return loaded


def current_data(arms: dict[str, dict[int, dict]]) -> tuple[dict, list[str]]:
    """The results made from the data build most of them share, and the names of the others."""
    counts = Counter(r["data"]["fingerprint"] for seeds in arms.values() for r in seeds.values())
    digest = counts.most_common(1)[0][0]
    kept = {
        arm: {s: r for s, r in seeds.items() if r["data"]["fingerprint"] == digest}
        for arm, seeds in arms.items()
    }
    left_out = [
        f"{arm}/seed{s}"
        for arm, seeds in arms.items()
        for s, r in seeds.items()
        if r["data"]["fingerprint"] != digest
    ]
    return {arm: seeds for arm, seeds in kept.items() if seeds}, left_out


def mean_interval(values: list[float], samples: int, seed: int = 0) -> list[float]:
    """95% percentile bootstrap interval of the mean of ``values`` (queries resampled)."""
    array = np.asarray(values, dtype=np.float64)
    picks = np.random.default_rng(seed).integers(0, array.size, size=(samples, array.size))  # [S, Q]
    return [float(v) for v in np.percentile(array[picks].mean(axis=1), [2.5, 97.5])]


def list_table(arms: dict[str, dict[int, dict]], name: str, samples: int) -> dict:
    """One evaluated list: per arm its seeds' MRR@10, means and the paired tests (Holm-adjusted over the table)."""
    entries = {
        arm: {s: r["evaluation"][name] for s, r in seeds.items() if name in r.get("evaluation", {})}
        for arm, seeds in arms.items()
    }
    entries = {arm: seeds for arm, seeds in entries.items() if seeds}
    any_entry = next(iter(next(iter(entries.values())).values()))
    qids = any_entry["qids"]
    first_stage = any_entry["first_stage"]["rr"]
    baseline = (
        seed_mean([e["reranker"]["rr"] for e in entries[BASELINE].values()]) if BASELINE in entries else None
    )
    rows, tests = {}, []
    for arm in [a for a in ROWS if a in entries]:
        seeds = entries[arm]
        for entry in seeds.values():
            if entry["qids"] != qids:
                raise ValueError(f"{arm}: the {name} lists hold other queries than the other arms'")
        alone = seed_mean([e["reranker"]["rr"] for e in seeds.values()])
        row = {
            "seeds": sorted(seeds),
            MRR: {s: e[MRR]["reranker"] for s, e in sorted(seeds.items())},
            "mean": sum(e[MRR]["reranker"] for e in seeds.values()) / len(seeds),
            "interval": mean_interval(alone, samples),
            "fused mean": sum(e[MRR]["fused"] for e in seeds.values()) / len(seeds),
        }
        for column, ranking, against in COMPARISONS:
            reference = baseline if against == BASELINE else first_stage
            if reference is None or (against == BASELINE and arm == BASELINE):
                continue
            test = paired_test(reference, seed_mean([e[ranking]["rr"] for e in seeds.values()]), samples)
            reference_mrr = sum(reference) / len(reference)
            signs = [e[MRR][ranking] - reference_mrr for e in seeds.values()]
            test["seeds agreeing"] = sum(
                (value > 0) == (test["difference"] > 0) and value != 0 for value in signs
            )
            row[column] = test
            tests.append(test)
        rows[arm] = row
    for test, adjusted in zip(tests, holm([t["p_value"] for t in tests]), strict=True):
        test["holm_p"] = adjusted
    return {"queries": len(qids), "first stage": sum(first_stage) / len(first_stage), "arms": rows}


def fmt_test(test: dict | None, seeds: int, expected: int) -> str:
    if test is None:
        return "—"
    return (f"{test['difference']:+.4f} [{test['ci_low']:+.3f}, {test['ci_high']:+.3f}], p {test['p_value']:.4f} "
            f"(Holm {test['holm_p']:.4f}), {test['seeds agreeing']}/{seeds} seeds: "
            f"**{judge(test, seeds, expected)}**")  # fmt: skip


def judge(test: dict, seeds: int, expected: int) -> str:
    """better / worse / no difference shown: Holm p < 0.05 and every seed agreeing, as evaluate decides;
    "pending" while an arm has fewer seeds than the study runs (one seed always agrees with itself)."""
    if seeds < expected:
        return f"pending ({seeds} of {expected} seeds)"
    return verdict(test["difference"], test["holm_p"], test["seeds agreeing"], seeds)


def conclusion(name: str, table: dict, expected_seeds: int) -> str:
    """The table in words: per comparison, which arms are better, worse, not shown to differ, or not judged
    yet (fewer seeds than the study runs)."""
    rows = table["arms"]
    complete = all(a in rows and len(rows[a]["seeds"]) == expected_seeds for a in ARMS)
    count = sum(len(r["seeds"]) for a, r in rows.items() if a in ARMS)
    said = [] if complete else [f"Partial ({count} of {len(ARMS) * expected_seeds} arm × seed results)."]
    labels = {
        f"vs {BASELINE}": f"Against {BASELINE}",
        "vs first stage": f"Alone against {name} alone",
        "fused vs first stage": f"Fused with {name}, against {name} alone",
    }
    for column, label in labels.items():
        groups: dict[str, list[str]] = {}
        for arm, row in rows.items():
            if column not in row:
                continue
            word = judge(row[column], len(row["seeds"]), 1 if arm == TEACHER else expected_seeds)
            word = "not judged yet (too few seeds)" if word.startswith("pending") else word
            test = row[column]
            detail = (
                f" ({test['difference']:+.4f}, Holm p {test['holm_p']:.4f})"
                if word in ("better", "worse")
                else ""
            )
            groups.setdefault(word, []).append(arm + detail)
        if groups:
            said.append(
                f"{label}: " + "; ".join(f"{word}: {', '.join(arms)}" for word, arms in groups.items()) + "."
            )
    return " ".join(said)


def table_lines(domain: str, name: str, table: dict, expected_seeds: int) -> list[str]:
    lines = [
        f"#### {domain}, {name} top 10 ({table['queries']} questions; the first stage alone: MRR@10 {table['first stage']:.4f})",
        "",
        f"| arm | MRR@10 per seed | mean | fused mean | Δ vs {BASELINE} | Δ vs first stage | fused Δ vs first stage |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for arm in ROWS:
        row = table["arms"].get(arm)
        if row is None:
            lines.append(f"| {arm} | no result yet | | | | | |")
            continue
        count = len(row["seeds"])
        partial = f" ({count} of {expected_seeds} seeds)" if arm != TEACHER and count < expected_seeds else ""
        per_seed = ", ".join(f"s{s} {value:.4f}" for s, value in row[MRR].items())
        needed = 1 if arm == TEACHER else expected_seeds
        tests = [fmt_test(row.get(column), count, needed) for column, _, _ in COMPARISONS]
        lines.append(
            f"| {arm}{partial} | {per_seed} | {row['mean']:.4f} | {row['fused mean']:.4f} | "
            + " | ".join(tests)
            + " |"
        )
    text = conclusion(name, table, expected_seeds)
    return lines + (["", text] if text else [])


def selection_line(results: Path, domain: str) -> str:
    path = results / domain / "selection.json"
    if not path.is_file():
        return "The first-stage teacher temperature is not chosen yet (its validation grid is not finished)."
    selection = json.loads(path.read_text(encoding="utf-8"))
    values = ", ".join(f"T={t}: {v:.4f}" for t, v in selection["values"].items())
    return (f"First-stage teacher temperature chosen on the validation lists ({selection['metric']} of "
            f"first_stage_only_t<T>, seed 1): {values}; chosen T = {selection['chosen']:g}.")  # fmt: skip


def build(results: Path, samples: int = 10000) -> tuple[list[str], dict]:
    """The README block's lines and the summary behind them (also what the plot draws)."""
    lines, summary = [], {}
    loaded = load(results)
    if not loaded:
        return ["No result file yet: the study has not run (see Commands)."], {}
    for domain, all_arms in sorted(loaded.items()):
        arms, left_out = current_data(
            {a: s for a, s in all_arms.items() if not re.fullmatch(r"first_stage_only_t.+", a)}
        )
        names = sorted(
            {name for seeds in arms.values() for r in seeds.values() for name in r.get("evaluation", {})}
        )
        summary[domain] = {
            name: list_table(arms, name, samples) for name in sorted(names, key=lambda n: n != "hybrid")
        }
        lines += [f"### {domain}", "", selection_line(results, domain), ""]
        for name, table in summary[domain].items():
            lines += [*table_lines(domain, name, table, len(SEEDS)), ""]
        diverged = [
            f"{arm}/seed{s}"
            for arm, seeds in arms.items()
            for s, r in seeds.items()
            if "failed" in r["training"]
        ]
        val = {arm: [r["validation"].get(VAL_MRR) for r in seeds.values()] for arm, seeds in arms.items()}
        lines.append("Validation MRR@10 per arm (seeds): " + "; ".join(
            f"{arm} " + ", ".join("—" if v is None else f"{v:.4f}" for v in values) for arm, values in val.items()) + ".")  # fmt: skip
        units = [r for seeds in arms.values() for r in seeds.values() if r["training"].get("seconds")]
        if units:
            train = [r["training"]["seconds"] / 60 for r in units]
            scoring = [sum(e.get("seconds", 0) for e in r.get("evaluation", {}).values()) / 60 for r in units]
            lines.append(f"Time per unit on this machine (units so far: {len(units)}): training {min(train):.0f}-"
                         f"{max(train):.0f} min, evaluation {min(scoring):.0f}-{max(scoring):.0f} min.")  # fmt: skip
        for label, names_ in (
            ("diverged (no evaluation)", diverged),
            ("left out, made from another data build", left_out),
        ):
            if names_:
                lines.append(f"{label}: {', '.join(names_)}.")
        lines.append("")
    return lines, summary


def block() -> str:
    """The README's generated block, from the committed result files (``scripts/figures.py`` calls it)."""
    lines, summary = build(HERE / "results")
    if summary:
        lines.append("![MRR@10 per arm](mrr.png)")
    return "\n".join(lines)


def write_block(readme: Path, lines: list[str]) -> None:
    """Replace the README's generated block (between the START and END markers) with ``lines``."""
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text.split(START, 1)[1]:
        raise ValueError(f"{readme}: no generated block ({START} ... {END})")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n" + "\n".join(lines).rstrip() + f"\n{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--readme", type=Path, default=HERE / "README.md")
    parser.add_argument("--plot", type=Path, default=HERE / "mrr.png")
    parser.add_argument("--samples", type=int, default=10000, help="bootstrap and permutation samples")
    args = parser.parse_args(argv)
    lines, summary = build(args.results, args.samples)
    if summary:
        from plots import plot_mrr

        plot_mrr(summary, args.plot)
        lines.append(f"![MRR@10 per arm]({args.plot.name})")
    write_block(args.readme, lines)
    print("\n".join(lines))
    return summary


if __name__ == "__main__":
    main()
