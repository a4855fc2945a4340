"""The objectives study's choices, time estimate and report, from run.sh's runs and evaluate outputs.

    python experiments/objectives/report.py select WORK --arms A B ...      # the best temperature and loss
    python experiments/objectives/report.py estimate WORK --train-sets 2 --seeds 3 --arms 8 --steps 128 \
        --teacher-factor 4 --group-sizes 4 16                               # time, from the first finished run
    python experiments/objectives/report.py report WORK OUT --arms A B ...  # tables.md, results.json, plots

``report`` reads each run's ``metrics.json`` and ``csv/metrics.csv`` under ``WORK`` and the ``evaluate``
outputs ``OUT/results/{test set}-{first stage}/results.json``; it writes ``OUT/tables.md``,
``OUT/results.json``, ``OUT/curves.png`` (validation MRR@10 over steps per arm) and ``OUT/mrr.png``
(evaluation MRR@10 per arm, mean and spread over seeds, with the first stage's line).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from plots import plot_curves, plot_eval
from study import (
    BASELINE,
    FIRST_STAGE,
    METRIC,
    TEACHER,
    VAL_METRIC,
    arm_summary,
    best_arm,
    eval_rows,
    first_finished,
    planned_cost,
    read_runs,
    seconds_per_step,
    step_cost,
    validation,
)

from reranker.core.errors import InputError

RETRIEVERS = ("bm25", "dense", "hybrid")


def select(work: Path, arms: list[str]) -> dict:
    """The temperature (among the group_ce arms) and the loss (among all ``arms``) chosen on validation."""
    runs = read_runs(work)
    temperature, _ = best_arm(runs, [arm for arm in arms if arm.startswith(BASELINE)])
    loss, means = best_arm(runs, arms)
    return {
        "metric": VAL_METRIC,
        "best_temperature": temperature,
        "best_loss": loss,
        "validation means": means,
    }


def estimate(work: Path, train_sets: int, seeds: int, arms: int, steps: int, teacher_factor: int,
             group_sizes: list[int]) -> str:  # fmt: skip
    """One line: the measured seconds per step and the study's total and remaining training time."""
    runs = read_runs(work)
    first = first_finished(runs)
    if first is None:
        return "time estimate: after the first finished training"
    rate = seconds_per_step(first)
    total = planned_cost(train_sets, seeds, arms, steps, teacher_factor, group_sizes)
    done = sum(step_cost(run.steps, run.group_size) for run in runs if run.finished or run.failed)
    return (
        f"time estimate: {rate:.2f} s per step of group 8 (measured on {first.folder}); the study's trainings "
        f"are {total:.0f} such steps, about {total * rate / 3600:.1f} h; {done:.0f} done, about "
        f"{max(total - done, 0) * rate / 3600:.1f} h left, then teacher scoring and evaluation (README)"
    )


def arm_order(runs: list, arms: list[str]) -> list[str]:
    """The given arms in their order, then the others the runs hold (group sizes), the teacher last."""
    others = sorted({run.arm for run in runs} - set(arms) - {TEACHER})
    return [*arms, *others, *([TEACHER] if any(run.arm == TEACHER for run in runs) else [])]


def fmt_spread(summary: dict | None) -> str:
    if summary is None:
        return "—"
    sd = f" ± {summary['sd']:.4f}" if summary["sd"] is not None else ""
    return f"{summary['mean']:.4f}{sd} ({summary['n']})"


def fmt_test(test: dict | None) -> str:
    if test is None:
        return "—"
    return f"{test['difference']:+.4f} [{test['ci_low']:+.3f}, {test['ci_high']:+.3f}], p = {test['p_value']:.4f}"


def label(arm: str, selection: dict | None) -> str:
    marks = [
        text
        for key, text in (("best_temperature", "best T"), ("best_loss", "best loss"))
        if selection and selection.get(key) == arm
    ]
    return f"{arm} ({', '.join(marks)})" if marks else arm


def validation_lines(table: dict, sets: list[str], arms: list[str], selection: dict | None) -> list[str]:
    lines = [
        f"Best checkpoint's {VAL_METRIC}, mean ± sd over seeds (number of seeds).",
        "",
        "| arm | " + " | ".join(f"trained and validated on {s}" for s in sets) + " |",
        "|---|" + "---|" * len(sets),
    ]
    for arm in arms:
        lines.append(
            f"| {label(arm, selection)} | "
            + " | ".join(fmt_spread(table.get(s, {}).get(arm)) for s in sets)
            + " |"
        )
    if selection:
        lines += ["", f"Chosen on validation (mean over both training sets and every seed): temperature "
                  f"arm {selection['best_temperature']}, loss arm {selection['best_loss']}."]  # fmt: skip
    return lines


def evaluation(out: Path, sets: list[str], arms: list[str], samples: int) -> dict:
    """``{test set: {first stage: {"first stage": value, "trained on": {set: {arm: summary}}}}}``."""
    summary: dict = {}
    for test in sets:
        for retriever in RETRIEVERS:
            path = out / "results" / f"{test}-{retriever}" / "results.json"
            if not path.is_file():
                continue
            results = json.loads(path.read_text())
            entry = {"first stage": results["table"][FIRST_STAGE][METRIC], "trained on": {}}
            for train_set in sets:
                baseline = eval_rows(results, train_set, BASELINE)
                arms_here = {}
                for arm in arms:
                    found = arm_summary(results, train_set, arm, baseline, samples=samples)
                    if found is not None:
                        arms_here[arm] = found
                entry["trained on"][train_set] = arms_here
            summary.setdefault(test, {})[retriever] = entry
    return summary


def evaluation_lines(summary: dict, selection: dict | None) -> list[str]:
    lines = []
    for test, by_retriever in summary.items():
        for retriever, entry in by_retriever.items():
            lines += [
                "",
                f"### {test} evaluation queries, {retriever} top 10 (first stage alone: {METRIC} {entry['first stage']:.4f})",
                "",
                f"| trained on | arm | {METRIC} mean ± sd (seeds) | fused with the first stage | "
                f"Δ vs {BASELINE} [95% CI], p | Δ vs first stage [95% CI], p |",
                "|---|---|---|---|---|---|",
            ]
            # In-domain rows first, then the other training set's.
            for train_set in sorted(entry["trained on"], key=lambda s: s != test):
                for arm, found in entry["trained on"][train_set].items():
                    lines.append(
                        f"| {train_set}{' (in-domain)' if train_set == test else ''} | {label(arm, selection)} | "
                        f"{fmt_spread(found[METRIC])} | {fmt_spread(found[f'fused {METRIC}'])} | "
                        f"{fmt_test(found[f'vs {BASELINE}'])} | {fmt_test(found['vs first stage'])} |"
                    )
    return lines


def report(work: Path, out: Path, arms: list[str], samples: int = 10000) -> dict:
    runs = read_runs(work)
    sets = sorted({run.train_set for run in runs})
    order = arm_order(runs, arms)
    selection_file = work / "selection.json"
    selection = json.loads(selection_file.read_text()) if selection_file.is_file() else None
    table = validation(runs)
    summary = evaluation(out, sets, order, samples)
    failed = sorted(str(run.folder) for run in runs if run.failed)
    unfinished = sorted(str(run.folder) for run in runs if not run.finished and not run.failed)
    text = ["# Objectives: tables", "", "## Validation", "", *validation_lines(table, sets, order, selection)]
    text += ["", "## Evaluation", "", "Mean over seeds of each seed's MRR@10 on the same candidate lists; the "
             "tests compare seed-averaged per-query reciprocal ranks (interval over queries).", *evaluation_lines(summary, selection)]  # fmt: skip
    if failed or unfinished:
        text += ["", "## Runs without metrics", "", *(f"- failed: {f}" for f in failed), *(f"- unfinished: {f}" for f in unfinished)]  # fmt: skip
    results = {"selection": selection, "validation": table, "evaluation": summary, "failed runs": failed,
               "unfinished runs": unfinished}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "tables.md", "\n".join(text) + "\n")
    write_atomic(out / "results.json", json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    plot_curves(runs, order, out / "curves.png")
    if summary:
        plot_eval(summary, order, out / "mrr.png")
    return results


def write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    chosen = commands.add_parser("select", help="print the choices on validation as JSON")
    chosen.add_argument("work", type=Path)
    chosen.add_argument("--arms", nargs="+", required=True)
    timing = commands.add_parser("estimate", help="print the time estimate")
    timing.add_argument("work", type=Path)
    for name in ("train-sets", "seeds", "arms", "steps", "teacher-factor"):
        timing.add_argument(f"--{name}", type=int, required=True)
    timing.add_argument("--group-sizes", type=int, nargs="*", default=[])
    written = commands.add_parser("report", help="write tables.md, results.json and the plots")
    written.add_argument("work", type=Path)
    written.add_argument("out", type=Path)
    written.add_argument("--arms", nargs="+", required=True)
    written.add_argument("--samples", type=int, default=10000, help="bootstrap and permutation samples")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        if args.command == "select":
            print(json.dumps(select(args.work, args.arms), indent=1))
        elif args.command == "estimate":
            print(estimate(args.work, args.train_sets, args.seeds, args.arms, args.steps, args.teacher_factor,
                           args.group_sizes))  # fmt: skip
        else:
            report(args.work, args.out, args.arms, args.samples)
            print((args.out / "tables.md").read_text(), end="")
    except InputError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
